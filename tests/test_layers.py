"""Layers against independent numpy references, with masks and padding."""

import keras
import numpy as np
import pytest
from test_case import assert_close, right_pad_rows, run_layer_test, to_numpy

from keras_lsrec.layers import (
    MLP,
    DecoupledEmbedding,
    Dice,
    FieldEmbedding,
    TargetAttention,
    TopKRetrieval,
)

B, L, D = 4, 7, 8


def make_mask(rng, batch=B, length=L, empty_row=True):
    """Left-padded mask with a random number of valid events per row; row 0 all padding."""
    lengths = rng.integers(1, length + 1, batch)
    if empty_row:
        lengths[0] = 0
    return np.arange(length)[None, :] >= (length - lengths)[:, None]


# ---------------------------------------------------------------- references
def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_normalize(logits, mask, normalizer):
    if normalizer == "sigmoid":
        return np_sigmoid(logits) * mask
    weights = np.zeros_like(logits)
    for index in np.ndindex(*logits.shape[:-1]):
        valid = mask[index] if mask.ndim == logits.ndim else mask[index[0]]
        if valid.any():
            z = np.exp(logits[index][valid] - logits[index][valid].max())
            weights[index][valid] = z / z.sum()
    return weights


def np_target_attention(layer, q, k, v, mask):
    if layer.scorer == "mlp":
        qb = np.broadcast_to(q[:, None, :], k.shape)
        h = np.concatenate([qb, k, qb - k, qb * k], -1) @ to_numpy(layer.score_kernel)
        h = h + to_numpy(layer.score_bias)
        for dense in layer.score_layers:
            h = np_sigmoid(h) @ to_numpy(dense.kernel) + to_numpy(dense.bias)
        weights = np_normalize(h[..., 0], mask, layer.normalizer)
        return np.einsum("bl,bld->bd", weights, v)
    heads = layer.num_heads
    dh = k.shape[-1] // heads
    scale = layer.scale if layer.scale is not None else 1 / np.sqrt(dh)
    out = []
    for h in range(heads):
        qs, ks = q[:, h * dh : (h + 1) * dh], k[:, :, h * dh : (h + 1) * dh]
        dv = v.shape[-1] // heads
        logits = np.einsum("bd,bld->bl", qs, ks) * scale
        weights = np_normalize(logits, mask, layer.normalizer)
        out.append(np.einsum("bl,bld->bd", weights, v[:, :, h * dv : (h + 1) * dv]))
    return np.concatenate(out, -1)


# ---------------------------------------------------------------- embeddings
def test_field_embedding_matches_tables(tmp_path):
    rng = np.random.default_rng(0)
    vocab = {"item": 30, "category": 5, "time": 9}
    layer = FieldEmbedding(vocab, output_dim=3)
    ids = {f: rng.integers(0, n, (B, L)).astype("int32") for f, n in vocab.items()}
    out = to_numpy(layer(ids))
    expected = np.concatenate([to_numpy(layer.tables[f].embeddings)[ids[f]] for f in vocab], -1)
    np.testing.assert_allclose(out, expected, atol=1e-7)
    run_layer_test(layer, ids, lambda lyr, x: lyr(x), (B, L, 9), tmp_path)


def test_field_embedding_rejects_bad_arguments():
    with pytest.raises(ValueError, match="output_dim"):
        FieldEmbedding({"item": 3}, output_dim=0)
    with pytest.raises(ValueError, match="Missing id field"):
        FieldEmbedding({"item": 3, "category": 2}, 2)({"item": np.ones((1, 2), "int32")})


def test_decoupled_embedding_tables_and_dims(tmp_path):
    rng = np.random.default_rng(1)
    vocab = {"item": 20, "category": 4}
    layer = DecoupledEmbedding(vocab, attention_dim=2, representation_dim=5)
    ids = {f: rng.integers(0, n, (B, L)).astype("int32") for f, n in vocab.items()}
    att, rep = to_numpy(layer(ids))
    assert att.shape == (B, L, 4) and rep.shape == (B, L, 10)
    for out, tables in ((att, layer.attention.tables), (rep, layer.representation.tables)):
        expected = np.concatenate([to_numpy(tables[f].embeddings)[ids[f]] for f in vocab], -1)
        np.testing.assert_allclose(out, expected, atol=1e-7)
    # The two tables are distinct variables.
    paths = {v.path for v in layer.trainable_variables}
    assert len(paths) == 4
    run_layer_test(
        layer, ids, lambda lyr, x: keras.ops.concatenate(lyr(x), -1), (B, L, 14), tmp_path
    )


# ---------------------------------------------------------------- attention
ATTENTION_CASES = [
    dict(scorer="mlp", normalizer="softmax", hidden_units=(6, 3)),
    dict(scorer="mlp", normalizer="sigmoid", hidden_units=(5,)),
    dict(scorer="dot", normalizer="softmax"),
    dict(scorer="dot", normalizer="sigmoid", num_heads=2),
    dict(scorer="dot", normalizer="softmax", num_heads=4, scale=0.7),
]


@pytest.mark.parametrize("kwargs", ATTENTION_CASES, ids=lambda k: "-".join(map(str, k.values())))
def test_target_attention_matches_numpy(kwargs, tmp_path):
    rng = np.random.default_rng(2)
    q = rng.normal(size=(B, D)).astype("float32")
    k = rng.normal(size=(B, L, D)).astype("float32")
    v = rng.normal(size=(B, L, 12)).astype("float32")
    mask = make_mask(rng)
    layer = TargetAttention(**kwargs)
    out = to_numpy(layer(q, k, v, mask=mask))
    expected = np_target_attention(layer, q, k, v, mask)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)
    # All-padding row: finite and exactly zero.
    np.testing.assert_array_equal(out[0], np.zeros(12, "float32"))
    # Right padding gives the same result as left padding.
    k_r, v_r, m_r = right_pad_rows([k, v, mask], mask)
    assert_close(layer(q, k_r, v_r, mask=m_r), out)
    # Values default to keys.
    assert_close(layer(q, k, mask=mask), np_target_attention(layer, q, k, k, mask))
    run_layer_test(
        layer,
        {"q": q, "k": k, "v": v, "mask": mask},
        lambda lyr, x: lyr(x["q"], x["k"], x["v"], mask=x["mask"]),
        (B, 12),
        tmp_path,
        trainable=layer.scorer == "mlp",
    )


def test_target_attention_weights_and_no_mask():
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
        (dict(normalizer="none"), "normalizer"),
        (dict(num_heads=0), "num_heads"),
        (dict(scorer="mlp", num_heads=2), "num_heads"),
    ],
)
def test_target_attention_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TargetAttention(**kwargs)


def test_target_attention_rejects_bad_shapes():
    with pytest.raises(ValueError, match="one size"):
        TargetAttention(scorer="mlp")(np.ones((1, 3), "float32"), np.ones((1, 2, 4), "float32"))
    with pytest.raises(ValueError, match="divisible"):
        TargetAttention(scorer="dot", num_heads=3)(
            np.ones((1, 4), "float32"), np.ones((1, 2, 4), "float32")
        )


# ---------------------------------------------------------------- top-k
def np_top_k(scores, mask, k):
    """Indices of the k best valid scores (descending), and how many are valid."""
    out = []
    for row in range(scores.shape[0]):
        valid = np.flatnonzero(mask[row])
        best = valid[np.argsort(-scores[row, valid], kind="stable")][:k]
        out.append(best)
    return out


@pytest.mark.parametrize("k", [1, 3, L, L + 3])
def test_top_k_retrieval_matches_numpy(k, tmp_path):
    rng = np.random.default_rng(4)
    scores = rng.normal(size=(B, L)).astype("float32")
    items = rng.normal(size=(B, L, 5)).astype("float32")
    ids = rng.integers(1, 100, (B, L)).astype("int32")
    mask = make_mask(rng)
    layer = TopKRetrieval(k)
    (got_items, got_ids), got_mask = to_numpy(layer(scores, (items, ids), mask=mask))
    assert got_items.shape == (B, k, 5) and got_mask.shape == (B, k)
    for row, best in enumerate(np_top_k(scores, mask, k)):
        n = len(best)
        np.testing.assert_array_equal(got_mask[row], np.arange(k) < n)
        np.testing.assert_allclose(got_items[row, :n], items[row, best])
        np.testing.assert_array_equal(got_ids[row, :n], ids[row, best])
    assert not got_mask[0].any()  # all-padding row retrieves nothing valid
    # Right padding retrieves the same events.
    s_r, i_r, m_r = right_pad_rows([scores, items, mask], mask)
    (items_r,), mask_r = to_numpy(layer(s_r, (i_r,), mask=m_r))
    np.testing.assert_array_equal(mask_r, got_mask)
    np.testing.assert_allclose(items_r * mask_r[..., None], got_items * got_mask[..., None])
    run_layer_test(
        layer,
        {"s": scores, "x": items, "m": mask},
        lambda lyr, x: lyr(x["s"], x["x"], mask=x["m"])[0],
        (B, k, 5),
        tmp_path,
        trainable=False,
    )


def test_top_k_retrieval_dynamic_length_and_dict_items():
    scores_in = keras.Input((None,))
    items_in = keras.Input((None, 2))
    mask_in = keras.Input((None,), dtype="bool")
    out, out_mask = TopKRetrieval(4)(scores_in, {"x": items_in}, mask=mask_in)
    model = keras.Model([scores_in, items_in, mask_in], [out["x"], out_mask])
    for length in (2, 9):
        rng = np.random.default_rng(length)
        s = rng.normal(size=(3, length)).astype("float32")
        x = rng.normal(size=(3, length, 2)).astype("float32")
        m = np.ones((3, length), bool)
        got, got_mask = model.predict([s, x, m], verbose=0)
        assert got.shape == (3, 4, 2)
        np.testing.assert_array_equal(got_mask.sum(-1), [min(4, length)] * 3)
        best = np.argsort(-s, axis=-1)[:, : min(4, length)]
        np.testing.assert_allclose(got[:, : best.shape[1]], np.take_along_axis(x, best[..., None], 1))


def test_top_k_retrieval_rejects_bad_k():
    for k in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="`k`"):
            TopKRetrieval(k)


# ---------------------------------------------------------------- MLP / Dice
def np_batch_norm(x, bn):
    mean, var = to_numpy(bn.moving_mean), to_numpy(bn.moving_variance)
    y = (x - mean) / np.sqrt(var + bn.epsilon)
    if bn.scale:
        y = y * to_numpy(bn.gamma)
    if bn.center:
        y = y + to_numpy(bn.beta)
    return y


def randomize_statistics(layer, rng):
    for variable in layer.non_trainable_variables + layer.trainable_variables:
        if "moving_variance" in variable.path:
            variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype("float32"))
        else:
            variable.assign(rng.normal(size=variable.shape).astype("float32") * 0.5)


def np_mlp(layer, x):
    for sub in layer.stack:
        name = type(sub).__name__
        if name == "BatchNormalization":
            x = np_batch_norm(x, sub)
        elif name == "Dense":
            x = x @ to_numpy(sub.kernel) + to_numpy(sub.bias)
        elif name == "PReLU":
            x = np.maximum(x, 0) + to_numpy(sub.alpha) * np.minimum(x, 0)
        elif name == "Dice":
            p = np_sigmoid(np_batch_norm(x, sub.norm))
            x = p * x + (1 - p) * to_numpy(sub.alpha) * x
        elif name == "Dropout":
            pass  # inference mode
        elif name == "Activation":
            x = {"relu": lambda t: np.maximum(t, 0), "linear": lambda t: t}[sub.activation.__name__](x)
        else:
            raise AssertionError(name)
    return x


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(hidden_units=(6, 4), activation="prelu", input_batch_norm=True, output_units=1),
        dict(hidden_units=(5,), activation="dice", batch_norm=True),
        dict(hidden_units=(3, 3), activation="relu", dropout=0.2, output_units=2),
    ],
)
def test_mlp_matches_numpy(kwargs, tmp_path):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(B, 9)).astype("float32")
    layer = MLP(**kwargs)
    layer.build(x.shape)
    randomize_statistics(layer, rng)
    out = to_numpy(layer(x, training=False))
    np.testing.assert_allclose(out, np_mlp(layer, x), atol=1e-5, rtol=1e-5)
    units = kwargs.get("output_units") or kwargs["hidden_units"][-1]
    run_layer_test(layer, {"x": x}, lambda lyr, v: lyr(v["x"]), (B, units), tmp_path)


def test_dice_matches_numpy(tmp_path):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(B, 5)).astype("float32")
    layer = Dice()
    layer.build(x.shape)
    randomize_statistics(layer, rng)
    p = np_sigmoid(np_batch_norm(x, layer.norm))
    expected = p * x + (1 - p) * to_numpy(layer.alpha) * x
    assert_close(layer(x, training=False), expected)
    run_layer_test(layer, {"x": x}, lambda lyr, v: lyr(v["x"]), (B, 5), tmp_path)


@pytest.mark.parametrize("activation", ["prelu", "dice"])
def test_mlp_batch_statistics_skip_masked_rows(activation):
    """Training-mode batch norm with a row mask: the valid rows' outputs and the
    moving statistics are those of the valid rows alone, whatever the padding holds."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(4, 5, 6)).astype("float32")
    mask = np.arange(5)[None, :] < np.array([[5], [3], [1], [4]])
    layer = MLP(hidden_units=(4,), activation=activation, input_batch_norm=True, batch_norm=True, output_units=1)
    layer.build(x.shape)
    junk = np.where(mask[..., None], x, 1e3 * rng.normal(size=x.shape)).astype("float32")
    got = to_numpy(layer(junk, training=True, mask=mask))
    norm = layer.stack[0]
    # Moving mean after one step: momentum update towards the valid rows' mean only.
    expected_mean = (1 - norm.momentum) * x[mask].mean(0)
    np.testing.assert_allclose(to_numpy(norm.moving_mean), expected_mean, atol=1e-5)
    # The valid rows equal the same rows computed alone (as one flat batch).
    flat = to_numpy(layer(x[mask][None], training=True))[0]
    np.testing.assert_allclose(got[mask], flat, atol=1e-4, rtol=1e-4)
    assert np.all(np.isfinite(got))


def test_mlp_rejects_bad_arguments():
    with pytest.raises(ValueError, match="dropout"):
        MLP(dropout=1.0)
    with pytest.raises(ValueError, match="hidden_units"):
        MLP(hidden_units=(0,))
