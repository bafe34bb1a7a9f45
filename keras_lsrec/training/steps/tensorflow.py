"""The tensorflow train step: every step of `fit` on tensorflow runs here.

Why always, and not only with row-sparse tables: on tensorflow the gradient
of an embedding lookup is an `IndexedSlices` with one row per LOOKUP, so an
id seen k times in a batch appears k times. Keras 3's optimizers apply such
slices row by row with `scatter_add`: for Adam the second moment of that id
becomes the sum of the k squared per-lookup gradients instead of the square
of their sum (and the first moment is decayed k times), so the id's step is
wrong (measured with Keras 3.15: an id looked up twice with per-lookup
gradients +1 and -0.9 moved 0.022 instead of 0.30 over 3 steps; jax and
torch, whose gradients are dense, agreed with each other). This step sums
the slices into a dense gradient first (`dense`), which gives every
optimizer the textbook update, the same as on jax and torch, and makes
mixed-float16's loss-scale check see an overflow in an embedding gradient
(it does not look inside `IndexedSlices`). Cost: one dense gradient per
densely trained table, as the other backends pay. Otherwise it is Keras'
own tensorflow step (loss tracking, loss scaling, `tf.distribute` loss
unscaling, metrics), with the row-sparse tables' blocks when they train so.
"""

from __future__ import annotations

import warnings
from typing import Any

import keras
import tensorflow as tf
from keras import ops
from keras.utils import unpack_x_y_sample_weight

from keras_lsrec.training import keras_private
from keras_lsrec.training.steps import LARGEST, batch_size


def dense(grad: Any) -> Any:
    """Sums an `IndexedSlices` (one row per lookup) into its dense gradient."""
    if not isinstance(grad, tf.IndexedSlices):
        return grad
    return ops.segment_sum(grad.values, grad.indices, num_segments=grad.dense_shape[0])


def train_step(model: keras.Model, tables: Any, keras_step: Any, data: Any) -> Any:
    del keras_step  # (see the module docstring)
    x, y, sample_weight = unpack_x_y_sample_weight(data)
    active = tables is not None and tables.active
    blocks = tables.blocks(x) if active else []
    variables = list(tables.dense_variables if active else model.trainable_variables)
    with tf.GradientTape() as tape:
        for block in blocks:
            tape.watch(block.rows)
        if active:
            with tables.reading(blocks):
                y_pred = model(x, training=True)
        else:
            y_pred = model(x, training=True)
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync  # Keras' loss unscaling
        tracked = loss * ops.cast(replicas, loss.dtype) if replicas > 1 else loss
        keras_private.loss_tracker(model).update_state(tracked, sample_weight=batch_size(x))
        if model.optimizer is not None:
            loss = model.optimizer.scale_loss(loss)
    if not variables and not blocks:
        warnings.warn("The model does not have any trainable weights.", stacklevel=2)
        return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
    grads = [dense(g) for g in tape.gradient(loss, variables + [b.rows for b in blocks])]
    n = len(variables)
    dense_grads = tables.apply_rows(grads[:n], grads[n:], blocks) if active else grads
    model.optimizer.apply(dense_grads, variables)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def write_rows(variable: keras.Variable, ids: Any, values: Any) -> None:
    variable.value.scatter_update(tf.IndexedSlices(values, ids))


def write_positions(variable: keras.Variable, ids: Any, positions: Any) -> None:
    variable.value.scatter_update(tf.IndexedSlices(tf.fill(tf.shape(ids), LARGEST), ids))
    variable.value.scatter_min(tf.IndexedSlices(positions, ids))


def unsupported() -> str | None:
    if tf.distribute.has_strategy():
        return "a tf.distribute strategy is active (row-sparse steps run on one device)"
    return None
