"""The tensorflow side of `keras_lsrec.serving.export` (needs the tensorflow backend).

Run in-process when the current backend is tensorflow, otherwise as
`KERAS_BACKEND=tensorflow python -m keras_lsrec.serving._tf_export MODEL.keras DIR NAME [TABLES.npz]`
(`TABLES.npz`: the item-feature tables the SavedModel holds, `export(..., item_tables=)`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

import keras

from keras_lsrec.data.schema import CLUSTER_SIZE, HISTORY_PREFIX, TARGET_PREFIX, history_key, target_key
from keras_lsrec.serving import _item_tables

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
SIGNATURES = {"serving_default": "int64", "serving_int32": "int32"}
REQUEST_SIGNATURE = "serving_request"  # one user's history and a candidate set: (B, L), (B, C)
REQUEST_WARMUP = ((1, 100), (8, 100))  # (users, candidates) of its warm-up records
CANNOT_LOAD = 3  # `main`'s exit code when Keras cannot load the `.keras` file (its last stderr line says why)
REFUSED = 4  # `main`'s exit code when the item tables do not fit the model (its last stderr line says why)


def _checked(schema: Any, inputs: dict[str, Any]) -> dict[str, Any]:
    """`inputs` cast to int32 (dense features to float32) after checks that
    name the field (ids in the vocabulary, histories of one shape, targets of
    one batch size or shape, dense features finite)."""
    import tensorflow as tf

    checks = []
    reference = inputs[history_key("item")]
    for key, ids in inputs.items():
        if key not in schema.features and schema.feature(key) is not None:
            checks += _item_feature_checks(schema, key, ids, inputs)
            continue
        if key in schema.features:
            checks.append(
                tf.debugging.assert_equal(
                    tf.shape(ids)[0],
                    tf.shape(reference)[0],
                    message=f"`{key}` must have the batch size of `history_item`",
                )
            )
            if schema.is_dense(key):
                checks.append(tf.debugging.assert_all_finite(ids, message=f"`{key}` must be finite"))
                continue
        checks.append(
            tf.debugging.assert_non_negative(ids, message=f"`{key}`: ids must be >= 0 (0 is padding)")
        )
        if key == history_key(CLUSTER_SIZE):
            # Not an id: a count, >= 1 at every event, that int32 holds.
            at_events = tf.where(tf.not_equal(reference, 0), ids, tf.ones_like(ids))
            checks.append(
                tf.debugging.assert_positive(
                    at_events, message=f"`{key}`: every event stands for at least 1 behaviour"
                )
            )
            vocab = 2**31 - 1
        else:
            vocab = schema.vocab_size(key)
        checks.append(
            tf.debugging.assert_less(
                ids,
                tf.constant(vocab, ids.dtype),
                message=f"`{key}`: ids must be < its vocabulary size {vocab}",
            )
        )
        if key.startswith(HISTORY_PREFIX):
            checks.append(
                tf.debugging.assert_equal(
                    tf.shape(ids),
                    tf.shape(reference),
                    message=f"`{key}` must have the shape of `history_item` (batch, L)",
                )
            )
        else:
            checks.append(
                tf.debugging.assert_equal(
                    tf.shape(ids)[0],
                    tf.shape(reference)[0],
                    message=f"`{key}` must have the batch size of `history_item`",
                )
            )
            if schema.has_candidates and key not in schema.features:
                checks.append(
                    tf.debugging.assert_equal(
                        tf.shape(ids),
                        tf.shape(inputs[target_key("item")]),
                        message=f"`{key}` must have the shape of `target_item` (batch, C)",
                    )
                )
    with tf.control_dependencies(checks):
        return {
            key: tf.cast(ids, "float32" if schema.is_dense(key) else "int32") for key, ids in inputs.items()
        }


def _item_feature_checks(schema: Any, key: str, values: Any, inputs: dict[str, Any]) -> list[Any]:
    """An item feature (`target_<f>` / `history_<f>`): one bag or vector per
    id of its item (the shape of `target_item` / `history_item` + its width),
    then finite values or ids in its vocabulary."""
    import tensorflow as tf

    item = inputs[history_key("item") if key.startswith(HISTORY_PREFIX) else target_key("item")]
    width = schema.feature(key).shape[0]
    checks = [
        tf.debugging.assert_equal(
            tf.shape(values),
            tf.concat([tf.shape(item), [width]], 0),
            message=f"`{key}` must have the shape of its item ids plus {width} values per item",
        )
    ]
    if schema.is_dense(key):
        return checks + [tf.debugging.assert_all_finite(values, message=f"`{key}` must be finite")]
    vocab = schema.vocab_size(key)
    return checks + [
        tf.debugging.assert_non_negative(values, message=f"`{key}`: ids must be >= 0 (0 is padding)"),
        tf.debugging.assert_less(
            values, tf.constant(vocab, values.dtype), message=f"`{key}`: ids must be < {vocab}"
        ),
    ]


def _held_variables(tables: Mapping[str, Any]) -> dict[str, Any]:
    """Each table as a non-trainable `tf.Variable` `item_table_<name>`.

    Plain `tf.Variable`s, not Keras weights: the archive saves a Keras weight
    twice (its wrapper, and the `tf.Variable` the endpoint captures;
    keras-team/keras#23553), which for a table of every item would double
    the SavedModel and the server's memory. These are saved once, as the
    variable collection `item_tables`.
    """
    import tensorflow as tf

    return {
        name: tf.Variable(table, trainable=False, name=f"item_table_{name}") for name, table in tables.items()
    }


def _with_held(schema: Any, x: dict[str, Any], tables: Mapping[str, Any]) -> dict[str, Any]:
    """`x` (checked inputs) with `target_<f>` / `history_<f>` of each held
    feature `f` gathered from its table by `target_item` / `history_item`,
    zeros where the id is 0 (padding, a missing candidate)."""
    import tensorflow as tf

    x = dict(x)
    for name, table in tables.items():
        for key, item in ((target_key(name), target_key("item")), (history_key(name), history_key("item"))):
            ids = x[item]  # checked: in [0, vocab_sizes["item"]), and the table has those rows
            values = tf.gather(table, ids)
            values = tf.where(tf.not_equal(ids, 0)[..., None], values, tf.zeros_like(values))
            x[key] = tf.cast(values, "float32" if schema.is_dense(key) else "int32")
    return x


def _serving_fns(
    model: keras.Model, tables: Mapping[str, Any] | None = None
) -> tuple[Any, dict[str, Callable[[dict[str, Any]], dict[str, Any]]]]:
    """The model the SavedModel holds, and `{schema form: inputs -> {"probability": ...}}`.

    A model of rows that also scores candidate sets (`request_form`) is held
    once, as its request form: the row signatures send each row as a set of
    one candidate (the same scores), and `serving_request` sends the sets.
    `tables` (`{item feature: variable}`): features the graph gathers by id
    instead of reading them from the request.
    """
    import tensorflow as tf

    from keras_lsrec.models.base import CANDIDATES

    schema = model.schema
    tables = tables or {}
    if schema.has_candidates or CANDIDATES not in getattr(model, "INPUT_FORMS", ()):
        served = model

        def serve(inputs: dict[str, Any]) -> dict[str, Any]:
            x = _with_held(schema, _checked(schema, inputs), tables)
            return {"probability": served(x, training=False)}

        return served, {"rows" if not schema.has_candidates else "candidates": serve}
    served = model.request_form("variable")

    def serve_rows(inputs: dict[str, Any]) -> dict[str, Any]:
        x = _with_held(schema, _checked(schema, inputs), tables)
        # Each row is a request of one candidate: the targets gain the candidate axis.
        x = {k: (tf.expand_dims(v, 1) if k.startswith(TARGET_PREFIX) else v) for k, v in x.items()}
        return {"probability": tf.squeeze(served(x, training=False), 1)}

    def serve_candidates(inputs: dict[str, Any]) -> dict[str, Any]:
        x = _with_held(served.schema, _checked(served.schema, inputs), tables)
        return {"probability": served(x, training=False)}

    return served, {"rows": serve_rows, "candidates": serve_candidates}


def write(
    model: keras.Model,
    directory: str,
    name: str,
    warmup_rows: tuple[int, ...] = (1, 64),
    item_tables: Mapping[str, Any] | None = None,
) -> None:
    """Writes the SavedModel of `model` to `directory` (which must not exist).

    Signatures: `serving_default` (int64) and `serving_int32` take the
    model's own batch form; `serving_request` takes candidate sets, `(B, C)`
    targets, for every model that scores them (the request form of a row
    model, or a candidate-set model's own form). With `item_tables`
    (`{item feature: one row per item id}`, `export(..., item_tables=)`), the
    SavedModel holds those tables and no signature takes their features.
    """
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("_tf_export.write needs the tensorflow backend")
    tables = _item_tables.check_item_tables(model.schema, item_tables)
    held = _item_tables.held_keys(tables)
    variables = _held_variables(tables)
    served, fns = _serving_fns(model, variables)
    archive = keras.export.ExportArchive()
    archive.track(served)
    if variables:
        archive.add_variable_collection("item_tables", list(variables.values()))
    own = "candidates" if model.schema.has_candidates else "rows"
    endpoints = [(signature, dtype, model.schema, fns[own]) for signature, dtype in SIGNATURES.items()]
    if "candidates" in fns:
        endpoints.append((REQUEST_SIGNATURE, "int64", served.schema, fns["candidates"]))
    for signature, dtype, schema, fn in endpoints:
        specs = {
            key: tf.TensorSpec((None,) + tuple(shape), "float32" if schema.is_dense(key) else dtype, name=key)
            for key, shape in schema.input_shapes().items()
            if key not in held
        }
        archive.add_endpoint(name=signature, fn=fn, input_signature=[specs])
    archive.write_out(directory, verbose=False)
    requests: list[tuple[str, Any, int, dict]] = [
        ("serving_default", model.schema, size, {}) for size in warmup_rows
    ]
    if "candidates" in fns:
        requests += [(REQUEST_SIGNATURE, served.schema, n, {"candidates": c}) for n, c in REQUEST_WARMUP]
    _write_warmup(os.path.join(directory, WARMUP_FILE), name, requests, held)


def _write_warmup(
    path: str, name: str, requests: list[tuple[str, Any, int, dict]], held: set[str] | None = None
) -> None:
    """PredictionLog records: `(signature, schema, rows, random_batch options)` each,
    without the `held` keys (item features the SavedModel holds)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for i, (signature, schema, size, options) in enumerate(requests):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = name
            request.model_spec.signature_name = signature
            for key, value in schema.random_batch(size, seed=i, **options).items():
                if key not in (held or ()):
                    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def main(argv: list[str]) -> int:
    import keras_lsrec.models  # noqa: F401  (registers the classes)

    model_file, directory, name, *tables_file = argv
    try:
        model = keras.saving.load_model(model_file)
    except Exception as error:  # one line naming the file; `export` raises it as a ValueError
        reason = " ".join(str(error).split()) or type(error).__name__
        print(f"Keras cannot load {model_file}: {type(error).__name__}: {reason}", file=sys.stderr)
        return CANNOT_LOAD
    try:
        tables = _item_tables.check_item_tables(
            model.schema, _item_tables.load(tables_file[0]) if tables_file else None
        )
    except ValueError as error:  # (checked before the subprocess when the schema could be read)
        print(" ".join(str(error).split()), file=sys.stderr)
        return REFUSED
    write(model, directory, name, item_tables=tables)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
