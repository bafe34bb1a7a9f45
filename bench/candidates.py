"""Time to score C candidates for ONE user: IFA (one pass for the set) vs DIN and DARE (a row per candidate).

    python bench/candidates.py                                  # C = 1,10,100,1000; L = 1000,10000
    python bench/candidates.py --backends jax --lengths 1000 --candidates 1,100

For each backend (tensorflow and jax with `jit_compile=True`, torch eager),
model, L and C: milliseconds to score one request (median of repeated calls
after warm-up), with a full-length random history.

- IFA takes the request as it comes: `target_<f>` `(1, C)`, history `(1, L)`;
  the per-user summaries are computed once and read by all C candidates.
- DIN (full sequence, MLP scorer) and DARE (top-20 search, then attention)
  score one candidate per row, so the request becomes C rows, each carrying
  the user's history; rows are sent in batches of at most `--chunk` (100), as a
  server would, and the time is the sum over batches.

The claim checked: IFA's time for 1000 candidates is under 5x its time for 1
candidate at L=10000 (`IFA C=max / C=1` column).
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

MODELS = ("IFA", "DIN", "DARE")  # and "IFA-nomatch": IFA with `match_fields=()`, the learned kernel alone


def worker(args: argparse.Namespace) -> None:
    import keras
    import numpy as np

    from keras_lsrec import models
    from keras_lsrec.data import HISTORY_PREFIX, TARGET_PREFIX, SequenceSchema

    backend = keras.backend.backend()
    longest = max(args.lengths)
    vocab = {"item": 100_000, "category": 1_000}
    requests = SequenceSchema(vocab, max_len=longest, candidates="variable", time_vocab_size=longest + 1)
    ifa = args.model.startswith("IFA")
    schema = requests if ifa else requests.replace(candidates=None)
    keras.utils.set_random_seed(0)
    if args.model == "DARE":
        model = models.DARE(schema, attention_dim=args.dim, representation_dim=args.dim)
    elif args.model == "IFA-nomatch":
        model = models.IFA(schema, embedding_dim=args.dim, match_fields=())
    else:
        model = models.get(args.model)(schema, embedding_dim=args.dim)
    model.compile(jit_compile=backend != "torch")
    for length in sorted(args.lengths):
        user = requests.random_batch(1, length, padded=False, dtype="int32", candidates=max(args.candidates))
        for count in sorted(args.candidates):
            targets = {k: v[:, :count] for k, v in user.items() if k.startswith(TARGET_PREFIX)}
            histories = {k: v for k, v in user.items() if k.startswith(HISTORY_PREFIX)}
            if ifa:
                batches = [{**targets, **histories}]
            else:  # one row per candidate, in chunks
                batches = []
                for start in range(0, count, args.chunk):
                    rows = min(args.chunk, count - start)
                    batch = {k: v[0, start : start + rows] for k, v in targets.items()}
                    batch.update({k: np.repeat(v, rows, axis=0) for k, v in histories.items()})
                    batches.append(batch)

            def score(batches=batches):
                for batch in batches:
                    model.predict_on_batch(batch)

            times = common.time_calls(score, warmup=1, repeats=args.repeats, budget_s=30.0)
            common.emit(
                backend=backend, model=args.model, length=length, candidates=count, ms=common.median_ms(times)
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ints = lambda text: [int(v) for v in text.split(",")]  # noqa: E731
    parser.add_argument("--lengths", type=ints, default=[1000, 10000])
    parser.add_argument("--candidates", type=ints, default=[1, 10, 100, 1000])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--dim", type=int, default=16, help="embedding size per field")
    parser.add_argument("--chunk", type=int, default=100, help="rows per batch for DIN and DARE")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    print(f"Machine: {common.machine_line()}")
    print(
        f"One user, full-length history; fields item+category+time x {args.dim} dims; "
        f"DIN/DARE in batches of <= {args.chunk} rows.\n"
    )
    lengths, counts = sorted(args.lengths), sorted(args.candidates)
    results = {}
    for backend in args.backends.split(","):
        for model in args.models.split(","):
            options = ["--model", model, "--lengths", ",".join(map(str, lengths))]
            options += ["--candidates", ",".join(map(str, counts)), "--dim", str(args.dim)]
            options += ["--chunk", str(args.chunk), "--repeats", str(args.repeats)]
            for row in common.run_worker(__file__, backend, options):
                if "error" in row:
                    print(f"{backend} {model}: {row['error']}", file=sys.stderr)
                    continue
                results[backend, model, row["length"], row["candidates"]] = row["ms"]
                print(
                    f"  {backend:10s} {model:5s} L={row['length']:>6} C={row['candidates']:>5}: "
                    f"{row['ms']:10.1f} ms",
                    flush=True,
                )

    def cell(key):
        return f"{results[key]:,.1f}" if key in results else "failed"

    for backend in args.backends.split(","):
        print(f"\n### {backend} (ms to score C candidates of one user)\n")
        header = ["model", "L"] + [f"C={c}" for c in counts] + [f"C={counts[-1]} / C={counts[0]}"]
        rows = []
        for length in lengths:
            for model in args.models.split(","):
                first, last = (
                    results.get((backend, model, length, counts[0])),
                    results.get((backend, model, length, counts[-1])),
                )
                ratio = f"{last / first:.1f}" if first and last else "-"
                rows.append([model, length] + [cell((backend, model, length, c)) for c in counts] + [ratio])
        print(common.markdown_table(header, rows))

    print(f"\n### IFA speed-up at C={counts[-1]} (time of the other model / time of IFA)\n")
    rows = []
    for backend in args.backends.split(","):
        for length in lengths:
            ifa = results.get((backend, "IFA", length, counts[-1]))
            cells = []
            for model in args.models.split(","):
                if model == "IFA":
                    continue
                other = results.get((backend, model, length, counts[-1]))
                cells.append(f"{other / ifa:.1f}x" if ifa and other else "-")
            rows.append([backend, length] + cells)
    others = [m for m in args.models.split(",") if m != "IFA"]
    print(common.markdown_table(["backend", "L"] + [f"{m} / IFA" for m in others], rows))


if __name__ == "__main__":
    main()
