"""tuning/sweep.py: a small sweep, resume without redoing trials, chief + 2 workers."""

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import yaml

pytest.importorskip("keras_tuner")

import keras  # noqa: E402

# The sweep script is orchestration (config, resume, results, chief/worker);
# the per-backend tuner test is tests/tuning/test_tuning.py. To keep CI short these
# run once, under the backend with the cheapest start-up.
pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "torch", reason="sweep orchestration is tested once, under torch"
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SWEEP = os.path.join(ROOT, "tuning", "sweep.py")
spec = importlib.util.spec_from_file_location("sweep", SWEEP)
assert spec is not None and spec.loader is not None
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)

# Where tensorflow-serving-api is missing the sweeps below skip the export (`export: false`);
# the refusal without it is tested on its own (test_missing_serving_api_is_refused_before_the_sweep).
SERVING = importlib.util.find_spec("tensorflow_serving") is not None


def config(tmp_path, **overrides):
    values = dict(
        model="twin",
        fixed={"mlp_units": [8], "embedding_dim": 4},
        data={
            "source": "synthetic",
            "num_users": 30,
            "examples_per_user": 4,
            "max_len": 80,
            "num_items": 40,
            "num_categories": 5,
            "seed": 1,
        },
        tuner="random",
        trials=2,
        epochs=1,
        batch_size=64,
        output=str(tmp_path / "sweep"),
        export=SERVING,
    )
    values.update(overrides)
    values = {key: value for key, value in values.items() if value is not None}  # None: key left out
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(values))
    return str(path)


def trial_states(output):
    states = {}
    for name in os.listdir(output):
        path = os.path.join(output, name, "trial.json")
        if name.startswith("trial_") and os.path.exists(path):
            states[name] = json.load(open(path))["status"]
    return states


def test_sweep_writes_the_table_exports_and_resumes(tmp_path):
    rows = sweep.run(sweep.load_config(config(tmp_path, trials=1)), verbose=0)
    output = str(tmp_path / "sweep")
    assert len(rows) == 1 and 0 <= rows[0]["val_auc"] <= 1
    first = json.load(open(os.path.join(output, "trial_0", "trial.json")))
    # Resume with a larger budget: the finished trial is kept, one more runs.
    rows = sweep.run(sweep.load_config(config(tmp_path, trials=2)), verbose=0)
    assert len(rows) == 2 and sorted(trial_states(output)) == ["trial_0", "trial_1"]
    assert json.load(open(os.path.join(output, "trial_0", "trial.json"))) == first
    header = open(os.path.join(output, "results.md")).readline()
    assert "val_auc" in header and "learning_rate" in header and "k" in header
    assert len(open(os.path.join(output, "results.csv")).read().strip().splitlines()) == 3
    pytest.importorskip("tensorflow_serving")
    assert os.path.isdir(os.path.join(output, "saved_models", "twin", "1"))


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(tuner="grid"), "tuner"),
        (dict(colour="red"), "colour"),
        (dict(data={"source": "s3"}), "data.source"),
    ],
)
def test_bad_config_is_rejected(overrides, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        cfg = sweep.load_config(config(tmp_path, **overrides))
        sweep.load_data(cfg["data"])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_distributed_chief_and_two_workers(tmp_path):
    path = config(tmp_path, trials=3)
    port = str(free_port())
    env = dict(
        os.environ, KERASTUNER_ORACLE_IP="127.0.0.1", KERASTUNER_ORACLE_PORT=port, TF_CPP_MIN_LOG_LEVEL="3"
    )
    procs = {}
    for tuner_id in ("chief", "tuner0", "tuner1"):
        procs[tuner_id] = subprocess.Popen(
            [sys.executable, SWEEP, path, "--quiet"],
            env={**env, "KERASTUNER_TUNER_ID": tuner_id},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    outputs = {}
    try:
        for tuner_id, proc in procs.items():
            outputs[tuner_id] = proc.communicate(timeout=600)[0]
    finally:
        for proc in procs.values():
            proc.kill()
    for tuner_id, proc in procs.items():
        assert proc.returncode == 0, (tuner_id, outputs[tuner_id][-2000:])
    output = str(tmp_path / "sweep")
    states = trial_states(output)
    assert len(states) == 3 and set(states.values()) == {"COMPLETED"}, states
    # One results table, written by the chief, listing every trial once.
    assert len(open(os.path.join(output, "results.csv")).read().strip().splitlines()) == 4


def test_objective_typo_fails_before_the_first_trial(tmp_path, capsys):
    start = time.perf_counter()
    assert sweep.main([config(tmp_path, objective="val_acu"), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "'val_acu'" in err and "['auc', 'loss', 'val_auc', 'val_loss']" in err and "'val_auc'?" in err
    assert not os.path.exists(tmp_path / "sweep")  # no trial ran, no project, nothing exported
    assert time.perf_counter() - start < 60
    with pytest.raises(sweep.SweepError, match="val_acu"):
        sweep.run(sweep.load_config(config(tmp_path, objective="val_acu")), verbose=0)


def test_no_scored_trial_exports_nothing_and_fails(tmp_path, capsys, monkeypatch):
    """The safety net behind the objective check: trials that never report the objective."""
    from keras_lsrec import tuning

    monkeypatch.setattr(tuning, "check_objective", lambda *args, **kwargs: None)
    assert sweep.main([config(tmp_path, objective="val_acu", export=True), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "No trial reported a finite objective 'val_acu'" in err and "nothing was exported" in err
    assert "['auc', 'loss', 'val_auc', 'val_loss']" in err  # what the trials did report
    output = tmp_path / "sweep"
    assert not os.path.exists(output / "saved_models")
    # Nothing lost: both trials are listed, unranked, with why they are unscored.
    lines = (output / "results.csv").read_text().strip().splitlines()
    assert len(lines) == 3 and all(line.startswith(",") and "FAILED" in line for line in lines[1:])


def fake_tuner(*trials, direction="max"):
    import keras_tuner

    oracle = SimpleNamespace(
        objective=keras_tuner.Objective("val_auc", direction), trials={t.trial_id: t for t in trials}
    )
    return SimpleNamespace(oracle=oracle, hypermodel=None)


def make_trial(trial_id, status, score=None, message=None):
    import keras_tuner
    from keras_tuner.engine.trial import Trial

    trial = Trial(keras_tuner.HyperParameters(), trial_id=trial_id, status=status, message=message)
    trial.score = score
    return trial


@pytest.mark.parametrize("direction", ["max", "min"])
def test_failed_or_unscored_trials_never_become_best(direction, tmp_path):
    failed = make_trial("0", "FAILED", message="Traceback ...\nRuntimeError: out of memory")
    diverged = make_trial("1", "COMPLETED", float("nan"))
    good, worse = make_trial("2", "COMPLETED", 0.7), make_trial("3", "COMPLETED", 0.6)
    tuner = fake_tuner(failed, diverged, good, worse, direction=direction)
    assert sweep.best_trial(tuner) is (good if direction == "max" else worse)
    rows = sweep.write_results(tuner, str(tmp_path))
    assert [row["trial"] for row in rows[:2]] == (["2", "3"] if direction == "max" else ["3", "2"])
    assert [(row["rank"], row["val_auc"]) for row in rows[2:]] == [("", ""), ("", "")]
    assert "RuntimeError: out of memory" in rows[2]["status"] and "nan" in rows[3]["status"]
    # Only the failed and the diverged trial: no best, and the message says why.
    with pytest.raises(sweep.SweepError, match=r"'val_auc'.*no metrics.*trial 0: FAILED: RuntimeError.*nan"):
        sweep.best_trial(fake_tuner(failed, diverged, direction=direction))


def test_a_config_file_that_cannot_be_read_is_one_line_naming_it(tmp_path):
    """Issue 32: a missing config, a directory or broken YAML ended in a traceback."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: din\n  data: [\n")
    cases = [
        (tmp_path / "none.yaml", "none.yaml: cannot read the config: No such file or directory"),
        (tmp_path, ": cannot read the config: Is a directory"),
        (broken, 'broken.yaml: not valid YAML: mapping values are not allowed here in "'),
    ]
    for path, message in cases:
        with pytest.raises(sweep.SweepError, match=re.escape(message)):
            sweep.load_config(str(path))


def test_results_are_replaced_whole_or_left_as_they_were(tmp_path, monkeypatch):
    """Issue 32: results.csv and results.md were rewritten in place; a sweep killed (or out of
    space) mid-write left a truncated table. Now each is staged and renamed over the old one."""
    first = fake_tuner(make_trial("0", "COMPLETED", 0.7))
    sweep.write_results(first, str(tmp_path))
    before = {name: (tmp_path / name).read_text() for name in ["results.csv", "results.md"]}
    replace = os.replace

    def full_disk(source, target):
        if str(target).endswith("results.md"):
            raise OSError(28, "No space left on device")
        replace(source, target)

    monkeypatch.setattr(os, "replace", full_disk)
    second = fake_tuner(make_trial("0", "COMPLETED", 0.7), make_trial("1", "COMPLETED", 0.8))
    with pytest.raises(OSError, match="No space left"):
        sweep.write_results(second, str(tmp_path))
    assert (tmp_path / "results.md").read_text() == before["results.md"]  # the previous table, whole
    assert sorted(os.listdir(tmp_path)) == ["results.csv", "results.md"]  # no staged file left
    monkeypatch.setattr(os, "replace", replace)
    sweep.write_results(second, str(tmp_path))
    assert len((tmp_path / "results.csv").read_text().splitlines()) == 3


def test_missing_serving_api_is_refused_before_the_sweep(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)  # as if not installed
    assert sweep.main([config(tmp_path, export=True), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "tensorflow-serving-api" in err and 'pip install "keras-lsrec[serving]"' in err
    assert "export: false" in err
    assert not os.path.exists(tmp_path / "sweep")
    # Without the export the same config passes the checks.
    cfg = sweep.load_config(config(tmp_path, export=False))
    from keras_lsrec import tuning

    sweep.check_before_search(cfg, tuning.hypermodel("twin", sweep.load_data(cfg["data"])[0]))


@pytest.mark.parametrize(
    "overrides, match",
    [
        (dict(trials=0), "trials"),
        (dict(epochs=-1), "epochs"),
        (dict(export="yes"), "export"),
        (dict(objective=""), "objective"),
    ],
)
def test_bad_values_are_rejected(overrides, match, tmp_path):
    with pytest.raises(sweep.SweepError, match=match):
        sweep.load_config(config(tmp_path, **overrides))


# --- the config is validated in full before the first trial ---------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(fixed={"batch_size": 0}, batch_size=None), "`batch_size` must be a positive integer"),
        (dict(batch_size=0), "`batch_size` must be a positive integer. Received: 0"),
        (dict(fixed={"learning_rate": "fast"}), "`learning_rate` must be a positive finite number"),
        (dict(fixed={"mlp_units": [0]}), "refused by TWIN: `mlp_units` must be"),
        (dict(fixed={"mlp_unit": [8]}), "Unknown knobs for 'twin': ['mlp_unit']"),
        (dict(fixed={"batch_size": 32}), "`batch_size` is given twice, 64 and `fixed.batch_size` 32"),
        (dict(model="twim"), "`model`: Unknown model 'twim'"),
        (dict(data={"source": "synthetic", "num_user": 30}), "`data`:"),
        (dict(seed=-1), "`seed` must be a non-negative integer"),
        (dict(fixed=[8]), "`fixed` must be a mapping"),
    ],
)
def test_a_bad_knob_fails_before_the_first_trial(overrides, message, tmp_path, capsys):
    assert sweep.main([config(tmp_path, **overrides), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sweep: error: ") and message in err and "Traceback" not in err, err
    assert not os.path.exists(tmp_path / "sweep")  # no trial ran


def test_a_learning_rate_yaml_reads_as_a_string_is_the_number(tmp_path):
    path = config(tmp_path, trials=1, export=False)
    text = open(path).read().replace("fixed:\n", "fixed:\n  learning_rate: 1e-3\n")
    open(path, "w").write(text)
    assert yaml.safe_load(text)["fixed"]["learning_rate"] == "1e-3"  # what YAML 1.1 makes of it
    rows = sweep.run(sweep.load_config(path), verbose=0)
    assert rows[0]["status"] == "COMPLETED" and rows[0]["learning_rate"] == 0.001
    assert "0.001" in open(tmp_path / "sweep" / "results.md").read()


def test_a_twinv2_sweep_trains_on_clustered_histories(tmp_path, capsys):
    cfg = sweep.load_config(config(tmp_path, model="twinv2", trials=1, export=False))
    schema, train, _ = sweep.load_data(cfg["data"], "twinv2")
    assert schema.cluster_sizes and "history_cluster_size" in train.x
    assert not sweep.load_data(cfg["data"], "twin")[0].cluster_sizes
    rows = sweep.run(cfg, verbose=0)
    assert rows[0]["status"] == "COMPLETED"
    assert "histories clustered" in capsys.readouterr().out
