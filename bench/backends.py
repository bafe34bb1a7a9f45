"""Do the three backends train to the same numbers? `lsrec quickstart` per backend and seed.

    python bench/backends.py                       # 3 initial-weight seeds x 3 backends, quickstart size
    python bench/backends.py --seeds 2 --models dare,twin --epochs 5
    python bench/backends.py --same-start --seeds 1     # identical initial weights everywhere

The data is the same everywhere (data seed 0); what varies is the seed of the
initial weights and shuffling (`lsrec quickstart --init-seed S`). Every
backend draws its own random stream from a seed, so no two backends start
from the same weights: "the same numbers within noise" means the spread
BETWEEN backends is no larger than the spread between seeds ON one backend.
With `--same-start`, every backend loads the initial weights the first one
saved for that seed (`lsrec quickstart --same-start`), and the batches are
the same everywhere (seeded numpy shuffling): the backends then differ only
by floating-point rounding, and the script also prints the largest AUC
difference between backends per model.
The script prints per model and backend the mean and standard deviation of
the test AUC over seeds, then the largest difference between backend means
next to the pooled seed-to-seed standard deviation, and their ratio. If the
backends train alike, the ratio stays below 2.5 in 95% of runs of 3 backends
x 3 seeds (the studentized range's 95% point q(3, 6) = 4.34, divided by
sqrt(3)). Each run is a fresh `lsrec quickstart` process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BACKENDS = ("tensorflow", "jax", "torch")


def run_quickstart(backend: str, init_seed: int, args: argparse.Namespace, out_dir: Path) -> dict:
    path = out_dir / f"{backend}_{init_seed}.json"
    command = [
        sys.executable,
        "-m",
        "keras_lsrec.cli",
        "quickstart",
        "--init-seed",
        str(init_seed),
        "--json",
        str(path),
    ]
    if args.same_start:
        command += ["--same-start", str(out_dir / f"weights_{init_seed}")]
    for flag in ("users", "epochs", "models"):
        value = getattr(args, flag)
        if value:
            command += [f"--{flag}", str(value)]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return json.loads(path.read_text())


def summarise(records: list[dict]) -> str:
    models = list(records[0]["models"])
    by: dict[tuple[str, str], list[float]] = {(r["backend"], m): [] for r in records for m in models}
    for r in records:
        for m in models:
            by[(r["backend"], m)].append(r["models"][m]["auc"])
    backends = [b for b in BACKENDS if any(r["backend"] == b for r in records)]
    header = " | ".join(f"{b} AUC" for b in backends)
    lines = [f"| model | {header} | max gap of means | seed sd | gap / sd |"]
    lines.append("| --- " * (len(backends) + 4) + "|")
    for m in models:
        means = [statistics.mean(by[(b, m)]) for b in backends]
        cells = []
        for b, mean in zip(backends, means, strict=True):
            values = by[(b, m)]
            cells.append(f"{mean:.4f} ± {statistics.stdev(values):.4f}" if len(values) > 1 else f"{mean:.4f}")
        deviations = [v - statistics.mean(by[(b, m)]) for b in backends for v in by[(b, m)]]
        dof = sum(len(by[(b, m)]) - 1 for b in backends)
        gap = max(means) - min(means)
        if dof:
            pooled = (sum(d * d for d in deviations) / dof) ** 0.5
            spread = f"{pooled:.4f} | {gap / pooled:.2f}"
        else:
            spread = "(one seed) | "
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {gap:.4f} | {spread} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3, help="initial-weight seeds per backend")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--models", default=None, help="comma-separated, as for lsrec quickstart")
    parser.add_argument("--same-start", action="store_true", help="share initial weights across backends")
    parser.add_argument("--save", default=None, help="write every run's JSON record to this file")
    args = parser.parse_args()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for backend in args.backends.split(","):
                record = run_quickstart(backend, seed, args, Path(tmp))
                line = ", ".join(f"{m} {v['auc']:.4f}" for m, v in record["models"].items())
                print(f"{backend} seed {seed}: {line}", flush=True)
                records.append(record)
    if args.save:
        Path(args.save).write_text(json.dumps(records, indent=1))
    start = "the same initial weights on every backend" if args.same_start else "initial weights per backend"
    print(f"\nTest AUC, mean ± sd over {args.seeds} initial-weight seeds ({start}; data seed 0):\n")
    print(summarise(records))
    if args.same_start:
        print("\nLargest |AUC difference| between backends, same seed:\n")
        for model in records[0]["models"]:
            gaps = []
            for seed in range(args.seeds):
                aucs = [r["models"][model]["auc"] for r in records if r["init_seed"] == seed]
                gaps.append(max(aucs) - min(aucs))
            print(f"- {model}: {max(gaps):.5f}")


if __name__ == "__main__":
    main()
