"""keras_lsrec.serving.Client over REST and gRPC, against the TF Serving stand-in of serving.testing."""

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
