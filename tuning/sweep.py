"""Run a keras-tuner sweep described by a YAML file; resumable and distributable.

    python tuning/sweep.py tuning/dare_synthetic.yaml

The config (see tuning/dare_synthetic.yaml):

    model: dare                 # any keras_lsrec.models.get name
    fixed: {k: 20}              # knobs pinned (not searched)
    data: {source: synthetic, num_users: 2000, max_len: 200, seed: 0}
    tuner: random               # random | bayesian | hyperband
    objective: val_auc
    trials: 10                  # max_trials (hyperband: max_epochs = epochs)
    epochs: 2
    seed: 0
    output: sweeps/dare_synthetic

The sweep lives in `output`: re-running the same command after a crash
resumes it (finished trials are not redone). At the end the chief (or the
single process) writes `results.csv` and `results.md` there, best first, and
exports the best model with `keras_lsrec.serving.export` to
`output/saved_models/<model>/` when tensorflow-serving-api is installed.

Distributed: start the same command on several machines with keras-tuner's
variables, one chief and any number of workers (docs/tuning.md):

    export KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000
    KERASTUNER_TUNER_ID=chief   python tuning/sweep.py CFG    # on the chief, 10.0.0.1
    KERASTUNER_TUNER_ID=tuner0  python tuning/sweep.py CFG    # on each worker: tuner0, tuner1, ...
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from typing import Any

TUNERS = ("random", "bayesian", "hyperband")
KEYS = {"model", "fixed", "data", "tuner", "objective", "trials", "epochs", "seed", "output", "batch_size"}


def load_config(path: str) -> dict[str, Any]:
    import yaml

    with open(path) as f:
        config = yaml.safe_load(f) or {}
    unknown = sorted(set(config) - KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; allowed: {sorted(KEYS)}")
    for key in ("model", "data", "output"):
        if key not in config:
            raise ValueError(f"{path}: missing `{key}`")
    config.setdefault("fixed", {})
    config.setdefault("tuner", "random")
    config.setdefault("objective", "val_auc")
    config.setdefault("trials", 10)
    config.setdefault("epochs", 2)
    config.setdefault("seed", 0)
    if config["tuner"] not in TUNERS:
        raise ValueError(f"{path}: `tuner` must be one of {TUNERS}. Received: {config['tuner']!r}")
    return config


def load_data(spec: dict[str, Any]):
    """`(schema, train, validation)`; each split has `.x` and `.y`."""
    spec = dict(spec)
    source = spec.pop("source", None)
    if source == "synthetic":
        from keras_lsrec.data import synthetic

        data = synthetic.generate(**spec)
        return data.schema, data.train, data.validation
    raise ValueError(
        f"`data.source` must be 'synthetic' (real loaders come with the data issue). Received: {source!r}"
    )


def make_tuner(config: dict[str, Any], hypermodel: Any):
    import keras_tuner

    objective = keras_tuner.Objective(
        config["objective"], direction="min" if "loss" in config["objective"] else "max"
    )
    common = dict(
        objective=objective,
        seed=config["seed"],
        directory=os.path.dirname(os.path.abspath(config["output"])),
        project_name=os.path.basename(os.path.normpath(config["output"])),
        overwrite=False,
    )
    if config["tuner"] == "hyperband":
        return keras_tuner.Hyperband(hypermodel, max_epochs=config["epochs"], **common)
    cls = keras_tuner.RandomSearch if config["tuner"] == "random" else keras_tuner.BayesianOptimization
    return cls(hypermodel, max_trials=config["trials"], **common)


def _short(value: Any) -> Any:
    return float(f"{value:.4g}") if isinstance(value, float) else value


def write_results(tuner: Any, output: str) -> list[dict[str, Any]]:
    """`results.csv` and `results.md` in `output`, best trial first."""
    trials = [t for t in tuner.oracle.trials.values() if t.score is not None]
    reverse = tuner.oracle.objective.direction == "max"
    trials.sort(key=lambda t: t.score, reverse=reverse)
    knobs = sorted({k for t in trials for k in t.hyperparameters.values})
    knobs = [k for k in knobs if not k.startswith("tuner/")]
    rows = [
        {"rank": i + 1, "trial": t.trial_id, tuner.oracle.objective.name: round(float(t.score), 5),
         **{k: _short(t.hyperparameters.values.get(k)) for k in knobs}}
        for i, t in enumerate(trials)
    ]
    header = ["rank", "trial", tuner.oracle.objective.name] + knobs
    with open(os.path.join(output, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(row[h]) for h in header) + " |" for row in rows]
    with open(os.path.join(output, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return rows


def run(config: dict[str, Any], verbose: int = 1) -> list[dict[str, Any]] | None:
    import keras

    from keras_lsrec import tuning

    keras.utils.set_random_seed(config["seed"])
    schema, train, validation = load_data(config["data"])
    fixed = dict(config["fixed"])
    if "batch_size" in config:
        fixed["batch_size"] = config["batch_size"]
    tuner = make_tuner(config, tuning.hypermodel(config["model"], schema, **fixed))
    print(
        f"sweep {config['output']}: {config['model']} with {config['tuner']} search, "
        f"{config['trials']} trials, backend {keras.backend.backend()}",
        flush=True,
    )
    tuner.search(
        train.x,
        train.y,
        validation_data=(validation.x, validation.y),
        epochs=config["epochs"],
        verbose=verbose,
    )
    if not os.environ.get("KERASTUNER_TUNER_ID", "chief").startswith("chief"):
        return None  # a worker: the chief writes the results
    output = config["output"]
    os.makedirs(output, exist_ok=True)
    rows = write_results(tuner, output)
    print(open(os.path.join(output, "results.md")).read(), flush=True)
    try:
        from keras_lsrec import serving
    except ImportError:
        print("tensorflow-serving-api not installed: best model not exported", flush=True)
        return rows
    best = tuner.get_best_models(1)[0]
    path = serving.export(best, os.path.join(output, "saved_models", config["model"]))
    print(f"best model exported to {path}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", help="the sweep's YAML file")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch output")
    args = parser.parse_args(argv)
    run(load_config(args.config), verbose=0 if args.quiet else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
