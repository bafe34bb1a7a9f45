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
    export: true                # export the best model for TF Serving (needs the serving extra)
    engine: keras_tuner         # keras_tuner | optuna (or --engine)
    optuna: {storage: sweeps/dare_synthetic/journal.log, pruner: median, heartbeat: 60, retries: 3}

The sweep lives in `output`: re-running the same command after a crash
resumes it (finished trials are not redone). At the end the chief (or the
single process) writes `results.csv` and `results.md` there, best first
(trials that failed or reported no finite objective last, with their
status), and exports the best model with `keras_lsrec.serving.export` to
`output/saved_models/<model>/`.

Refused before the first trial, with exit code 1 and a message naming the
culprit: a bad config (every key's type and range), an objective the trials
would not report (a typo such as `val_acu`; the message lists what they
report), a pinned knob the model refuses (one model is built with the pinned
values before the search; `batch_size` and `learning_rate` must be positive)
and, when `export` is on, a missing tensorflow-serving-api
(`pip install "keras-lsrec[serving]"`, or `export: false`). Read by rule: a
numeric string for a float knob is the number (YAML reads `1e-3`, without a
dot, as a string). A model made for clustered histories (TWIN-V2,
`READS_CLUSTERS`) gets its synthetic histories clustered, as `lsrec
quickstart` does, and the sweep's first line says so. A failed or unscored trial never becomes "best": when no
trial reports a finite objective, nothing is exported and the exit code is 1.

Distributed: start the same command on several machines with keras-tuner's
variables, one chief and any number of workers (docs/tuning.md):

    export KERASTUNER_ORACLE_IP=10.0.0.1 KERASTUNER_ORACLE_PORT=8000
    KERASTUNER_TUNER_ID=chief   python tuning/sweep.py CFG    # on the chief, 10.0.0.1
    KERASTUNER_TUNER_ID=tuner0  python tuning/sweep.py CFG    # on each worker: tuner0, tuner1, ...

`--engine optuna` (or `engine: optuna` in the config) runs the same search
space on Optuna instead (keras_lsrec/tuning/optuna_engine.py): start the
same command N times, on one host, and the workers share a journal file
(`<output>/journal.log`; `optuna: {storage: URL}` for a database and many
hosts). No chief: each worker takes trials until `trials` are used, a trial
whose worker died (no heartbeat for twice `optuna.heartbeat` seconds) is
re-run with the same knobs, trials are pruned per epoch (`optuna.pruner`:
median | hyperband | none), and every worker writes the same results; the
best model is exported once. `tuner` picks the sampler (random: random;
bayesian, hyperband: multivariate TPE). The same config checks run first.

    python tuning/sweep.py CFG --engine optuna & python tuning/sweep.py CFG --engine optuna

`--mesh D,M` (jax) trains every trial of this process on its devices, the
tables row-sharded over M of them and the batch split over D
(`keras_lsrec.distribution.layout_map`); give each worker its own devices
(e.g. `CUDA_VISIBLE_DEVICES`), docs/distributed.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys
import tempfile
from types import SimpleNamespace
from typing import Any

TUNERS = ("random", "bayesian", "hyperband")
ENGINES = ("keras_tuner", "optuna")
# `optuna:` (used by `--engine optuna` only; keras-tuner ignores it): where the study lives, pruning,
# and how a dead worker's trial is found and re-run (keras_lsrec/tuning/optuna_engine.py).
OPTUNA_KEYS = {"storage", "study", "pruner", "heartbeat", "retries"}
PRUNERS = ("median", "hyperband", "none")
KEYS = {
    "engine",
    "optuna",
    "model",
    "fixed",
    "data",
    "tuner",
    "objective",
    "trials",
    "epochs",
    "seed",
    "output",
    "batch_size",
    "export",
}


class SweepError(ValueError):
    """The sweep refuses to start, or ended without a trial to call best (the message says why)."""


def load_config(path: str) -> dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f) or {}
    except OSError as error:  # missing, a directory, unreadable
        raise SweepError(f"{path}: cannot read the config: {error.strerror or error}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise SweepError(f"{path}: not valid YAML: {' '.join(str(error).split())}") from None
    if not isinstance(config, dict):
        raise SweepError(f"{path}: must be a mapping of {sorted(KEYS)}. Received: {type(config).__name__}")
    unknown = sorted(set(config) - KEYS)
    if unknown:
        raise SweepError(f"{path}: unknown keys {unknown}; allowed: {sorted(KEYS)}")
    for key in ("model", "data", "output"):
        if key not in config:
            raise SweepError(f"{path}: missing `{key}`")
    config.setdefault("fixed", {})
    config.setdefault("tuner", "random")
    config.setdefault("objective", "val_auc")
    config.setdefault("trials", 10)
    config.setdefault("epochs", 2)
    config.setdefault("seed", 0)
    config.setdefault("export", True)
    config.setdefault("engine", "keras_tuner")
    config.setdefault("optuna", {})
    if config["engine"] not in ENGINES:
        raise SweepError(f"{path}: `engine` must be one of {ENGINES}. Received: {config['engine']!r}")
    check_optuna_section(path, config["optuna"])
    if config["tuner"] not in TUNERS:
        raise SweepError(f"{path}: `tuner` must be one of {TUNERS}. Received: {config['tuner']!r}")
    for key in ("trials", "epochs"):
        if isinstance(config[key], bool) or not isinstance(config[key], int) or config[key] < 1:
            raise SweepError(f"{path}: `{key}` must be a positive integer. Received: {config[key]!r}")
    if not isinstance(config["objective"], str) or not config["objective"]:
        raise SweepError(f"{path}: `objective` must be a metric name. Received: {config['objective']!r}")
    if not isinstance(config["export"], bool):
        raise SweepError(f"{path}: `export` must be true or false. Received: {config['export']!r}")
    for key in ("seed", "batch_size"):
        value, low = config.get(key, 1), 0 if key == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            kind = "non-negative" if low == 0 else "positive"
            raise SweepError(f"{path}: `{key}` must be a {kind} integer. Received: {value!r}")
    for key in ("model", "output"):
        if not isinstance(config[key], str) or not config[key].strip():
            raise SweepError(f"{path}: `{key}` must be a non-empty string. Received: {config[key]!r}")
    for key in ("fixed", "data"):
        if not isinstance(config[key], dict):
            raise SweepError(f"{path}: `{key}` must be a mapping. Received: {config[key]!r}")
    fixed = config["fixed"]
    if "batch_size" in config and "batch_size" in fixed and fixed["batch_size"] != config["batch_size"]:
        raise SweepError(
            f"{path}: `batch_size` is given twice, {config['batch_size']!r} and `fixed.batch_size` "
            f"{fixed['batch_size']!r}; give it once"
        )
    return config


def check_optuna_section(path: str, section: Any) -> None:
    """The `optuna:` mapping: `storage` (a journal file path or a database URL) and `study`
    non-empty strings, `pruner` one of PRUNERS, `heartbeat` a positive integer (seconds),
    `retries` a non-negative integer."""
    if not isinstance(section, dict):
        raise SweepError(f"{path}: `optuna` must be a mapping. Received: {section!r}")
    unknown = sorted(set(section) - OPTUNA_KEYS)
    if unknown:
        raise SweepError(f"{path}: unknown keys {unknown} in `optuna`; allowed: {sorted(OPTUNA_KEYS)}")
    for key in ("storage", "study"):
        if key in section and (not isinstance(section[key], str) or not section[key].strip()):
            raise SweepError(f"{path}: `optuna.{key}` must be a non-empty string. Received: {section[key]!r}")
    if section.get("pruner", "median") not in PRUNERS:
        raise SweepError(f"{path}: `optuna.pruner` must be one of {PRUNERS}. Received: {section['pruner']!r}")
    for key, low in (("heartbeat", 1), ("retries", 0)):
        value = section.get(key, low)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            kind = "positive" if low else "non-negative"
            raise SweepError(f"{path}: `optuna.{key}` must be a {kind} integer. Received: {value!r}")


def load_data(spec: dict[str, Any], model: str | None = None):
    """`(schema, train, validation)`; each split has `.x` and `.y`.

    For a model made for clustered histories (`READS_CLUSTERS`: TWIN-V2) the
    histories are clustered, as `lsrec quickstart` does
    (`SyntheticData.clustered()`).
    """
    spec = dict(spec)
    source = spec.pop("source", None)
    if source == "synthetic":
        from keras_lsrec.data import synthetic

        try:
            data = synthetic.generate(**spec)
        except (TypeError, ValueError) as error:
            raise SweepError(f"`data`: {error}") from None
        if model is not None and reads_clusters(model):
            data = data.clustered()
        return data.schema, data.train, data.validation
    raise SweepError(
        f"`data.source` must be 'synthetic' (real loaders come with the data issue). Received: {source!r}"
    )


def reads_clusters(model: str) -> bool:
    """Whether model `model` is made for clustered histories; `SweepError` for an unknown name."""
    from keras_lsrec import models

    try:
        return bool(models.get(model).READS_CLUSTERS)
    except ValueError as error:
        raise SweepError(f"`model`: {error}") from None


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


def is_chief() -> bool:
    """The single process, or keras-tuner's chief (workers have another `KERASTUNER_TUNER_ID`)."""
    return os.environ.get("KERASTUNER_TUNER_ID", "chief").startswith("chief")


def scored(trial: Any) -> bool:
    """A trial that finished and reported a finite objective: the only kind that can be best."""
    return trial.status == "COMPLETED" and trial.score is not None and math.isfinite(float(trial.score))


def _why_unscored(trial: Any, objective: str) -> str:
    if trial.status == "COMPLETED":
        return "completed without a score" if trial.score is None else f"completed, {objective}={trial.score}"
    last = [line for line in (trial.message or "").strip().splitlines() if line.strip()]
    return f"{trial.status}" + (f": {last[-1].strip()}" if last else "")


def best_trial(tuner: Any) -> Any:
    """The best scored trial; `SweepError` when no trial reported a finite objective.

    keras-tuner's own `get_best_trials` pads with failed trials when too few
    completed, and sorts NaN scores anywhere: it is not used.
    """
    objective = tuner.oracle.objective
    trials = list(tuner.oracle.trials.values())
    candidates = [t for t in trials if scored(t)]
    if candidates:
        pick = max if objective.direction == "max" else min
        return pick(candidates, key=lambda t: float(t.score))
    reported = set(getattr(tuner.hypermodel, "reported_metrics", ()))
    for trial in trials:
        reported.update(trial.metrics.metrics)
    states = "; ".join(f"trial {t.trial_id}: {_why_unscored(t, objective.name)}" for t in trials)
    raise SweepError(
        f"No trial reported a finite objective {objective.name!r}, so there is no best model and nothing "
        f"was exported. The trials reported {sorted(reported) or 'no metrics'}. "
        f"{len(trials)} trial(s): {states or 'none ran'}"
    )


def write_results(tuner: Any, output: str) -> list[dict[str, Any]]:
    """`results.csv` and `results.md` in `output`: scored trials best first, then the others.

    A trial that failed or reported no finite objective is listed last, with
    its status and no rank or score (nothing lost, nothing ranked that was
    not scored).
    """
    objective = tuner.oracle.objective
    trials = list(tuner.oracle.trials.values())
    ranked = sorted(
        (t for t in trials if scored(t)), key=lambda t: float(t.score), reverse=objective.direction == "max"
    )
    others = [t for t in trials if not scored(t)]
    knobs = sorted({k for t in trials for k in t.hyperparameters.values})
    knobs = [k for k in knobs if not k.startswith("tuner/")]
    rows = [
        {
            "rank": i + 1,
            "trial": t.trial_id,
            objective.name: round(float(t.score), 5),
            "status": t.status,
            **{k: _short(t.hyperparameters.values.get(k)) for k in knobs},
        }
        for i, t in enumerate(ranked)
    ]
    rows += [
        {
            "rank": "",
            "trial": t.trial_id,
            objective.name: "",
            "status": _why_unscored(t, objective.name),
            **{k: _short(t.hyperparameters.values.get(k)) for k in knobs},
        }
        for t in others
    ]
    header = ["rank", "trial", objective.name, "status"] + knobs
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=header)
    writer.writeheader()
    writer.writerows(rows)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(row[h]).replace("|", "/") for h in header) + " |" for row in rows]
    write_atomically({"results.csv": table.getvalue(), "results.md": "\n".join(lines) + "\n"}, output)
    return rows


def write_atomically(files: dict[str, str], folder: str) -> None:
    """Each file whole or not at all: written beside its place, flushed, then renamed over the
    previous version (a sweep killed or out of disk space mid-write leaves the previous table)."""
    staged = []
    try:
        for name, text in files.items():
            handle, temporary = tempfile.mkstemp(prefix=f".{name}.", dir=folder)
            staged.append((temporary, os.path.join(folder, name)))
            with os.fdopen(handle, "w", newline="") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        for temporary, path in staged:
            os.replace(temporary, path)
    finally:
        for temporary, _ in staged:
            if os.path.exists(temporary):
                os.remove(temporary)


def check_before_search(config: dict[str, Any], hypermodel: Any) -> None:
    """What can be refused before the first trial: the objective, the pinned knobs (one model is
    built with them), the export's dependencies."""
    from keras_lsrec import tuning

    try:
        tuning.check_objective(hypermodel, config["objective"])
    except ValueError as error:
        raise SweepError(f"`objective`: {error}") from None
    try:
        hypermodel.check_knobs()
    except ValueError as error:
        raise SweepError(f"`fixed`: {error}") from None
    if config.get("engine") == "optuna":
        try:
            from keras_lsrec.tuning import optuna_engine  # noqa: F401
        except ImportError as error:
            raise SweepError(
                f"`--engine optuna` needs optuna and optuna-integration ({error}): "
                'pip install "keras-lsrec[tuning]"'
            ) from None
    if config["export"] and is_chief():
        from keras_lsrec import serving

        try:
            serving.require_serving("Exporting the best model (`export: true`)")
        except ImportError as error:
            raise SweepError(f"{error}; or set `export: false` in the config to skip the export.") from None


def use_mesh(mesh: str) -> None:
    """Every trial's model row-shards its tables over this process's devices
    (`keras_lsrec.distribution.model_parallel(mesh)`, jax)."""
    import keras

    import keras_lsrec

    try:
        distribution = keras_lsrec.distribution.model_parallel(mesh)
    except ValueError as error:
        raise SweepError(f"--mesh {mesh}: {error}") from error
    keras.distribution.set_distribution(distribution)
    shape = distribution.device_mesh.shape
    print(f"--mesh {mesh}: tables row-sharded over {shape[1]} of {math.prod(shape)} devices", flush=True)


def run(config: dict[str, Any], verbose: int = 1, mesh: str | None = None) -> list[dict[str, Any]] | None:
    import keras

    from keras_lsrec import tuning

    if mesh:
        use_mesh(mesh)
    keras.utils.set_random_seed(config["seed"])
    clustered = reads_clusters(config["model"])
    schema, train, validation = load_data(config["data"], config["model"])
    fixed = dict(config["fixed"])
    if "batch_size" in config:
        fixed["batch_size"] = config["batch_size"]
    try:
        hypermodel = tuning.hypermodel(config["model"], schema, **fixed)
    except ValueError as error:
        raise SweepError(f"`fixed`: {error}") from None
    check_before_search(config, hypermodel)
    keras.utils.set_random_seed(config["seed"])  # the trials start as if no model had been built
    if config["engine"] == "optuna":
        return run_optuna(config, hypermodel, train, validation, verbose, clustered)
    tuner = make_tuner(config, hypermodel)
    budget = (
        f"up to {config['epochs']} epochs a trial (hyperband: `trials` does not apply)"
        if config["tuner"] == "hyperband"
        else f"{config['trials']} trials of {config['epochs']} epochs"
    )
    print(
        f"sweep {config['output']}: {config['model']} with {config['tuner']} search, {budget}, "
        f"backend {keras.backend.backend()}"
        + (
            "; histories clustered (the model reads clusters: SyntheticData.clustered())" if clustered else ""
        ),
        flush=True,
    )
    tuner.search(
        train.x,
        train.y,
        validation_data=(validation.x, validation.y),
        epochs=config["epochs"],
        verbose=verbose,
    )
    if not is_chief():
        return None  # a worker: the chief writes the results
    return finish(config, tuner, tuner.load_model)


def finish(config: dict[str, Any], tuner: Any, load_model: Any, exported: Any = None) -> list[dict[str, Any]]:
    """The results table, the best trial and the export of its model, for either engine.

    `tuner` has keras-tuner's shape (`oracle.objective`, `oracle.trials`);
    `load_model(best)` returns the best trial's model; `exported(best)`, when
    given, says whether that trial's model was exported already (and the
    export is then skipped).
    """
    output = config["output"]
    os.makedirs(output, exist_ok=True)
    rows = write_results(tuner, output)
    with open(os.path.join(output, "results.md")) as f:
        print(f.read(), flush=True)
    best = best_trial(tuner)  # raises when no trial is scored: nothing exported
    unscored = [row for row in rows if row["rank"] == ""]
    if unscored:
        print(
            f"{len(unscored)} trial(s) failed, were pruned or reported no finite {config['objective']}: "
            "listed last in results.md, never ranked",
            flush=True,
        )
    print(f"best: trial {best.trial_id}, {config['objective']}={float(best.score):.5f}", flush=True)
    if not config["export"]:
        return rows
    if exported is not None and exported(best):
        print(f"best model already exported: {exported(best)}", flush=True)
        return rows
    from keras_lsrec import serving

    path = serving.export(load_model(best), os.path.join(output, "saved_models", config["model"]))
    print(f"best model exported to {path}", flush=True)
    if exported is not None:
        exported(best, path)
    return rows


STATUS = {
    "COMPLETE": "COMPLETED",
    "FAIL": "FAILED",
    "PRUNED": "PRUNED",
    "RUNNING": "RUNNING",
    "WAITING": "WAITING",
}


def optuna_trial_view(trial: Any, retried_as: dict[int, int]) -> SimpleNamespace:
    """An Optuna trial in the shape `write_results` / `best_trial` read (keras-tuner's `Trial`):
    `trial_id`, `status`, `score`, `hyperparameters.values` (searched and pinned knobs),
    `message` (why it is unscored), `metrics.metrics`."""
    status = STATUS.get(trial.state.name, trial.state.name)
    message = trial.user_attrs.get("error", "")
    if trial.state.name == "PRUNED" and trial.intermediate_values:
        step = max(trial.intermediate_values)
        message = f"after epoch {step + 1}: {trial.intermediate_values[step]:.5g}"
    if trial.number in retried_as:
        message = f"its worker died (no heartbeat); re-run as trial {retried_as[trial.number]}"
    values = {**trial.user_attrs.get("fixed", {}), **trial.params}
    return SimpleNamespace(
        trial_id=str(trial.number),
        status=status,
        score=trial.value if trial.state.name == "COMPLETE" else None,
        hyperparameters=SimpleNamespace(values=values),
        message=message,
        metrics=SimpleNamespace(metrics={}),
        number=trial.number,
    )


def run_optuna(
    config: dict[str, Any], hypermodel: Any, train: Any, validation: Any, verbose: int, clustered: bool
) -> list[dict[str, Any]]:
    """`--engine optuna`: this process's share of the study, then the results and the export.

    Every worker writes the results when no trial is left (the table is the
    same whoever writes it); the best model is exported once, by the first
    worker to get there (the study remembers which trial it exported).
    """
    import keras
    import keras_tuner
    import optuna

    from keras_lsrec.tuning import optuna_engine

    if verbose == 0:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    section = config["optuna"]
    output = config["output"]
    storage = section.get("storage", os.path.join(output, "journal.log"))
    tuner = optuna_engine.OptunaTuner(
        hypermodel,
        objective=config["objective"],
        max_trials=config["trials"],
        directory=output,
        storage=storage,
        study_name=section.get("study", os.path.basename(os.path.normpath(output))),
        sampler=config["tuner"],
        pruner=section.get("pruner", "median"),
        seed=config["seed"],
        heartbeat_interval=section.get("heartbeat", 60),
        max_retry=section.get("retries", 3),
    )
    where = "database" if "://" in storage else f"journal {storage}"
    print(
        f"sweep {output}: {config['model']} with optuna ({config['tuner']} sampler, "
        f"{section.get('pruner', 'median')} pruner, {where}), {config['trials']} trials of "
        f"{config['epochs']} epochs, backend {keras.backend.backend()}, worker {tuner.worker}"
        + (
            "; histories clustered (the model reads clusters: SyntheticData.clustered())" if clustered else ""
        ),
        flush=True,
    )
    tuner.search(
        train.x,
        train.y,
        validation_data=(validation.x, validation.y),
        epochs=config["epochs"],
        verbose=verbose,
    )
    trials = tuner.trials()
    retried_as = {
        t.system_attrs["retry_history"][-1]: t.number for t in trials if t.system_attrs.get("retry_history")
    }
    views = [optuna_trial_view(t, retried_as) for t in trials]
    by_number = {t.number: t for t in trials}
    objective = keras_tuner.Objective(config["objective"], tuner.direction)
    view = SimpleNamespace(
        oracle=SimpleNamespace(objective=objective, trials={v.trial_id: v for v in views}),
        hypermodel=hypermodel,
    )

    def exported(best: Any, path: str | None = None) -> Any:
        attrs = tuner.study.user_attrs
        if path is not None:
            tuner.study.set_user_attr("exported", {"trial": best.number, "path": path})
        elif attrs.get("exported", {}).get("trial") == best.number:
            return attrs["exported"]["path"]
        return None

    with tuner.lock():  # one worker at a time writes the table and exports
        return finish(config, view, lambda best: tuner.load_model(by_number[best.number]), exported)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", help="the sweep's YAML file")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch output")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        help="keras_tuner (default) or optuna: overrides the config's `engine` (docs/tuning.md)",
    )
    parser.add_argument(
        "--mesh",
        help="data,model: shard each trial's tables over this process's devices (jax, docs/distributed.md)",
    )
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if args.engine:
            config["engine"] = args.engine
        run(config, verbose=0 if args.quiet else 1, mesh=args.mesh)
    except SweepError as error:
        print(f"sweep: error: {error}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
