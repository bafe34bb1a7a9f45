"""Request latency of exported SavedModels: 1 user x 100 candidates at L=1000.

    python bench/serving_latency.py [--length 1000 --candidates 100 --requests 50]

Each zoo model (untrained: latency does not depend on the weights) is
exported with `keras_lsrec.serving.export` and served by
`keras_lsrec.serving.testing.ModelServer` (a stand-in of TF Serving: the real
TensorFlow runtime behind TF Serving's REST and gRPC predict APIs; the TF
Serving binary is not installable here). One
request carries one user's history repeated for every candidate, as a
ranking request for single-target models does. Prints p50 / p99 over
`--requests` requests after warm-up, per protocol, plus the signature call
alone (no transport).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import common  # noqa: E402
import numpy as np  # noqa: E402

MODELS = ("DIN", "TWIN", "DARE", "SAM")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--length", type=int, default=1000)
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from keras_lsrec import models, serving
    from keras_lsrec.data import SequenceSchema
    from keras_lsrec.serving.testing import ModelServer

    schema = SequenceSchema(
        {"item": 100_000, "category": 1_000}, max_len=args.length, time_vocab_size=args.length + 1
    )
    user = schema.random_batch(1, padded=False, seed=0)
    request = {
        k: (np.repeat(v, args.candidates, axis=0) if k.startswith("history_") else None)
        for k, v in user.items()
    }
    rng = np.random.default_rng(1)
    for key in schema.input_shapes():
        if key.startswith("target_"):
            request[key] = rng.integers(1, schema.vocab_size(key), args.candidates).astype("int64")

    print(f"Machine: {common.machine_line()}")
    print(
        f"One request: 1 user x {args.candidates} candidates, L={args.length}; "
        f"{args.requests} requests after warm-up.\n"
    )
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for name in args.models.split(","):
            keras.utils.set_random_seed(0)
            model = models.get(name)(schema)
            path = serving.export(model, os.path.join(root, name.lower()))
            server = ModelServer(os.path.dirname(path)).start()
            function = server.model.signatures["serving_default"]
            tensors = {k: tf.constant(v) for k, v in request.items()}
            cells = []
            calls = {
                "signature": functools.partial(function, **tensors),
                "REST": functools.partial(
                    serving.Client(server.rest_url, name.lower(), timeout=60).predict, request
                ),
                "gRPC": functools.partial(
                    serving.Client(server.grpc_target, name.lower(), timeout=60).predict, request
                ),
            }
            for call in calls.values():
                times = common.time_calls(call, warmup=3, repeats=args.requests, budget_s=60)
                cells.append(f"{common.percentile_ms(times, 50):.1f} / {common.percentile_ms(times, 99):.1f}")
            server.stop()
            rows.append([name] + cells)
            print(f"  {name}: " + " | ".join(cells), flush=True)
    print()
    header = ["model", "signature p50 / p99 ms", "REST p50 / p99 ms", "gRPC p50 / p99 ms"]
    print(common.markdown_table(header, rows))


if __name__ == "__main__":
    start = time.time()
    main()
    print(f"\n({time.time() - start:.0f} s)")
