"""keras_lsrec.serving.export: SavedModel parity from the current backend, versions, warm-up, model config."""

import functools
import importlib
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lsrec import serving

# The module (`serving.export` is the function).
export_module = importlib.import_module("keras_lsrec.serving.export")


@functools.lru_cache(maxsize=2)
def load(path):
    """A SavedModel loaded once per path (each test exports to its own directory): the object
    is kept, as it owns the variables its signatures read."""
    return tf.saved_model.load(path)


def served(path, batch, signature="serving_default"):
    function = load(path).signatures[signature]
    dtype = function.structured_input_signature[1]["history_item"].dtype
    return function(**{k: tf.constant(v, dtype) for k, v in batch.items()})["probability"].numpy()


def reference(model, batch):
    """The model's own output (no schema check, so longer histories are allowed)."""
    x = {k: keras.ops.convert_to_tensor(v.astype("int32")) for k, v in batch.items()}
    return keras.ops.convert_to_numpy(model(x, training=False))


def test_export_matches_the_model(model_name, train, data, tmp_path):
    model = train(model_name)
    path = serving.export(model, str(tmp_path / model_name))
    assert path == str(tmp_path / model_name / "1")
    schema = data.schema
    cases = {
        "batch of 1": schema.random_batch(1, seed=1),
        "batch of 512": schema.random_batch(512, seed=2),
        "shorter history": schema.random_batch(16, length=7, seed=3),
        "longer history": schema.random_batch(16, length=3 * schema.max_len, seed=4),
    }
    for case, batch in cases.items():
        np.testing.assert_allclose(served(path, batch), reference(model, batch), atol=1e-5, err_msg=case)
    batch = cases["batch of 1"]
    np.testing.assert_allclose(served(path, batch, "serving_int32"), reference(model, batch), atol=1e-5)
    # The exporter's own model.predict path agrees too (validated input).
    x = {k: v[:32] for k, v in data.test.x.items()}
    np.testing.assert_allclose(served(path, x), model.predict(x, verbose=0), atol=1e-5)
    # The request signature: one user's history and a candidate set, equal to the request form.
    request = model.request_form()
    for rows, candidates in [(1, 100), (3, 7)]:
        batch = request.schema.random_batch(rows, candidates=candidates, seed=rows)
        batch["target_item"][:, -2:] = 0  # missing candidates
        batch["target_category"][:, -2:] = 0
        got = served(path, batch, "serving_request")
        assert got.shape == (rows, candidates) and np.all(got[:, -2:] == 0)
        np.testing.assert_allclose(got, reference(request, batch), atol=1e-5)


def test_versions_warmup_and_model_config(exported):
    model, base, first, second = exported
    assert (first, second) == (os.path.join(base, "1"), os.path.join(base, "2"))
    assert sorted(os.listdir(base)) == ["1", "2"]  # no staging directory left behind
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(
        tf.data.TFRecordDataset(os.path.join(second, "assets.extra", "tf_serving_warmup_requests"))
    )
    assert len(records) == 4
    signatures = []
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        signature = request.model_spec.signature_name
        signatures.append(signature)
        schema = model.schema if signature == "serving_default" else model.request_form().schema
        assert set(request.inputs) == set(schema.input_shapes())
        batch = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        schema.validate(batch)  # the warm-up batches are valid requests
        assert np.all(np.isfinite(served(second, batch, signature)))
    assert signatures == ["serving_default"] * 2 + ["serving_request"] * 2
    config = open(os.path.join(os.path.dirname(base), "models.config")).read()
    assert config.count('name: "dare"') == 1 and 'base_path: "/models/dare"' in config
    with pytest.raises(FileExistsError, match="Version 2"):
        serving.export(model, base, version=2)


def test_signature_takes_the_batch_format_by_name(exported):
    _, _, path, _ = exported
    loaded = tf.saved_model.load(path)
    specs = loaded.signatures["serving_default"].structured_input_signature[1]
    assert specs["history_item"].shape.as_list() == [None, None]
    assert specs["target_item"].shape.as_list() == [None] and specs["target_item"].dtype == tf.int64
    assert list(loaded.signatures["serving_default"].structured_outputs) == ["probability"]


def test_saved_model_cli_show_and_run(exported, data, tmp_path):
    _, _, path, _ = exported
    cli_path = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    show = subprocess.run(
        [cli_path, "show", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    for key in data.schema.input_shapes():
        assert f"inputs['{key}']" in show.stdout
    assert "outputs['probability']" in show.stdout
    batch = data.schema.random_batch(2, length=5, seed=7)
    for key, value in batch.items():
        np.save(tmp_path / f"{key}.npy", value)
    inputs = ";".join(f"{key}={tmp_path / key}.npy" for key in batch)
    run = subprocess.run(
        [
            cli_path,
            "run",
            "--dir",
            path,
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            inputs,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert "probability" in run.stdout


# --- a publication that cannot complete leaves the previous state ----------------------------------


def visible_versions(base):
    return sorted(d for d in os.listdir(base) if d.isdigit()) if os.path.isdir(base) else []


def test_a_corrupt_models_config_is_refused_before_anything_is_written(train, tmp_path):
    config = tmp_path / "models.config"
    config.write_text("model_config_list { config { name: 'x' base_path: '/models/x' ")  # cut short
    before = config.read_text()
    with pytest.raises(ValueError, match=r"models\.config is not a valid TF Serving model config") as info:
        serving.export(train("din"), str(tmp_path / "din"))
    assert str(config) in str(info.value)
    assert not os.path.exists(tmp_path / "din")  # no version, no staging, no empty model folder
    assert config.read_text() == before


def test_a_models_config_that_cannot_be_replaced_leaves_no_version_visible(train, tmp_path, monkeypatch):
    base = tmp_path / "din"
    first = serving.export(train("din"), str(base))
    config = tmp_path / "models.config"
    before = config.read_text()

    real_replace = os.replace

    def replace(source, destination):
        if os.path.basename(destination) == "models.config":
            raise PermissionError(13, "Permission denied", destination)
        return real_replace(source, destination)

    # A second model, so that models.config must change; its write fails.
    monkeypatch.setattr(export_module.os, "replace", replace)
    with pytest.raises(PermissionError):
        serving.export(train("din"), str(tmp_path / "din2"))
    assert not os.path.exists(tmp_path / "din2")
    assert config.read_text() == before and visible_versions(base) == ["1"] and os.path.isdir(first)
    assert sorted(os.listdir(tmp_path)) == ["din", "models.config"]  # no staged config left


def test_a_version_that_cannot_be_renamed_into_place_restores_models_config(train, tmp_path, monkeypatch):
    real_rename = os.rename

    def rename(source, destination):
        if os.path.basename(destination).isdigit():  # the version's rename into place
            raise OSError(30, "Read-only file system", destination)
        return real_rename(source, destination)

    monkeypatch.setattr(export_module.os, "rename", rename)
    with pytest.raises(OSError, match="Read-only"):
        serving.export(train("din"), str(tmp_path / "din"))
    assert os.listdir(tmp_path) == []  # models.config put back (here: none), no model folder


def test_a_directory_that_is_not_writable_is_refused_before_the_export(train, tmp_path, monkeypatch):
    # As root, chmod does not stop writes: what `os.access` reports is what export checks first.
    (tmp_path / "din").mkdir()
    read_only = {str(tmp_path), str(tmp_path / "din")}
    access = os.access
    monkeypatch.setattr(
        export_module.os, "access", lambda path, mode: str(path) not in read_only and access(path, mode)
    )
    with pytest.raises(PermissionError, match=f"Cannot write in {tmp_path}"):
        serving.export(train("din"), str(tmp_path / "din"))
    read_only = {str(tmp_path / "din")}
    with pytest.raises(PermissionError, match="Cannot write in .*din .the version is written there"):
        serving.export(train("din"), str(tmp_path / "din"))
    assert os.listdir(tmp_path / "din") == []


# --- a .keras file that is not one says so, naming it ----------------------------------------------


@pytest.mark.parametrize(
    "content, problem",
    [
        ("truncated", "not a zip archive"),
        ("garbage", "not a zip archive"),
        ("no weights", "the archive has no model.weights.h5"),
    ],
)
def test_export_of_a_broken_keras_file_names_it_and_what_is_wrong(content, problem, train, tmp_path):
    import zipfile

    good = tmp_path / "good.keras"
    train("din").save(str(good))
    path = tmp_path / "din.keras"
    if content == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif content == "garbage":
        path.write_bytes(b"\x00garbage" * 100)
    else:
        with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
            for name in src.namelist():
                if not name.endswith(".h5"):
                    dst.writestr(name, src.read(name))
    with pytest.raises(ValueError, match=problem) as info:
        serving.export(str(path), str(tmp_path / "saved_models" / "din"))
    assert f"{path} is not a valid .keras file" in str(info.value)
    assert "File not found" not in str(info.value)
    assert not os.path.exists(tmp_path / "saved_models")


def test_export_refuses_a_directory_or_another_file_as_the_model(tmp_path):
    script = tmp_path / "model.py"
    script.write_text("print('not a model')\n")
    with pytest.raises(IsADirectoryError, match="is a directory, not a .keras file"):
        serving.export(str(tmp_path), str(tmp_path / "saved_models" / "x"))
    with pytest.raises(ValueError, match=r"model\.py is not a \.keras file"):
        serving.export(str(script), str(tmp_path / "saved_models" / "x"))
    with pytest.raises(FileNotFoundError, match="missing.keras: no such file"):
        serving.export(str(tmp_path / "missing.keras"), str(tmp_path / "saved_models" / "x"))
    assert not os.path.exists(tmp_path / "saved_models")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"version": True}, "`version` must be a positive integer. Received: `version=True`"),
        ({"version": 2.0}, "`version` must be a positive integer. Received: `version=2.0`"),
        ({"version": 0}, "`version` must be a positive integer. Received: `version=0`"),
        ({"check_gpu": "no"}, "`check_gpu` must be True or False. Received: `check_gpu='no'`"),
        ({"serving_root": ""}, "`serving_root` must be the path where the models are mounted"),
    ],
)
def test_export_arguments_are_refused_before_anything_is_read_or_written(kwargs, message, tmp_path):
    """Issue 32: `check_gpu="no"` ran the check, `version=np.int64(3)` was refused and a
    `pathlib.Path` model was "not a keras_lsrec model"; now one rule for every argument."""
    import re

    with pytest.raises(ValueError, match=re.escape(message)):
        serving.export(tmp_path / "missing.keras", str(tmp_path / "saved_models" / "x"), **kwargs)
    with pytest.raises(FileNotFoundError, match="missing.keras: no such file"):  # a Path is a path
        serving.export(tmp_path / "missing.keras", str(tmp_path / "saved_models" / "x"), version=np.int64(3))
    assert not os.path.exists(tmp_path / "saved_models")


def test_a_keras_file_keras_cannot_load_is_one_line_naming_it(train, tmp_path):
    import json
    import zipfile

    good = tmp_path / "good.keras"
    train("din").save(str(good))
    path = tmp_path / "din.keras"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w") as dst:
        for name in src.namelist():
            content = src.read(name)
            if name == "config.json":
                config = json.loads(content)
                config["class_name"], config["registered_name"] = "NoSuchModel", "keras_lsrec>NoSuchModel"
                content = json.dumps(config).encode()
            dst.writestr(name, content)
    with pytest.raises(ValueError, match=f"Keras cannot load {path}: ") as info:
        serving.export(str(path), str(tmp_path / "saved_models" / "din"))
    assert "\n" not in str(info.value) and "NoSuchModel" in str(info.value)
    assert not os.path.exists(tmp_path / "saved_models")
