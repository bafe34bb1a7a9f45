"""The `lsrec` command.

Quiet by default, on every backend: TensorFlow's C++ start-up messages, its
absl / Python logs and tf.function retracing warnings are turned off unless
`--verbose` is given (`configure_logging`, applied by `import keras_lsrec`
before keras is imported when the process is `lsrec`: keras_lsrec/_quiet.py).
Sizes, epochs, rates and versions must be positive; anything else is refused
by argparse with the option named (exit code 2). A problem found while
working (a file that is not a valid `.keras` file, an existing version, a
corrupt `models.config`) is one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any

# Standard library only: `import keras_lsrec` has run `quiet_start` before keras was imported.
from keras_lsrec._quiet import RETRACING, configure_logging  # noqa: F401  (RETRACING: re-exported)


def _int_at_least(low: int, requirement: str) -> Callable[[str], int]:
    """An argparse type: an int >= `low`, refused as "must be `requirement`"."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {requirement}. Received: {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_non_negative_int = _int_at_least(0, "a non-negative integer")
# The synthetic data keeps each history's last 50 events recent and needs 30 older ones.
_history_length = _int_at_least(
    80, "an integer >= 80 (the synthetic histories: 50 recent events and 30 older)"
)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive finite number. Received: {text!r}")
    return value


def default_jit_compile() -> bool:
    """XLA for jax only, for a run this short (measured on the 2-core CPU):
    jax compiles in a few seconds; tensorflow's XLA compile took 25-30 s per
    model (more than the 3 epochs it saves; use `jit_compile=True` for long
    runs of TWIN / DARE), and torch.compile costs minutes."""
    import keras

    return keras.backend.backend() == "jax"


def _throughput_callback(samples_per_epoch: int) -> Any:
    import keras

    class Throughput(keras.callbacks.Callback):
        """Samples per second over the epochs after the first (compilation excluded)."""

        def __init__(self) -> None:
            super().__init__()
            self.durations: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.durations.append(time.perf_counter() - self.start)

        @property
        def samples_per_second(self) -> float:
            steady = self.durations[1:] or self.durations
            return samples_per_epoch * len(steady) / sum(steady)

    return Throughput()


def share_initial_weights(model: Any, path: str) -> None:
    """Loads `model`'s initial weights from `path`, or saves them there if it
    does not exist yet: runs on different backends then start from the same
    weights (each backend's seeded initialisers draw different numbers)."""
    if os.path.exists(path):
        model.load_weights(path)
    else:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        model.save_weights(path)


def quickstart(args: argparse.Namespace) -> int:
    import keras

    from keras_lsrec import metrics, models
    from keras_lsrec.data import ArrayDataset, synthetic

    users = args.users if args.users is not None else (12000 if args.full else 3000)
    epochs = args.epochs if args.epochs is not None else (5 if args.full else 3)
    max_len = args.max_len if args.max_len is not None else (500 if args.full else 200)
    backend = keras.backend.backend()
    print(f"keras_lsrec quickstart on the {backend} backend: synthetic data, {users} users, L={max_len}")
    data = synthetic.generate(num_users=users, examples_per_user=8, max_len=max_len, seed=args.seed)
    bayes = metrics.auc(data.test.y, data.test.probability)
    print(
        f"train {len(data.train)} / validation {len(data.validation)} / test {len(data.test)} rows; "
        f"Bayes-optimal test AUC {bayes:.4f}"
    )
    verbose = 1 if sys.stdout.isatty() else 2
    rows = []
    chosen = [m for m in models.QUICKSTART_MODELS if not args.models or m[0].lower() in args.models]
    init_seed = args.seed if args.init_seed is None else args.init_seed
    clustered = None
    for label, name, kwargs in chosen:
        split = data
        if models.get(name).READS_CLUSTERS:  # TWIN-V2: each history's clusters, computed once here
            clustered = clustered or data.clustered()
            split = clustered
        keras.utils.set_random_seed(init_seed)
        model = models.get(name)(split.schema, **kwargs)
        if args.same_start:
            file = label.lower().replace("@", "_") + ".weights.h5"
            share_initial_weights(model, os.path.join(args.same_start, file))
        model.compile(
            optimizer=keras.optimizers.Adam(args.learning_rate),
            loss="binary_crossentropy",
            metrics=[keras.metrics.AUC(name="auc")],
            jit_compile=default_jit_compile(),
        )
        print(f"\n{label}")
        throughput = _throughput_callback(len(data.train))
        # Shuffled by a numpy seed, so every backend trains on the same batches.
        train = ArrayDataset(
            split.train.x, split.train.y, args.batch_size, shuffle=True, seed=init_seed, schema=split.schema
        )
        model.fit(
            train,
            shuffle=False,  # Keras would also reorder the batches, with Python's `random`
            epochs=epochs,
            validation_data=(split.validation.x, split.validation.y),
            callbacks=[throughput],
            verbose=verbose,
        )
        result = metrics.evaluate(model, split.test.x, split.test.y, split.test.users)
        rows.append((label, result, throughput.samples_per_second))

    print(f"\nTest set ({backend}, {epochs} epochs, batch {args.batch_size}, L={max_len}):\n")
    print("| model | AUC | GAUC | logloss | train samples/s |")
    print("| --- | --- | --- | --- | --- |")
    for label, result, speed in rows:
        print(
            f"| {label} | {result['auc']:.4f} | {result['gauc']:.4f} | "
            f"{result['logloss']:.4f} | {speed:,.0f} |"
        )
    print(f"| (Bayes-optimal) | {bayes:.4f} | | | |")
    if args.json:
        record = {
            "backend": backend,
            "seed": args.seed,
            "init_seed": args.init_seed,
            "same_start": args.same_start,
            "users": users,
            "epochs": epochs,
            "max_len": max_len,
            "bayes_auc": bayes,
            "models": {label: {**result, "samples_per_s": speed} for label, result, speed in rows},
        }
        with open(args.json, "w") as f:
            json.dump(record, f, indent=1)
    return 0


def export(args: argparse.Namespace) -> int:
    from keras_lsrec import serving
    from keras_lsrec.serving import _item_tables

    tables = None
    if args.item_tables is not None:
        try:
            tables = _item_tables.load(args.item_tables)
        except (OSError, ValueError) as error:  # missing, not an .npz, pickled objects
            raise ValueError(
                f"--item-tables {args.item_tables}: not a readable .npz file ({error})"
            ) from None
    path = serving.export(
        args.model_file,
        base_dir=args.base_dir,
        version=args.version,
        serving_root=args.serving_root,
        item_tables=tables,
    )
    report = serving.check(path)
    verdict = "GPU check passed" if report.kernels_checked else "GPU check passed, kernel look-up skipped"
    print(f"exported {path} (serving_default, serving_int32; {sum(report.ops.values())} ops, {verdict})")
    return 0


def main(argv: list[str] | None = None) -> int:
    verbose_help = "show TensorFlow's logs and retracing warnings (off by default)"
    parser = argparse.ArgumentParser(prog="lsrec", description="keras_lsrec command line.")
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    # Also accepted after the command; SUPPRESS keeps the subcommand from resetting the flag.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help)
    commands = parser.add_subparsers(dest="command", required=True)
    quick = commands.add_parser(
        "quickstart",
        parents=[common],
        help="train the model zoo (DIN@50, DIN, TWIN, DARE, SAM, SIM, ETA, SDIM, TWIN-V2) on synthetic data",
        description="Trains DIN@50, DIN, TWIN, DARE, SAM, SIM, ETA, SDIM and TWIN-V2 on synthetic "
        "long-sequence data (no download) and prints AUC / GAUC / logloss / train samples per second. "
        "The backend is KERAS_BACKEND (default tensorflow).",
    )
    quick.add_argument("--full", action="store_true", help="more users, L=500, 5 epochs")
    quick.add_argument("--users", type=_positive_int, default=None, help="number of synthetic users")
    quick.add_argument("--epochs", type=_positive_int, default=None, help="training epochs")
    quick.add_argument("--max-len", type=_history_length, default=None, help="history length L (>= 80)")
    quick.add_argument("--batch-size", type=_positive_int, default=256)
    quick.add_argument("--learning-rate", type=_positive_float, default=0.005)
    quick.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the synthetic data")
    quick.add_argument(
        "--init-seed",
        type=_non_negative_int,
        default=None,
        help="seed of the initial weights and shuffling (default: --seed)",
    )
    quick.add_argument(
        "--same-start",
        default=None,
        metavar="DIR",
        help="load each model's initial weights from DIR (the first run saves them): "
        "the same start on every backend",
    )
    quick.add_argument("--json", default=None, metavar="PATH", help="also write the results to PATH as JSON")
    quick.add_argument(
        "--models",
        type=lambda text: [m.strip().lower() for m in text.split(",")],
        default=None,
        help="comma-separated labels of the models to run, e.g. din@50,twin-v2 (default: all)",
    )
    exporter = commands.add_parser(
        "export",
        parents=[common],
        help="export a .keras model as a versioned SavedModel for TF Serving",
        description="Writes saved_models/<name>/<version>/ (or --base-dir) with serving_default and warm-up "
        "requests, updates models.config beside it, and checks that the graph runs on a GPU TF Serving. "
        "Works whatever KERAS_BACKEND trained the model.",
    )
    exporter.add_argument("model_file", help="the model's .keras file")
    exporter.add_argument(
        "--base-dir", default=None, help="model directory (default saved_models/<file stem>)"
    )
    exporter.add_argument(
        "--version", type=_positive_int, default=None, help="version number (default: next)"
    )
    exporter.add_argument("--serving-root", default="/models", help="where the server mounts saved_models/")
    exporter.add_argument(
        "--item-tables",
        default=None,
        help="an .npz of item-feature tables (name -> one row per item id) for the SavedModel to hold: "
        "requests then send ids only for those features (docs/serving.md)",
    )
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if args.command == "quickstart" and args.models:
        from keras_lsrec.models import QUICKSTART_MODELS  # imports keras: after configure_logging

        labels = [label.lower() for label, _, _ in QUICKSTART_MODELS]
        unknown = sorted(set(args.models) - set(labels))
        if unknown:
            parser.error(f"--models: unknown {unknown}; choose from {labels}")
    if args.command == "export":
        from keras_lsrec.serving._model_file import keras_file_path_problem

        problem = keras_file_path_problem(args.model_file)  # missing, a directory, not .keras: exit code 2
        if problem is not None:
            exporter.error(f"argument model_file: {problem}")
        try:
            return export(args)
        # The serving extra missing (the message says what to install), a file that is not a valid
        # .keras file, an existing version, a corrupt models.config, a directory that is not writable,
        # a graph that would not run on a GPU server: the message names the culprit; no traceback.
        except (ImportError, OSError, ValueError, RuntimeError) as error:
            print(f"lsrec export: error: {error}", file=sys.stderr)
            return 1
    if args.command == "quickstart":
        return quickstart(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
