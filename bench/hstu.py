"""HSTU's cost against TWIN and DARE: training step, request latency, peak memory.

    python bench/hstu.py                                   # L = 500..4000, C = 1, 100, jax
    python bench/hstu.py --lengths 500,1000 --backends jax,torch --train-batch 8

For each backend, model (defaults of `keras_lsrec.models.get(name)`) and L, in
fresh processes:

- training: milliseconds per `train_on_batch` of `--train-batch` rows (Adam,
  binary cross-entropy; `jit_compile` except under torch), median after
  warm-up, and the peak resident-memory growth of the process above its
  RSS after building the model (lengths in increasing order, so each figure
  is that length's peak);
- serving: milliseconds per request, one user's history of L events and C
  candidates, `predict_on_batch` of the request form (`candidates="variable"`:
  HSTU's M-FALCON pass, the other models' per-row work done once per
  request), and the process's peak memory growth after that length's
  largest C.

Histories are full length (no padding), random ids; the schema has
item, category and time (`time_vocab_size = max(L) + 1`). HSTU's attention
memory grows as `blocks * B * heads * L^2` without `remat` (its default is
query blocks of 512 rematerialised in training: one block's scores at a
time); configurations whose estimate exceeds `--memory-budget-gib` are
reported as skipped instead of being run. Ratios are HSTU's time (or
memory) over TWIN's and DARE's.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

MODELS = ("HSTU", "TWIN", "DARE")


def estimate_gib(model, batch: int, length: int) -> float:
    """Rough training memory of HSTU's attention: 6 float32 `(B, H, rows, N)`
    per block, `rows` = N, or one query block with `remat`."""
    if type(model).__name__ != "HSTU":
        return 0.0
    rows = length + 1
    if model.remat and model.query_block_size:
        rows = min(rows, model.query_block_size)
    return 6 * model.num_blocks * batch * model.num_heads * rows * (length + 1) * 4 / 2**30


def worker(args: argparse.Namespace) -> None:
    import keras

    from keras_lsrec import models
    from keras_lsrec.data import SequenceSchema

    backend = keras.backend.backend()
    lengths = sorted(args.lengths)
    schema = SequenceSchema(
        {"item": 100_000, "category": 1_000}, max_len=max(lengths), time_vocab_size=max(lengths) + 1
    )
    keras.utils.set_random_seed(0)
    jit = backend != "torch"
    if args.mode == "train":
        model = models.get(args.model)(schema)
        model.compile(optimizer="adam", loss="binary_crossentropy", jit_compile=jit)
        baseline = common.rss_mib()
        for length in lengths:
            row = dict(backend=backend, model=args.model, mode="train", length=length, batch=args.train_batch)
            need = estimate_gib(model, args.train_batch, length)
            if need > args.memory_budget_gib:
                common.emit(**row, skipped=f"needs ~{need:.0f} GiB")
                continue
            x = schema.random_batch(args.train_batch, length, padded=False, dtype="int32")
            y = (x["target_item"] % 2).astype("float32")
            step = functools.partial(model.train_on_batch, x, y)
            times = common.time_calls(step, warmup=2, repeats=args.repeats)
            common.emit(
                **row, ms=common.median_ms(times), peak_mib=common.peak_rss_mib() - baseline, runs=len(times)
            )
        return
    model = models.get(args.model)(schema.replace(candidates="variable"))
    model.compile(jit_compile=jit)
    baseline = common.rss_mib()
    for length in lengths:
        for count in sorted(args.candidates):
            x = schema.replace(candidates=count).random_batch(1, length, padded=False, dtype="int32")
            times = common.time_calls(
                functools.partial(model.predict_on_batch, x), warmup=2, repeats=args.repeats
            )
            common.emit(
                backend=backend,
                model=args.model,
                mode="request",
                length=length,
                candidates=count,
                ms=common.median_ms(times),
                peak_mib=common.peak_rss_mib() - baseline,
                runs=len(times),
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ints = lambda text: [int(v) for v in text.split(",")]  # noqa: E731
    parser.add_argument("--lengths", type=ints, default=[500, 1000, 2000, 4000])
    parser.add_argument("--candidates", type=ints, default=[1, 100])
    parser.add_argument("--backends", default="jax")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-budget-gib", type=float, default=12.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("train", "request"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    print(f"Machine: {common.machine_line()}")
    print(
        f"Training batch {args.train_batch} rows; requests of 1 user x C candidates; "
        "fields item+category+time x 16 dims, full-length histories; model defaults.\n"
    )
    lengths, counts = sorted(args.lengths), sorted(args.candidates)
    names = args.models.split(",")
    results: dict[tuple, dict] = {}
    for backend in args.backends.split(","):
        for name in names:
            for mode in ("train", "request"):
                options = ["--model", name, "--mode", mode, "--lengths", ",".join(map(str, lengths))]
                options += [
                    "--candidates",
                    ",".join(map(str, counts)),
                    "--train-batch",
                    str(args.train_batch),
                ]
                options += [
                    "--repeats",
                    str(args.repeats),
                    "--memory-budget-gib",
                    str(args.memory_budget_gib),
                ]
                for row in common.run_worker(__file__, backend, options):
                    if "error" in row:
                        print(f"{backend} {name} {mode}: {row['error']}", file=sys.stderr)
                        continue
                    key = (backend, name, mode, row["length"], row.get("candidates", 1))
                    results[key] = row
                    what = row.get("skipped") or f"{row['ms']:9.1f} ms {row['peak_mib']:8.0f} MiB"
                    print(
                        f"  {backend} {name:5s} {mode:7s} L={row['length']:>5} C={key[-1]:>3}: {what}",
                        flush=True,
                    )

    def cell(key) -> str:
        row = results.get(key)
        if row is None:
            return "failed"
        if "skipped" in row:
            return "skipped"
        return f"{row['ms']:,.1f} / {row['peak_mib']:,.0f}"

    def ratio(key, other, field="ms") -> str:
        a, b = results.get(key, {}), results.get(other, {})
        if field in a and field in b and b[field] > 0:
            return f"{a[field] / b[field]:.1f}x"
        return "-"

    for backend in args.backends.split(","):
        print(f"\n### {backend}: ms / peak MiB growth\n")
        header = ["model", "what"] + [f"L={n}" for n in lengths]
        rows = []
        for name in names:
            rows.append(
                [name, f"train step (B={args.train_batch})"]
                + [cell((backend, name, "train", n, 1)) for n in lengths]
            )
            for count in counts:
                rows.append(
                    [name, f"request C={count}"]
                    + [cell((backend, name, "request", n, count)) for n in lengths]
                )
        print(common.markdown_table(header, rows))
        whats = [("train", 1, "train step")] + [("request", c, f"request C={c}") for c in counts]
        for field, title in (("ms", "time"), ("peak_mib", "peak memory growth")):
            print(f"\n### {backend}: HSTU {title} over TWIN's / over DARE's\n")
            rows = []
            for mode, count, label in whats:
                cells = []
                for n in lengths:
                    key = (backend, "HSTU", mode, n, count)
                    twin = ratio(key, (backend, "TWIN", mode, n, count), field)
                    dare = ratio(key, (backend, "DARE", mode, n, count), field)
                    cells.append(f"{twin} / {dare}")
                rows.append([label] + cells)
            print(common.markdown_table(["what"] + [f"L={n}" for n in lengths], rows))
        rows = []
        for count in counts:
            hstu = [results.get((backend, "HSTU", "request", n, count), {}).get("ms") for n in lengths]
            per = [f"{t / count:,.2f}" if t else "-" for t in hstu]
            rows.append([f"C={count}"] + per)
        print(f"\n### {backend}: HSTU ms per candidate in a request\n")
        print(common.markdown_table(["C"] + [f"L={n}" for n in lengths], rows))


if __name__ == "__main__":
    main()
