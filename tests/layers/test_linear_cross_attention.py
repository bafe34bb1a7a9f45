"""LinearCrossAttention against an independent numpy reference."""

from typing import Any

import keras
import numpy as np
import pytest
from references import make_mask
from test_case import TestCase, assert_close, to_numpy

from keras_lsrec.layers import LinearCrossAttention

B, C, L, D = 4, 5, 9, 6

NP_FEATURE_MAPS = {
    "elu_plus_one": lambda x: np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0))),
    "relu": lambda x: np.maximum(x, 0),
    "softplus": lambda x: np.log1p(np.exp(x)),
}


def np_linear_cross_attention(layer, x, s, mask):
    """The quadratic form of linear attention: w_ji = phi(q_j).phi(k_i) / (sum_i ... + eps)."""
    if layer.feature_map == "favor":
        projection = to_numpy(layer.random_projection).astype("float64")

        def phi(x, h):
            x = x / layer.key_dim**0.25
            return np.exp(x @ projection[h] - 0.5 * (x**2).sum(-1, keepdims=True)) / np.sqrt(
                layer.random_features
            )
    else:

        def phi(x, h):
            return NP_FEATURE_MAPS[layer.feature_map](x)

    wq, wk, wv, wo, bo = (
        to_numpy(w).astype("float64")
        for w in (
            layer.query_kernel,
            layer.key_kernel,
            layer.value_kernel,
            layer.output_kernel,
            layer.output_bias,
        )
    )
    heads = np.zeros(x.shape[:2] + (layer.num_heads, layer.value_dim))
    for b in range(x.shape[0]):
        for h in range(layer.num_heads):
            q = phi(x[b] @ wq[:, h], h)
            k = phi(s[b] @ wk[:, h], h)
            v = s[b] @ wv[:, h]
            scores = (q @ k.T) * mask[b][None, :]  # (C, L), padding contributes nothing
            weights = scores / (scores.sum(-1, keepdims=True) + layer.epsilon)
            heads[b, :, h] = weights @ v
    return np.einsum("bchv,hvo->bco", heads, wo) + bo


def random_inputs(seed, length=L):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, C, D)).astype("float32")
    s = rng.normal(size=(B, length, D)).astype("float32")
    return x, s, make_mask(rng, B, length)  # row 0: all padding


CASES: list[dict[str, Any]] = [
    dict(num_heads=2, key_dim=3),
    dict(num_heads=1, key_dim=4, value_dim=2, output_dim=5),
    dict(num_heads=3, key_dim=2, feature_map="relu"),
    dict(num_heads=2, key_dim=4, feature_map="softplus", epsilon=1e-3),
    dict(num_heads=2, key_dim=3, feature_map="favor", random_features=8, seed=3),
]
IDS = ["-".join(f"{a}={b}" for a, b in k.items()) for k in CASES]


class TestLinearCrossAttention(TestCase):
    @pytest.mark.parametrize("kwargs", CASES, ids=IDS)
    def test_matches_numpy(self, kwargs):
        x, s, mask = random_inputs(20)
        layer = LinearCrossAttention(**kwargs)
        out = to_numpy(layer(x, s, mask=mask))
        assert out.shape == (B, C, kwargs.get("output_dim", D))
        np.testing.assert_allclose(out, np_linear_cross_attention(layer, x, s, mask), atol=1e-5, rtol=1e-5)
        # An all-padding history reads exactly 0: the output is the bias, finite.
        np.testing.assert_allclose(
            out[0], np.broadcast_to(to_numpy(layer.output_bias), out[0].shape), atol=1e-7
        )

    @pytest.mark.parametrize("kwargs", CASES, ids=IDS)
    def test_layer_contract(self, kwargs):
        x, s, mask = random_inputs(21)
        self.run_layer_test(
            LinearCrossAttention,
            kwargs,
            dict(query=x, sequence=s, mask=mask),
            (B, C, kwargs.get("output_dim", D)),
            expected_num_trainable_weights=5,
            expected_num_non_trainable_weights=1 if kwargs.get("feature_map") == "favor" else 0,
            sequence_args=("sequence",),
        )

    def test_scores_each_candidate_independently(self):
        x, s, mask = random_inputs(21)
        layer = LinearCrossAttention(num_heads=2, key_dim=3)
        together = to_numpy(layer(x, s, mask=mask))
        for j in range(C):
            alone = to_numpy(layer(x[:, j : j + 1], s, mask=mask))
            np.testing.assert_allclose(alone[:, 0], together[:, j], atol=1e-5, rtol=1e-5)

    @pytest.mark.parametrize("feature_map", ["elu_plus_one", "favor"])
    def test_summaries_update_incrementally(self, feature_map):
        x, s, mask = random_inputs(22, length=12)
        layer = LinearCrossAttention(
            num_heads=2, key_dim=3, value_dim=4, feature_map=feature_map, random_features=3
        )
        full = to_numpy(layer(x, s, mask=mask))
        kv, z = to_numpy(layer.summaries(s, mask))
        assert kv.shape == (B, 2, 3, 4) and z.shape == (B, 2, 3)
        # A cached summary of the first 8 events plus the summary of 4 new events.
        old = layer.summaries(s[:, :8], mask[:, :8])
        new = layer.summaries(s[:, 8:], mask[:, 8:])
        merged = tuple(to_numpy(a) + to_numpy(b) for a, b in zip(old, new, strict=True))
        np.testing.assert_allclose(merged[0], kv, atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(merged[1], z, atol=1e-5, rtol=1e-5)
        assert_close(layer.attend(x, merged), full)

    def test_float16_long_history_is_finite(self):
        rng = np.random.default_rng(23)
        layer = LinearCrossAttention(num_heads=2, key_dim=4, dtype="mixed_float16")
        x = rng.normal(size=(2, 3, D)).astype("float16")
        s = (5 * rng.normal(size=(2, 20000, D))).astype("float16")  # sums overflow float16
        out = layer(x, s)
        assert keras.backend.standardize_dtype(out.dtype) == "float16"
        reference = LinearCrossAttention.from_config({**layer.get_config(), "dtype": "float32"})
        reference(x.astype("float32"), s[:, :5].astype("float32"))
        reference.set_weights([w.astype("float32") for w in layer.get_weights()])
        expected = to_numpy(reference(x.astype("float32"), s.astype("float32")))
        np.testing.assert_allclose(to_numpy(out).astype("float32"), expected, atol=2e-2, rtol=2e-2)

    def test_custom_feature_map_round_trips(self):
        x, s, mask = random_inputs(24)
        layer = LinearCrossAttention(num_heads=1, key_dim=3, feature_map=squared_relu)
        out = to_numpy(layer(x, s, mask=mask))
        clone = LinearCrossAttention.from_config(layer.get_config())
        clone(x, s, mask=mask)
        clone.set_weights(layer.get_weights())
        assert_close(clone(x, s, mask=mask), out)

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(num_heads=0), "num_heads"),
            (dict(key_dim=2.5), "key_dim"),
            (dict(value_dim=0), "value_dim"),
            (dict(feature_map="softmax"), "feature_map"),
            (dict(epsilon=0), "epsilon"),
        ],
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            LinearCrossAttention(**kwargs)


@keras.saving.register_keras_serializable(package="tests")
def squared_relu(x):
    return keras.ops.square(keras.ops.relu(x))
