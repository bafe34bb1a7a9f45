"""keras_lsrec.serving.export: SavedModel parity from the current backend, versions, warm-up, model config."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lsrec import serving


def served(path, batch, signature="serving_default"):
    loaded = tf.saved_model.load(path)
    function = loaded.signatures[signature]
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
