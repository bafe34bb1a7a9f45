"""TransActEncoder against an independent numpy reference."""

import keras
import numpy as np
import pytest
from references import make_mask
from test_case import TestCase, to_numpy

from keras_lsrec.layers import TransActEncoder

B, L, D = 4, 6, 4


def dense(layer, x):
    return x @ to_numpy(layer.kernel) + to_numpy(layer.bias)


def layer_norm(norm, x):
    mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + norm.epsilon) * to_numpy(norm.gamma) + to_numpy(norm.beta)


def np_transact(layer, x, mask):
    """One row at a time, over its valid events only (padding dropped)."""
    heads, dim = layer.num_heads, x.shape[-1]
    width = (layer.recent_k + layer.max_pool) * dim
    out = np.zeros((x.shape[0], width), "float32")
    for row in range(x.shape[0]):
        h = x[row][mask[row]]  # (n, d), oldest first
        n = len(h)
        for i in range(layer.num_layers if n else 0):
            q, k, v = np.split(dense(layer.projections[i], h), 3, axis=-1)
            attended = np.zeros_like(h)
            size = dim // heads
            for head in range(heads):
                part = slice(head * size, (head + 1) * size)
                logits = q[:, part] @ k[:, part].T / np.sqrt(size)
                weights = np.exp(logits - logits.max(-1, keepdims=True))
                weights /= weights.sum(-1, keepdims=True)
                attended[:, part] = weights @ v[:, part]
            h = layer_norm(layer.norms[2 * i], h + dense(layer.attention_outputs[i], attended))
            hidden = np.maximum(dense(layer.hidden[i], h), 0.0)
            h = layer_norm(layer.norms[2 * i + 1], h + dense(layer.feedforward[i], hidden))
        recent = np.zeros((layer.recent_k, dim))
        for j in range(min(layer.recent_k, n)):
            recent[j] = h[n - 1 - j]  # newest first
        parts = [recent.ravel()]
        if layer.max_pool:
            pooled = h.max(0) if n else np.zeros(dim)
            parts.append(dense(layer.pool_projection, pooled))
        out[row] = np.concatenate(parts)
    return out


def data(seed):
    rng = np.random.default_rng(seed)
    return dict(inputs=rng.normal(size=(B, L, D)).astype("float32"), mask=make_mask(rng, B, L))


CASES = [
    dict(feedforward_dim=8),
    dict(num_layers=2, num_heads=2, feedforward_dim=6, recent_k=3),
    dict(num_heads=4, feedforward_dim=5, recent_k=2, max_pool=False),
]


class TestTransActEncoder(TestCase):
    @pytest.mark.parametrize("kwargs", CASES, ids=["default", "two_layers", "no_pool"])
    def test_matches_numpy(self, kwargs):
        x, mask = data(1).values()
        layer = TransActEncoder(**kwargs)
        out = to_numpy(layer(x, mask=mask))
        np.testing.assert_allclose(out, np_transact(layer, x, mask), atol=1e-5, rtol=1e-5)
        assert np.all(out[0][: layer.recent_k * D] == 0.0)  # all padding: nothing recent
        # A candidate set: one fused sequence per candidate, the mask shared.
        sets = np.stack([x, x[::-1]], axis=1)
        per_candidate = to_numpy(layer(sets, mask=mask))
        np.testing.assert_allclose(per_candidate[:, 0], out, atol=1e-5)
        np.testing.assert_allclose(per_candidate[:, 1], np_transact(layer, x[::-1], mask), atol=1e-5)

    def test_empty_sequences(self):
        x, mask = data(2).values()
        layer = TransActEncoder(feedforward_dim=8, recent_k=2)
        out = to_numpy(layer(x[:, :0], mask=mask[:, :0]))
        np.testing.assert_allclose(out, np_transact(layer, x[:, :0], mask[:, :0]), atol=1e-6)

    def test_layer_contract(self):
        self.run_layer_test(
            TransActEncoder,
            {"num_heads": 2, "feedforward_dim": 8, "recent_k": 2, "dropout": 0.1},
            data(3),
            (B, 3 * D),
            expected_num_trainable_weights=2 * 4 + 2 * 2 + 2,
            sequence_args=("inputs",),
        )

    @pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="backend-independent")
    def test_rejects_bad_arguments(self):
        for kwargs, match in [({"recent_k": 0}, "recent_k"), ({"dropout": 1.0}, "dropout")]:
            with pytest.raises(ValueError, match=match):
                TransActEncoder(**kwargs)
        with pytest.raises(ValueError, match="divisible"):
            TransActEncoder(num_heads=3)(np.ones((1, 2, 4), "float32"))
