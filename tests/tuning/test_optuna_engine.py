"""The Optuna engine: the keras-tuner spaces mapped one to one; once, under torch (backend-independent
loops): pruning and the best model, a 2-process sweep on one journal file, a worker killed mid-trial.

optuna and keras-tuner are imported, not skipped when absent: CI installs the `tuning` extra
(through `all`), and a missing one must fail there.
"""

import importlib.util
import os
import signal
import subprocess
import sys
import time

import keras
import keras_tuner
import optuna
import pytest
import yaml
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.pruners import BasePruner
from optuna.trial import TrialState
from test_case import only_under

from keras_lsrec import models, tuning
from keras_lsrec.data import synthetic
from keras_lsrec.tuning import optuna_engine

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SWEEP = os.path.join(ROOT, "tuning", "sweep.py")
spec = importlib.util.spec_from_file_location("optuna_sweep", SWEEP)
assert spec is not None and spec.loader is not None
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)

# Process orchestration (journal, heartbeat, re-queue, results) does not depend on the backend:
# tested once, under the backend with the cheapest start-up, as tests/tuning/test_sweep.py does.
orchestration = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="sweep orchestration is tested once, under torch"
)
SERVING = importlib.util.find_spec("tensorflow_serving") is not None
DATA = dict(num_users=30, examples_per_user=4, max_len=80, num_items=40, num_categories=5, seed=1)


@pytest.fixture(scope="module")
def data():
    return synthetic.generate(**DATA)


def schema_for(name, data):
    if "row" not in models.get(name).INPUT_FORMS:
        return synthetic.generate(**{**DATA, "num_users": 10, "candidates": 4}).schema
    return data.clustered(max_cluster_size=5).schema if models.get(name).READS_CLUSTERS else data.schema


# --- the space: keras-tuner's declarations, Optuna's draws, one to one ----------------------------


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="the mapping does not depend on the backend: checked once, where building is cheapest",
)
@pytest.mark.parametrize("name", models.names())
def test_every_registered_models_space_maps_one_to_one(name, data):
    hypermodel = tuning.hypermodel(name, schema_for(name, data), mlp_units=(8,))
    reference = keras_tuner.HyperParameters()  # what keras-tuner declares for this model
    hypermodel.build(reference)
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
    hp = optuna_engine.TrialHyperParameters(trial)
    model = hypermodel.build(hp)
    searched = {p.name: p for p in reference.space if type(p).__name__ != "Fixed"}
    assert set(trial.distributions) == set(searched) == set(tuning.search_space(name)) - {"mlp_units"}
    for knob, declared in searched.items():
        dist = trial.distributions[knob]
        kind = type(declared).__name__
        if kind == "Choice":
            assert isinstance(dist, CategoricalDistribution) and list(dist.choices) == list(declared.values)
        elif kind == "Boolean":
            assert isinstance(dist, CategoricalDistribution) and list(dist.choices) == [False, True]
        else:
            cls = IntDistribution if kind == "Int" else FloatDistribution
            assert isinstance(dist, cls), (knob, dist)
            assert (dist.low, dist.high) == (declared.min_value, declared.max_value)
            assert dist.log == (declared.sampling == "log")
    # The model was built with the trial's values; the pinned knob is kept, not searched.
    for knob, value in trial.params.items():
        if knob not in tuning.TRAINING_SPACE and isinstance(value, (int, bool)) and hasattr(model, knob):
            assert getattr(model, knob) == value, knob
    assert hp.fixed_values() == {"mlp_units": "8"} and model.mlp_units == [8]
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(
        trial.params["learning_rate"]
    )


def test_every_kind_and_conditional_scopes():
    def build(hp):
        hp.Int("units", 8, 64, step=8)
        hp.Int("layers", 1, 64, sampling="log")
        hp.Float("lr", 1e-4, 1e-1, sampling="log")
        hp.Float("dropout", 0.0, 0.5, step=0.1)
        hp.Float("grid", 1.0, 8.0, step=2.0, sampling="log")  # keras-tuner's multiplicative step
        hp.Boolean("bias")
        hp.Fixed("pinned", 3)
        with hp.name_scope("tower"):
            hp.Choice("act", ["relu", "gelu"])
        kind = hp.Choice("kind", ["mlp", "attention"])
        with hp.conditional_scope("kind", ["attention"]):
            heads = hp.Int("heads", 1, 4)
        assert (heads is None) == (kind == "mlp")  # inactive: None, as in keras-tuner
        return kind

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    kinds = set()
    for _ in range(12):
        trial = study.ask()
        hp = optuna_engine.TrialHyperParameters(trial)
        kinds.add(build(hp))
        d = trial.distributions
        assert d["units"] == IntDistribution(8, 64, step=8)
        assert d["layers"] == IntDistribution(1, 64, log=True)
        assert d["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
        assert d["dropout"] == FloatDistribution(0.0, 0.5, step=0.1)
        assert d["grid"] == CategoricalDistribution([1.0, 2.0, 4.0, 8.0])
        assert d["bias"] == CategoricalDistribution([False, True])
        assert d["tower/act"] == CategoricalDistribution(["relu", "gelu"])
        assert ("heads" in d) == (trial.params["kind"] == "attention")  # suggested only when active
        assert "pinned" not in d and hp.fixed_values() == {"pinned": 3}
        assert hp.get("units") == trial.params["units"]
        study.tell(trial, 0.0)
    assert kinds == {"mlp", "attention"}
    with pytest.raises(ValueError, match="reverse_log"):
        optuna_engine.TrialHyperParameters(study.ask()).Float("x", 0.1, 1.0, sampling="reverse_log")


# --- a study in this process: pruning, the best epoch's model (every backend) -----------------------


class PruneTrialOne(BasePruner):
    def prune(self, study, trial):
        return trial.number == 1


@only_under(
    "torch",
    why="the tuner's loop and its `.keras` reload are backend-independent; "
    "the hypermodels build and train on every backend in test_tuning.py",
)
def test_pruning_per_epoch_and_the_best_model(data, tmp_path):
    hypermodel = tuning.hypermodel("din", data.schema, mlp_units=(8,), embedding_dim=4, batch_size=64)
    tuner = optuna_engine.OptunaTuner(
        hypermodel, "val_auc", max_trials=2, directory=str(tmp_path), sampler="random", seed=0,
        pruner=PruneTrialOne(),
    )  # fmt: skip
    tuner.search(
        data.train.x,
        data.train.y,
        validation_data=(data.validation.x, data.validation.y),
        epochs=2,
        verbose=0,
    )
    complete, pruned = tuner.trials()
    # Never pruned after the last epoch (it only reports); pruned after the first otherwise.
    assert complete.state == TrialState.COMPLETE and sorted(complete.intermediate_values) == [0, 1]
    assert pruned.state == TrialState.PRUNED and sorted(pruned.intermediate_values) == [0]
    assert complete.value == max(complete.intermediate_values.values())  # the best epoch, as keras-tuner
    assert tuner.best_trial().number == 0
    best = tuner.load_model(complete)
    assert isinstance(best, models.DIN)
    assert best.predict(data.test.x, verbose=0).shape == data.test.y.shape
    # Resumed: the budget is used, nothing runs again.
    again = optuna_engine.OptunaTuner(hypermodel, "val_auc", max_trials=2, directory=str(tmp_path))
    again.search(data.train.x, data.train.y, validation_data=(data.validation.x, data.validation.y))
    assert len(again.trials()) == 2


# --- orchestration (torch only) -------------------------------------------------------------------


@orchestration
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning", "ignore:Heartbeat of storage")
def test_a_stale_trial_is_failed_and_requeued_with_its_parameters(tmp_path):
    storage = optuna_engine.make_storage(str(tmp_path / "journal.log"), heartbeat_interval=1)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    trial.suggest_int("k", 1, 100)
    storage.record_heartbeat(trial._trial_id)
    optuna.storages.fail_stale_trials(study)
    assert study.trials[0].state == TrialState.RUNNING  # fresh heartbeat: alive
    time.sleep(2.2)  # grace period: twice the interval
    optuna.storages.fail_stale_trials(study)
    failed, queued = study.trials
    assert failed.state == TrialState.FAIL and queued.state == TrialState.WAITING
    assert queued.params == failed.params and queued.system_attrs["retry_history"] == [0]


class DeclaredDead(keras_tuner.HyperModel):
    """Its trial is failed by "another worker" while it trains (as when this one stalls)."""

    storage = None

    def build(self, hp):
        hp.Int("k", 1, 3)

    def fit(self, hp, model, *args, **kwargs):
        self.storage.set_trial_state_values(hp.trial._trial_id, TrialState.FAIL)
        return keras.callbacks.History()


@orchestration
def test_a_stalled_worker_whose_trial_was_failed_goes_on(tmp_path, capsys):
    hypermodel = DeclaredDead()
    tuner = optuna_engine.OptunaTuner(hypermodel, max_trials=1, directory=str(tmp_path))
    hypermodel.storage = tuner.storage
    tuner.search(epochs=1, verbose=0)  # Optuna raises when it tells a failed trial: not here
    assert [t.state for t in tuner.trials()] == [TrialState.FAIL]
    assert "trial 0 was declared dead by another worker" in capsys.readouterr().out


def config(tmp_path, **overrides):
    values = dict(
        model="twin",
        fixed={"mlp_units": [8], "embedding_dim": 4},
        data={"source": "synthetic", **DATA},
        tuner="random",
        trials=3,
        epochs=1,
        batch_size=64,
        output=str(tmp_path / "sweep"),
        export=False,
        engine="optuna",
        optuna={"heartbeat": 5},  # a live worker is never silent for 10 s, even on a loaded CI machine
    )
    values.update(overrides)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def load_study(tmp_path):
    journal = optuna.storages.journal.JournalFileBackend(str(tmp_path / "sweep" / "journal.log"))
    return optuna.load_study(study_name="sweep", storage=optuna.storages.JournalStorage(journal))


def start(args, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(
        [sys.executable, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


@orchestration
def test_two_processes_share_one_journal_file(tmp_path):
    path = config(tmp_path)
    procs = [start([SWEEP, path, "--quiet"]) for _ in range(2)]
    try:
        outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    for proc, output in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, output[-3000:]
    trials = load_study(tmp_path).trials
    # The budget ran exactly once, whoever ran each trial; both processes wrote the same table.
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3, trials
    assert {t.user_attrs["worker"].split(":")[1] for t in trials} <= {str(p.pid) for p in procs}
    lines = (tmp_path / "sweep" / "results.csv").read_text().strip().splitlines()
    assert len(lines) == 4 and all(",COMPLETED," in line for line in lines[1:])
    assert all("best: trial" in output for output in outputs)


HANG = """
import sys, time
import keras
from keras_lsrec.tuning import sequence_hyper_model

class Hang(keras.callbacks.Callback):  # mid-trial: the first epoch reported, the second not begun
    def on_epoch_end(self, epoch, logs=None):
        open({marker!r}, "w").close()
        time.sleep(600)

fit = sequence_hyper_model.SequenceHyperModel.fit
def hanging_fit(self, hp, model, *args, **kwargs):
    kwargs["callbacks"] = [*kwargs.get("callbacks", []), Hang()]
    return fit(self, hp, model, *args, **kwargs)
sequence_hyper_model.SequenceHyperModel.fit = hanging_fit

import importlib.util
spec = importlib.util.spec_from_file_location("sweep", {sweep!r})
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)
sys.exit(sweep.main([{config!r}, "--quiet"]))
"""


@orchestration
def test_a_worker_killed_mid_trial_is_rerun_and_the_best_model_exported(tmp_path):
    path = config(tmp_path, trials=1, epochs=2, export=SERVING, optuna={"heartbeat": 2})
    marker = tmp_path / "hanging"
    script = tmp_path / "hanging_worker.py"
    script.write_text(HANG.format(marker=str(marker), sweep=SWEEP, config=path))
    proc = start([str(script)])
    try:
        deadline = time.time() + 300
        while not marker.exists():
            assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-3000:]
            time.sleep(0.2)
        killed = load_study(tmp_path).trials
        assert [t.state for t in killed] == [TrialState.RUNNING] and killed[0].intermediate_values
        os.kill(proc.pid, signal.SIGKILL)  # mid-trial: no clean-up, no tell; its heartbeat stops
        proc.wait(timeout=60)
    finally:
        proc.kill()
    # A second worker, started the same way: it waits for the stale trial, fails it, re-runs it.
    rows = sweep.run(sweep.load_config(path), verbose=0)
    failed, rerun = load_study(tmp_path).trials
    assert failed.state == TrialState.FAIL and rerun.state == TrialState.COMPLETE
    assert rerun.params == failed.params and rerun.system_attrs["retry_history"] == [0]
    assert [(row["rank"], row["trial"]) for row in rows] == [(1, "1"), ("", "0")]
    assert "re-run as trial 1" in rows[1]["status"]
    if SERVING:
        assert os.path.isdir(tmp_path / "sweep" / "saved_models" / "twin" / "1")
        # Finished and exported: running the command again exports nothing more.
        sweep.run(sweep.load_config(path), verbose=0)
        assert not os.path.exists(tmp_path / "sweep" / "saved_models" / "twin" / "2")


@orchestration
@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(engine="ray"), "`engine` must be one of"),
        (dict(optuna={"pruner": "asha"}), "`optuna.pruner` must be one of"),
        (dict(optuna={"heartbeat": 0}), "`optuna.heartbeat` must be a positive integer"),
        (dict(optuna={"retries": -1}), "`optuna.retries` must be a non-negative integer"),
        (dict(optuna={"storage": ""}), "`optuna.storage` must be a non-empty string"),
        (dict(optuna={"journal": "x"}), "unknown keys ['journal'] in `optuna`"),
        (dict(optuna=[1]), "`optuna` must be a mapping"),
    ],
)
def test_bad_optuna_config_is_refused(overrides, match, tmp_path):
    with pytest.raises(sweep.SweepError) as info:
        sweep.load_config(config(tmp_path, **overrides))
    assert match in str(info.value)


@orchestration
def test_the_same_checks_before_the_first_trial(tmp_path, capsys):
    """The engine changes nothing of what is refused before a trial runs (objective, knobs)."""
    assert (
        sweep.main([config(tmp_path, engine="keras_tuner", objective="val_acu"), "--engine", "optuna"]) == 1
    )
    assert "Did you mean 'val_auc'?" in capsys.readouterr().err
    assert sweep.main([config(tmp_path, fixed={"mlp_units": [0]}), "--quiet"]) == 1
    assert "refused by TWIN" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "sweep")  # no study, no journal
