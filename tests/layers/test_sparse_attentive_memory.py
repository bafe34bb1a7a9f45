"""SparseAttentiveMemory against an independent numpy reference (GRUs included)."""

from typing import Any

import keras
import numpy as np
import pytest
from references import make_mask, np_normalize, np_sigmoid
from test_case import TestCase, to_numpy

from keras_lsrec.layers import SparseAttentiveMemory

B, L, D = 4, 7, 8


def np_gru(cell, x, h):
    """GRU, reset gate before the recurrent product (`reset_after=False`)."""
    w, u, b = (to_numpy(v) for v in (cell.kernel, cell.recurrent_kernel, cell.bias))
    d = h.shape[-1]
    x_z, x_r, x_h = np.split(x @ w + b, 3, axis=-1)
    z = np_sigmoid(x_z + h @ u[:, :d])
    r = np_sigmoid(x_r + h @ u[:, d : 2 * d])
    candidate = np.tanh(x_h + (r * h) @ u[:, 2 * d :])
    return z * h + (1 - z) * candidate


def np_sam(layer, q, k, mask):
    """The whole layer in the paper's concatenation form."""
    depth = len(layer.hidden_units)
    memory, outputs, all_weights = q, [], []
    for t in range(layer.num_passes):
        m = memory if layer.feed_memory else q
        qb = np.broadcast_to(q[:, None, :], k.shape)
        mb = np.broadcast_to(m[:, None, :], k.shape)
        features = np.concatenate([qb - k, qb * k, mb - k, mb * k], -1)
        h = features @ to_numpy(layer.score_kernels[t]) + to_numpy(layer.score_biases[t])
        for dense in layer.score_layers[t * depth : (t + 1) * depth]:
            h = np_sigmoid(h) @ to_numpy(dense.kernel) + to_numpy(dense.bias)
        weights = np_normalize(h[..., 0], mask, layer.normalizer)
        read = np.einsum("bl,bld->bd", weights, k)
        memory = np_gru(layer.memory_cell, read, memory)
        outputs.append(memory)
        all_weights.append(weights)
    if layer.enhance_steps:
        state = memory
        for dense in layer.enhance_projections:
            projected = state @ to_numpy(dense.kernel) + to_numpy(dense.bias)
            state = np_gru(layer.enhance_cell, np.concatenate([projected, q], -1), state)
        outputs.append(state)
    return np.concatenate(outputs, -1), np.stack(all_weights, 1)


def inputs(seed):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(B, D)).astype("float32")
    k = rng.normal(size=(B, L, D)).astype("float32")
    return dict(query=q, keys=k, mask=make_mask(rng))  # row 0 is all padding


CASES: list[dict[str, Any]] = [
    dict(),
    dict(feed_memory=False),
    dict(normalizer="softmax", num_passes=2, enhance_steps=0),
    dict(hidden_units=(6, 3), num_passes=1, enhance_steps=2),
    dict(feed_memory=False, normalizer="softmax", hidden_units=(5,), activation="sigmoid"),
]
IDS = ["-".join(f"{a}={b}" for a, b in k.items()) or "default" for k in CASES]
DEFAULTS = {"num_passes": 3, "enhance_steps": 3, "hidden_units": (8,)}


def expected_weights(kwargs):
    """Per pass a score kernel and bias and a Dense per further scorer layer; a
    GRU cell (3); with enhancement a Dense per step and a second GRU cell."""
    k = {**DEFAULTS, **kwargs}
    steps = k["enhance_steps"]
    return k["num_passes"] * (2 + 2 * len(k["hidden_units"])) + 3 + (2 * steps + 3 if steps else 0)


class TestSparseAttentiveMemory(TestCase):
    @pytest.mark.parametrize("kwargs", CASES, ids=IDS)
    def test_matches_numpy(self, kwargs):
        data = inputs(10)
        layer = SparseAttentiveMemory(**kwargs)
        out, weights = to_numpy(layer(**data, return_weights=True))
        expected, expected_weights = np_sam(layer, *data.values())
        passes = layer.num_passes + (1 if layer.enhance_steps else 0)
        assert out.shape == (B, passes * D) and weights.shape == (B, layer.num_passes, L)
        np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(weights, expected_weights, atol=1e-6)
        # Padding weighs exactly 0.
        assert np.all(weights[~np.broadcast_to(data["mask"][:, None, :], weights.shape)] == 0)

    @pytest.mark.parametrize("kwargs", CASES, ids=IDS)
    def test_candidate_sets_match_numpy_per_candidate(self, kwargs):
        """Queries (B, C, d): one memory per candidate over the same behaviours."""
        data = inputs(11)
        queries = np.random.default_rng(11).normal(size=(B, 3, D)).astype("float32")
        layer = SparseAttentiveMemory(**kwargs)
        out, weights = to_numpy(layer(queries, data["keys"], mask=data["mask"], return_weights=True))
        assert weights.shape == (B, 3, layer.num_passes, L)
        for c in range(3):
            expected, expected_weights = np_sam(layer, queries[:, c], data["keys"], data["mask"])
            np.testing.assert_allclose(out[:, c], expected, atol=1e-5, rtol=1e-5)
            np.testing.assert_allclose(weights[:, c], expected_weights, atol=1e-6)

    @pytest.mark.parametrize("kwargs", CASES, ids=IDS)
    def test_layer_contract(self, kwargs):
        k = {**DEFAULTS, **kwargs}
        passes = k["num_passes"] + (1 if k["enhance_steps"] else 0)
        self.run_layer_test(
            SparseAttentiveMemory,
            kwargs,
            inputs(11),
            (B, passes * D),
            expected_num_trainable_weights=expected_weights(kwargs),
            sequence_args=("keys",),
        )

    def test_feed_memory_changes_the_later_passes(self):
        data = inputs(11)
        q, k = data["query"], data["keys"]
        fed = SparseAttentiveMemory(num_passes=2, enhance_steps=0)
        fed(q, k)
        fixed = SparseAttentiveMemory.from_config({**fed.get_config(), "feed_memory": False})
        fixed(q, k)
        fixed.set_weights(fed.get_weights())
        a, b = to_numpy(fed(q, k)), to_numpy(fixed(q, k))
        np.testing.assert_allclose(a[:, :D], b[:, :D], atol=1e-6)  # pass 1 queries with m_0 = q in both
        assert not np.allclose(a[:, D:], b[:, D:], atol=1e-4)

    def test_any_length_and_no_mask(self):
        query, keys = keras.Input((D,)), keras.Input((None, D))
        model = keras.Model([query, keys], SparseAttentiveMemory(num_passes=2)(query, keys))
        rng = np.random.default_rng(12)
        q = rng.normal(size=(2, D)).astype("float32")
        for length in (1, 5, 300):
            k = rng.normal(size=(2, length, D)).astype("float32")
            expected, _ = np_sam(model.layers[-1], q, k, np.ones((2, length), bool))
            np.testing.assert_allclose(model.predict([q, k], verbose=0), expected, atol=1e-5, rtol=1e-5)

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(num_passes=0), "num_passes"),
            (dict(normalizer="relu"), "normalizer"),
            (dict(enhance_steps=-1), "enhance_steps"),
            (dict(hidden_units=()), "hidden_units"),
        ],
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            SparseAttentiveMemory(**kwargs)

    def test_rejects_mismatched_sizes(self):
        with pytest.raises(ValueError, match="one size"):
            SparseAttentiveMemory()(np.ones((1, 3), "float32"), np.ones((1, 2, 4), "float32"))
