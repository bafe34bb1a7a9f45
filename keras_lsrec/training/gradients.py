"""Gradient mechanics: the same optimizer update on every backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import ops


def prepare_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """Makes `optimizer` apply the textbook update to embedding tables on the
    running backend; idempotent. On tensorflow its `apply` receives dense
    gradients (`dense_gradients`); jax and torch already give them."""
    if keras.backend.backend() == "tensorflow" and not getattr(optimizer.apply, "dense_gradients", False):
        optimizer.apply = dense_gradients(optimizer.apply)
    return optimizer


def dense_gradients(apply: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps `optimizer.apply` so that tensorflow's sparse gradients arrive dense.

    On tensorflow the gradient of an embedding lookup is an `IndexedSlices`
    with one row per LOOKUP, so an id seen k times in a batch appears k
    times. Keras 3's optimizers apply such slices row by row with
    `scatter_add`: for Adam the second moment of that id becomes the sum of
    the k squared per-lookup gradients instead of the square of their sum
    (and the first moment is decayed k times), so the id's step is wrong
    (measured with Keras 3.15: an id looked up twice with per-lookup
    gradients +1 and -0.9 moved 0.022 instead of 0.30 over 3 steps; jax and
    torch, whose gradients are dense, agreed with each other). Summing the
    slices into a dense gradient first gives every optimizer the textbook
    update, the same as on jax and torch, and makes mixed-float16's
    loss-scale check see an overflow in an embedding gradient (it did not
    look inside `IndexedSlices`). Cost: one dense gradient per table, as the
    other backends pay.
    """

    def apply_dense(grads, trainable_variables=None):
        return apply([_dense(g) for g in grads], trainable_variables)

    apply_dense.dense_gradients = True  # type: ignore[attr-defined]
    return apply_dense


def _dense(grad: Any) -> Any:
    """Sums a tensorflow `IndexedSlices` (one row per lookup) into its dense gradient."""
    if type(grad).__name__ != "IndexedSlices":
        return grad
    return ops.segment_sum(grad.values, grad.indices, num_segments=grad.dense_shape[0])
