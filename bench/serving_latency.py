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

`--item-features` measures instead the two ways of getting item features
into a request (issue 28), on a schema with a `Dense(64)` image embedding and
a `Categorical(80, max_values=5)` bag of topics per item (tables of one row
per item, random), for one model (`--models`, default DARE) at the first L
and C of `--lengths` / `--candidates` (default 1000 and 100):

- client sends: the SavedModel of `serving.export(model)`; the request
  carries `target_<f>` `(1, C, M|D)` and `history_<f>` `(1, L, M|D)`;
- server holds: `serving.export(model, item_tables=tables)`; the request
  carries ids only and the graph gathers the features.

Per form and protocol (REST JSON, gRPC protobuf): the request body's bytes,
p50 / p99 ms of `Client.score` through `ModelServer` (client checks and
serialisation included), and of the signature call alone, the two forms
alternating call by call (a shared machine's load falls on both alike);
both forms' scores are checked to agree.

    python bench/serving_latency.py --item-features --requests 60
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
    parser.add_argument("--lengths", default=None, help="default 200,1000,4000 (--item-features: 1000)")
    parser.add_argument("--candidates", default=None, help="default 10,100,1000 (--item-features: 100)")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument(
        "--budget", type=float, default=8.0, help="seconds per measurement (at least 3 calls)"
    )
    parser.add_argument("--models", default=None, help=f"default {','.join(MODELS)} (--item-features: DARE)")
    parser.add_argument("--xla", action="store_true", help="also time an XLA-compiled request function")
    parser.add_argument(
        "--item-features", action="store_true", help="client-sent item features against held tables"
    )
    args = parser.parse_args()
    if args.item_features:
        return item_feature_forms(args)
    args.lengths = args.lengths or "200,1000,4000"
    args.candidates = args.candidates or "10,100,1000"
    args.models = args.models or ",".join(MODELS)

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


def item_feature_forms(args: argparse.Namespace) -> None:
    """The `--item-features` table: client-sent item features against tables held by the SavedModel."""
    import json

    import keras
    import tensorflow as tf

    from keras_lsrec import models, serving
    from keras_lsrec.data import Categorical, Dense, SequenceSchema
    from keras_lsrec.serving.testing import ModelServer

    length = int((args.lengths or "1000").split(",")[0])
    count = int((args.candidates or "100").split(",")[0])
    name = (args.models or "DARE").split(",")[0]
    items = 100_000
    schema = SequenceSchema(
        {"item": items, "category": 1_000},
        max_len=length,
        time_vocab_size=length + 1,
        item_features={"image_emb": Dense(64), "topics": Categorical(80, max_values=5)},
    )
    rng = np.random.default_rng(0)
    bag_sizes = rng.integers(1, 6, items)
    topics = np.where(np.arange(5) < bag_sizes[:, None], rng.integers(1, 80, (items, 5)), 0)
    tables = {"image_emb": rng.normal(size=(items, 64)).astype("float32"), "topics": topics.astype("int32")}
    tables["image_emb"][0] = 0
    tables["topics"][0] = 0
    held = tuple(tables)

    # One user: a full history of L events and C candidates, ids from the same items.
    user = schema.random_batch(1, length=length, padded=False, seed=1, candidates=count)
    history = {k.removeprefix("history_"): v[0] for k, v in user.items() if k.startswith("history_")}
    history.update({f: tables[f][history["item"]] for f in held})
    target_items = rng.integers(1, items, count)
    candidates = {
        "item": target_items,
        "category": rng.integers(1, 1_000, count),
        **{f: tables[f][target_items] for f in held},
    }
    ids_only = (
        {k: v for k, v in history.items() if k not in held},
        {k: v for k, v in candidates.items() if k not in held},
    )
    print(f"Machine: {common.machine_line()}")
    print(
        f"{name}, L={length}, C={count}, {items:,} items, item features image_emb Dense(64) and topics "
        f"Categorical(80, max_values=5); up to {args.requests} requests per cell after warm-up.\n"
    )

    def cell(times: list[float]) -> str:
        return f"{common.percentile_ms(times, 50):.1f} / {common.percentile_ms(times, 99):.1f}"

    forms = {"client sends": (None, (history, candidates), ()), "server holds": (tables, ids_only, held)}
    calls: dict[tuple[str, str], Any] = {}  # (form, what) -> a request to time
    sizes: dict[tuple[str, str], int] = {}
    info: dict[str, tuple[float, float]] = {}  # form -> (SavedModel MiB, export s)
    servers, clients = [], []
    scores = {}
    with tempfile.TemporaryDirectory() as root:
        keras.utils.set_random_seed(0)
        model = models.get(name)(schema)
        for form, (item_tables, (hist, cands), client_held) in forms.items():
            base = os.path.join(root, form.replace(" ", "_"), name.lower())
            start = time.perf_counter()
            path = serving.export(model, base, item_tables=item_tables)
            export_s = time.perf_counter() - start
            files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
            info[form] = (sum(map(os.path.getsize, files)) / 2**20, export_s)
            server = ModelServer(base).start()
            servers.append(server)
            batch = {f"history_{k}": np.asarray(v)[None] for k, v in hist.items()}
            batch.update({f"target_{k}": np.asarray(v)[None] for k, v in cands.items()})
            arrays = {k: v.astype("float32" if schema.is_dense(k) else "int64") for k, v in batch.items()}
            tensors = {k: tf.constant(v) for k, v in arrays.items()}
            calls[form, "signature"] = functools.partial(
                server.model.signatures["serving_request"], **tensors
            )
            for protocol, target in (("REST JSON", server.rest_url), ("gRPC", server.grpc_target)):
                client = serving.Client(
                    target, name.lower(), schema=schema, held_item_features=client_held, timeout=600
                )
                clients.append(client)
                calls[form, protocol] = functools.partial(client.score, hist, cands)
                scores[form, protocol] = calls[form, protocol]()
                if protocol == "gRPC":
                    sizes[form, protocol] = request_bytes(arrays, name.lower(), "serving_request")
                else:
                    inputs = {k: v.tolist() for k, v in arrays.items()}
                    body = {"signature_name": "serving_request", "inputs": inputs}
                    sizes[form, protocol] = len(json.dumps(body).encode())
        # The two forms alternate call by call, so that both see the same load on a shared machine.
        times: dict[tuple[str, str], list[float]] = {key: [] for key in calls}
        for what in ("signature", "gRPC", "REST JSON"):
            for _ in range(2):  # warm-up
                for form in forms:
                    calls[form, what]()
            start = time.perf_counter()
            while len(times[next(iter(forms)), what]) < args.requests and (
                len(times[next(iter(forms)), what]) < 3 or time.perf_counter() - start < args.budget
            ):
                for form in forms:
                    t0 = time.perf_counter()
                    calls[form, what]()
                    times[form, what].append(time.perf_counter() - t0)
        for client in clients:
            client.close()
        for server in servers:
            server.stop()
    rows = []
    for form in forms:
        for protocol in ("REST JSON", "gRPC"):
            megabytes, export_s = info[form]
            rows.append(
                [
                    form,
                    protocol,
                    f"{sizes[form, protocol]:,}",
                    cell(times[form, protocol]),
                    cell(times[form, "signature"]),
                    f"{len(times[form, protocol])}",
                    f"{megabytes:.1f}",
                    f"{export_s:.0f}",
                ]
            )
    reference = scores["client sends", "gRPC"]
    for key, value in scores.items():
        np.testing.assert_allclose(value, reference, atol=1e-5, err_msg=str(key))
    print("\nScores of both forms and protocols agree within 1e-5.\n")
    header = [
        "form",
        "protocol",
        "request bytes",
        "Client.score p50 / p99 ms",
        "signature alone p50 / p99 ms",
        "requests",
        "SavedModel MiB",
        "export s",
    ]
    print(common.markdown_table(header, rows))


if __name__ == "__main__":
    start = time.time()
    main()
    print(f"\n({time.time() - start:.0f} s)")
