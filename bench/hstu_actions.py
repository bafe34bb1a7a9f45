"""What HSTU's action encoding adds: dlrm_v3's candidate windows with and without `history_action`.

    python bench/hstu_actions.py                    # 3 seeds, jax
    python bench/hstu_actions.py --seeds 1 --users 1000 --epochs 4

The events are generated in `load_kuairand`'s table form (user, item, action
bitmask, millisecond timestamp) with a signal that only the actions carry, as
in KuaiRand, whose logs hold every impression, clicked or not: the items of a
history say little about the user, what the user did with them says a lot.
Each item belongs to one of `--categories` categories (an id field of the
events beside the item, as KuaiRand's video tags could be); each user likes
`--liked` of them. Every event, one a minute, is an impression of a uniformly drawn item,
clicked (bit 1) with probability 0.8 when the user likes its category and 0.1
otherwise; a click on a liked category is also a like (bit 2) with
probability 0.5. `candidate_windows` (10-minute windows: each window's last
`CANDIDATES` events are a request's candidates, labelled by their click bit,
the events before them its history; dlrm_v3's user split) then builds the
requests with `actions=True` (the history's bitmasks in `history_action`) or
`actions=False`.

Each run trains `HSTU` (defaults, `embedding_dim=16`; Adam `--learning-rate`,
batch 128) for `--epochs` epochs, keeps the epoch of the best validation AUC
and reports its test AUC, GAUC (per request) and logloss, beside the
Bayes-optimal test AUC (the generator's own click probabilities). Each run is
a fresh process. The table prints mean ± sd over seeds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CLICK, LIKE = 1, 2
CANDIDATES = 5
WINDOW_MS = 600_000  # 10 events a window


def generate(users: int, items: int, categories: int, liked: int, seed: int):
    """The events table (sorted by user and time) and each event's true click probability."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    category = rng.integers(0, categories, items + 1)  # item i's category (row 0: padding)
    lengths = rng.integers(40, 81, users)
    user = np.repeat(np.arange(1, users + 1), lengths)
    item = rng.integers(1, items + 1, len(user))
    likes = np.stack([rng.choice(categories, liked, replace=False) for _ in range(users)])
    preferred = (likes[user - 1] == category[item][:, None]).any(axis=1)
    probability = np.where(preferred, 0.8, 0.1)
    clicked = rng.random(len(user)) < probability
    liked_it = clicked & preferred & (rng.random(len(user)) < 0.5)
    action = CLICK * clicked + LIKE * liked_it
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    timestamp = 1_650_000_000_000 + 60_000 * (np.arange(len(user)) - np.repeat(offsets[:-1], lengths))
    events = pd.DataFrame(
        {"user": user, "item": item, "category": category[item] + 1, "action": action, "timestamp": timestamp}
    )
    return events, probability


def worker(args: argparse.Namespace) -> None:
    import keras
    import numpy as np

    from keras_lsrec import metrics
    from keras_lsrec.data import candidate_windows
    from keras_lsrec.models import HSTU

    events, probability = generate(args.users, args.items, args.categories, args.liked, args.data_seed)
    splits = candidate_windows(
        events,
        num_candidates=CANDIDATES,
        max_len=args.max_len,
        window_ms=WINDOW_MS,
        fields=("item", "category"),
        batch_size=128,
        seed=args.seed,
        actions=args.actions,
    )
    keras.utils.set_random_seed(args.seed)
    model = HSTU(splits["train"].schema, embedding_dim=16)
    model.compile(keras.optimizers.Adam(args.learning_rate), "binary_crossentropy")
    tests = splits["test"]
    x_valid, y_valid = splits["validation"].arrays()
    x_test, y_test = tests.arrays()
    best, start = None, time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.fit(splits["train"], epochs=1, verbose=0)
        valid = metrics.evaluate(model, x_valid, y_valid, splits["validation"].users)
        if best is None or valid["auc"] > best[1]["auc"]:
            scores = metrics.evaluate(model, x_test, y_test, tests.users)
            best = (epoch, valid, scores)
    assert best is not None
    # The generator's probabilities of the test candidates: the CANDIDATES events from each request's end.
    ends = tests.examples["end"].astype("int64")
    bayes = probability[ends[:, None] + np.arange(CANDIDATES)[None, :]]
    epoch, _, scores = best
    common.emit(
        actions=args.actions,
        seed=args.seed,
        data_seed=args.data_seed,
        best_epoch=epoch,
        seconds=time.perf_counter() - start,
        auc=scores["auc"],
        gauc=scores["gauc"],
        logloss=scores["logloss"],
        bayes_auc=metrics.auc(y_test.reshape(-1), bayes.reshape(-1)),
        requests=[s.num_examples for s in splits.values()],
        backend=keras.backend.backend(),
        date=time.strftime("%Y-%m-%d"),
    )


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.4f}" + (f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else "")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="jax")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--users", type=int, default=1500)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--categories", type=int, default=12)
    parser.add_argument("--liked", type=int, default=3)
    parser.add_argument("--max-len", type=int, default=60)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=0.005)
    parser.add_argument(
        "--save", default=os.path.join(os.path.dirname(__file__), "results", "hstu_actions.jsonl")
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data-seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--actions", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.actions = bool(args.actions)
        worker(args)
        return
    print(f"Machine: {common.machine_line()}", flush=True)
    shared = [f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items() if k in SHARED]
    rows: dict[bool, list[dict]] = {True: [], False: []}
    for seed in range(args.seeds):
        for actions in (True, False):
            flags = [f"--seed={seed}", f"--data-seed={seed}", f"--actions={int(actions)}", *shared]
            results = common.run_worker(__file__, args.backend, flags, timeout=3600)
            if not results or "error" in results[-1]:
                sys.exit(f"run failed (seed {seed}, actions={actions}): {results}")
            result = results[-1]
            rows[actions].append(result)
            os.makedirs(os.path.dirname(args.save), exist_ok=True)
            with open(args.save, "a") as f:
                f.write(json.dumps(result) + "\n")
            print(
                f"seed {seed}, history_action {'yes' if actions else 'no'}: test AUC {result['auc']:.4f} "
                f"(Bayes {result['bayes_auc']:.4f}), best epoch {result['best_epoch']}, "
                f"{result['seconds']:.0f} s",
                flush=True,
            )
    print(f"\nHSTU on generated candidate windows, {args.backend}, {args.seeds} seed(s)\n")
    table = []
    for actions, results in rows.items():
        column = [[r[key] for r in results] for key in ("auc", "gauc", "logloss", "bayes_auc")]
        epochs = "/".join(str(r["best_epoch"]) for r in results)
        seconds = f"{statistics.fmean(r['seconds'] for r in results):.0f}"
        table.append(["yes" if actions else "no", len(results), *map(spread, column), epochs, seconds])
    header = ["history_action", "seeds", "test AUC", "GAUC", "logloss", "Bayes AUC", "best epochs", "s/run"]
    print(common.markdown_table(header, table))


SHARED = ("users", "items", "categories", "liked", "max_len", "epochs", "learning_rate")

if __name__ == "__main__":
    main()
