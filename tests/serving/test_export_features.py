"""Per-row and item features through the SavedModel, the warm-up records and the client (tensorflow)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_lsrec import serving
from keras_lsrec.data import Categorical, Dense
from keras_lsrec.models import DIN
from keras_lsrec.serving.testing import ModelServer

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="the export mechanism is tested on tensorflow here"
)
FEATURES = {"user_age": Categorical(10), "user_tags": Categorical(30, max_values=4), "context": Dense(5)}
ITEM_FEATURES = {"image": Dense(3), "topics": Categorical(12, max_values=2)}


def call(model, batch):
    return keras.ops.convert_to_numpy(model(batch, training=False))


def serve(loaded, signature, schema, batch):
    """The signature's probabilities: ids as int64, dense features as float32."""
    tensors = {k: tf.constant(v, "float32" if schema.is_dense(k) else "int64") for k, v in batch.items()}
    return loaded.signatures[signature](**tensors)["probability"].numpy()


def test_features_are_served_as_the_model_scores_them(data, tmp_path):
    schema = data.schema.replace(features=FEATURES, item_features=ITEM_FEATURES)
    model = DIN(schema, embedding_dim=4, attention_units=(8,), mlp_units=(8,))
    base = str(tmp_path / "din")
    path = serving.export(model, base)
    loaded = tf.saved_model.load(path)
    specs = loaded.signatures["serving_default"].structured_input_signature[1]
    assert specs["context"].dtype == tf.float32 and specs["user_tags"].shape.as_list() == [None, 4]
    assert specs["history_image"].dtype == tf.float32 and specs["history_topics"].shape.as_list() == [
        None,
        None,
        2,
    ]
    batch = schema.random_batch(9, seed=3)
    np.testing.assert_allclose(serve(loaded, "serving_default", schema, batch), call(model, batch), atol=1e-5)
    # A request: the features once, C candidates.
    request = model.request_form()
    rx = request.schema.random_batch(2, candidates=6, seed=4)
    np.testing.assert_allclose(serve(loaded, "serving_request", schema, rx), call(request, rx), atol=1e-5)
    # The server checks a dense feature's values.
    bad = dict(batch, context=np.full_like(batch["context"], np.nan))
    with pytest.raises(tf.errors.InvalidArgumentError, match="context"):
        serve(loaded, "serving_default", schema, bad)
    bad = dict(batch, history_topics=batch["history_topics"] + 12)
    with pytest.raises(tf.errors.InvalidArgumentError, match="history_topics"):
        serve(loaded, "serving_default", schema, bad)
    bad = dict(rx, target_image=rx["target_image"][:, :1])  # one candidate's vector for six
    with pytest.raises(tf.errors.InvalidArgumentError, match="target_image"):
        serve(loaded, "serving_request", schema, bad)
    # Through the TF Serving stand-in, over REST and gRPC.
    server = ModelServer(base).start()
    try:
        for target in (server.rest_url, server.grpc_target):
            client = serving.Client(target, "din", schema=schema, timeout=30)
            np.testing.assert_allclose(client.predict(batch), call(model, batch), atol=1e-5)
            np.testing.assert_allclose(client.predict(rx), call(request, rx), atol=1e-5)
            with pytest.raises(ValueError, match="user_age"):
                client.predict(dict(batch, user_age=batch["user_age"] + 10))
            # One user's request: its history, its candidates, its features.
            history = {k.removeprefix("history_"): v[1] for k, v in rx.items() if k.startswith("history_")}
            candidates = {k.removeprefix("target_"): v[1] for k, v in rx.items() if k.startswith("target_")}
            row = {name: rx[name][1] for name in FEATURES}
            np.testing.assert_allclose(
                client.score(history, candidates, row), call(request, rx)[1], atol=1e-5
            )
            client.close()
    finally:
        server.stop()


def test_hstu_actions_are_served_with_the_history(data, tmp_path):
    """`history_action` travels with the history: the batch and request signatures score as the
    model, the server refuses a bitmask outside the schema's kinds, `Client.score` takes it."""
    from keras_lsrec.models import HSTU

    schema = data.schema.replace(actions=3)
    model = HSTU(schema, embedding_dim=4, key_dim=4, mlp_units=(8,))
    base = str(tmp_path / "hstu")
    loaded = tf.saved_model.load(serving.export(model, base))
    batch = schema.random_batch(5, seed=1)
    np.testing.assert_allclose(serve(loaded, "serving_default", schema, batch), call(model, batch), atol=1e-5)
    request = model.request_form()
    rx = request.schema.random_batch(2, candidates=4, seed=2)
    assert "history_action" in rx and "target_action" not in rx
    np.testing.assert_allclose(serve(loaded, "serving_request", schema, rx), call(request, rx), atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="history_action"):
        serve(loaded, "serving_request", schema, dict(rx, history_action=rx["history_action"] + 8))
    server = ModelServer(base).start()
    try:
        client = serving.Client(server.rest_url, "hstu", schema=schema, timeout=30)
        history = {k.removeprefix("history_"): v[0] for k, v in rx.items() if k.startswith("history_")}
        candidates = {k.removeprefix("target_"): v[0] for k, v in rx.items() if k.startswith("target_")}
        np.testing.assert_allclose(client.score(history, candidates), call(request, rx)[0], atol=1e-5)
        with pytest.raises(ValueError, match="history_action"):
            client.score({**history, "action": history["action"] + 8}, candidates)
        client.close()
    finally:
        server.stop()
