"""reczoo LongCTR's leaderboard protocol on LongCTR's files, beside the published table (and FuxiCTR).

    python bench/longctr.py --data data/MicroVideo1.7M_x2 --models din,sim,twin --max-len 50,100,200,500,1000
    python bench/longctr.py --generate 20000 --models din,sim,twin --max-len 100 --peer
    python bench/longctr.py --load bench/results/longctr.jsonl        # the tables of earlier runs

Data: `--data DIR`, a LongCTR dataset directory as published on Hugging Face
(reczoo/MicroVideo1.7M_x2, reczoo/KuaiVideo_x2, reczoo/Ebnerd_small_x1:
train/valid/test.parquet, user_info.parquet, item_info.parquet), read by
`keras_lsrec.data.load_longctr`; or `--generate N`: N impressions written in
the same layout by `keras_lsrec.data.write_longctr_files` (its planted
signal: far-history interests, invisible in the last 50 events) into a
temporary directory (`--keep DIR` keeps them there instead).

Protocol (LongCTR's benchmark configs, benchmark/*_tuner_config_*.yaml of
reczoo/LongCTR): embedding 64 per field, Adam at 1e-3, batch `--batch-size`
(1024; `--accumulation-steps` as the configs that have them), early stopping
on the validation gAUC + AUC with patience 2 (the best epoch's weights
kept), the learning rate x 0.1 after every epoch that does not improve it
(FuxiCTR's `reduce_lr_on_plateau`), at most `--epochs` epochs, seeds from
20242025; metrics on the test split: gAUC (per-user AUC weighted by
impressions), AUC and logloss from `keras_lsrec.metrics`. The embedding
regularizer (`--embedding-regularizer`, 1e-5 as MicroVideo's configs) is
FuxiCTR's only: keras_lsrec's models take no embedding regularizer (their
tables train row-sparsely), which the table says.

Variants of ours (`--variants`): `defaults` (each model's own defaults at
embedding 64) and `fuxictr` (the settings FuxiCTR's LongCTR configs use
where a constructor argument allows it: tower 1024-512-256 ReLU with
dropout 0.1; DIN's attention MLP 512-256 ReLU; SIM's soft search, TWIN's,
ETA's top-k 50; SDIM's 32 hashes of 4 bits; DIEN's attention MLP 256-128
ReLU with softmax scores and no auxiliary loss; TransAct's DCNv2 tower, one
2-head layer, feed-forward 512, no max pooling, dropout 0.1; MIRRN's top-k
50 with 4-bit hashes; DCNv2's 3 parallel full-rank cross layers; FinalMLP's
second stream 256-256, 2 heads, dropout 0.2). Where LongCTR's configs give
a grid, the point of the run LongCTR published at length 1000.

`--peer`: FuxiCTR 2.3.10's own LongCTR DIN, SIM, ETA, SDIM, TWIN, DIEN,
TransAct, MIRRN, DCNv2, FinalMLP
(bench/fuxictr_longctr_driver.py, in the virtual environment of
bench/run.py) on the same files with the same protocol; its test
predictions are scored by the same `keras_lsrec.metrics` code.

Each run is a fresh process (ours under `--backend`, default jax) whose
Keras progress bar shows; every result is appended to `--save`
(bench/results/longctr.jsonl) and the tables are printed at the end: ours
and FuxiCTR's gAUC / AUC / logloss (mean over seeds) and, for the real
datasets, LongCTR's published numbers (`PUBLISHED`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = 20242025
MODELS = ("din", "sim", "eta", "sdim", "twin", "dien", "transact", "mirrn", "dcnv2", "finalmlp")
LENGTHS = (50, 100, 200, 500, 1000)
VARIANTS = ("defaults", "fuxictr")

# LongCTR's published test AUC and gAUC (x100) by dataset, model and history length 50, 100, 200,
# 500, 1000: the "Benchmarking Results" tables of https://github.com/reczoo/LongCTR (README.md at
# commit 7e5bea3, 2025-06-18). Each entry: (AUC at the 5 lengths, gAUC at the 5 lengths).
PUBLISHED_SOURCE = "https://github.com/reczoo/LongCTR#benchmarking-results (README.md, commit 7e5bea3)"
PUBLISHED: dict[str, dict[str, tuple[tuple[float, ...], tuple[float, ...]]]] = {
    "MicroVideo1.7M_x2": {
        "DCNv2": ((68.89, 70.37, 70.53, 70.75, 71.19), (70.07, 70.42, 70.58, 70.63, 70.73)),
        "FinalMLP": ((68.76, 70.05, 70.33, 70.71, 71.05), (69.98, 70.09, 70.27, 70.61, 70.44)),
        "DIN": ((68.74, 70.20, 70.57, 71.62, 71.80), (69.74, 70.15, 70.01, 71.18, 71.31)),
        "DIEN": ((70.11, 70.50, 71.19, 71.80, 72.20), (70.63, 71.07, 71.15, 71.32, 71.41)),
        "TransAct": ((69.61, 70.39, 70.62, 71.02, 71.18), (69.64, 69.84, 69.94, 70.22, 70.28)),
        "SIM": ((69.91, 70.41, 70.57, 70.76, 70.76), (69.82, 69.82, 69.92, 70.40, 70.38)),
        "ETA": ((69.94, 70.45, 70.58, 70.33, 70.31), (69.76, 69.92, 70.02, 71.45, 71.39)),
        "SDIM": ((69.88, 70.81, 71.51, 71.53, 71.73), (69.68, 69.78, 69.84, 69.89, 69.86)),
        "TWIN": ((69.84, 70.54, 70.57, 71.86, 71.89), (69.67, 69.79, 69.91, 70.61, 70.64)),
        "MIRRN": ((70.05, 70.94, 71.15, 71.31, 71.30), (69.80, 70.05, 70.17, 70.30, 70.30)),
    },
    "KuaiVideo_x2": {
        "DCNv2": ((68.61, 69.16, 69.79, 69.95, 69.99), (66.74, 67.01, 67.17, 67.22, 67.23)),
        "FinalMLP": ((69.23, 69.75, 70.31, 70.40, 70.64), (66.90, 67.11, 67.18, 67.28, 67.40)),
        "DIN": ((68.21, 68.61, 68.96, 69.55, 69.58), (66.76, 66.89, 66.87, 66.97, 67.12)),
        "DIEN": ((68.67, 68.89, 69.62, 69.73, 69.73), (66.74, 66.79, 66.88, 66.85, 66.84)),
        "TransAct": ((67.90, 68.87, 68.58, 69.13, 69.29), (66.33, 66.49, 66.77, 66.82, 66.81)),
        "SIM": ((68.43, 69.04, 68.96, 68.96, 68.95), (66.55, 66.58, 66.75, 66.86, 66.83)),
        "ETA": ((68.89, 69.18, 69.50, 69.22, 69.26), (66.66, 67.12, 67.25, 67.38, 67.31)),
        "SDIM": ((68.67, 69.22, 69.58, 69.62, 69.22), (66.72, 66.75, 66.93, 67.10, 67.40)),
        "TWIN": ((68.71, 69.09, 69.09, 69.37, 69.43), (66.65, 66.86, 67.01, 67.28, 67.30)),
        "MIRRN": ((68.43, 69.12, 69.20, 69.27, 69.29), (66.79, 66.86, 66.93, 67.08, 67.15)),
    },
    "Ebnerd_small_x1": {
        "DCNv2": ((69.86, 70.72, 70.69, 71.44, 71.39), (69.44, 70.31, 70.43, 70.82, 70.82)),
        "FinalMLP": ((69.94, 70.75, 70.88, 71.38, 71.51), (69.90, 70.47, 70.50, 70.80, 70.92)),
        "DIN": ((70.44, 71.04, 71.20, 71.86, 71.92), (69.98, 70.45, 70.60, 71.23, 71.28)),
        "DIEN": ((69.93, 70.52, 70.88, 71.37, 70.95), (69.80, 70.19, 70.51, 70.91, 70.78)),
        "TransAct": ((70.26, 70.82, 71.14, 71.32, 71.45), (69.87, 70.29, 70.64, 70.71, 70.84)),
        "SIM": ((70.33, 70.44, 70.44, 70.04, 70.03), (69.89, 70.02, 69.94, 69.78, 69.54)),
        "ETA": ((70.19, 70.50, 70.73, 70.88, 70.82), (69.90, 70.02, 70.07, 70.13, 70.17)),
        "SDIM": ((70.38, 70.42, 71.16, 71.12, 71.41), (69.78, 69.98, 70.55, 70.51, 70.72)),
        "TWIN": ((70.26, 70.26, 70.40, 70.80, 70.50), (69.65, 69.75, 69.86, 70.36, 69.91)),
        "MIRRN": ((69.46, 69.54, 69.59, 69.81, 69.63), (69.22, 69.29, 69.21, 69.42, 69.69)),
    },
}


def published(dataset: str | None, model: str, length: int) -> tuple[float, float] | None:
    """LongCTR's (AUC, gAUC) as fractions for `dataset` (a directory name is matched
    case-insensitively), or None."""
    table = next((v for k, v in PUBLISHED.items() if dataset and k.lower() == dataset.lower()), None)
    names = {m.lower(): m for m in (table or {})}
    if table is None or model.lower() not in names or length not in LENGTHS:
        return None
    auc, gauc = table[names[model.lower()]]
    i = LENGTHS.index(length)
    return auc[i] / 100, gauc[i] / 100


def model_kwargs(name: str, variant: str, embedding_dim: int) -> dict[str, Any]:
    """Constructor arguments of our `name` for `variant`."""
    kwargs: dict[str, Any] = {"embedding_dim": embedding_dim}
    if variant == "defaults":
        return kwargs
    kwargs.update(mlp_units=(1024, 512, 256), mlp_activation="relu", dropout=0.1)
    if name == "din":  # din_use_softmax: False, the activation unit's raw outputs
        kwargs.update(attention_units=(512, 256), attention_activation="relu", normalizer="none")
    elif name == "sim":
        kwargs.update(search="soft", k=50)
    elif name in ("twin", "eta"):
        kwargs.update(k=50)
    elif name == "sdim":
        kwargs.update(num_hashes=32, num_bits=4)
    elif name == "dien":  # AUGRU with DIN attention, softmax scores; FuxiCTR's has no auxiliary loss
        kwargs.update(
            attention_units=(256, 128),
            attention_activation="relu",
            normalizer="softmax",
            auxiliary_loss_weight=0.0,
        )
    elif name == "transact":  # DCNv2 tower (FuxiCTR's has 4 cross layers; ours is fixed at 3)
        kwargs.update(
            tower="dcnv2",
            num_layers=1,
            num_heads=2,
            feedforward_dim=512,
            recent_k=1,
            max_pool=False,
            transformer_dropout=0.1,
        )
    elif name == "mirrn":
        kwargs.update(k=50, num_bits=4, num_heads=1, short_window=50)
    elif name == "dcnv2":
        kwargs.update(num_cross_layers=3, structure="parallel", low_rank=None)
    elif name == "finalmlp":  # one dropout for both streams: stream 1's 0.2 (FuxiCTR's stream 2 has 0.3)
        kwargs.update(stream2_units=(256, 256), num_heads=2, dropout=0.2)
    return kwargs


# ----------------------------------------------------------------- one run of ours (a fresh process)
def worker(args: argparse.Namespace) -> None:
    import keras
    import numpy as np

    from keras_lsrec import metrics, models
    from keras_lsrec.data import load_longctr

    backend = keras.backend.backend()
    splits = load_longctr(args.data, max_len=args.length, batch_size=args.batch_size, seed=args.seed)
    keras.utils.set_random_seed(args.seed)
    kwargs = model_kwargs(args.model, args.variant, args.embedding_dim)
    model = models.get(args.model)(splits["train"].schema, **kwargs)
    accumulate = (
        {"gradient_accumulation_steps": args.accumulation_steps} if args.accumulation_steps > 1 else {}
    )
    model.compile(
        optimizer=keras.optimizers.Adam(args.learning_rate, **accumulate),
        loss="binary_crossentropy",
        jit_compile=backend == "jax",
    )

    def scores(split: str) -> dict[str, float]:
        data = splits[split]
        probabilities = model.predict(data, verbose=0)
        return metrics.evaluate_scores(data.examples["label"], probabilities.reshape(-1), data.users)

    class Validation(keras.callbacks.Callback):
        """LongCTR's monitor, gAUC + AUC on the validation split, into the epoch's logs."""

        def on_epoch_end(self, epoch, logs=None):
            result = scores("validation")
            logs["val_monitor"] = result["gauc"] + result["auc"]
            print(f"  validation: gAUC {result['gauc']:.4f}  AUC {result['auc']:.4f}", flush=True)

    callbacks = [
        Validation(),
        keras.callbacks.ReduceLROnPlateau(
            monitor="val_monitor", mode="max", factor=0.1, patience=1, min_delta=1e-6, min_lr=1e-6
        ),
        keras.callbacks.EarlyStopping(
            monitor="val_monitor", mode="max", patience=2, min_delta=1e-6, restore_best_weights=True
        ),
    ]
    start = time.perf_counter()
    history = model.fit(
        splits["train"], shuffle=False, epochs=args.epochs, callbacks=callbacks, verbose=args.verbose
    )
    seconds = time.perf_counter() - start
    monitor = history.history["val_monitor"]
    result = scores("test")
    record = dict(
        library="keras_lsrec",
        backend=backend,
        variant=args.variant,
        settings={k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
        best_epoch=int(np.argmax(monitor)) + 1,
        epochs_run=len(monitor),
        seconds=seconds,
        parameters=int(model.count_params()),
        **result,
    )
    with open(args.result, "w") as f:
        json.dump(record, f)


# ----------------------------------------------------------------- one run of FuxiCTR
def run_peer(args: argparse.Namespace, data: str, model: str, length: int, seed: int) -> dict[str, Any]:
    import numpy as np
    from run import peer_python, thread_env  # bench/run.py owns the peer's environment

    from keras_lsrec import metrics

    with tempfile.TemporaryDirectory() as scratch:
        result = os.path.join(scratch, "test.npz")
        command = [
            peer_python(),
            os.path.join(HERE, "fuxictr_longctr_driver.py"),
            *("--data", data, "--model", model.upper(), "--max-len", str(length), "--seed", str(seed)),
            *("--epochs", str(args.epochs), "--batch-size", str(args.batch_size)),
            *("--accumulation-steps", str(args.accumulation_steps)),
            *("--learning-rate", str(args.learning_rate), "--embedding-dim", str(args.embedding_dim)),
            *("--embedding-regularizer", str(args.embedding_regularizer)),
            *("--threads", str(args.threads), "--root", os.path.join(scratch, "checkpoints")),
            *("--result", result),
        ]
        proc = subprocess.run(command, env={**os.environ, **thread_env(args.threads)})
        if proc.returncode:
            return {"error": f"FuxiCTR {model} L={length}: exit {proc.returncode}"}
        saved = np.load(result)
        with open(result + ".json") as f:
            facts = json.load(f)
        scores = metrics.evaluate_scores(saved["labels"], saved["predictions"], saved["users"])
    return dict(library="fuxictr", backend="torch", variant="fuxictr", **facts, **scores)


def run_ours(args: argparse.Namespace, data: str, model: str, variant: str, length: int, seed: int):
    with tempfile.TemporaryDirectory() as scratch:
        result = os.path.join(scratch, "result.json")
        if args.in_process:  # this process's backend (tests)
            run = argparse.Namespace(**{**vars(args), "data": data, "model": model, "variant": variant})
            run.length, run.seed, run.result = length, seed, result
            worker(run)
            with open(result) as f:
                return json.load(f)
        command = [
            sys.executable,
            __file__,
            "--worker",
            *("--data", data, "--model", model, "--variant", variant, "--length", str(length)),
            *("--seed", str(seed), "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)),
            *("--accumulation-steps", str(args.accumulation_steps)),
            *("--learning-rate", str(args.learning_rate), "--embedding-dim", str(args.embedding_dim)),
            *("--verbose", str(args.verbose), "--result", result),
        ]
        from run import thread_env

        env = {**os.environ, **thread_env(args.threads), "KERAS_BACKEND": args.backend}
        proc = subprocess.run(command, env=env)
        if proc.returncode or not os.path.exists(result):
            return {"error": f"keras_lsrec {model} ({variant}) L={length}: exit {proc.returncode}"}
        with open(result) as f:
            return json.load(f)


# ----------------------------------------------------------------- tables
def summarise(records: list[dict[str, Any]]) -> str:
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["dataset"], r["length"], r["model"], r["library"], r["backend"], r["variant"])].append(r)
    out = []
    header = ["model", "L", "library", "backend", "settings", "seeds"]
    header += ["gAUC", "AUC", "logloss", "epochs", "s/run"]
    for dataset in dict.fromkeys(k[0] for k in groups):
        rows = []
        for key in sorted(k for k in groups if k[0] == dataset):
            _, length, model, library, backend, variant = key
            runs = groups[key]

            def mean(name: str, runs: list[dict[str, Any]] = runs) -> str:
                values = [r[name] for r in runs]
                sd = f" ± {statistics.stdev(values):.4f}" if len(values) > 1 else ""
                return f"{statistics.mean(values):.4f}{sd}"

            epochs = "/".join(str(r.get("best_epoch", r.get("epochs_run", "?"))) for r in runs)
            seconds = f"{statistics.mean(r['seconds'] for r in runs):.0f}"
            rows.append([model.upper(), length, library, backend, variant, len(runs)])
            rows[-1] += [mean("gauc"), mean("auc"), mean("logloss"), epochs, seconds]
        for model, length in dict.fromkeys((k[2], k[1]) for k in groups if k[0] == dataset):
            reference = published(dataset, model, length)
            if reference is not None:
                auc, gauc = reference
                row = [model.upper(), length, "LongCTR (published)", "torch", "tuned", ""]
                rows.append(row + [f"{gauc:.4f}", f"{auc:.4f}", "", "", ""])
        out.append(f"\n#### {dataset}\n")
        out.append(common.markdown_table(header, rows))
        parity = parity_rows({k: v for k, v in groups.items() if k[0] == dataset})
        if parity:
            out.append(
                "\nOurs against FuxiCTR on these files (test AUC, mean over seeds; "
                "the bar: within 0.005 or better)\n"
            )
            out.append(
                common.markdown_table(["model", "L", "ours", "seeds (ours / FuxiCTR)", "gap", "bar"], parity)
            )
    if any(published(d, "din", 100) for d in (k[0] for k in groups)):
        out.append(f"\nPublished numbers: {PUBLISHED_SOURCE}")
    return "\n".join(out)


def parity_rows(groups: dict[tuple, list[dict[str, Any]]]) -> list[list[Any]]:
    """Per model and L run by both libraries: each variant of ours against FuxiCTR, the AUC gap
    (ours - FuxiCTR) and whether it meets issue 29's bar (within 0.005 or better)."""
    rows = []
    for key, peer in sorted(groups.items()):
        if key[3] != "fuxictr":
            continue
        reference = statistics.mean(r["auc"] for r in peer)
        for other, runs in sorted(groups.items()):
            if other[1:3] == key[1:3] and other[3] != "fuxictr":
                gap = statistics.mean(r["auc"] for r in runs) - reference
                verdict = "met" if gap >= -0.005 else "not met"
                rows.append(
                    [key[2].upper(), key[1], other[5], f"{len(runs)} / {len(peer)}", f"{gap:+.4f}", verdict]
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", help="a LongCTR dataset directory")
    source.add_argument("--generate", type=int, help="generate this many impressions (write_longctr_files)")
    source.add_argument("--load", help="no training: print the tables of this JSON-lines file")
    parser.add_argument("--keep", help="with --generate: write the files here (kept)")
    parser.add_argument(
        "--columns", default="microvideo", help="with --generate: microvideo, kuaivideo, ebnerd"
    )
    parser.add_argument(
        "--drop-item-columns",
        default="",
        help="with --generate: item_info.parquet columns to leave out of the files, e.g. image_emb_dim64",
    )
    parser.add_argument("--dataset", help="the dataset's name in the tables (default: the directory's)")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--max-len", default="100", help="history lengths, e.g. 50,100,200,500,1000")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="ours: defaults, fuxictr")
    parser.add_argument("--peer", action="store_true", help="also FuxiCTR 2.3.10's models (torch)")
    parser.add_argument("--no-ours", action="store_true", help="only the peer")
    parser.add_argument("--backend", default="jax", help="ours: tensorflow, jax or torch")
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds: --first-seed, + 1, ...")
    parser.add_argument("--first-seed", type=int, default=SEED, help=f"the first seed (LongCTR's: {SEED})")
    parser.add_argument("--epochs", type=int, default=100, help="at most (early stopping ends runs first)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--accumulation-steps", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--embedding-regularizer", type=float, default=1e-5, help="FuxiCTR's (ours has none)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--verbose", type=int, default=1, help="Keras' fit verbosity (1: a progress bar)")
    parser.add_argument("--save", default=os.path.join(HERE, "results", "longctr.jsonl"))
    parser.add_argument(
        "--in-process", action="store_true", help="run ours in this process, on its backend (for tests)"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--variant", help=argparse.SUPPRESS)
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.load:
        with open(args.load) as f:
            print(summarise([json.loads(line) for line in f if line.strip()]))
        return
    if not (args.data or args.generate):
        parser.error("give --data DIR, --generate N or --load FILE")
    scratch = None
    if args.generate:
        from keras_lsrec.data import write_longctr_files

        if args.keep:
            data = args.keep
        else:
            scratch = tempfile.TemporaryDirectory()
            data = scratch.name
        write_longctr_files(data, args.generate, columns=args.columns)
        dropped = [c.strip() for c in args.drop_item_columns.split(",") if c.strip()]
        if dropped:  # both libraries then read the same files without them
            import pyarrow.parquet as pq

            items = os.path.join(data, "item_info.parquet")
            pq.write_table(pq.read_table(items).drop_columns(dropped), items)
        dataset = args.dataset or f"generated-{args.columns}-{args.generate}"
        print(f"Generated {args.generate:,} impressions ({args.columns} columns) in {data}", flush=True)
    else:
        data = args.data
        dataset = args.dataset or os.path.basename(os.path.normpath(data))
    models = [m.strip().lower() for m in args.models.split(",") if m.strip()]
    lengths = [int(v) for v in args.max_len.split(",")]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    for variant in variants:
        if variant not in VARIANTS:
            parser.error(f"--variants: one of {VARIANTS}. Received: {variant!r}")
    print(f"Machine: {common.machine_line()}; {args.threads} threads per process", flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.save)), exist_ok=True)
    runs: list[tuple[str, str, int, int]] = []
    for length in lengths:
        for model in models:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                if not args.no_ours:
                    runs += [(model, variant, length, seed) for variant in variants]
                if args.peer:
                    runs.append((model, "peer", length, seed))
    records, failures = [], []
    for index, (model, variant, length, seed) in enumerate(runs, 1):
        who = "FuxiCTR 2.3.10 (torch)" if variant == "peer" else f"keras_lsrec ({args.backend}, {variant})"
        print(f"\n[{index}/{len(runs)}] {model.upper()} L={length} seed {seed}: {who}", flush=True)
        if variant == "peer":
            record = run_peer(args, data, model, length, seed)
        else:
            record = run_ours(args, data, model, variant, length, seed)
        if "error" in record:
            failures.append(record["error"])
            print(record["error"], file=sys.stderr, flush=True)
            continue
        record.update(dataset=dataset, model=model, length=length, seed=seed, date=time.strftime("%Y-%m-%d"))
        records.append(record)
        with open(args.save, "a") as f:
            f.write(json.dumps(record) + "\n")
        print(
            f"  -> test gAUC {record['gauc']:.4f}  AUC {record['auc']:.4f}  logloss {record['logloss']:.4f}"
            f"  ({record['epochs_run']} epochs, {record['seconds']:.0f} s)",
            flush=True,
        )
    print(summarise(records))
    if scratch is not None:
        scratch.cleanup()
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
