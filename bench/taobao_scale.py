"""A Taobao-sized run end to end: generated UserBehavior file -> load_taobao -> dare_protocol -> DARE.

    python bench/taobao_scale.py                     # the real sizes (about 4 GB of CSV in --workdir)
    python bench/taobao_scale.py --scale 0.002       # a smoke run of the same path

The file has the format and the sizes of Taobao's UserBehavior.csv
(100,150,807 events of 987,994 users over 4,162,024 items in 9,439
categories, 9 days, about 89% page views), generated here and never
committed: users' event counts are log-normal (mean about 101), items are
drawn by a Zipf-like popularity, each item has one category, and each
user's events are in time order. The phases, each with its wall time and
peak resident memory (Linux `VmHWM`, reset between phases):

1. generate the CSV;
2. `load_taobao(path, behaviors=["pv"])`;
3. `dare_protocol(events)` with its defaults (users with >= 210 events, 19
   training positives per user and 2 negatives each, L = 200, time field);
4. DARE with the released setup (dims 16, k = 20, tower BatchNorm 200-80
   PReLU, L2 1e-6; Adam 0.01, batch 2048), one epoch of `fit`, row-sparse
   tables (the default);
5. test AUC and GAUC.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

EVENTS, USERS, ITEMS, CATEGORIES = 100_150_807, 987_994, 4_162_024, 9_439
START, DAYS = 1_511_539_200, 9  # 2017-11-25 00:00 UTC
BEHAVIORS = ["pv", "buy", "cart", "fav"]
SHARES = [0.895, 0.02, 0.055, 0.03]


def reset_peak() -> None:
    """Starts a new peak-memory window (Linux: writing 5 to clear_refs resets VmHWM)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def peak_mib() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def generate(path: str, scale: float, seed: int = 0) -> int:
    """Writes the CSV; returns the number of events."""
    rng = np.random.default_rng(seed)
    users = max(int(USERS * scale), 10)
    items = max(int(ITEMS * scale), 100)
    categories = max(int(CATEGORIES * min(1.0, scale * 20)), 10)
    counts = rng.lognormal(np.log(EVENTS / USERS) - 0.5 * 0.9**2, 0.9, users).astype(np.int64) + 1
    counts = np.maximum(1, np.round(counts * (EVENTS * scale / counts.sum()))).astype(np.int64)
    item_ids = (
        rng.permutation(np.arange(1, 2 * items, 2))[:items] * 7 + 1_000
    )  # raw ids, sparse like the file's
    item_category = rng.integers(1, categories + 1, items) * 13 + 5
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    popularity /= popularity.sum()
    user_ids = np.sort(rng.choice(np.arange(1, 1_018_011), users, replace=False))
    written = 0
    with open(path, "w") as f:
        for start in range(0, users, 20_000):
            chunk = counts[start : start + 20_000]
            n = int(chunk.sum())
            user = np.repeat(user_ids[start : start + 20_000], chunk)
            item = rng.choice(items, n, p=popularity)
            # each user's events in time order within the 9 days
            stamps = rng.integers(START, START + DAYS * 86_400, n)
            order = np.lexsort((stamps, user))
            user, item, stamps = user[order], item[order], stamps[order]
            behavior = pd.Categorical.from_codes(rng.choice(4, n, p=SHARES), BEHAVIORS)
            frame = pd.DataFrame(
                {
                    "user": user,
                    "item": item_ids[item],
                    "category": item_category[item],
                    "behavior": behavior,
                    "timestamp": stamps,
                }
            )
            frame.to_csv(f, header=False, index=False)
            written += n
    return written


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the real sizes")
    parser.add_argument("--workdir", default="/tmp/taobao_scale")
    parser.add_argument("--keep", action="store_true", help="reuse an existing generated file")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--min-events", type=int, default=210)
    args = parser.parse_args()

    import keras

    from keras_lsrec import metrics, models
    from keras_lsrec.data import dare_protocol, load_taobao

    os.makedirs(args.workdir, exist_ok=True)
    path = os.path.join(args.workdir, "UserBehavior.csv")
    print(common.machine_line(), f"backend {keras.backend.backend()}", flush=True)
    rows = []

    def phase(name: str, fn):
        reset_peak()
        start = time.perf_counter()
        out, detail = fn()
        rows.append([name, f"{time.perf_counter() - start:,.0f}", f"{peak_mib():,.0f}", detail])
        print(rows[-1], flush=True)
        return out

    if not (args.keep and os.path.exists(path)):
        phase(
            "generate UserBehavior.csv",
            lambda: (None, f"{generate(path, args.scale):,} events, {os.path.getsize(path) / 2**30:.1f} GiB"),
        )

    def load():
        events = load_taobao(path, behaviors=["pv"], progress=False)
        sizes = (
            f"{events['user'].max():,} users, {events['item'].max():,} items, {events['category'].max():,}"
        )
        return events, f"{len(events):,} page views; {sizes} categories"

    def protocol(events):
        splits = dare_protocol(events, min_events=args.min_events, batch_size=args.batch_size)
        return splits, ", ".join(f"{k} {len(v.examples['label']):,} examples" for k, v in splits.items())

    events = phase("load_taobao(behaviors=['pv'])", load)
    splits = phase("dare_protocol (defaults)", functools.partial(protocol, events))
    del events  # the splits hold their own compact copy
    schema = splits["train"].schema

    def train():
        keras.utils.set_random_seed(0)
        model = models.DARE(
            schema,
            attention_dim=16,
            representation_dim=16,
            k=20,
            mlp_units=(200, 80),
            mlp_activation="prelu",
            input_batch_norm=True,
            l2=1e-6,
        )
        model.compile(
            optimizer=keras.optimizers.Adam(0.01),
            loss="binary_crossentropy",
            jit_compile=keras.backend.backend() != "torch",
        )
        start = time.perf_counter()
        model.fit(splits["train"], epochs=args.epochs, shuffle=False, verbose=2)
        n = args.epochs * len(splits["train"].examples["label"])
        tables = [] if model.table_training is None else model.table_training.tables
        sparse = [t.embeddings.path for t in tables]
        return model, f"{n / (time.perf_counter() - start):,.0f} samples/s; row-sparse tables: {sparse}"

    model = phase("DARE fit, 1 epoch (Adam 0.01, batch 2048)", train)

    def evaluate():
        test = splits["test"]
        scores = model.predict(test, verbose=0)
        users = test.examples["user"]
        result = metrics.evaluate_scores(test.examples["label"], scores, groups=users)
        return (
            result,
            f"test AUC {result['auc']:.4f}, GAUC {result['gauc']:.4f}, logloss {result['logloss']:.4f}",
        )

    phase("predict + AUC on test", evaluate)
    print()
    print(common.markdown_table(["phase", "wall s", "peak RSS MiB", "result"], rows))


if __name__ == "__main__":
    main()
