"""TargetAttention against an independent numpy reference."""

from typing import Any

import numpy as np
import pytest
from references import make_mask, np_normalize, np_sigmoid
from test_case import TestCase, assert_close, to_numpy

from keras_lsrec.layers import TargetAttention

B, L, D = 4, 7, 8


def np_target_attention(layer, q, k, v, mask, bias=0.0):
    if layer.scorer == "mlp":
        qb = np.broadcast_to(q[:, None, :], k.shape)
        h = np.concatenate([qb, k, qb - k, qb * k], -1) @ to_numpy(layer.score_kernel)
        h = h + to_numpy(layer.score_bias)
        for dense in layer.score_layers:
            h = np_sigmoid(h) @ to_numpy(dense.kernel) + to_numpy(dense.bias)
        weights = np_normalize(h[..., 0] + bias, mask, layer.normalizer)
        return np.einsum("bl,bld->bd", weights, v)
    heads = layer.num_heads
    dh = k.shape[-1] // heads
    scale = layer.scale if layer.scale is not None else 1 / np.sqrt(dh)
    out = []
    for h in range(heads):
        qs, ks = q[:, h * dh : (h + 1) * dh], k[:, :, h * dh : (h + 1) * dh]
        dv = v.shape[-1] // heads
        logits = np.einsum("bd,bld->bl", qs, ks) * scale + bias
        weights = np_normalize(logits, mask, layer.normalizer)
        out.append(np.einsum("bl,bld->bd", weights, v[:, :, h * dv : (h + 1) * dv]))
    return np.concatenate(out, -1)


def inputs(seed):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(B, D)).astype("float32")
    k = rng.normal(size=(B, L, D)).astype("float32")
    v = rng.normal(size=(B, L, 12)).astype("float32")
    return dict(query=q, keys=k, values=v, mask=make_mask(rng))


CASES: list[dict[str, Any]] = [
    dict(scorer="mlp", normalizer="softmax", hidden_units=(6, 3)),
    dict(scorer="mlp", normalizer="sigmoid", hidden_units=(5,)),
    dict(scorer="mlp", normalizer="none", hidden_units=(4,)),
    dict(scorer="dot", normalizer="softmax"),
    dict(scorer="dot", normalizer="sigmoid", num_heads=2),
    dict(scorer="dot", normalizer="softmax", num_heads=4, scale=0.7),
]
NUM_WEIGHTS = [6, 4, 4, 0, 0, 0]
IDS = ["-".join(map(str, k.values())) for k in CASES]


class TestTargetAttention(TestCase):
    @pytest.mark.parametrize("kwargs", CASES, ids=IDS)
    def test_matches_numpy(self, kwargs):
        data = inputs(2)
        layer = TargetAttention(**kwargs)
        out = to_numpy(layer(**data))
        np.testing.assert_allclose(out, np_target_attention(layer, *data.values()), atol=1e-5, rtol=1e-5)
        np.testing.assert_array_equal(out[0], np.zeros(12, "float32"))  # all padding: exactly 0
        # Values default to keys.
        q, k, _, mask = data.values()
        assert_close(layer(q, k, mask=mask), np_target_attention(layer, q, k, k, mask))

    @pytest.mark.parametrize("kwargs", CASES, ids=IDS)
    def test_candidate_sets_match_numpy_per_candidate(self, kwargs):
        """Queries (B, C, D) over shared keys, and over keys of their own (B, C, L, D)."""
        data = inputs(3)
        rng = np.random.default_rng(3)
        queries = rng.normal(size=(B, 5, D)).astype("float32")
        layer = TargetAttention(**kwargs)
        out = to_numpy(layer(queries, data["keys"], data["values"], mask=data["mask"]))
        assert out.shape == (B, 5, 12)
        for c in range(5):
            expected = np_target_attention(layer, queries[:, c], data["keys"], data["values"], data["mask"])
            np.testing.assert_allclose(out[:, c], expected, atol=1e-5, rtol=1e-5)
        np.testing.assert_array_equal(out[0], 0.0)  # all padding: exactly 0 for every candidate
        own_keys = rng.normal(size=(B, 5, 3, D)).astype("float32")
        own_values = rng.normal(size=(B, 5, 3, 12)).astype("float32")
        own_mask = rng.random((B, 5, 3)) < 0.7
        out = to_numpy(layer(queries, own_keys, own_values, mask=own_mask))
        for c in range(5):
            expected = np_target_attention(
                layer, queries[:, c], own_keys[:, c], own_values[:, c], own_mask[:, c]
            )
            np.testing.assert_allclose(out[:, c], expected, atol=1e-5, rtol=1e-5)

    @pytest.mark.parametrize("kwargs, num_weights", list(zip(CASES, NUM_WEIGHTS, strict=True)), ids=IDS)
    def test_layer_contract(self, kwargs, num_weights):
        self.run_layer_test(
            TargetAttention,
            kwargs,
            inputs(3),
            (B, 12),
            expected_num_trainable_weights=num_weights,
            sequence_args=("keys", "values"),
        )

    @pytest.mark.parametrize("kwargs", CASES, ids=IDS)
    def test_logit_bias_matches_numpy(self, kwargs):
        """TWIN-V2's log(cluster size): added to every head's logit, for one target and candidate sets."""
        data = inputs(4)
        rng = np.random.default_rng(4)
        bias = np.log(rng.integers(1, 30, (B, L))).astype("float32")
        layer = TargetAttention(**kwargs)
        out = to_numpy(layer(**data, logit_bias=bias))
        assert_close(out, np_target_attention(layer, *data.values(), bias=bias))
        np.testing.assert_array_equal(out[0], 0.0)  # all padding: still exactly 0
        queries = rng.normal(size=(B, 3, D)).astype("float32")
        out = to_numpy(layer(queries, data["keys"], data["values"], mask=data["mask"], logit_bias=bias))
        for c in range(3):
            expected = np_target_attention(
                layer, queries[:, c], data["keys"], data["values"], data["mask"], bias
            )
            assert_close(out[:, c], expected)
        if kwargs["normalizer"] == "softmax":
            # A cluster of n events weighs as n copies of its representative.
            q, k, v = data["query"][1:2], data["keys"][1:2, :2], data["values"][1:2, :2]
            copies = to_numpy(layer(q, np.repeat(k, [3, 1], axis=1), np.repeat(v, [3, 1], axis=1)))
            assert_close(layer(q, k, v, logit_bias=np.log(np.array([[3.0, 1.0]], "float32"))), copies)

    def test_weights_and_no_mask(self):
        rng = np.random.default_rng(3)
        q = rng.normal(size=(B, D)).astype("float32")
        k = rng.normal(size=(B, L, D)).astype("float32")
        layer = TargetAttention(scorer="dot")
        out, weights = layer(q, k, return_weights=True)
        np.testing.assert_allclose(to_numpy(weights).sum(-1), np.ones(B), atol=1e-5)
        assert_close(out, np_target_attention(layer, q, k, k, np.ones((B, L), bool)))

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(scorer="cosine"), "scorer"),
            (dict(normalizer="linear"), "normalizer"),
            (dict(num_heads=0), "num_heads"),
            (dict(scorer="mlp", num_heads=2), "num_heads"),
            (dict(hidden_units=(0,)), "hidden_units"),
        ],
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            TargetAttention(**kwargs)

    def test_rejects_bad_shapes(self):
        with pytest.raises(ValueError, match="one size"):
            TargetAttention(scorer="mlp")(np.ones((1, 3), "float32"), np.ones((1, 2, 4), "float32"))
        with pytest.raises(ValueError, match="divisible"):
            TargetAttention(scorer="dot", num_heads=3)(
                np.ones((1, 4), "float32"), np.ones((1, 2, 4), "float32")
            )
