"""Training throughput and memory against the vocabulary size: dense against row-sparse tables.

    python bench/vocab.py                       # the table of docs/benchmarks.md ("Vocabulary")
    python bench/vocab.py --quick               # DIN and DARE, 10K and 1M items, one backend
    python bench/vocab.py --backends jax --models DARE --items 10000,4000000 --routes dense,auto
    python bench/vocab.py --auc --backends tensorflow   # lazy against dense Adam: test AUC, 3 seeds

For every backend (tensorflow and jax with `jit_compile=True`, torch eager),
model (DIN, TWIN, DARE, SAM; embedding 16, k=20) and item vocabulary (10K,
1M, 4M, 20M items; 1,000 categories), in a fresh process each:

- train samples/s: `train_on_batch` on random full histories (L=200, batch
  256, ids uniform over the vocabulary: every lookup a distinct row, the
  worst case for row-sparse training), median of `--repeats` rounds of
  `--steps` steps after a warm-up round (compilation excluded);
- peak resident memory of the process, its resident memory after the
  steps, and the model state it must hold (weights + optimizer variables), MiB.

`--zipf A` draws item ids by a Zipf-like popularity (P(rank r) ~ r^-A, ranks
scattered over the ids) instead of uniformly, as real logs repeat popular items.

Routes: `dense` compiles with `table_optimizer="dense"` (every step reads and
writes every row of every table and of Adam's slots: the library before
row-sparse training); `auto` is the default (`compile(optimizer="adam")`:
tables of at least `table_min_rows` rows train with lazy Adam on the rows a
batch touches). The peer, FuxiCTR 2.3.10 (torch `nn.Embedding`, dense Adam),
runs DIN and TWIN at 10K and 4M items in the isolated environment of
bench/run.py. Ratios: each size's samples/s over the same route's at 10K.

`--auc`: the learning check. On the quickstart data (`lsrec quickstart`:
3,000 users x 8 rows, L=200, Adam 0.005, batch 256, 3 epochs) each model
trains with every table row-sparse (`table_min_rows=0`, lazy Adam) and
densely (dense Adam), 3 initialisation seeds each; test AUC mean and sd.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
import run as run_bench  # noqa: E402

MODELS = ("DIN", "TWIN", "DARE", "SAM")
ITEMS = (10_000, 1_000_000, 4_000_000, 20_000_000)
CATEGORIES = 1_000


def worker(args: argparse.Namespace) -> None:
    import gc

    import keras

    backend = keras.backend.backend()
    if backend == "torch" and args.threads:
        import torch

        torch.set_num_threads(args.threads)
    for items in sorted(int(n) for n in args.items.split(",")):  # increasing: the peak is this size's
        measure(args, backend, items)
        gc.collect()
        keras.backend.clear_session()


def measure(args: argparse.Namespace, backend: str, items: int) -> None:
    import keras
    import numpy as np

    from keras_lsrec.data import SequenceSchema

    schema = SequenceSchema({"item": items, "category": CATEGORIES}, max_len=args.length)
    keras.utils.set_random_seed(0)
    model = run_bench.build(args.model, schema, args.dim)
    model.compile(
        optimizer="adam",
        loss="binary_crossentropy",
        jit_compile=backend != "torch",
        table_optimizer=args.route,
        **({} if args.min_rows is None else {"table_min_rows": args.min_rows}),
    )
    batches = [schema.random_batch(args.batch, padded=False, seed=s, dtype="int32") for s in range(2)]
    if args.zipf:
        batches = [zipf_items(b, items, args.zipf, seed) for seed, b in enumerate(batches)]
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, 2, args.batch).astype("float32") for _ in batches]

    def steps():
        for i in range(args.steps):
            model.train_on_batch(batches[i % 2], labels[i % 2])

    times = common.time_calls(steps, warmup=1, repeats=args.repeats, budget_s=90)
    state = sum(int(np.prod(v.shape)) * 4 for v in [*model.weights, *model.optimizer.variables])
    common.emit(
        library="keras_lsrec",
        backend=backend,
        model=args.model,
        items=items,
        route=args.route,
        sparse_tables=0 if model.table_training is None else len(model.table_training.tables),
        train_sps=args.steps * args.batch / float(np.median(times)),
        peak_mib=common.peak_rss_mib(),
        rss_mib=common.rss_mib(),
        state_mib=state / 2**20,
    )


def auc_worker(args: argparse.Namespace) -> None:
    import keras
    import numpy as np

    from keras_lsrec import metrics, models
    from keras_lsrec.data import ArrayDataset, synthetic

    data = synthetic.generate(num_users=3000, examples_per_user=8, max_len=200, seed=0)
    for seed in range(args.seeds):
        keras.utils.set_random_seed(seed)
        model = models.get(args.model)(data.schema)
        model.compile(
            optimizer=keras.optimizers.Adam(0.005),
            loss="binary_crossentropy",
            jit_compile=keras.backend.backend() != "torch",
            table_optimizer=args.route,
            table_min_rows=0,
        )
        train = ArrayDataset(data.train.x, data.train.y, 256, shuffle=True, seed=seed, schema=data.schema)
        model.fit(train, shuffle=False, epochs=3, verbose=0)
        auc = metrics.evaluate(model, data.test.x, data.test.y)["auc"]
        common.emit(
            backend=keras.backend.backend(),
            model=args.model,
            route=args.route,
            seed=seed,
            auc=auc,
            sparse_tables=0 if model.table_training is None else len(model.table_training.tables),
        )
        del model
        keras.backend.clear_session()
        np.random.seed(seed)


def auc_table(results: list[dict]) -> str:
    import numpy as np

    groups: dict = {}
    for r in results:
        if "auc" in r:
            groups.setdefault((r["backend"], r["model"]), {}).setdefault(r["route"], []).append(r["auc"])
    rows = []
    for (backend, model), routes in sorted(groups.items()):
        cells = [
            f"{np.mean(routes[r]):.4f} +- {np.std(routes[r]):.4f} ({len(routes[r])})" if r in routes else "-"
            for r in ("auto", "dense")
        ]
        diff = (
            f"{np.mean(routes['auto']) - np.mean(routes['dense']):+.4f}"
            if "auto" in routes and "dense" in routes
            else "-"
        )
        rows.append([backend, model, *cells, diff])
    return common.markdown_table(
        ["backend", "model", "row-sparse, lazy Adam: AUC (seeds)", "dense Adam: AUC (seeds)", "difference"],
        rows,
    )


def zipf_items(batch: dict, items: int, exponent: float, seed: int) -> dict:
    """`batch` with its item ids redrawn by a Zipf-like popularity (P(rank r)
    proportional to r^-exponent, ranks scattered over the ids): real logs
    repeat popular items within a batch."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ranks = np.arange(1, items)
    popularity = ranks**-exponent
    ids = rng.permutation(ranks)  # rank -> id
    out = dict(batch)
    for key in ("history_item", "target_item"):
        drawn = rng.choice(len(ranks), size=batch[key].shape, p=popularity / popularity.sum())
        out[key] = ids[drawn].astype("int32")
    return out


def run_peer(args: argparse.Namespace, model: str, items: int) -> list[dict]:
    """FuxiCTR's `model` at `items` items, through bench/run.py's peer environment."""
    peer = argparse.Namespace(**{**vars(args), "lengths": [args.length]})
    rows = run_bench.run_peer(peer, model, extra=("--items", str(items)))
    for row in rows:
        row.update(model=model, items=items, route="dense")
    return rows


def flags(**values: object) -> list[str]:
    """`--name value` command-line flags (underscores as dashes)."""
    return [part for name, value in values.items() for part in (f"--{name.replace('_', '-')}", str(value))]


def table(results: list[dict]) -> str:
    key = {
        (r["library"], r["backend"], r["model"], r["route"], r["items"]): r
        for r in results
        if "error" not in r
    }
    sizes = sorted({k[4] for k in key})
    header = ["library", "backend", "model", "route"]
    header += [f"{n:,} items: samples/s (x of 10K)" for n in sizes]
    header += ["MiB at the largest size: peak / after training / model state"]
    rows = []
    for lib, backend, model, route in sorted({k[:4] for k in key}):
        small = key.get((lib, backend, model, route, sizes[0]))
        cells, last = [], None
        for n in sizes:
            r = key.get((lib, backend, model, route, n))
            if r is None:
                cells.append("-")
                continue
            ratio = f" ({r['train_sps'] / small['train_sps']:.2f}x)" if small else ""
            cells.append(f"{r['train_sps']:,.0f}{ratio}")
            last = r
        memory = "-"
        if last:
            after = last.get("rss_mib", float("nan"))
            memory = f"{last['peak_mib']:,.0f} / {after:,.0f} / {last.get('state_mib', float('nan')):,.0f}"
        rows.append([lib, backend, model, route, *cells, memory])
    return common.markdown_table(header, rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="DIN", help=argparse.SUPPRESS)
    parser.add_argument("--route", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--items", default=",".join(map(str, ITEMS)))
    parser.add_argument("--routes", default="dense,auto")
    parser.add_argument(
        "--dense-up-to",
        type=int,
        default=4_000_000,
        help="largest vocabulary timed on the dense route (it grows with the table)",
    )
    parser.add_argument(
        "--dense-from",
        type=int,
        default=100_000,
        help="smallest vocabulary timed on the dense route (below the library's table_min_rows "
        "the default route is the dense one: the `auto` row is the same measurement)",
    )
    parser.add_argument(
        "--auto-largest", default="", help="per-model cap on the vocabulary, e.g. DIN=4000000,SAM=4000000"
    )
    parser.add_argument(
        "--min-rows", type=int, default=None, help="compile's table_min_rows (default: the library's)"
    )
    parser.add_argument(
        "--zipf",
        type=float,
        default=0.0,
        help="draw item ids by a Zipf-like popularity with this exponent (0: uniform)",
    )
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--peer-models", default="DIN,TWIN")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--auc", action="store_true", help="the learning check instead of the speed table")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    if args.worker:
        return auc_worker(args) if args.auc else worker(args)
    if args.auc:
        print(common.machine_line(), flush=True)
        results: list[dict] = []
        for backend in args.backends.split(","):
            for model in args.models.split(","):
                for route in ("auto", "dense"):
                    argv = ["--auc", *flags(model=model, route=route, seeds=args.seeds)]
                    rows = common.run_worker(__file__, backend, argv, timeout=3600)
                    print(rows, flush=True)
                    results += rows
        print()
        print(auc_table(results))
        return None
    args.auto_up_to = dict(item.split("=") for item in args.auto_largest.split(",") if item)
    args.auto_up_to = {k: int(v) for k, v in args.auto_up_to.items()}
    if args.quick:
        args.backends, args.models, args.items, args.no_peer = "jax", "DIN,DARE", "10000,1000000", True
    sizes = sorted(int(n) for n in args.items.split(","))
    print(common.machine_line(), flush=True)
    results = []
    for backend in args.backends.split(","):
        for model in args.models.split(","):
            for route in args.routes.split(","):
                largest = args.dense_up_to if route == "dense" else args.auto_up_to.get(model, sizes[-1])
                todo = [n for n in sizes if n <= largest and not (route == "dense" and n < args.dense_from)]
                if not todo:
                    continue
                argv = flags(
                    model=model,
                    route=route,
                    items=",".join(map(str, todo)),
                    length=args.length,
                    batch=args.batch,
                    dim=args.dim,
                    steps=args.steps,
                    repeats=args.repeats,
                    threads=args.threads,
                    zipf=args.zipf,
                )
                argv += [] if args.min_rows is None else flags(min_rows=args.min_rows)
                rows = common.run_worker(__file__, backend, argv, timeout=3600)
                for row in rows:
                    row.setdefault("model", model)
                    print(row, flush=True)
                results += rows
    if not args.no_peer:
        for model in args.peer_models.split(","):
            for items in (sizes[0], min(args.dense_up_to, sizes[-1])):
                rows = run_peer(args, model, items)
                print(rows, flush=True)
                results += rows
    print()
    print(table(results))
    errors = [r for r in results if "error" in r]
    if errors:
        print("\nErrors:", *errors, sep="\n")


if __name__ == "__main__":
    main()
