"""Mask helpers shared by the attention layers (internal)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


def mask_value(dtype: str) -> float:
    """The most negative finite value of `dtype`: a padded logit.

    Unlike `-2**32 + 1` it never overflows float16 or bfloat16, and
    `mask_value - max(logits)` stays finite, so a softmax over an all-padding
    row is uniform (then zeroed by the mask) instead of NaN.
    """
    name = keras.backend.standardize_dtype(dtype)
    if name == "bfloat16":
        return -3.3895313892515355e38
    return float(np.finfo(name).min)


def masked_logits(logits, mask):
    """Replace logits where `mask` is False by `mask_value(logits.dtype)`."""
    if mask is None:
        return logits
    fill = ops.cast(mask_value(logits.dtype), logits.dtype)
    return ops.where(mask, logits, fill)


NORMALIZERS = ("softmax", "sigmoid", "none")  # the `normalizer` choices of `normalize`


def normalize(logits, mask, normalizer: str):
    """Attention weights over the last axis.

    `"softmax"`: softmax over valid positions; `"sigmoid"`: independent
    `sigmoid(logit)` per position (not summing to 1); `"none"`: the logits
    themselves, unbounded (the DIN paper's choice, FuxiCTR's
    `din_use_softmax=False`). Padding weighs exactly 0 in all three, so an
    all-padding row gives all-zero weights.
    """
    if normalizer == "softmax":
        weights = ops.softmax(masked_logits(logits, mask), axis=-1)
    elif normalizer == "sigmoid":
        weights = ops.sigmoid(logits)
    elif mask is not None:  # `where`, not a product: an overflowed padding logit is not inf * 0
        return ops.where(mask, logits, ops.zeros_like(logits))
    else:
        return logits
    if mask is not None:
        weights = weights * ops.cast(mask, weights.dtype)
    return weights


def batch_gather(values, indices):
    """`out[b, ...] = values[b, indices[b, ...]]` for `values` (B, L, ...) and
    integer `indices` (B, ...) of any rank (e.g. (B, k), or (B, C, k): one
    set of positions per candidate, the values read once, not per candidate)."""
    shape = ops.shape(values)
    batch, length = shape[0], shape[1]
    rank = len(indices.shape)
    offsets = ops.reshape(ops.arange(batch, dtype=indices.dtype) * length, (-1,) + (1,) * (rank - 1))
    flat = ops.reshape(values, (-1,) + tuple(shape[2:]))
    picked = ops.take(flat, ops.reshape(indices + offsets, (-1,)), axis=0)
    return ops.reshape(picked, tuple(ops.shape(indices)) + tuple(shape[2:]))
