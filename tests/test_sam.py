"""SparseAttentiveMemory against an independent numpy reference (GRUs included)."""

import keras
import numpy as np
import pytest
from test_case import assert_close, right_pad_rows, run_layer_test, to_numpy
from test_layers import B, D, L, make_mask, np_normalize, np_sigmoid

from keras_lsrec.layers import SparseAttentiveMemory


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


SAM_CASES = [
    dict(),
    dict(feed_memory=False),
    dict(normalizer="softmax", num_passes=2, enhance_steps=0),
    dict(hidden_units=(6, 3), num_passes=1, enhance_steps=2),
    dict(feed_memory=False, normalizer="softmax", hidden_units=(5,), activation="sigmoid"),
]


@pytest.mark.parametrize("kwargs", SAM_CASES, ids=lambda k: "-".join(f"{a}={b}" for a, b in k.items()) or "default")
def test_sparse_attentive_memory_matches_numpy(kwargs, tmp_path):
    rng = np.random.default_rng(10)
    q = rng.normal(size=(B, D)).astype("float32")
    k = rng.normal(size=(B, L, D)).astype("float32")
    mask = make_mask(rng)  # row 0 is all padding
    layer = SparseAttentiveMemory(**kwargs)
    out, weights = to_numpy(layer(q, k, mask=mask, return_weights=True))
    expected, expected_weights = np_sam(layer, q, k, mask)
    passes = layer.num_passes + (1 if layer.enhance_steps else 0)
    assert out.shape == (B, passes * D) and weights.shape == (B, layer.num_passes, L)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(weights, expected_weights, atol=1e-6)
    # Padding weighs exactly 0; an all-padding history reads nothing and stays finite.
    assert np.all(weights[~np.broadcast_to(mask[:, None, :], weights.shape)] == 0)
    assert np.all(np.isfinite(out[0]))
    # Right padding gives the same result as left padding.
    k_r, m_r = right_pad_rows([k, mask], mask)
    assert_close(layer(q, k_r, mask=m_r), out)
    run_layer_test(
        layer,
        {"q": q, "k": k, "mask": mask},
        lambda lyr, x: lyr(x["q"], x["k"], mask=x["mask"]),
        (B, passes * D),
        tmp_path,
    )


def test_feed_memory_changes_the_later_passes():
    rng = np.random.default_rng(11)
    q = rng.normal(size=(B, D)).astype("float32")
    k = rng.normal(size=(B, L, D)).astype("float32")
    fed = SparseAttentiveMemory(num_passes=2, enhance_steps=0)
    fed(q, k)
    fixed = SparseAttentiveMemory.from_config({**fed.get_config(), "feed_memory": False})
    fixed(q, k)
    fixed.set_weights(fed.get_weights())
    a, b = to_numpy(fed(q, k)), to_numpy(fixed(q, k))
    np.testing.assert_allclose(a[:, :D], b[:, :D], atol=1e-6)  # pass 1 queries with m_0 = q in both
    assert not np.allclose(a[:, D:], b[:, D:], atol=1e-4)


def test_sparse_attentive_memory_any_length_and_no_mask():
    query, keys = keras.Input((D,)), keras.Input((None, D))
    model = keras.Model([query, keys], SparseAttentiveMemory(num_passes=2)(query, keys))
    rng = np.random.default_rng(12)
    q = rng.normal(size=(2, D)).astype("float32")
    for length in (1, 5, 300):
        k = rng.normal(size=(2, length, D)).astype("float32")
        got = model.predict([q, k], verbose=0)
        expected, _ = np_sam(model.layers[-1], q, k, np.ones((2, length), bool))
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_passes=0), "num_passes"),
        (dict(normalizer="relu"), "normalizer"),
        (dict(enhance_steps=-1), "enhance_steps"),
        (dict(hidden_units=()), "hidden_units"),
    ],
)
def test_sparse_attentive_memory_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SparseAttentiveMemory(**kwargs)


def test_sparse_attentive_memory_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="one size"):
        SparseAttentiveMemory()(np.ones((1, 3), "float32"), np.ones((1, 2, 4), "float32"))
