"""CandidateSetAttention against an independent numpy reference."""

import numpy as np
import pytest
from test_case import TestCase, assert_close, to_numpy

from keras_lsrec.layers import CandidateSetAttention

B, C, D = 4, 5, 6


def np_layer_norm(x, layer):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + layer.epsilon) * to_numpy(layer.gamma) + to_numpy(layer.beta)


def np_candidate_set_attention(layer, x, mask):
    def dense(d, values):
        return values @ to_numpy(d.kernel) + to_numpy(d.bias)

    heads, dk = layer.num_heads, layer.key_dim
    q, k, v = (
        dense(d, x).reshape(x.shape[:2] + (heads, dk))
        for d in (layer.query_dense, layer.key_dense, layer.value_dense)
    )
    mixed = np.zeros(x.shape[:2] + (heads, dk))
    for b in range(x.shape[0]):
        valid = mask[b]
        for h in range(heads):
            if not valid.any():
                continue
            logits = q[b, :, h] @ k[b, valid, h].T / np.sqrt(dk)
            w = np.exp(logits - logits.max(-1, keepdims=True))
            w /= w.sum(-1, keepdims=True)
            mixed[b, :, h] = w @ v[b, valid, h]
    out = x + dense(layer.output_dense, mixed.reshape(x.shape[:2] + (heads * dk,)))
    if layer.layer_norm:
        out = np_layer_norm(out, layer.norm)
    return out * mask[..., None]


def inputs(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, C, D)).astype("float32")
    counts = rng.integers(1, C + 1, B)
    counts[0] = 0  # a request without candidates
    return x, np.arange(C)[None, :] < counts[:, None]


class TestCandidateSetAttention(TestCase):
    @pytest.mark.parametrize("layer_norm", [True, False])
    def test_matches_numpy(self, layer_norm):
        x, mask = inputs(30)
        layer = CandidateSetAttention(num_heads=2, key_dim=3, layer_norm=layer_norm)
        out = to_numpy(layer(x, mask=mask))
        np.testing.assert_allclose(out, np_candidate_set_attention(layer, x, mask), atol=1e-5, rtol=1e-5)
        assert np.all(out[0] == 0) and np.all(np.isfinite(out))
        # Missing candidates are never attended to: changing them changes nothing else.
        changed = np.where(mask[..., None], x, 7.0).astype("float32")
        assert_close(layer(changed, mask=mask), out)

    @pytest.mark.parametrize("layer_norm", [True, False])
    def test_layer_contract(self, layer_norm):
        """Missing candidates are the padding of a request: on which side they
        sit changes no present candidate's output (permutation equivariance)."""
        x, mask = inputs(31)
        self.run_layer_test(
            CandidateSetAttention,
            dict(num_heads=2, key_dim=3, layer_norm=layer_norm),
            dict(candidates=x, mask=mask),
            (B, C, D),
            expected_num_trainable_weights=10 if layer_norm else 8,
            sequence_args=("candidates",),
            output_sequence=True,
        )

    def test_is_permutation_equivariant(self):
        x, _ = inputs(31)
        layer = CandidateSetAttention(num_heads=2, key_dim=4)
        out = to_numpy(layer(x))
        perm = np.random.default_rng(31).permutation(C)
        assert_close(layer(x[:, perm]), out[:, perm])
        np.testing.assert_allclose(
            out, np_candidate_set_attention(layer, x, np.ones((B, C), bool)), atol=1e-5
        )

    @pytest.mark.parametrize(
        "kwargs, match", [(dict(num_heads=0), "num_heads"), (dict(key_dim=0), "key_dim")]
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            CandidateSetAttention(**kwargs)
