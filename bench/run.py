"""keras_lsrec against FuxiCTR, side by side: training and inference speed, latency, memory.

    python bench/run.py --quick            # a minute: L=200, small batch, no peer
    python bench/run.py                    # L = 200, 1000, 4000; batch 256; with FuxiCTR
    python bench/run.py --no-peer --backends jax --models DARE,TWIN

For every zoo model and backend (tensorflow and jax with `jit_compile=True`,
torch eager) and every L, in a fresh process per (backend, model):

- train samples/s: `train_on_batch` over `--steps` batches, median of
  `--repeats` timings after one warm-up round (compilation excluded);
- inference ms per batch: p50 and p95 of `predict_on_batch` calls;
- per-request latency: one user x 100 candidates (100 rows sharing one
  history; IFA takes them as one request `(1, 100)`), median ms;
- peak resident memory of the process (MiB; lengths run in increasing order).

IFA is timed on candidate sets: a training batch is `batch / 16` requests of
16 candidates, so "samples" are candidates for it too.

The peer is FuxiCTR 2.3.10 (PyTorch), whose `model_zoo.LongCTR` ships DIN,
SIM, ETA, SDIM, TWIN, DIEN, TransAct, MIRRN, DCNv2 and FinalMLP. It is
installed into an isolated virtual environment that this script creates
(`bench/.venv-fuxictr`, git-ignored; FuxiCTR pulls ray and polars, which
never become dependencies of keras_lsrec) and driven by
bench/fuxictr_driver.py at matched sizes: embedding 16 per field, the same
two fields (item, category; `--time` adds keras_lsrec's time field, which the
peer's LongCTR models do not have), attention 32 for SIM/TWIN/ETA/SDIM/MIRRN,
top-k 20, SIM's soft search, ETA's and MIRRN's 32-bit codes, SDIM's 48 hashes of 3 bits,
tower 200-80, DIN attention unit 80-40; TransAct with a DCNv2 tower (the peer's) and a
feed-forward of 128; DIEN without the auxiliary loss on the peer's side (LongCTR's DIEN has
none; keras_lsrec's adds it in training). (The peer's ETA and SDIM add a
short-sequence attention over the last 50 events; keras_lsrec's do not.) Threads are matched: every
process gets `--threads` (default: all cores) through OMP/MKL, TF and torch.

Output: Markdown tables (absolute figures, then keras_lsrec / FuxiCTR ratios
for every model both have) and, with
`--plot PNG` (needs matplotlib), time per inference batch versus L, log-log.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import venv
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
# Also "DARE-noaux" (no auxiliary head) and "HSTU".
MODELS = (
    "DIN",
    "TWIN",
    "DARE",
    "SAM",
    "IFA",
    "SIM",
    "ETA",
    "SDIM",
    "DIEN",
    "TransAct",
    "MIRRN",
    "DCNv2",
    "FinalMLP",
)
PEER_MODELS = ("DIN", "SIM", "TWIN", "ETA", "SDIM", "DIEN", "TransAct", "MIRRN", "DCNv2", "FinalMLP")
PEER_VENV = os.path.join(HERE, ".venv-fuxictr")
PEER_PACKAGES = ("fuxictr==2.3.10", "torch==2.13.0")
CANDIDATES = 16  # per IFA training request


def thread_env(threads: int) -> dict[str, str]:
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "TF_NUM_INTRAOP_THREADS": n,
        "TF_NUM_INTEROP_THREADS": "1",
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={n}",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


# ----------------------------------------------------------------- keras_lsrec worker
def build(name: str, schema, dim: int):
    from keras_lsrec import models

    if name in ("DARE", "DARE-noaux"):
        aux: dict[str, Any] = {"auxiliary_loss_weight": 0.0} if name == "DARE-noaux" else {}
        return models.DARE(schema, attention_dim=dim, representation_dim=dim, k=20, **aux)
    if name == "TWIN":
        return models.TWIN(schema, embedding_dim=dim, k=20)
    if name == "SIM":  # the peer's soft search
        return models.SIM(schema, embedding_dim=dim, k=20, search="soft")
    if name == "ETA":
        return models.ETA(schema, embedding_dim=dim, k=20, num_bits=32)
    if name == "MIRRN":
        return models.MIRRN(schema, embedding_dim=dim, k=20, num_bits=32)
    if name == "TransAct":  # the paper's (and the peer's) DCNv2 tower
        return models.TransAct(schema, embedding_dim=dim, tower="dcnv2")
    return models.get(name)(schema, embedding_dim=dim)


def worker(args: argparse.Namespace) -> None:
    import keras

    if keras.backend.backend() == "torch" and args.threads:
        import torch

        torch.set_num_threads(args.threads)
    for name in args.model.split(","):
        measure(name, args)


def measure(name: str, args: argparse.Namespace) -> None:
    import keras
    import numpy as np

    from keras_lsrec.data import TARGET_PREFIX, SequenceSchema
    from keras_lsrec.losses import CandidateSetLoss

    backend = keras.backend.backend()
    lengths = sorted(args.lengths)
    ifa = name == "IFA"
    schema = SequenceSchema(
        {"item": 100_000, "category": 1_000},
        max_len=max(lengths),
        time_vocab_size=max(lengths) + 1 if args.time else None,
        candidates="variable" if ifa else None,
    )
    keras.utils.set_random_seed(0)
    model = build(name, schema, args.dim)
    model.compile(
        optimizer="adam",
        loss=CandidateSetLoss() if ifa else "binary_crossentropy",
        jit_compile=backend != "torch",
    )
    rng = np.random.default_rng(0)
    for length in lengths:
        rows = args.batch // CANDIDATES if ifa else args.batch
        batches = [
            schema.random_batch(rows, length, padded=False, seed=s, dtype="int32", candidates=CANDIDATES)
            for s in range(2)
        ]
        labels = [rng.integers(0, 2, b["target_item"].shape).astype("float32") for b in batches]

        def steps(batches=batches, labels=labels):
            for i in range(args.steps):
                model.train_on_batch(batches[i % 2], labels[i % 2])

        train = common.time_calls(steps, warmup=1, repeats=args.repeats, budget_s=60)
        infer = common.time_calls(
            functools.partial(model.predict_on_batch, batches[0]), warmup=2, repeats=2 * args.repeats
        )
        user = schema.random_batch(1, length, padded=False, seed=9, dtype="int32", candidates=100)
        if ifa:
            request = user
        else:
            request = {k: np.repeat(v, 100, axis=0) for k, v in user.items()}
            request.update(
                {
                    k: rng.integers(1, schema.vocab_size(k), 100).astype("int32")
                    for k in request
                    if k.startswith(TARGET_PREFIX)
                }
            )
        latency = common.time_calls(
            functools.partial(model.predict_on_batch, request), warmup=2, repeats=2 * args.repeats
        )
        common.emit(
            library="keras_lsrec",
            backend=backend,
            model=name,
            length=length,
            batch=args.batch,
            train_sps=args.steps * args.batch / float(np.median(train)),
            infer_p50=common.percentile_ms(infer, 50),
            infer_p95=common.percentile_ms(infer, 95),
            request_ms=common.median_ms(latency),
            peak_mib=common.peak_rss_mib(),
        )


# ----------------------------------------------------------------- the peer
def peer_python() -> str:
    """The isolated environment's interpreter, created and filled on first use."""
    python = os.path.join(PEER_VENV, "bin", "python")
    if not os.path.exists(python):
        print(f"Creating {PEER_VENV} with {', '.join(PEER_PACKAGES)} (once) ...", flush=True)
        venv.create(PEER_VENV, with_pip=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return python


def run_peer(args: argparse.Namespace, model: str, extra: tuple[str, ...] = ()) -> list[dict]:
    """bench/fuxictr_driver.py in the peer's environment; `extra`: more driver flags."""
    command = [
        peer_python(),
        os.path.join(HERE, "fuxictr_driver.py"),
        "--model",
        model,
        "--lengths",
        ",".join(map(str, args.lengths)),
        "--batch",
        str(args.batch),
        "--dim",
        str(args.dim),
        "--steps",
        str(args.steps),
        "--repeats",
        str(args.repeats),
        "--threads",
        str(args.threads),
        *extra,
    ]
    proc = subprocess.run(
        command, env={**os.environ, **thread_env(args.threads)}, capture_output=True, text=True
    )
    rows = [
        json.loads(line[len(common.RESULT) :])
        for line in proc.stdout.splitlines()
        if line.startswith(common.RESULT)
    ]
    if proc.returncode:
        rows.append({"error": f"exit {proc.returncode}: " + "\n".join(proc.stderr.strip().splitlines()[-5:])})
    return rows


# ----------------------------------------------------------------- tables
def tables(results: dict) -> str:
    out = []
    header = [
        "library",
        "backend",
        "model",
        "L",
        "train samples/s",
        "infer ms p50",
        "infer ms p95",
        "1x100 request ms",
        "peak MiB",
    ]
    rows = []
    for (library, backend, model, length), r in sorted(
        results.items(), key=lambda kv: (kv[0][2], kv[0][3], kv[0][0], kv[0][1])
    ):
        rows.append(
            [
                library,
                backend,
                model,
                length,
                f"{r['train_sps']:,.0f}",
                f"{r['infer_p50']:,.1f}",
                f"{r['infer_p95']:,.1f}",
                f"{r['request_ms']:,.1f}",
                f"{r['peak_mib']:,.0f}",
            ]
        )
    out.append(common.markdown_table(header, rows))
    peers = {(m, n): r for (lib, _, m, n), r in results.items() if lib == "fuxictr"}
    if peers:
        out.append("\nRatios keras_lsrec / FuxiCTR (train: higher is better; times: lower is better):\n")
        header = ["model", "L", "backend", "train x", "infer p50 x", "request x"]
        rows = []
        for (library, backend, model, length), r in sorted(
            results.items(), key=lambda kv: (kv[0][2], kv[0][3], kv[0][1])
        ):
            peer = peers.get((model, length))
            if library != "keras_lsrec" or peer is None:
                continue
            rows.append(
                [
                    model,
                    length,
                    backend,
                    f"{r['train_sps'] / peer['train_sps']:.2f}",
                    f"{r['infer_p50'] / peer['infer_p50']:.2f}",
                    f"{r['request_ms'] / peer['request_ms']:.2f}",
                ]
            )
        out.append(common.markdown_table(header, rows))
    return "\n".join(out)


def plot(results: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, str, str], list[tuple[int, float]]] = {}
    for (library, backend, model, length), r in results.items():
        series.setdefault((model, library, backend), []).append((length, r["infer_p50"]))
    models = sorted({key[0] for key in series})
    colors = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
    styles = {"tensorflow": ("-", "o"), "jax": ("-.", "s"), "torch": (":", "^")}
    fig, ax = plt.subplots(figsize=(10, 6.5))
    for (model, library, backend), points in sorted(series.items()):
        points.sort()
        line, marker = ("--", "x") if library == "fuxictr" else styles.get(backend, ("-", "o"))
        ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            color=colors[model],
            linestyle=line,
            marker=marker,
            linewidth=2.5 if library == "fuxictr" else 1.5,
            label=f"{library} {model} ({backend})",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("sequence length L")
    ax.set_ylabel("inference ms per batch (p50)")
    ax.set_title(
        "Inference per batch vs L (log-log: slope 1 = linear, 2 = quadratic)\n"
        "colour = model; -- x FuxiCTR (torch); keras_lsrec: - tensorflow, -. jax, : torch"
    )
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ints = lambda text: [int(v) for v in text.split(",")]  # noqa: E731
    parser.add_argument(
        "--quick", action="store_true", help="L=200, batch 64, 2 steps, one process per backend, no peer"
    )
    parser.add_argument("--lengths", type=ints, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument(
        "--time", action="store_true", help="add the history_time field (not matched by the peer)"
    )
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--peer-models", default=",".join(PEER_MODELS))
    parser.add_argument("--no-peer", action="store_true", help="skip FuxiCTR")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--plot", default=None, help="write the time-versus-L plot to this PNG")
    parser.add_argument("--save", default=None, help="write the raw results to this JSON file")
    parser.add_argument("--load", default=None, help="no run: tables (and --plot) from a --save file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    quick = args.quick
    args.lengths = args.lengths or ([200] if quick else [200, 1000, 4000])
    args.batch = args.batch or (64 if quick else 256)
    args.steps = args.steps or (2 if quick else 5)
    args.repeats = args.repeats or (2 if quick else 5)
    if args.worker:
        worker(args)
        return
    if args.load:
        with open(args.load) as f:
            saved = json.load(f)
        print(saved["machine"] + "\n")
        results = {tuple(r["key"]): r for r in saved["results"]}
        print(tables(results))
        if args.plot:
            plot(results, args.plot)
        return
    print(f"Machine: {common.machine_line()}; {args.threads} threads per process")
    print(
        f"Batch {args.batch}, {args.steps} steps per timing, {args.repeats} repeats, L = {args.lengths}\n",
        flush=True,
    )
    results, failures = {}, []
    options = [
        "--lengths",
        ",".join(map(str, args.lengths)),
        "--batch",
        str(args.batch),
        "--steps",
        str(args.steps),
        "--repeats",
        str(args.repeats),
        "--dim",
        str(args.dim),
        "--threads",
        str(args.threads),
    ]
    options += ["--time"] if args.time else []
    os.environ.update(thread_env(args.threads))
    # One process per (backend, model); --quick runs a backend's models in one
    # process (its peak memory then accumulates over them).
    grouped = [args.models] if quick else args.models.split(",")
    runs = [("keras_lsrec", b, m) for b in args.backends.split(",") for m in grouped]
    if not (quick or args.no_peer):
        runs += [("fuxictr", "torch", m) for m in args.peer_models.split(",")]
    for library, backend, model in runs:
        if library == "fuxictr":
            rows = run_peer(args, model)
        else:
            rows = common.run_worker(__file__, backend, ["--model", model, *options], timeout=3600)
        for row in rows:
            if "error" in row:
                failures.append(f"{library} {backend} {model}: {row['error']}")
                print(failures[-1], file=sys.stderr, flush=True)
                continue
            results[library, backend, row["model"], row["length"]] = row
            print(
                f"  {library:11s} {backend:10s} {row['model']:5s} L={row['length']:>5}: "
                f"{row['train_sps']:9,.0f} samples/s  {row['infer_p50']:8.1f} ms  "
                f"{row['request_ms']:8.1f} ms/request  {row['peak_mib']:6,.0f} MiB",
                flush=True,
            )
    print("\n" + tables(results))
    if args.save:
        with open(args.save, "w") as f:
            json.dump(
                {
                    "machine": f"Machine: {common.machine_line()}; {args.threads} threads per process",
                    "results": [{"key": list(k), **v} for k, v in results.items()],
                },
                f,
                indent=1,
            )
    if args.plot and results:
        plot(results, args.plot)
        print(f"\nplot: {args.plot}")
    if failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
