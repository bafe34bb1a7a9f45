"""Optuna as a second sweep engine over the same HyperModels (needs the `tuning` extra).

keras-tuner stays the default engine. This one runs the same
`keras_lsrec.tuning.hypermodel(...)` search spaces through an Optuna study:

- the space is not written twice: `TrialHyperParameters` is a
  `keras_tuner.HyperParameters` whose every `Int` / `Float` / `Choice` /
  `Boolean` draw is answered by the Optuna trial's `suggest_*` (conditional
  and name scopes are keras-tuner's own, so an inactive knob is never
  suggested);
- the study lives in a journal file (many processes on one host, no server)
  or a database URL (many hosts); it is resumable, and a trial whose worker
  died (heartbeat stale) is failed and re-queued with the same knobs;
- trials are pruned on the objective after each epoch (never after the last
  one: stopping there saves nothing).

This module imports keras_tuner and optuna; `keras_lsrec.tuning` does not.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import keras
import keras_tuner
import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat  # the base RDBStorage uses; not re-exported
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from optuna_integration import KerasPruningCallback

HEARTBEAT_ATTR = "keras_lsrec:heartbeat"
PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("random", "bayesian", "hyperband")


# --- the search space: keras-tuner's declarations, Optuna's draws --------------------------------


def suggest(trial: optuna.trial.BaseTrial, hp: Any) -> Any:
    """The value the Optuna `trial` suggests for the keras-tuner hyper-parameter `hp`, one to one.

    | keras-tuner | Optuna |
    | --- | --- |
    | `Choice(values)` | `suggest_categorical(values)` |
    | `Boolean()` | `suggest_categorical([False, True])` |
    | `Int(lo, hi, step)`, linear | `suggest_int(lo, hi, step=step or 1)` |
    | `Int(lo, hi)`, log | `suggest_int(lo, hi, log=True)` |
    | `Float(lo, hi, step)`, linear | `suggest_float(lo, hi, step=step)` |
    | `Float(lo, hi)`, log | `suggest_float(lo, hi, log=True)` |
    | `Int` / `Float`, log with a step | `suggest_categorical(hp.values)` |

    (keras-tuner's log step multiplies: its grid is offered as the choices.)

    `Fixed` is not suggested (it is no search dimension). `reverse_log`
    sampling has no Optuna counterpart: `ValueError` naming the knob.
    """
    kind = type(hp).__name__
    name = hp.name
    if kind == "Choice":
        return trial.suggest_categorical(name, list(hp.values))
    if kind == "Boolean":
        return trial.suggest_categorical(name, [False, True])
    if kind in ("Int", "Float"):
        sampling = getattr(hp, "sampling", "linear") or "linear"
        if sampling == "reverse_log":
            raise ValueError(
                f"`{name}`: keras-tuner's `sampling='reverse_log'` has no Optuna counterpart; "
                "use 'linear' or 'log'"
            )
        if sampling == "log" and hp.step is not None:
            return trial.suggest_categorical(name, list(hp.values))
        log = sampling == "log"
        if kind == "Int":
            step = 1 if log else int(hp.step or 1)
            return trial.suggest_int(name, int(hp.min_value), int(hp.max_value), step=step, log=log)
        step_f = None if log or hp.step is None else float(hp.step)
        return trial.suggest_float(name, float(hp.min_value), float(hp.max_value), step=step_f, log=log)
    raise ValueError(f"`{name}`: no Optuna counterpart for keras-tuner's {kind}")


class TrialHyperParameters(keras_tuner.HyperParameters):
    """A `keras_tuner.HyperParameters` whose draws are an Optuna trial's suggestions.

    A HyperModel's `build(hp)` runs unchanged against it: each active
    `hp.Int` / `Float` / `Choice` / `Boolean` is registered as keras-tuner
    registers it (name scopes, conditional scopes) and takes the value
    `suggest(trial, hp)`; an inactive one (its `conditional_scope` not met)
    returns `None` and is never suggested, so the Optuna space is the
    keras-tuner space, conditions included. `Fixed` values are kept, not
    suggested (`fixed_values()`).

    Example:

    >>> study = optuna.create_study(direction="maximize")
    >>> trial = study.ask()
    >>> model = hypermodel("dare", schema).build(TrialHyperParameters(trial))
    >>> sorted(trial.params)  # every searched knob of DARE, drawn by Optuna
    """

    def __init__(self, trial: optuna.trial.BaseTrial) -> None:
        super().__init__()
        self.trial = trial

    def _register(self, hyperparameter: Any, overwrite: bool = False) -> Any:
        value = super()._register(hyperparameter, overwrite)
        if value is None or type(hyperparameter).__name__ == "Fixed":
            return value  # inactive (its condition not met), or pinned
        value = suggest(self.trial, hyperparameter)
        self.values[hyperparameter.name] = value
        return value

    def fixed_values(self) -> dict[str, Any]:
        """The active values that are not search dimensions (keras-tuner's `Fixed`)."""
        return {k: v for k, v in self.values.items() if k not in self.trial.params}


# --- storage: a journal file (one host) or a database (many hosts), with a heartbeat ----------------


class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
    """`optuna.storages.JournalStorage` with the heartbeat `RDBStorage` has.

    Optuna 5.1 implements the heartbeat (`BaseHeartbeat`: a thread records it
    while a trial runs; `fail_stale_trials` fails the RUNNING trials whose
    last one is older than `grace_period` and calls
    `heartbeat_stale_trial_callback`) for `RDBStorage` only. Here the
    heartbeat is a trial system attribute written to the journal every
    `heartbeat_interval` seconds (wall-clock time: one host, or hosts with
    synchronised clocks), so `study.optimize` runs the same machinery on a
    journal file: a worker killed mid-trial leaves a RUNNING trial that the
    next worker to ask for a trial fails and, with
    `RetryHeartbeatStaleTrialCallback`, re-queues with the same parameters.
    """

    def __init__(
        self,
        backend: Any,
        heartbeat_interval: int = 60,
        grace_period: int | None = None,
        heartbeat_stale_trial_callback: Any = None,
    ) -> None:
        if heartbeat_interval < 1:
            raise ValueError(f"`heartbeat_interval` must be >= 1. Received: {heartbeat_interval}")
        super().__init__(backend)
        self.heartbeat_interval = int(heartbeat_interval)
        self.grace_period = int(grace_period or 2 * heartbeat_interval)
        self.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # declared dead by another worker (see `OptunaTuner.search`)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            # A re-queued trial inherits the heartbeat of the one it retries: the start counts too.
            start = trial.datetime_start.timestamp() if trial.datetime_start else now
            last = max(float(trial.system_attrs.get(HEARTBEAT_ATTR, 0.0)), start)
            if now - last > self.grace_period:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> Any:
        return self.heartbeat_stale_trial_callback


def make_storage(
    storage: str, heartbeat_interval: int = 60, grace_period: int | None = None, max_retry: int | None = 3
) -> optuna.storages.BaseStorage:
    """An Optuna storage with heartbeat and re-queueing of a dead worker's trial.

    `storage` is a database URL (`"postgresql://..."`, `"mysql://..."`,
    `"sqlite:///..."`: anything with `://`, for many hosts) or the path of a
    journal file (many processes on one host; created with its folder).
    A RUNNING trial without a heartbeat for `grace_period` seconds (default
    twice `heartbeat_interval`) is failed and re-queued with the same
    parameters, at most `max_retry` times (`None`: always).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
    if "://" in storage:
        return RDBStorage(
            storage,
            heartbeat_interval=heartbeat_interval,
            grace_period=grace_period,
            heartbeat_stale_trial_callback=retry,
        )
    folder = os.path.dirname(os.path.abspath(storage))
    os.makedirs(folder, exist_ok=True)
    return HeartbeatJournalStorage(JournalFileBackend(storage), heartbeat_interval, grace_period, retry)


def make_sampler(name: str, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """`random` -> `RandomSampler`; `bayesian` and `hyperband` -> `TPESampler` (multivariate, and
    with the constant liar so that parallel workers do not all try the same region)."""
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name in ("bayesian", "hyperband"):
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    raise ValueError(f"`sampler` must be one of {SAMPLERS}. Received: {name!r}")


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """`median` (the default): a trial stops after an epoch whose objective is worse than the median
    of the earlier trials at that epoch, once 5 trials have finished (Optuna's `MedianPruner`
    defaults). Chosen because it needs no budget: it works for a handful of trials of a few
    epochs, where Hyperband's brackets are mostly empty. `hyperband`: `HyperbandPruner` (its
    maximum epochs taken from the first finished trial), for long sweeps of many epochs.
    `none`: every trial runs all its epochs."""
    if name == "median":
        return optuna.pruners.MedianPruner()
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource="auto")
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"`pruner` must be one of {PRUNERS}. Received: {name!r}")


class PruneBeforeLastEpoch(KerasPruningCallback):
    """optuna-integration's `KerasPruningCallback` (Keras 3, any backend), except that after the
    last epoch it only reports: stopping a trial that has finished training saves nothing, and
    would leave a fully trained trial unscored."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if epoch + 1 < int((self.params or {}).get("epochs") or 0):
            super().on_epoch_end(epoch, logs)
            return
        value = (logs or {}).get(self._monitor)
        if value is not None:
            self._trial.report(float(value), step=epoch)


# --- the tuner ----------------------------------------------------------------------------------------


class OptunaTuner:
    """Runs this process's share of an Optuna study over a keras-tuner HyperModel.

    Start the same code in N processes (one host: the journal file; many
    hosts: a database URL and a shared `directory`): each asks the study for
    trials until `max_trials` of them are used (complete, pruned, running,
    or failed and not re-queued), then waits for the other workers' running
    trials, re-running any whose worker died. Running it again resumes the
    study; a larger `max_trials` adds trials.

    Each trial builds `hypermodel.build(TrialHyperParameters(trial))`, fits
    it with `hypermodel.fit` and is scored with its best epoch's `objective`
    (as keras-tuner scores a trial); that epoch's model is saved to
    `trial_path(number)` (`<directory>/trial_<number>/model.keras`).

    Args:
        hypermodel: a `keras_tuner.HyperModel` (e.g. `keras_lsrec.tuning.hypermodel(...)`).
        objective: the metric to optimise, e.g. `"val_auc"`.
        direction: `"max"` or `"min"`; default `"min"` for a loss, else `"max"`.
        max_trials: the study's trial budget (all workers together).
        directory: where trials save their model; also the default journal's folder.
        storage: a journal path or a database URL (default `<directory>/journal.log`),
            or an `optuna.storages.BaseStorage`.
        study_name: the study's name in the storage (default: `directory`'s basename).
        sampler: `"random"`, `"bayesian"` (TPE), `"hyperband"` (TPE), or an Optuna sampler.
        pruner: `"median"`, `"hyperband"`, `"none"`, or an Optuna pruner.
        seed: the sampler's seed. The k-th worker to join the study (k = 0, 1, ...; counted in
            the study) seeds its sampler with `seed + 1_000_003 * k`, so that workers, and a
            resumed sweep, do not draw the same trials again; a study run by one process is
            reproducible. With a database storage the process id is mixed in as well (two hosts
            may join at the same moment).
        heartbeat_interval, grace_period, max_retry: see `make_storage`.
    """

    def __init__(
        self,
        hypermodel: Any,
        objective: str = "val_auc",
        direction: str | None = None,
        max_trials: int = 10,
        directory: str = "sweeps",
        storage: str | optuna.storages.BaseStorage | None = None,
        study_name: str | None = None,
        sampler: str | optuna.samplers.BaseSampler = "bayesian",
        pruner: str | optuna.pruners.BasePruner = "median",
        seed: int | None = None,
        heartbeat_interval: int = 60,
        grace_period: int | None = None,
        max_retry: int | None = 3,
    ) -> None:
        if direction is None:
            direction = "min" if "loss" in objective else "max"
        if direction not in ("max", "min"):
            raise ValueError(f"`direction` must be 'max' or 'min'. Received: {direction!r}")
        self.hypermodel = hypermodel
        self.objective = objective
        self.direction = direction
        self.max_trials = int(max_trials)
        self.directory = directory
        storage = os.path.join(directory, "journal.log") if storage is None else storage
        self.journal = storage if isinstance(storage, str) and "://" not in storage else None
        if isinstance(storage, str):
            storage = make_storage(storage, heartbeat_interval, grace_period, max_retry)
        self.storage = storage
        self.poll_seconds = float(min(5, max(1, heartbeat_interval)))
        if isinstance(pruner, str):
            pruner = make_pruner(pruner)
        self.study = optuna.create_study(
            storage=self.storage,
            study_name=study_name or os.path.basename(os.path.normpath(directory)),
            direction="maximize" if direction == "max" else "minimize",
            sampler=None if isinstance(sampler, str) else sampler,
            pruner=pruner,
            load_if_exists=True,
        )
        self.worker = f"{socket.gethostname()}:{os.getpid()}"
        self._lock_file: Any = None
        self._current: int | None = None
        self.worker_index = self._join()
        if isinstance(sampler, str):
            if seed is not None:
                seed = (int(seed) + 1_000_003 * self.worker_index) % 2**31
            self.study.sampler = make_sampler(sampler, seed)

    def _join(self) -> int:
        """This worker's number in the study: 0 for the first process ever to run it."""
        with self.lock():
            index = int(self.study.user_attrs.get("workers_joined", 0))
            self.study.set_user_attr("workers_joined", index + 1)
        return index if self.journal is not None else index * 100_003 + os.getpid()

    # The budget: one lock file beside the journal makes "count, then take a trial" atomic on one
    # host; with a database (many hosts) two workers may both take the last trial of the budget.
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Excludes the other workers of this host (a lock file beside the journal); a no-op for
        a database storage."""
        if self.journal is None:
            yield
            return
        import fcntl

        with open(self.journal + ".workers.lock", "a") as f:
            self._lock_file = f
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                self._release()

    def _release(self) -> None:
        if self._lock_file is not None:
            import fcntl

            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file = None

    def trials(self) -> list[FrozenTrial]:
        return self.study.get_trials(deepcopy=False)

    def budget(self) -> tuple[int, int, int]:
        """`(used, waiting, running)`: trials that count against `max_trials` (any state but
        waiting, less the failed ones that were re-queued), those queued, those running."""
        trials = self.trials()
        retried = {t.system_attrs["retry_history"][-1] for t in trials if t.system_attrs.get("retry_history")}
        waiting = sum(t.state == TrialState.WAITING for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        used = sum(t.state != TrialState.WAITING and t.number not in retried for t in trials)
        return used, waiting, running

    def fail_stale_trials(self) -> None:
        """Fails the running trials whose worker stopped beating, re-queueing them (Optuna's
        `fail_stale_trials`, which `study.optimize` also calls before each trial)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)

    def search(self, *fit_args: Any, epochs: int = 1, verbose: int = 1, **fit_kwargs: Any) -> optuna.Study:
        """Runs trials until the study's budget is used and no trial is running anywhere.

        `fit_args` / `fit_kwargs` go to `hypermodel.fit` (hence `model.fit`):
        `x, y, validation_data=...`. Returns the study.
        """
        if verbose == 0:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
        waited = False
        while True:
            with self.lock():
                self.fail_stale_trials()
                used, waiting, running = self.budget()
                if waiting or used < self.max_trials:
                    # The lock is released as soon as the trial is taken (the objective's first line).
                    try:
                        self.study.optimize(
                            lambda trial: self._objective(trial, fit_args, fit_kwargs, epochs, verbose),
                            n_trials=1,
                            catch=(Exception,),
                            gc_after_trial=True,
                        )
                    except (ValueError, AssertionError, optuna.exceptions.UpdateFinishedTrialError):
                        # Telling a trial that another worker already failed raises (Optuna 5.1: a
                        # ValueError, turned into an AssertionError by its own clean-up). That
                        # happens when this worker was silent past the grace period (stalled, not
                        # dead): its trial was failed and re-queued, and this result is dropped.
                        if not self._declared_dead():
                            raise
                        print(
                            f"{self.worker}: trial {self._current} was declared dead by another worker "
                            "(no heartbeat within the grace period) and re-queued; its result is dropped",
                            flush=True,
                        )
                    continue
            if not running:
                return self.study
            if verbose and not waited:
                print(f"budget used: waiting for {running} trial(s) of other workers", flush=True)
                waited = True
            time.sleep(self.poll_seconds)  # other workers' last trials: re-run them if they die

    def _declared_dead(self) -> bool:
        """Whether this worker's last trial was finished by someone else (failed as stale)."""
        trials = {t.number: t for t in self.trials()}
        trial = trials.get(self._current) if self._current is not None else None
        return trial is not None and trial.state == TrialState.FAIL

    def trial_path(self, number: int) -> str:
        return os.path.join(self.directory, f"trial_{number}", "model.keras")

    def _objective(
        self,
        trial: optuna.Trial,
        fit_args: Sequence[Any],
        fit_kwargs: dict[str, Any],
        epochs: int,
        verbose: int,
    ) -> float:
        self._release()
        self._current = trial.number
        trial.set_user_attr("worker", self.worker)
        try:
            return self._run(trial, fit_args, fit_kwargs, epochs, verbose)
        except optuna.TrialPruned:
            raise
        except Exception as error:  # kept with the trial (Optuna only logs it): the results show it
            trial.set_user_attr("error", f"{type(error).__name__}: {error}".strip().splitlines()[-1][:300])
            raise

    def _run(
        self,
        trial: optuna.Trial,
        fit_args: Sequence[Any],
        fit_kwargs: dict[str, Any],
        epochs: int,
        verbose: int,
    ) -> float:
        keras.backend.clear_session()  # as keras-tuner does before each trial's build
        hp = TrialHyperParameters(trial)
        model = self.hypermodel.build(hp)
        fixed = hp.fixed_values()
        if fixed:
            trial.set_user_attr("fixed", fixed)
        path = self.trial_path(trial.number)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        callbacks = [
            *fit_kwargs.get("callbacks", []),
            keras.callbacks.ModelCheckpoint(
                path, monitor=self.objective, mode=self.direction, save_best_only=True, verbose=0
            ),
        ]
        if not isinstance(self.study.pruner, optuna.pruners.NopPruner):
            callbacks.append(PruneBeforeLastEpoch(trial, self.objective))
        kwargs = {**fit_kwargs, "callbacks": callbacks, "epochs": epochs, "verbose": verbose}
        history = self.hypermodel.fit(hp, model, *fit_args, **kwargs)
        values = (getattr(history, "history", None) or {}).get(self.objective)
        if not values:
            reported = sorted(getattr(history, "history", None) or {})
            raise KeyError(f"objective {self.objective!r} was not reported; the trial reported {reported}")
        finite = [float(v) for v in values if math.isfinite(float(v))]
        if not finite:
            trial.set_user_attr("error", f"{self.objective}={values[-1]}: no finite value")
            return float("nan")  # Optuna records the trial as failed
        return max(finite) if self.direction == "max" else min(finite)

    def best_trial(self) -> FrozenTrial | None:
        """The best complete trial with a finite value, or `None`."""
        scored = [
            t
            for t in self.trials()
            if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)
        ]
        if not scored:
            return None
        pick = max if self.direction == "max" else min
        return pick(scored, key=lambda t: float(t.value))  # type: ignore[arg-type]

    def load_model(self, trial: FrozenTrial) -> keras.Model:
        """The model of `trial`'s best epoch."""
        return keras.saving.load_model(self.trial_path(trial.number))
