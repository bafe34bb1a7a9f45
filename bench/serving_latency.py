"""Request latency of exported SavedModels: the request form against the row form.

    python bench/serving_latency.py                      # the table of docs/benchmarks.md
    python bench/serving_latency.py --lengths 1000 --candidates 100 --models DARE

Each zoo model (untrained: latency does not depend on the weights; default
hyper-parameters, vocabulary 100,000 items and 1,000 categories) is exported
once with `keras_lsrec.serving.export` and served by
`keras_lsrec.serving.testing.ModelServer` (the real TensorFlow runtime behind
TF Serving's gRPC predict API; the TF Serving binary is not installable
here). A request is one user with a history of L events and C candidates:

- row form: `serving_default` with the history repeated for every candidate
  (C rows), as single-target models were served before;
- request form: `serving_request` with the history once, `(1, L)`, and the
  candidates `(1, C)`.

For each L in `--lengths` and C in `--candidates`: p50 / p99 ms of the
signature call alone (no transport) and of a gRPC request through
`serving.Client`, over up to `--requests` requests after warm-up (fewer when
a cell passes `--budget` seconds), the request's size in bytes (the
serialized PredictRequest), and the request form's p50 as a fraction of the
row form's. `--xla` also times the request form's serving function compiled
with XLA (`tf.function(jit_compile=True)`, in process: the exported
SavedModel is not XLA-compiled, docs/serving.md).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402
import numpy as np  # noqa: E402

MODELS = ("DIN", "TWIN", "DARE", "SAM")


def request_bytes(batch: dict, name: str, signature: str) -> int:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    for key, value in batch.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    return request.ByteSize()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="200,1000,4000")
    parser.add_argument("--candidates", default="10,100,1000")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument(
        "--budget", type=float, default=8.0, help="seconds per measurement (at least 3 calls)"
    )
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--xla", action="store_true", help="also time an XLA-compiled request function")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from keras_lsrec import models, serving
    from keras_lsrec.data import HISTORY_PREFIX, TARGET_PREFIX, SequenceSchema
    from keras_lsrec.serving.testing import ModelServer

    lengths = [int(n) for n in args.lengths.split(",")]
    counts = [int(n) for n in args.candidates.split(",")]
    longest = max(lengths)
    schema = SequenceSchema(
        {"item": 100_000, "category": 1_000}, max_len=longest, time_vocab_size=longest + 1
    )
    print(f"Machine: {common.machine_line()}")
    print(f"Requests: 1 user x C candidates at history length L; up to {args.requests} after warm-up.\n")

    def timed(call) -> list[float]:
        return common.time_calls(call, warmup=2, repeats=args.requests, budget_s=args.budget)

    def cell(times: list[float]) -> str:
        return f"{common.percentile_ms(times, 50):.1f} / {common.percentile_ms(times, 99):.1f}"

    rows = []
    with tempfile.TemporaryDirectory() as root:
        for name in args.models.split(","):
            keras.utils.set_random_seed(0)
            model = models.get(name)(schema)
            path = serving.export(model, os.path.join(root, name.lower()))
            server = ModelServer(os.path.dirname(path)).start()
            client = serving.Client(server.grpc_target, name.lower(), timeout=600)
            compiled = None
            if args.xla:
                # Any: a `keras.Model` subclass is callable, but keras ships no types for mypy to see it.
                request_form: Any = model.request_form()
                compiled = tf.function(functools.partial(request_form, training=False), jit_compile=True)
            for length in lengths:
                user = schema.random_batch(1, length=length, padded=False, seed=length)
                history = {k: v for k, v in user.items() if k.startswith(HISTORY_PREFIX)}
                for count in counts:
                    rng = np.random.default_rng(count)
                    targets = {
                        key: rng.integers(1, schema.vocab_size(key), (1, count)).astype("int64")
                        for key in schema.input_shapes()
                        if key.startswith(TARGET_PREFIX)
                    }
                    forms = {
                        "row": (
                            "serving_default",
                            {
                                **{k: np.repeat(v, count, axis=0) for k, v in history.items()},
                                **{k: v[0] for k, v in targets.items()},
                            },
                        ),
                        "request": ("serving_request", {**history, **targets}),
                    }
                    result: dict = {}
                    for form, (signature, batch) in forms.items():
                        function = server.model.signatures[signature]
                        tensors = {k: tf.constant(v) for k, v in batch.items()}
                        result[form] = {
                            "signature": timed(functools.partial(function, **tensors)),
                            "grpc": timed(functools.partial(client.predict, batch)),
                            "bytes": request_bytes(batch, name.lower(), signature),
                        }
                    ratio = common.median_ms(result["request"]["signature"]) / common.median_ms(
                        result["row"]["signature"]
                    )
                    row = [name, length, count]
                    for form in ("row", "request"):
                        row += [cell(result[form]["signature"]), cell(result[form]["grpc"])]
                        row.append(f"{result[form]['bytes']:,}")
                    row.append(f"{ratio:.2f}")
                    if compiled is not None:
                        x = {k: tf.constant(v.astype("int32")) for k, v in forms["request"][1].items()}
                        row.append(cell(timed(functools.partial(compiled, x))))
                    rows.append(row)
                    print("  " + " | ".join(str(c) for c in row), flush=True)
            client.close()
            server.stop()
    print()
    header = ["model", "L", "C"]
    for form in ("row", "request"):
        header += [f"{form}: signature p50 / p99 ms", f"{form}: gRPC p50 / p99 ms", f"{form}: bytes"]
    header.append("request / row (signature p50)")
    if args.xla:
        header.append("request, XLA p50 / p99 ms")
    print(common.markdown_table(header, rows))


if __name__ == "__main__":
    start = time.time()
    main()
    print(f"\n({time.time() - start:.0f} s)")
