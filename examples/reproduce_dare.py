"""Reproduce DARE's Table 1 (d = 16) on Taobao or Tmall: DIN, TWIN and DARE, released training setup.

    python examples/reproduce_dare.py UserBehavior.csv --dataset taobao
    python examples/reproduce_dare.py user_log_format1.csv --dataset tmall --seeds 5

Setup (SEEDS.md, from the DARE code): page views (Taobao) / clicks (Tmall);
users with >= 210 events; 19 training positives per user (T-3, T-8, ...,
T-93), validation T-1, test T, <= 200 preceding events each; 2 negatives per
positive by item popularity, outside the user's history (all of
`keras_lsrec.data.dare_protocol`'s defaults). Models: item, category and time
embeddings of 16 each, k = 20, tower BatchNorm -> 200 -> PReLU -> 80 ->
PReLU -> 1, L2 1e-6; Adam 0.01, batch 2048, 2 epochs, the best-validation-AUC
epoch's weights are kept; 5 seeds (model initialisation; the data split is
fixed). Preprocessing is cached under --cache-dir (reused while the file and
the arguments are unchanged).

This script has NOT been run by the project: the datasets cannot be
downloaded on its development machine. Its parts are tested on small files in
the original formats (tests/data/: loaders in test_readers.py; protocol positions,
leakage, negatives and caching in test_protocol.py; SequenceDataset with fit in
test_dataset.py); the full run is yours.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from keras_lsrec import metrics, models
from keras_lsrec.data import dare_protocol, load_taobao, load_tmall, prepare

PAPER_D16 = {  # DARE paper, Table 1, AUC, mean of 5 seeds, embedding dim 16
    "taobao": {"DIN": 0.90442, "TWIN": 0.91688, "DARE": 0.92568},
    "tmall": {"DIN": 0.95894, "TWIN": 0.95812, "DARE": 0.96800},
}
# dataset -> (reader, its arguments): page views (Taobao), clicks (Tmall)
LOADERS: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    "taobao": (load_taobao, {"behaviors": ["pv"]}),
    "tmall": (load_tmall, {"actions": [0]}),
}
TOWER: dict[str, Any] = dict(mlp_units=(200, 80), mlp_activation="prelu", input_batch_norm=True, l2=1e-6)


def build(name: str, schema, dim: int) -> keras.Model:
    if name == "DIN":
        return models.DIN(schema, embedding_dim=dim, **TOWER)
    if name == "TWIN":
        return models.TWIN(schema, embedding_dim=dim, k=20, **TOWER)
    return models.DARE(schema, attention_dim=dim, representation_dim=dim, k=20, **TOWER)


def train_one(name: str, splits, dim: int, seed: int, epochs: int, learning_rate: float, jit: bool) -> float:
    keras.utils.set_random_seed(seed)
    model = build(name, splits["train"].schema, dim)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc", num_thresholds=2000)],
        jit_compile=jit,
    )
    with tempfile.TemporaryDirectory() as folder:
        best = os.path.join(folder, "best.weights.h5")
        checkpoint = keras.callbacks.ModelCheckpoint(
            best, monitor="val_auc", mode="max", save_best_only=True, save_weights_only=True
        )
        model.fit(
            splits["train"],
            validation_data=splits["validation"],
            epochs=epochs,
            callbacks=[checkpoint],
            shuffle=False,
            verbose=2,  # the dataset reshuffles itself (seeded, the same on every backend)
        )
        model.load_weights(best)
    test = splits["test"]
    scores = model.predict(test, verbose=0)
    return metrics.auc(test.examples["label"], scores)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("path", help="UserBehavior.csv (taobao) or user_log_format1.csv (tmall)")
    parser.add_argument("--dataset", choices=sorted(LOADERS), required=True)
    parser.add_argument("--cache-dir", default=None, help="default: <path>.dare_cache")
    parser.add_argument("--models", default="DIN,TWIN,DARE")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    args = parser.parse_args()

    load, load_args = LOADERS[args.dataset]
    cache = args.cache_dir or args.path + ".dare_cache"
    splits = prepare(
        args.path,
        load,
        dare_protocol,
        cache,
        load_args=load_args,
        protocol_args={"batch_size": args.batch_size, "seed": 0},
    )
    print({name: repr(split) for name, split in splits.items()})
    jit = keras.backend.backend() != "torch"
    rows = []
    for name in args.models.split(","):
        aucs = [
            train_one(name, splits, args.dim, seed, args.epochs, args.learning_rate, jit)
            for seed in range(args.seeds)
        ]
        paper = PAPER_D16[args.dataset].get(name) if args.dim == 16 else None
        rows.append((name, np.mean(aucs), np.std(aucs), paper))
        print(f"{name}: test AUC per seed {np.round(aucs, 5).tolist()}")
    print(f"\n{args.dataset}, d={args.dim}, {args.seeds} seeds, {keras.backend.backend()}\n")
    print("| model | AUC (mean +- std) | paper (Table 1) | difference |\n| --- | --- | --- | --- |")
    for name, mean, std, paper in rows:
        reference = f"{paper:.5f}" if paper else "-"
        difference = f"{mean - paper:+.5f}" if paper else "-"
        print(f"| {name} | {mean:.5f} +- {std:.5f} | {reference} | {difference} |")


if __name__ == "__main__":
    main()
