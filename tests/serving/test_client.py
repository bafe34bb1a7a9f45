"""keras_lsrec.serving.Client over REST and gRPC, against the TF Serving stand-in of serving.testing."""

import keras
import numpy as np
import pytest

from keras_lsrec import serving
from keras_lsrec.serving.testing import ModelServer


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


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_client_scores_a_request_with_the_history_sent_once(protocol, server, exported, data):
    model = exported[0]
    request = model.request_form()
    target = server.rest_url if protocol == "rest" else server.grpc_target
    client = serving.Client(target, "dare", schema=data.schema, timeout=30)
    user = {k: v[:1] for k, v in data.test.x.items()}
    history = {k[len("history_") :]: v[0] for k, v in user.items() if k.startswith("history_")}
    candidates = {"item": np.arange(1, 31), "category": (np.arange(30) % 8) + 1}
    scores = client.score(history, candidates)
    batch = {f"history_{f}": v[None] for f, v in history.items()}
    batch.update({f"target_{f}": v[None] for f, v in candidates.items()})
    assert scores.shape == (30,)
    np.testing.assert_allclose(scores, request.predict(batch, verbose=0)[0], atol=1e-5)
    # A candidate-set batch goes to the request signature; missing candidates score 0.
    sets = request.schema.random_batch(3, candidates=5, seed=2)
    sets["target_item"][:, -1] = sets["target_category"][:, -1] = 0
    got = client.predict(sets)
    assert got.shape == (3, 5) and np.all(got[:, -1] == 0)
    np.testing.assert_allclose(got, request.predict(sets, verbose=0), atol=1e-5)
    with pytest.raises(ValueError, match="history\\['item'\\].*1-D"):
        client.score({"item": np.ones((2, 3), "int64")}, candidates)
    with pytest.raises(ValueError, match="target_(item|category).*rank"):
        client.predict({**sets, "target_item": sets["target_item"][:, 0]})  # rows and sets mixed
    client.close()


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


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="backend-independent")
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"target": 8501},
            "(REST) or 'host:port' (gRPC). Received: `target=8501`",
        ),
        ({"model_name": ""}, "`model_name` must be a TF Serving name"),
        ({"model_name": "my model"}, "Received: `model_name='my model'`"),
        ({"version": 0}, "`version` must be None or a positive integer. Received: `version=0`"),
        ({"version": True}, "`version` must be None or a positive integer. Received: `version=True`"),
        ({"timeout": 0}, "`timeout` must be a positive number of seconds. Received: `timeout=0`"),
        ({"timeout": float("nan")}, "`timeout` must be a finite number. Received: `timeout=nan`"),
        ({"pad_to": 0}, "`pad_to` must be None or a positive integer. Received: `pad_to=0`"),
        ({"schema": {"item": 10}}, "`schema` must be None or the model's SequenceSchema"),
    ],
)
def test_client_arguments_are_refused_when_it_is_made(kwargs, message):
    """Issue 32: these were accepted and failed at the first request (an `AttributeError` for a
    port number, a 404 for an empty name, a request that never times out for `timeout=0`)."""
    import re

    arguments = {"target": "http://localhost:8501", "model_name": "dare", **kwargs}
    with pytest.raises(ValueError, match=re.escape(message)):
        serving.Client(**arguments)
    client = serving.Client("http://localhost:8501", "dare", version=np.int64(2), pad_to=np.int64(8))
    assert (client.version, client.pad_to) == (2, 8)
