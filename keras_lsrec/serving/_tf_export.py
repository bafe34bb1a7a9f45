"""The tensorflow side of `keras_lsrec.serving.export` (needs the tensorflow backend).

Run in-process when the current backend is tensorflow, otherwise as
`KERAS_BACKEND=tensorflow python -m keras_lsrec.serving._tf_export MODEL.keras DIR NAME`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import keras

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
SIGNATURES = {"serving_default": "int64", "serving_int32": "int32"}


def _serving_fn(model: keras.Model) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """`inputs -> {"probability": ...}` with early checks that name the field."""
    import tensorflow as tf

    schema = model.schema

    def serve(inputs: dict[str, Any]) -> dict[str, Any]:
        checks = []
        reference = inputs["history_item"]
        for key, ids in inputs.items():
            vocab = schema.vocab_size(key)
            checks.append(
                tf.debugging.assert_non_negative(ids, message=f"`{key}`: ids must be >= 0 (0 is padding)")
            )
            checks.append(
                tf.debugging.assert_less(
                    ids,
                    tf.constant(vocab, ids.dtype),
                    message=f"`{key}`: ids must be < its vocabulary size {vocab}",
                )
            )
            if key.startswith("history_"):
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
                if schema.has_candidates:
                    checks.append(
                        tf.debugging.assert_equal(
                            tf.shape(ids),
                            tf.shape(inputs["target_item"]),
                            message=f"`{key}` must have the shape of `target_item` (batch, C)",
                        )
                    )
        with tf.control_dependencies(checks):
            x = {key: tf.cast(ids, "int32") for key, ids in inputs.items()}
        return {"probability": model(x, training=False)}

    return serve


def write(model: keras.Model, directory: str, name: str, warmup_rows: tuple[int, ...] = (1, 64)) -> None:
    """Writes the SavedModel of `model` to `directory` (which must not exist)."""
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("_tf_export.write needs the tensorflow backend")
    schema = model.schema
    archive = keras.export.ExportArchive()
    archive.track(model)
    serve = _serving_fn(model)
    for signature, dtype in SIGNATURES.items():
        specs = {
            key: tf.TensorSpec((None,) + tuple(shape), dtype, name=key)
            for key, shape in schema.input_shapes().items()
        }
        archive.add_endpoint(name=signature, fn=serve, input_signature=[specs])
    archive.write_out(directory, verbose=False)
    _write_warmup(schema, os.path.join(directory, WARMUP_FILE), name, warmup_rows)


def _write_warmup(schema: Any, path: str, name: str, rows: tuple[int, ...]) -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for i, size in enumerate(rows):
            request = predict_pb2.PredictRequest()
            request.model_spec.name = name
            request.model_spec.signature_name = "serving_default"
            for key, value in schema.random_batch(size, seed=i).items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())


def main(argv: list[str]) -> int:
    import keras_lsrec.models  # noqa: F401  (registers the classes)

    model_file, directory, name = argv
    write(keras.saving.load_model(model_file), directory, name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
