"""LinearCrossAttention and CandidateSetAttention against independent numpy references."""

import keras
import numpy as np
import pytest
from test_case import assert_close, right_pad_rows, run_layer_test, to_numpy
from test_layers import make_mask

from keras_lsrec.layers import CandidateSetAttention, LinearCrossAttention

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
            return np.exp(x @ projection[h] - 0.5 * (x**2).sum(-1, keepdims=True)) / np.sqrt(layer.random_features)
    else:

        def phi(x, h):
            return NP_FEATURE_MAPS[layer.feature_map](x)

    wq, wk, wv, wo, bo = (
        to_numpy(w).astype("float64")
        for w in (layer.query_kernel, layer.key_kernel, layer.value_kernel, layer.output_kernel, layer.output_bias)
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


def np_layer_norm(x, layer):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + layer.epsilon) * to_numpy(layer.gamma) + to_numpy(layer.beta)


def np_candidate_set_attention(layer, x, mask):
    def dense(d, values):
        return values @ to_numpy(d.kernel) + to_numpy(d.bias)

    heads, dk = layer.num_heads, layer.key_dim
    q, k, v = (dense(d, x).reshape(x.shape[:2] + (heads, dk)) for d in (layer.query_dense, layer.key_dense, layer.value_dense))
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


def random_inputs(seed, length=L):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, C, D)).astype("float32")
    s = rng.normal(size=(B, length, D)).astype("float32")
    mask = make_mask(rng, length=length)  # row 0: all padding
    return x, s, mask


# ---------------------------------------------------------------- LinearCrossAttention
LCA_CASES = [
    dict(num_heads=2, key_dim=3),
    dict(num_heads=1, key_dim=4, value_dim=2, output_dim=5),
    dict(num_heads=3, key_dim=2, feature_map="relu"),
    dict(num_heads=2, key_dim=4, feature_map="softplus", epsilon=1e-3),
    dict(num_heads=2, key_dim=3, feature_map="favor", random_features=8, seed=3),
]


@pytest.mark.parametrize("kwargs", LCA_CASES, ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()))
def test_linear_cross_attention_matches_numpy(kwargs, tmp_path):
    x, s, mask = random_inputs(20)
    layer = LinearCrossAttention(**kwargs)
    out = to_numpy(layer(x, s, mask=mask))
    expected = np_linear_cross_attention(layer, x, s, mask)
    assert out.shape == (B, C, kwargs.get("output_dim", D))
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    # An all-padding history reads exactly 0: the output is the bias, finite.
    np.testing.assert_allclose(out[0], np.broadcast_to(to_numpy(layer.output_bias), out[0].shape), atol=1e-7)
    # Right padding gives the same result.
    s_r, m_r = right_pad_rows([s, mask], mask)
    assert_close(layer(x, s_r, mask=m_r), out)
    run_layer_test(
        layer,
        {"x": x, "s": s, "mask": mask},
        lambda lyr, v: lyr(v["x"], v["s"], mask=v["mask"]),
        out.shape,
        tmp_path,
    )


def test_linear_cross_attention_scores_each_candidate_independently():
    x, s, mask = random_inputs(21)
    layer = LinearCrossAttention(num_heads=2, key_dim=3)
    together = to_numpy(layer(x, s, mask=mask))
    for j in range(C):
        alone = to_numpy(layer(x[:, j : j + 1], s, mask=mask))
        np.testing.assert_allclose(alone[:, 0], together[:, j], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("feature_map", ["elu_plus_one", "favor"])
def test_linear_cross_attention_summaries_update_incrementally(feature_map):
    x, s, mask = random_inputs(22, length=12)
    layer = LinearCrossAttention(num_heads=2, key_dim=3, value_dim=4, feature_map=feature_map, random_features=3)
    full = to_numpy(layer(x, s, mask=mask))
    kv, z = to_numpy(layer.summaries(s, mask))
    assert kv.shape == (B, 2, 3, 4) and z.shape == (B, 2, 3)
    # A cached summary of the first 8 events plus the summary of 4 new events.
    old = layer.summaries(s[:, :8], mask[:, :8])
    new = layer.summaries(s[:, 8:], mask[:, 8:])
    merged = tuple(to_numpy(a) + to_numpy(b) for a, b in zip(old, new))
    np.testing.assert_allclose(merged[0], kv, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(merged[1], z, atol=1e-5, rtol=1e-5)
    assert_close(layer.attend(x, merged), full)


def test_linear_cross_attention_float16_long_history_is_finite():
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


@keras.saving.register_keras_serializable(package="tests")
def squared_relu(x):
    return keras.ops.square(keras.ops.relu(x))


def test_linear_cross_attention_custom_feature_map_round_trips():
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
def test_linear_cross_attention_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LinearCrossAttention(**kwargs)


# ---------------------------------------------------------------- CandidateSetAttention
def candidate_mask(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, C + 1, B)
    counts[0] = 0  # a request without candidates
    return np.arange(C)[None, :] < counts[:, None]


@pytest.mark.parametrize("layer_norm", [True, False])
def test_candidate_set_attention_matches_numpy(layer_norm, tmp_path):
    x, _, _ = random_inputs(30)
    mask = candidate_mask(30)
    layer = CandidateSetAttention(num_heads=2, key_dim=3, layer_norm=layer_norm)
    out = to_numpy(layer(x, mask=mask))
    np.testing.assert_allclose(out, np_candidate_set_attention(layer, x, mask), atol=1e-5, rtol=1e-5)
    assert np.all(out[0] == 0) and np.all(np.isfinite(out))
    # Missing candidates are never attended to: changing them changes nothing else.
    changed = np.where(mask[..., None], x, 7.0).astype("float32")
    assert_close(layer(changed, mask=mask), out)
    run_layer_test(
        layer, {"x": x, "mask": mask}, lambda lyr, v: lyr(v["x"], mask=v["mask"]), out.shape, tmp_path
    )


def test_candidate_set_attention_is_permutation_equivariant():
    x, _, _ = random_inputs(31)
    layer = CandidateSetAttention(num_heads=2, key_dim=4)
    out = to_numpy(layer(x))
    perm = np.random.default_rng(31).permutation(C)
    assert_close(layer(x[:, perm]), out[:, perm])
    np.testing.assert_allclose(out, np_candidate_set_attention(layer, x, np.ones((B, C), bool)), atol=1e-5)


def test_candidate_set_attention_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_heads"):
        CandidateSetAttention(num_heads=0)
