"""A TF Serving client for the batch format, over REST or gRPC."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_lsrec.data.schema import HISTORY_PREFIX, TARGET_PREFIX, SequenceSchema, history_key, target_key
from keras_lsrec.serving._dependencies import require_serving
from keras_lsrec.serving._item_tables import held_keys
from keras_lsrec.serving._tf_export import REQUEST_SIGNATURE
from keras_lsrec.validation import check_finite, check_integer


class ServingError(RuntimeError):
    """A request TF Serving refused or could not answer (the message says why)."""


class Client:
    """Sends batches in the keras_lsrec batch format to a TF Serving model.

    `target` chooses the protocol: `"http://host:8501"` (REST, `POST
    /v1/models/<name>[/versions/<v>]:predict`, JSON in the columnar
    `"inputs"` format) or `"host:8500"` / `"grpc://host:8500"` (gRPC
    `PredictionService.Predict` from tensorflow-serving-api; without it a
    gRPC client is refused with `ImportError`). Ids are sent as
    int64, the dtype of the exported `serving_default` signature.

    A request is one user's history and a candidate set: `score(history,
    candidates)` sends it to the `serving_request` signature (every export
    has it), which reads the history once for all candidates. `predict`
    takes rows (`target_*` of rank 1, sent to `signature_name`) or
    candidate sets (`target_*` `(B, C)`, id 0 at a missing candidate, sent to
    `serving_request`).

    Before anything is sent, the batch is checked locally: a dict of integer
    arrays, `history_*` of rank 2 and `target_*` all of rank 1 or all of rank
    2, with one batch size, and, when a `schema` is given, its validation
    (missing or unknown fields, ids outside the vocabulary, history longer
    than `max_len`; a row model's schema checks candidate sets in its request
    form). Server-side refusals and timeouts raise `ServingError` with the
    server's message.

    `held_item_features=("image_emb", ...)` names the item features the
    SavedModel holds (`export(..., item_tables=)`): a batch then carries the
    item ids only for them (no `target_<f>` / `history_<f>`; one that does is
    refused before sending), and `schema` validates the rest.

    `pad_to=L` left-pads every history with 0 to length L, so that TF
    Serving's server-side batching can merge requests (it needs equal shapes;
    its own `pad_variable_length_inputs` pads at the end with the first
    element, a real id, which is wrong for this format).

    Example:

    >>> client = Client("http://localhost:8501", "dare", schema=model.schema)
    >>> client.score({"item": items, "category": categories},            # (L,) each
    ...              {"item": candidate_items, "category": candidate_categories})  # (C,) each
    >>> client.predict(batch)  # (B,) float32 click probabilities of rows
    >>> # A SavedModel exported with item_tables={"image_emb": table}: ids only for image_emb.
    >>> client = Client("host:8500", "dare", schema=model.schema, held_item_features=("image_emb",))
    """

    def __init__(
        self,
        target: str,
        model_name: str,
        signature_name: str = "serving_default",
        version: int | None = None,
        timeout: float = 10.0,
        schema: Any = None,
        pad_to: int | None = None,
        held_item_features: Sequence[str] = (),
    ) -> None:
        if not isinstance(target, str) or not target:
            raise ValueError(
                "`target` must be 'http://host:port' (REST) or 'host:port' (gRPC). "
                f"Received: `target={target!r}`"
            )
        # Every argument now, not at the first request (numpy integers as Python's).
        for name, text in (("model_name", model_name), ("signature_name", signature_name)):
            if not isinstance(text, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", text):
                raise ValueError(
                    f"`{name}` must be a TF Serving name (letters, digits, '_', '.', '-'). "
                    f"Received: `{name}={text!r}`"
                )
        if version is not None:
            version = check_integer("version", version, 1, requirement="None or a positive integer")
        if check_finite("timeout", timeout) <= 0:
            raise ValueError(
                f"`timeout` must be a positive number of seconds. Received: `timeout={timeout!r}`"
            )
        if pad_to is not None:
            pad_to = check_integer("pad_to", pad_to, 1, requirement="None or a positive integer")
        if schema is not None and not isinstance(schema, SequenceSchema):
            raise ValueError(
                f"`schema` must be None or the model's SequenceSchema. Received: `schema={schema!r}`"
            )
        self.protocol = "rest" if target.startswith(("http://", "https://")) else "grpc"
        if self.protocol == "grpc":
            require_serving("A gRPC `Client`", ("tensorflow", "tensorflow_serving", "grpc"))
        self.target = target.rstrip("/") if self.protocol == "rest" else target.removeprefix("grpc://")
        self.model_name = model_name
        self.signature_name = signature_name
        self.version = version
        self.timeout = timeout
        self.schema = schema
        self.pad_to = pad_to
        if isinstance(held_item_features, str):
            held_item_features = (held_item_features,)
        self.held_item_features = tuple(held_item_features)
        for name in self.held_item_features:
            if schema is not None and name not in schema.item_features:
                raise ValueError(
                    f"`held_item_features`: {name!r} is not an item feature of the schema; its item "
                    f"features are {sorted(schema.item_features)}."
                )
        self._held_keys = held_keys(self.held_item_features)
        # What a request carries: the schema without the features the server holds.
        self._request_schema = schema
        if schema is not None and self.held_item_features:
            kept = {n: f for n, f in schema.item_features.items() if n not in self.held_item_features}
            self._request_schema = schema.replace(item_features=kept)
        self._channel: Any = None  # grpc.Channel, opened on the first gRPC request
        self._stub: Any = None

    # -- validation ----------------------------------------------------------
    def _prepare(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        if not isinstance(batch, Mapping) or not batch:
            raise ValueError(
                f"The batch must be a non-empty dict of id arrays. Received: {type(batch).__name__}"
            )
        held = sorted(key for key in batch if key in self._held_keys)
        if held:
            raise ValueError(
                f"{held} belong to item feature(s) that the model holds (`held_item_features="
                f"{self.held_item_features}`, exported with `item_tables`): send the item ids only, "
                "without them."
            )
        arrays = {key: np.asarray(value) for key, value in batch.items()}
        sizes = set()
        targets = [v.ndim for k, v in arrays.items() if k.startswith(TARGET_PREFIX)]
        target_rank = arrays["target_item"].ndim if "target_item" in arrays else min(targets, default=1)
        for key, value in arrays.items():
            rank = 2 if key.startswith(HISTORY_PREFIX) else target_rank
            if key.startswith((HISTORY_PREFIX, TARGET_PREFIX)) and value.ndim == rank + 1:
                # An item feature: a bag of ids or a vector per item.
                if value.dtype.kind not in "biuf":
                    raise ValueError(f"`{key}` must be an array of numbers. Received dtype {value.dtype}")
                sizes.add(value.shape[0])
                continue  # (the schema, when given, checks its width, ids or values below)
            if not key.startswith((HISTORY_PREFIX, TARGET_PREFIX)):  # a per-row feature
                if value.dtype.kind not in "biuf" or not value.ndim:
                    raise ValueError(
                        f"`{key}` must be an array of numbers, one row per example. "
                        f"Received dtype {value.dtype}, shape {value.shape}"
                    )
                sizes.add(value.shape[0])
                continue  # (the schema, when given, checks its shape, ids or values below)
            if not np.issubdtype(value.dtype, np.integer):
                raise ValueError(f"`{key}` must hold integer ids. Received dtype {value.dtype}")
            if value.ndim != rank or rank not in (1, 2):
                raise ValueError(
                    f"`{key}` must have rank {rank} (histories 2; targets all 1, rows, or all 2, "
                    f"candidate sets). Received shape {value.shape}"
                )
            sizes.add(value.shape[0])
        if len(sizes) > 1:
            raise ValueError(f"Every field must have one batch size. Received: {sorted(sizes)}")
        if self._request_schema is not None:
            schema = self._request_schema
            if target_rank == 2 and not schema.has_candidates:
                schema = schema.replace(candidates="variable")  # a row model's request form
            schema.validate(arrays)
        if self.pad_to is not None:
            arrays = {key: self._left_pad(key, value) for key, value in arrays.items()}
        return {key: value.astype(self._dtype(key, value)) for key, value in arrays.items()}

    def _dtype(self, key: str, value: np.ndarray) -> str:
        """float32 for a dense feature (by the schema, or a float array without
        one: ids were checked to be integers), int64 for ids."""
        if self.schema is not None:
            return "float32" if self.schema.is_dense(key) else "int64"
        return "float32" if value.dtype.kind == "f" else "int64"

    def _left_pad(self, key: str, value: np.ndarray) -> np.ndarray:
        if not key.startswith(HISTORY_PREFIX):
            return value
        if value.shape[1] > self.pad_to:
            raise ValueError(f"`{key}` has {value.shape[1]} events, more than `pad_to={self.pad_to}`")
        return np.pad(value, ((0, 0), (self.pad_to - value.shape[1], 0)) + ((0, 0),) * (value.ndim - 2))

    # -- transport -------------------------------------------------------------
    def predict(self, batch: Mapping[str, Any]) -> np.ndarray:
        """Click probabilities: `(B,)` for rows, `(B, C)` for candidate sets
        (0 at missing candidates; sent to `serving_request`)."""
        arrays = self._prepare(batch)
        candidate_sets = arrays[target_key("item")].ndim == 2 if target_key("item") in arrays else False
        signature = REQUEST_SIGNATURE if candidate_sets else self.signature_name
        if self.protocol == "rest":
            return self._predict_rest(arrays, signature)
        return self._predict_grpc(arrays, signature)

    def score(
        self,
        history: Mapping[str, Any],
        candidates: Mapping[str, Any],
        features: Mapping[str, Any] | None = None,
    ) -> np.ndarray:
        """Click probabilities `(C,)` of one user's candidates.

        Args:
            history: `{field: (L,) ids}` of the user's events, oldest first
                (`time` too when the model uses it, `action` when its schema has
                actions), and each item feature's
                `(L, M|D)` values (but those of `held_item_features`).
            candidates: `{field: (C,) ids}` of the candidates, and each item
                feature's `(C, M|D)` values (but those of `held_item_features`).
            features: the request's per-row features (user, context), one
                value each: a scalar id, or an `(M,)` bag or `(D,)` vector.
        """
        for name, part in (("history", history), ("candidates", candidates)):
            if not isinstance(part, Mapping) or not part:
                raise ValueError(
                    f"`{name}` must be a non-empty dict of id arrays. Received: {type(part).__name__}"
                )
            for field, ids in part.items():
                if self._item_feature(field) is True:
                    if np.ndim(ids) != 2:
                        raise ValueError(
                            f"`{name}[{field!r}]` is an item feature: 2-D, its values per item. "
                            f"Received shape {np.shape(ids)}"
                        )
                elif np.ndim(ids) != 1 and (self._item_feature(field) is False or np.ndim(ids) != 2):
                    raise ValueError(f"`{name}[{field!r}]` must be 1-D. Received shape {np.shape(ids)}")
        if features is not None and not isinstance(features, Mapping):
            raise ValueError(f"`features` must be a dict name -> value. Received: {type(features).__name__}")
        batch = {history_key(f): np.asarray(v)[None] for f, v in history.items()}
        batch.update({target_key(f): np.asarray(v)[None] for f, v in candidates.items()})
        batch.update({name: np.asarray(v)[None] for name, v in (features or {}).items()})
        return self.predict(batch)[0]

    def _item_feature(self, field: str) -> bool | None:
        """Whether `field` is an item feature (values per item), by the schema;
        without one, `item` is not and any other field may be (`None`)."""
        if self.schema is not None:
            return field in self.schema.item_features
        return False if field == "item" else None

    def _predict_rest(self, arrays: dict[str, np.ndarray], signature: str) -> np.ndarray:
        version = f"/versions/{self.version}" if self.version is not None else ""
        url = f"{self.target}/v1/models/{self.model_name}{version}:predict"
        body = {"signature_name": signature, "inputs": {k: v.tolist() for k, v in arrays.items()}}
        request = urllib.request.Request(
            url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("error", detail)
            except ValueError:
                pass
            raise ServingError(f"{url} answered HTTP {error.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as error:
            raise ServingError(f"{url} unreachable or timed out after {self.timeout} s: {error}") from None
        outputs = payload.get("outputs")
        if isinstance(outputs, dict):
            outputs = outputs.get("probability")
        if outputs is None:
            raise ServingError(f"{url} returned no 'probability' output: {str(payload)[:200]}")
        return np.asarray(outputs, dtype="float32")

    def _predict_grpc(self, arrays: dict[str, np.ndarray], signature: str) -> np.ndarray:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        if self._stub is None:
            # TF Serving accepts messages up to 2**31 - 1 bytes; gRPC's client default receives 4 MiB.
            options = [("grpc.max_receive_message_length", -1)]
            self._channel = grpc.insecure_channel(self.target, options=options)
            self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = signature
        if self.version is not None:
            request.model_spec.version.value = self.version
        for key, value in arrays.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        try:
            response = self._stub.Predict(request, timeout=self.timeout)
        except grpc.RpcError as error:
            raise ServingError(
                f"gRPC {self.target} answered {error.code().name}: {error.details()}"
            ) from None
        if "probability" not in response.outputs:
            raise ServingError(
                f"gRPC {self.target} returned no 'probability' output: {list(response.outputs)}"
            )
        return tf.make_ndarray(response.outputs["probability"]).astype("float32")

    def close(self) -> None:
        if self._stub is not None:
            self._channel.close()
            self._stub = None
