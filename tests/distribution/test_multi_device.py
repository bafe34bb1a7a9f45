"""Training on several devices and processes equals training on one (jax, virtual CPU devices).

Every run is `examples/train_distributed.py`, the script docs/distributed.md
gives, scaled down, in a subprocess (XLA's device count is fixed at start):
4 virtual devices for `DataParallel` and a 2 x 2 `ModelParallel`, and two
processes of 2 devices each on 127.0.0.1. All start from the same weights
(`--init`), train DIN and DARE on the same global batches (256 rows, three
steps), and are compared with one device: losses and weights
within 1e-5. SGD at a small learning rate for the weight comparison: the
sums of a step are split differently over devices, and the 1e-8 rounding
differences this leaves grow with the step size (DIN's PReLU tower at
SGD 0.1: 1.3e-4 after three steps, under 4e-6 at 0.02), and more under Adam,
whose normalised step turns rounding in near-zero gradients into
learning-rate-sized differences. Adam's slots are checked to shard with
their tables, and its losses to agree.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="keras.distribution runs on the jax backend (Keras 3.15)"
)

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "examples" / "train_distributed.py"
# DIN (one table per field) and DARE (two per field, a top-k search): the sharding
# is per table, so the others' layers add compile time, not coverage.
MODELS = ["din", "dare"]
COMMON = ["--users", "40", "--max-len", "80", "--epochs", "3", "--table-min-rows", "0"]
COMMON += ["--models", ",".join(MODELS)]
SGD = ["--optimizer", "sgd", "--learning-rate", "0.02"]
ADAM = ["--optimizer", "adam", "--models", "din,dare", "--table-min-rows", "10000000"]  # dense Adam


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list[str], devices: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def finish(*procs: subprocess.Popen) -> None:
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out.decode()[-4000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Trains every configuration once; returns its output folder by name."""
    base = tmp_path_factory.mktemp("distributed")
    init = ["--init", str(base / "init")]
    plans = {
        "one": (["--distribution", "none", "--batch-size", "256", *SGD], 1),
        "data": (["--distribution", "data", "--batch-size", "256", *SGD], 4),
        "model": (["--distribution", "model", "--mesh", "2,2", "--batch-size", "256", *SGD], 4),
        "one_adam": (["--distribution", "none", "--batch-size", "256", *ADAM], 1),
        "model_adam": (["--distribution", "model", "--mesh", "2,2", "--batch-size", "256", *ADAM], 4),
    }
    for name, (args, devices) in plans.items():  # "one" first: it writes the initial weights
        finish(launch([*COMMON, *args, *init, "--out", str(base / name)], devices))
    # Two processes of 2 devices each, a 2 x 2 mesh across them, 128 rows per process.
    port = free_port()
    two = [*COMMON, "--distribution", "model", "--mesh", "2,2", "--batch-size", "128", *SGD, *init]
    two += ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--out", str(base / "two")]
    finish(*(launch([*two, "--process-id", str(i)], 2) for i in range(2)))
    return {name: base / name for name in [*plans, "two"]}


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def weights(folder: Path, model: str) -> list[np.ndarray]:
    loaded = keras.saving.load_model(folder / f"{model}.keras")
    return [keras.ops.convert_to_numpy(v) for v in loaded.weights]


@pytest.mark.parametrize("run", ["data", "model", "two"])
def test_training_equals_one_device(runs, run):
    one, other = results(runs["one"]), results(runs[run])
    assert other["devices"] == 4 and other["repeated"] == 0
    for model in MODELS:
        np.testing.assert_allclose(other[model]["loss"], one[model]["loss"], atol=1e-5, err_msg=model)
        for a, b in zip(weights(runs[run], model), weights(runs["one"], model), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5, err_msg=model)


def test_tables_and_adam_slots_are_row_sharded(runs):
    schema_rows = {"item": 501, "category": 41, "time": 81}  # 500 items, 40 categories, max_len 80
    for run, model in [("model", m) for m in MODELS] + [("model_adam", "dare")]:
        got = results(runs[run])[model]
        assert got["table_shards"], model
        for path, shape in got["table_shards"].items():
            field = path.split("/")[-2].removesuffix("_embedding")
            assert shape[0] == math.ceil(schema_rows[field] / 2), (path, shape)  # padded, then halved
    slots = results(runs["model_adam"])["dare"]["slot_shards"]
    assert len(slots) == 12  # 6 tables x (momentum, velocity)
    assert all(shape[0] in (251, 21, 41) for shape in slots.values()), slots
    for path, shape in results(runs["data"])["dare"]["table_shards"].items():  # DataParallel replicates
        assert shape[0] == schema_rows[path.split("/")[-2].removesuffix("_embedding")]
    np.testing.assert_allclose(
        results(runs["model_adam"])["dare"]["loss"], results(runs["one_adam"])["dare"]["loss"], atol=1e-5
    )


def test_a_sharded_file_reloads_on_one_device(runs):
    from keras_lsrec.data import synthetic

    data = synthetic.generate(num_users=40, max_len=80, seed=0)  # the script's data
    probe = {k: v[:8] for k, v in data.test.x.items()}
    for run in ["model", "model_adam"]:
        for model in results(runs[run]):
            if model in ("devices", "repeated"):
                continue
            loaded = keras.saving.load_model(runs[run] / f"{model}.keras")  # this process: one device
            table = loaded.get_layer("embedding")
            assert all(w.shape[0] in (501, 41, 81) for w in table.get_weights()), model  # no padding rows
            np.testing.assert_allclose(
                loaded.predict(probe, verbose=0).ravel(), results(runs[run])[model]["probe"], atol=1e-6
            )


def test_a_sweep_shards_every_trial_over_its_process_devices(tmp_path):
    """`tuning/sweep.py --mesh 2,2`: each trial's tables row-sharded over the worker's 4 devices."""
    import yaml

    config = {
        "model": "dare",
        "fixed": {"mlp_units": [8]},
        "data": {"source": "synthetic", "num_users": 30, "examples_per_user": 4, "max_len": 80, "seed": 1},
        "tuner": "random",
        "trials": 1,
        "epochs": 1,
        "batch_size": 64,
        "output": str(tmp_path / "sweep"),
        "export": False,
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    command = [sys.executable, str(ROOT / "tuning" / "sweep.py"), str(path), "--quiet", "--mesh", "2,2"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "best: trial" in done.stdout and (tmp_path / "sweep" / "results.csv").exists()
    assert "tables row-sharded over 2 of 4 devices" in done.stdout
    bad = subprocess.run(
        [*command[:-1], "3,3"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1 and "--mesh 3,3" in bad.stderr and "4, the number of devices" in bad.stderr
