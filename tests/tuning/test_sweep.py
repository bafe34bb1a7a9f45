"""tuning/sweep.py: a small sweep, resume without redoing trials, chief + 2 workers."""

import importlib.util
import json
import os
import socket
import subprocess
import sys

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
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)


def config(tmp_path, **overrides):
    values = dict(
        model="twin",
        fixed={"mlp_units": [8], "embedding_dim": 4},
        data={"source": "synthetic", "num_users": 30, "examples_per_user": 4, "max_len": 80, "num_items": 40,
              "num_categories": 5, "seed": 1},
        tuner="random",
        trials=2,
        epochs=1,
        batch_size=64,
        output=str(tmp_path / "sweep"),
    )
    values.update(overrides)
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
