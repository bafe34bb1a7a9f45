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
