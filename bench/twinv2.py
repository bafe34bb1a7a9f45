"""TWIN-V2 at life-cycle lengths: clustering, training and serving at L = 10^3, 10^4, 10^5.

    python bench/twinv2.py                 # the table of docs/benchmarks.md ("TWIN-V2 at 10^5 events")
    python bench/twinv2.py --lengths 1000  # one length

For each history length L, in a fresh tensorflow process per model (so the
peak memory is that model's and that length's):

- data: 64 users with L events each (100,000 items in 1,000 categories; a
  user's events come from 20 categories, items uniform within them), item
  vectors = the category's centre plus noise (what a trained item table
  looks like), dim 16;
- `TWINV2`: `cluster_histories(max_cluster_size=20, group_field="category")`
  once per user (ms per user, clusters M per user), then the model on the
  M clusters; `TWIN` reads the raw L events (the paper's baseline);
- train: `train_on_batch` (batch 32, XLA), samples/s, median of rounds after
  a warm-up;
- serve: `keras_lsrec.serving.export`, then the SavedModel's
  `serving_request` for one user and 100 candidates (p50 ms) and
  `serving_default` for 32 rows (p50 ms);
- peak resident memory of the process (MiB).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

ITEMS, CATEGORIES, PER_CATEGORY = 100_000, 1_000, 100
USERS, BATCH, DIM, K = 64, 32, 16, 50


def histories(length: int, seed: int = 0):
    """`(x, y, vectors)`: USERS rows of `length` events, one target each."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CATEGORIES + 1, DIM))
    category_of = np.concatenate([[0], 1 + (np.arange(ITEMS - 1) % CATEGORIES)])
    vectors = (centres[category_of] + 0.3 * rng.normal(size=(ITEMS, DIM))).astype("float32")
    liked = np.stack([rng.choice(np.arange(1, CATEGORIES + 1), 20, replace=False) for _ in range(USERS)])
    categories = liked[np.arange(USERS)[:, None], rng.integers(0, 20, (USERS, length))]
    items = categories + CATEGORIES * rng.integers(0, PER_CATEGORY - 1, (USERS, length))
    target_category = liked[:, 0]
    x = {
        "history_item": items.astype("int32"),
        "history_category": categories.astype("int32"),
        "target_item": (target_category + CATEGORIES * rng.integers(0, PER_CATEGORY - 1, USERS)).astype(
            "int32"
        ),
        "target_category": target_category.astype("int32"),
    }
    return x, rng.integers(0, 2, USERS).astype("float32"), vectors


def worker(args: argparse.Namespace) -> None:
    import keras
    import numpy as np
    import tensorflow as tf

    from keras_lsrec import serving
    from keras_lsrec.data import HISTORY_PREFIX, SequenceSchema, cluster_histories
    from keras_lsrec.models import TWIN, TWINV2

    length = args.length
    x, y, vectors = histories(length)
    schema = SequenceSchema({"item": ITEMS, "category": CATEGORIES + 1}, max_len=length)
    cluster_ms, clusters = None, length
    if args.model == "TWINV2":
        start = time.perf_counter()
        x = cluster_histories(x, vectors, max_cluster_size=20, group_field="category")
        cluster_ms = 1000 * (time.perf_counter() - start) / USERS
        clusters = float((x["history_cluster_size"] > 0).sum(1).mean())
        schema = schema.replace(cluster_sizes=True)
    keras.utils.set_random_seed(0)
    model = (TWINV2 if args.model == "TWINV2" else TWIN)(schema, embedding_dim=DIM, k=K)
    model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=True)
    batches = [({k: v[i : i + BATCH] for k, v in x.items()}, y[i : i + BATCH]) for i in (0, BATCH)]

    def steps():
        for batch, labels in batches * 2:
            model.train_on_batch(batch, labels)

    train = common.time_calls(steps, warmup=1, repeats=5, budget_s=60)
    with tempfile.TemporaryDirectory() as directory:
        path = serving.export(model, os.path.join(directory, "model"))
        loaded = tf.saved_model.load(path)
        request = {
            k: v[:1] if k.startswith(HISTORY_PREFIX) else np.tile(v[:1, None], (1, 100)) for k, v in x.items()
        }
        request = {k: tf.constant(v, "int64") for k, v in request.items()}
        rows = {k: tf.constant(v[:BATCH], "int64") for k, v in x.items()}
        serve_request = common.time_calls(lambda: loaded.signatures["serving_request"](**request), 3, 20, 20)
        serve_rows = common.time_calls(lambda: loaded.signatures["serving_default"](**rows), 3, 20, 20)
    common.emit(
        model=args.model,
        length=length,
        clusters=clusters,
        cluster_ms=cluster_ms,
        train_sps=4 * BATCH / float(np.median(train)),
        request_ms=common.median_ms(serve_request),
        rows_ms=common.median_ms(serve_rows),
        peak_mib=common.peak_rss_mib(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="1000,10000,100000")
    parser.add_argument("--models", default="TWINV2,TWIN")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"Machine: {common.machine_line()}; backend tensorflow (XLA training, non-XLA SavedModel)")
    results = []
    for length in (int(n) for n in args.lengths.split(",")):
        for model in args.models.split(","):
            worker_args = ["--length", str(length), "--model", model]
            results += common.run_worker(__file__, "tensorflow", worker_args, timeout=1800)
            print(results[-1], flush=True)
    rows = []
    for r in results:
        if "error" in r:
            rows.append([r.get("model", "?"), r.get("length", "?"), r["error"], "", "", "", "", ""])
            continue
        rows.append(
            [
                r["model"],
                f"{r['length']:,}",
                f"{r['clusters']:,.0f}",
                "-" if r["cluster_ms"] is None else f"{r['cluster_ms']:,.0f}",
                f"{r['train_sps']:,.0f}",
                f"{r['request_ms']:.1f}",
                f"{r['rows_ms']:.1f}",
                f"{r['peak_mib']:,.0f}",
            ]
        )
    header = [
        "model",
        "L (events)",
        "sequence read (clusters or events)",
        "clustering ms / user",
        "train samples/s",
        "serve: 1 user x 100 candidates, p50 ms",
        "serve: 32 rows, p50 ms",
        "peak RSS MiB",
    ]
    print(common.markdown_table(header, rows))


if __name__ == "__main__":
    main()
