"""A stand-in for TF Serving, for tests and benchmarks where its binary cannot be installed.

`ModelServer` serves a SavedModel written by `keras_lsrec.serving.export`
through TF Serving's REST and gRPC predict APIs, running it with
`tf.saved_model.load` (the real TensorFlow runtime, not TF Serving's C++
server). It answers the two wire protocols the way TF Serving does (URL
scheme, JSON columnar format, `PredictionService.Predict`, NOT_FOUND for an
unknown model, INVALID_ARGUMENT for bad input, the server staying up), so the
client and the export can be tested end to end and request latency measured.
It serves the highest version under `base_dir`, as TF Serving's default
version policy does. It does not batch requests, reload new versions, read
`models.config` or replay warm-up records; use the real TF Serving in
production.

Example:

>>> from keras_lsrec.serving import Client
>>> from keras_lsrec.serving.testing import ModelServer
>>> server = ModelServer("saved_models/dare").start()
>>> Client(server.rest_url, "dare").predict(batch)
>>> Client(server.grpc_target, "dare").predict(batch)
>>> server.stop()
"""

from __future__ import annotations

import json
import os
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


class BadRequest(ValueError):
    """A request TF Serving would refuse with INVALID_ARGUMENT (HTTP 400)."""


class ModelServer:
    """Serves the highest version under `base_dir` over REST and gRPC on 127.0.0.1.

    Args:
        base_dir: the model's directory, `<root>/<name>/` holding numbered
            version directories; the model is served under the name `<name>`.

    After `start()`, `rest_url` (`"http://127.0.0.1:<port>"`) and
    `grpc_target` (`"127.0.0.1:<port>"`) are the addresses to give
    `keras_lsrec.serving.Client`; both ports are chosen free by the system.
    """

    def __init__(self, base_dir: str) -> None:
        self.name = os.path.basename(os.path.normpath(base_dir))
        versions = sorted(int(d) for d in os.listdir(base_dir) if d.isdigit())
        if not versions:
            raise ValueError(f"No version directory (1/, 2/, ...) under {base_dir!r}")
        self.version = versions[-1]
        self.model = tf.saved_model.load(os.path.join(base_dir, str(self.version)))
        self.rest_url = ""
        self.grpc_target = ""
        self._http: ThreadingHTTPServer | None = None
        self._grpc: Any = None

    # -- the shared predict path ----------------------------------------------
    def predict(self, name: str, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if name != self.name:
            raise LookupError(f"Servable not found for request: Latest({name})")
        if signature not in self.model.signatures:
            raise BadRequest(f'Serving signature name: "{signature}" not found in signature def')
        function = self.model.signatures[signature]
        specs = function.structured_input_signature[1]
        missing, unknown = sorted(set(specs) - set(inputs)), sorted(set(inputs) - set(specs))
        if missing or unknown:
            raise BadRequest(f"input mismatch: missing {missing}, unexpected {unknown}")
        tensors = {}
        for key, spec in specs.items():
            value = inputs[key]
            if value.dtype != spec.dtype.as_numpy_dtype:
                raise BadRequest(f"Expects arg[{key}] to be {spec.dtype.name} but {value.dtype} is provided")
            if value.ndim != spec.shape.rank:
                raise BadRequest(f"{key}: expected rank {spec.shape.rank}, got shape {value.shape}")
            tensors[key] = tf.constant(value)
        try:
            outputs = function(**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            raise BadRequest(str(getattr(error, "message", error)).strip()) from None
        return {key: value.numpy() for key, value in outputs.items()}

    def from_json(self, signature: str, key: str, value: Any) -> np.ndarray:
        """A JSON value as the array the signature takes: JSON carries no dtype,
        so TF Serving converts numbers to the input's type (ids stay exact:
        a fractional number for an integer input is refused)."""
        array = np.asarray(value)
        function = self.model.signatures[signature] if signature in self.model.signatures else None
        spec = function.structured_input_signature[1].get(key) if function is not None else None
        if array.dtype.kind not in "biuf":
            raise BadRequest(f"{key}: JSON value is not a numeric array")
        if spec is not None and spec.dtype.is_floating:
            return array.astype(spec.dtype.as_numpy_dtype)
        if not np.issubdtype(array.dtype, np.integer):
            raise BadRequest(f"{key}: JSON value is not an integer array")
        return array.astype("int64")

    # -- REST -----------------------------------------------------------------
    def _rest_handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, code: int, payload: dict[str, Any]) -> None:
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == f"/v1/models/{server.name}":
                    status = {"version": str(server.version), "state": "AVAILABLE"}
                    self._reply(200, {"model_version_status": [status]})
                else:
                    self._reply(404, {"error": f"Not found: {self.path}"})

            def do_POST(self) -> None:
                match = re.fullmatch(r"/v1/models/([^/:]+)(?:/versions/(\d+))?:predict", self.path)
                if not match:
                    return self._reply(404, {"error": f"Malformed request: POST {self.path}"})
                try:
                    body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                    if "inputs" not in body:
                        raise BadRequest("Missing 'inputs' (this server speaks the columnar format)")
                    signature = body.get("signature_name", "serving_default")
                    inputs = {
                        key: server.from_json(signature, key, value) for key, value in body["inputs"].items()
                    }
                    outputs = server.predict(match.group(1), signature, inputs)
                except LookupError as error:
                    return self._reply(404, {"error": str(error)})
                except ValueError as error:  # BadRequest included
                    return self._reply(400, {"error": str(error)})
                payload = {k: v.tolist() for k, v in outputs.items()}
                self._reply(200, {"outputs": next(iter(payload.values())) if len(payload) == 1 else payload})

        return Handler

    # -- gRPC -----------------------------------------------------------------
    def _grpc_servicer(self) -> Any:
        server = self

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request: Any, context: Any) -> Any:
                inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
                try:
                    outputs = server.predict(
                        request.model_spec.name,
                        request.model_spec.signature_name or "serving_default",
                        inputs,
                    )
                except LookupError as error:
                    context.abort(grpc.StatusCode.NOT_FOUND, str(error))
                except BadRequest as error:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
                response = predict_pb2.PredictResponse()
                response.model_spec.name = server.name
                response.model_spec.version.value = server.version
                for key, value in outputs.items():
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
                return response

        return Servicer()

    # -- lifecycle ------------------------------------------------------------
    def start(self) -> ModelServer:
        """Starts both servers in background threads; returns `self`."""
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._rest_handler())
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self.rest_url = f"http://127.0.0.1:{self._http.server_address[1]}"
        # As TF Serving's model server: messages up to 2**31 - 1 bytes (gRPC's default is 4 MiB).
        largest = [(f"grpc.max_{way}_message_length", 2**31 - 1) for way in ("receive", "send")]
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=largest)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(self._grpc_servicer(), self._grpc)
        port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self.grpc_target = f"127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        """Stops both servers (in-flight gRPC calls are cancelled)."""
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._grpc is not None:
            self._grpc.stop(None)
            self._grpc = None
