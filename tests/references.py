"""Independent numpy references shared by several test files (not collected)."""

from __future__ import annotations

import numpy as np
from test_case import to_numpy


def make_mask(rng, batch: int = 4, length: int = 7, empty_row: bool = True) -> np.ndarray:
    """Left-padded mask with a random number of valid events per row; row 0 all padding."""
    lengths = rng.integers(1, length + 1, batch)
    if empty_row:
        lengths[0] = 0
    return np.arange(length)[None, :] >= (length - lengths)[:, None]


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_normalize(logits, mask, normalizer):
    """Attention weights over the last axis: softmax over valid positions, or sigmoid; padding 0."""
    if normalizer == "sigmoid":
        return np_sigmoid(logits) * mask
    weights = np.zeros_like(logits)
    for index in np.ndindex(*logits.shape[:-1]):
        valid = mask[index] if mask.ndim == logits.ndim else mask[index[0]]
        if valid.any():
            z = np.exp(logits[index][valid] - logits[index][valid].max())
            weights[index][valid] = z / z.sum()
    return weights


def np_batch_norm(x, bn):
    """Inference-mode batch normalisation with `bn`'s moving statistics."""
    mean, var = to_numpy(bn.moving_mean), to_numpy(bn.moving_variance)
    y = (x - mean) / np.sqrt(var + bn.epsilon)
    if bn.scale:
        y = y * to_numpy(bn.gamma)
    if bn.center:
        y = y + to_numpy(bn.beta)
    return y


def randomize_statistics(layer, rng) -> None:
    """Random moving statistics and weights, so batch norm is not the identity."""
    for variable in layer.non_trainable_variables + layer.trainable_variables:
        if "moving_variance" in variable.path:
            variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype("float32"))
        else:
            variable.assign(rng.normal(size=variable.shape).astype("float32") * 0.5)


def left_padded_ids(rng, vocab: dict, batch: int = 4, length: int = 7) -> dict:
    """Ids per field, left-padded with 0; row 0 all padding, row 2 full."""
    ids = {f: rng.integers(1, n, (batch, length)).astype("int32") for f, n in vocab.items()}
    lengths = rng.integers(1, length + 1, batch)
    lengths[0], lengths[min(2, batch - 1)] = 0, length
    padding = np.arange(length)[None, :] < (length - lengths)[:, None]
    return {f: np.where(padding, 0, x) for f, x in ids.items()}


def np_dense_stack(x, layers, activation=lambda t: np.maximum(t, 0)):
    """`(kernel, bias)` pairs applied in turn, `activation` between them (not after the last)."""
    for i, (kernel, bias) in enumerate(layers):
        x = x @ kernel + bias
        if i < len(layers) - 1:
            x = activation(x)
    return x


def np_cross_network(x, kernels, biases):
    """DCNv2: `x_{l+1} = x_0 * (x_l W_l + b_l) + x_l`; `kernels[l]` holds the
    factors whose product is `W_l` (one `(D, D)` matrix, or `U (D, r)`, `V (r, D)`)."""
    x0 = xl = x
    for factors, bias in zip(kernels, biases, strict=True):
        w = factors[0]
        for factor in factors[1:]:
            w = w @ factor
        xl = x0 * (xl @ w + bias) + xl
    return xl


def np_feature_gating(x, gate_logits):
    """FinalMLP's feature selection: `2 * sigmoid(gate_logits) * x`."""
    return 2.0 * np_sigmoid(gate_logits) * x


def np_interaction_aggregation(x, y, w_x, w_y, w_xy, bias):
    """FinalMLP's fusion: `x w_x + y w_y + b + sum_h x_h^T W_h y_h`, heads split
    along the last axis (`w_xy` `(H, D_x / H, D_y / H, O)`), one pair at a time."""
    heads = w_xy.shape[0]
    out = x @ w_x + y @ w_y + bias
    x_heads, y_heads = np.split(x, heads, axis=-1), np.split(y, heads, axis=-1)
    for index in np.ndindex(*x.shape[:-1]):
        for h in range(heads):
            for o in range(w_xy.shape[-1]):
                out[index + (o,)] += x_heads[h][index] @ w_xy[h, :, :, o] @ y_heads[h][index]
    return out
