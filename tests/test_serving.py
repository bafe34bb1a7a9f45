"""Serving: export from the current backend, SavedModel parity, GPU check, client over REST and gRPC."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from serving_server import ModelServer

from keras_lsrec import cli, serving
from keras_lsrec.data import synthetic
from keras_lsrec.models import DARE, DIN, SAM, TWIN

MODELS = {
    "din": (DIN, dict(embedding_dim=4, attention_units=(8,))),
    "twin": (TWIN, dict(embedding_dim=4, k=5)),
    "dare": (DARE, dict(attention_dim=2, representation_dim=4, k=5)),
    "sam": (SAM, dict(embedding_dim=4, num_passes=2, enhance_steps=1)),
}


@pytest.fixture(scope="module")
def data():
    return synthetic.generate(num_users=40, examples_per_user=4, max_len=80, num_items=60, num_categories=8, seed=5)


def trained(name, data):
    cls, kwargs = MODELS[name]
    keras.utils.set_random_seed(1)
    model = cls(data.schema, mlp_units=(8,), **kwargs)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(data.train.x, data.train.y, batch_size=64, epochs=1, verbose=0)
    return model


def served(path, batch, signature="serving_default"):
    loaded = tf.saved_model.load(path)
    function = loaded.signatures[signature]
    dtype = function.structured_input_signature[1]["history_item"].dtype
    return function(**{k: tf.constant(v, dtype) for k, v in batch.items()})["probability"].numpy()


def reference(model, batch):
    """The model's own output (no schema check, so longer histories are allowed)."""
    x = {k: keras.ops.convert_to_tensor(v.astype("int32")) for k, v in batch.items()}
    return keras.ops.convert_to_numpy(model(x, training=False))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_export_matches_the_model(name, data, tmp_path):
    model = trained(name, data)
    path = serving.export(model, str(tmp_path / name))
    assert path == str(tmp_path / name / "1")
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


@pytest.fixture(scope="module")
def exported(data, tmp_path_factory):
    root = tmp_path_factory.mktemp("saved_models")
    model = trained("dare", data)
    base = str(root / "dare")
    first = serving.export(model, base)
    # The second version goes through the command line, from the .keras file.
    model_file = str(root / "dare.keras")
    model.save(model_file)
    assert cli.main(["export", model_file, "--base-dir", base]) == 0
    return model, base, first, os.path.join(base, "2")


def test_versions_warmup_and_model_config(exported):
    model, base, first, second = exported
    assert (first, second) == (os.path.join(base, "1"), os.path.join(base, "2"))
    assert sorted(os.listdir(base)) == ["1", "2"]  # no staging directory left behind
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(tf.data.TFRecordDataset(os.path.join(second, "assets.extra", "tf_serving_warmup_requests")))
    assert len(records) == 2
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        assert request.model_spec.signature_name == "serving_default"
        assert set(request.inputs) == set(model.schema.input_shapes())
        batch = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        model.schema.validate(batch)  # the warm-up batches are valid requests
        assert np.all(np.isfinite(served(second, batch)))
    config = open(os.path.join(os.path.dirname(base), "models.config")).read()
    assert config.count('name: "dare"') == 1 and 'base_path: "/models/dare"' in config
    with pytest.raises(FileExistsError, match="Version 2"):
        serving.export(model, base, version=2)


def test_signature_and_gpu_check(exported):
    _, _, path, _ = exported
    report = serving.check(path)
    assert report.ok and "XlaCallModule" not in report.ops and "TopKV2" in report.ops
    loaded = tf.saved_model.load(path)
    specs = loaded.signatures["serving_default"].structured_input_signature[1]
    assert specs["history_item"].shape.as_list() == [None, None]
    assert specs["target_item"].shape.as_list() == [None] and specs["target_item"].dtype == tf.int64
    assert list(loaded.signatures["serving_default"].structured_outputs) == ["probability"]


def test_check_flags_cpu_pinned_and_cpu_only_ops(tmp_path):
    class Module(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec((None,), tf.float32)])
        def serve(self, x):
            with tf.device("/CPU:0"):
                y = x * 2.0
            label = tf.strings.format("{}", y)
            return {"y": y, "label": label}

    module = Module()
    path = str(tmp_path / "bad")
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve})
    report = serving.check(path, raise_on_error=False)
    assert any("pinned" in p for p in report.problems)
    assert any("StringFormat" in p for p in report.problems)
    with pytest.raises(serving.ServingCheckError, match="GPU"):
        serving.check(path)


def test_saved_model_cli_show_and_run(exported, data, tmp_path):
    _, _, path, _ = exported
    cli_path = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    show = subprocess.run(
        [cli_path, "show", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default"],
        capture_output=True, text=True, env=env, check=True,
    )
    for key in data.schema.input_shapes():
        assert f"inputs['{key}']" in show.stdout
    assert "outputs['probability']" in show.stdout
    batch = data.schema.random_batch(2, length=5, seed=7)
    for key, value in batch.items():
        np.save(tmp_path / f"{key}.npy", value)
    inputs = ";".join(f"{key}={tmp_path / key}.npy" for key in batch)
    run = subprocess.run(
        [cli_path, "run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
         "--inputs", inputs],
        capture_output=True, text=True, env=env, check=True,
    )
    assert "probability" in run.stdout


@pytest.fixture(scope="module")
def server(exported):
    _, base, _, _ = exported
    running = ModelServer(base).start()
    yield running
    running.stop()


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_client_round_trip(protocol, server, exported, data):
    model = exported[0]
    target = server.rest_url if protocol == "rest" else server.grpc_target
    client = serving.Client(target, "dare", schema=data.schema, timeout=30)
    x = {k: v[:20] for k, v in data.test.x.items()}
    np.testing.assert_allclose(client.predict(x), model.predict(x, verbose=0), atol=1e-5)
    client.close()
    padded = serving.Client(target, "dare", pad_to=2 * data.schema.max_len)
    np.testing.assert_allclose(padded.predict(x), model.predict(x, verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match="pad_to"):
        serving.Client(target, "dare", pad_to=3).predict(x)


def corrupt(x, key, value):
    return {**x, key: value}


BAD_REQUESTS = {
    "missing field": (lambda x: {k: v for k, v in x.items() if k != "history_category"}, "history_category"),
    "wrong dtype": (lambda x: corrupt(x, "target_item", x["target_item"].astype("float32")), "target_item"),
    "wrong rank": (lambda x: corrupt(x, "history_item", x["history_item"][:, :, None]), "history_item"),
    "id out of range": (lambda x: corrupt(x, "target_item", x["target_item"] + 1000), "target_item"),
}


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_requests_get_a_clear_error(case, protocol, server, data):
    mutate, field = BAD_REQUESTS[case]
    target = server.rest_url if protocol == "rest" else server.grpc_target
    x = {k: v[:4] for k, v in data.test.x.items()}
    bad = mutate(x)
    # The client refuses locally, naming the field ...
    with pytest.raises(ValueError, match=field):
        serving.Client(target, "dare", schema=data.schema).predict(bad)
    # ... and the server refuses what an unchecked client sends, then keeps serving.
    raw = serving.Client(target, "dare")
    if case in ("id out of range", "missing field"):
        with pytest.raises(serving.ServingError, match=field):
            raw.predict(bad)
    assert raw.predict(x).shape == (4,)
    raw.close()


def test_client_reports_unreachable_server_and_unknown_model(server, data):
    x = {k: v[:2] for k, v in data.test.x.items()}
    with pytest.raises(serving.ServingError, match="unreachable"):
        serving.Client("http://127.0.0.1:9", "dare", timeout=2).predict(x)
    with pytest.raises(serving.ServingError, match="404"):
        serving.Client(server.rest_url, "nope").predict(x)
    with pytest.raises(serving.ServingError, match="NOT_FOUND"):
        serving.Client(server.grpc_target, "nope").predict(x)
