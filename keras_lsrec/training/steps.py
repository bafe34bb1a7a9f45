"""The train step of row-sparse table training, once per backend.

The one module that knows how each backend differentiates and writes rows in
place; the mechanism itself (which ids, which rows, which update) is
`keras_lsrec.training.tables`, in `keras.ops`. Each step mirrors Keras' own
`train_step` for its backend (loss tracking, loss scaling, metrics), with
the gradient taken with respect to the dense variables and to each sparse
table's block of rows instead of the whole table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras.utils import unpack_x_y_sample_weight


def write_rows(variable: keras.Variable, ids: Any, values: Any) -> None:
    """`variable[ids] = values`, in place: the cost is the rows written, not
    the table. Repeated ids must carry equal values."""
    backend = keras.backend.backend()
    values = keras.ops.cast(values, variable.dtype)
    if backend == "jax":
        # Inside the jitted step (the state is donated, so XLA scatters in place).
        variable.assign(variable.value.at[ids].set(values))
    elif backend == "tensorflow":
        import tensorflow as tf

        variable.value.scatter_update(tf.IndexedSlices(values, ids))
    elif backend == "torch":
        variable.value.data.index_copy_(0, ids.long(), values)
    else:  # numpy and others: no training there
        raise NotImplementedError(f"Row-sparse training does not run on the {backend} backend.")


def write_positions(variable: keras.Variable, ids: Any) -> None:
    """`variable[ids[j]] = j` for the FIRST `j` of each repeated id, in place.

    Deterministic however the scatter is split: under a `keras.distribution`
    XLA partitions the batch's ids over devices, and a plain set of repeated
    ids could keep a different occurrence on each device (the replicas of
    the map would then disagree, and part of an id's gradient be lost).
    A set to the largest int32 followed by a scatter-min is the same on every
    device."""
    backend = keras.backend.backend()
    positions = keras.ops.arange(keras.ops.shape(ids)[0], dtype="int32")
    largest = 2**31 - 1
    if backend == "jax":
        variable.assign(variable.value.at[ids].set(largest).at[ids].min(positions))
    elif backend == "tensorflow":
        import tensorflow as tf

        variable.value.scatter_update(tf.IndexedSlices(tf.fill(tf.shape(ids), largest), ids))
        variable.value.scatter_min(tf.IndexedSlices(positions, ids))
    elif backend == "torch":
        index = ids.long()
        variable.value.data.index_fill_(0, index, largest)
        variable.value.data.scatter_reduce_(0, index, positions, reduce="amin")
    else:
        raise NotImplementedError(f"Row-sparse training does not run on the {backend} backend.")


def check_distribution_backend() -> None:
    """Refuses a `keras.distribution` on a backend where Keras does not
    distribute (in Keras 3.15 only jax places variables and batches on a
    mesh; elsewhere training would silently run on one device)."""
    backend = keras.backend.backend()
    if backend != "jax":
        raise ValueError(
            f"keras.distribution places variables and batches only on the jax backend in Keras "
            f"{keras.__version__}; the active backend is {backend!r}, where training would run on one "
            "device. Set KERAS_BACKEND=jax to train on several devices (docs/distributed.md), or "
            "`keras.distribution.set_distribution(None)`."
        )


def unsupported() -> str | None:
    """Why row-sparse table training cannot run here, or `None` when it can:
    a `tf.distribute` strategy is active, or a backend without a train step.
    Under a `keras.distribution` (jax) the step is the same program: XLA
    partitions its gathers and scatters over the row-sharded tables and
    slots (`keras_lsrec.distribution`)."""
    backend = keras.backend.backend()
    if backend not in _STEPS:
        return f"row-sparse training has no train step on the {backend} backend"
    if backend == "tensorflow":
        import tensorflow as tf

        if tf.distribute.has_strategy():
            return "a tf.distribute strategy is active (row-sparse steps run on one device)"
    return None


def train_step(model: keras.Model, *args: Any) -> Any:
    """`model.train_step(...)` with row-sparse tables (`model._table_training`)."""
    return _STEPS[keras.backend.backend()](model, *args)


def _batch_size(x: Any) -> Any:
    first = next(v for v in keras.tree.flatten(x) if v is not None)
    return keras.ops.shape(first)[0]


def _tensorflow_step(model: keras.Model, data: Any) -> Any:
    import tensorflow as tf

    tables = model._table_training
    x, y, sample_weight = unpack_x_y_sample_weight(data)
    blocks = tables.blocks(x)
    with tf.GradientTape() as tape:
        for block in blocks:
            tape.watch(block.rows)
        with tables.reading(blocks):
            y_pred = model(x, training=True)
        loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
        # (Keras unscales the loss for a tf.distribute strategy; there is none: `unsupported`.)
        model._loss_tracker.update_state(loss, sample_weight=_batch_size(x))
        loss = model.optimizer.scale_loss(loss)
    n = len(tables.dense_variables)
    grads = tape.gradient(loss, tables.dense_variables + [b.rows for b in blocks])
    dense_grads = tables.apply_rows(grads[:n], grads[n:], blocks)
    model.optimizer.apply(dense_grads, tables.dense_variables)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def _torch_step(model: keras.Model, data: Any) -> Any:
    import torch

    tables = model._table_training
    x, y, sample_weight = unpack_x_y_sample_weight(data)
    with torch.no_grad():
        blocks = tables.blocks(x)
    rows = [b.rows.detach().requires_grad_(True) for b in blocks]
    with tables.reading(blocks, rows):
        y_pred = model(x, training=True)
    model.zero_grad()
    loss = model._compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
    model._loss_tracker.update_state(loss, sample_weight=_batch_size(x))
    model.optimizer.scale_loss(loss).backward()
    dense_grads = [v.value.grad for v in tables.dense_variables]
    with torch.no_grad():
        dense_grads = tables.apply_rows(dense_grads, [r.grad for r in rows], blocks)
        model.optimizer.apply(dense_grads, tables.dense_variables)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def _jax_step(model: keras.Model, state: Any, data: Any) -> Any:
    import jax

    tables = model._table_training
    trainable, non_trainable, optimizer_values, metrics_values = state
    x, y, sample_weight = unpack_x_y_sample_weight(data)

    def scope():
        mapping = list(zip(model.trainable_variables, trainable, strict=True))
        return keras.StatelessScope(
            state_mapping=mapping + list(zip(model.optimizer.variables, optimizer_values, strict=True))
        )

    with scope() as blocks_scope:
        blocks = tables.blocks(x)  # writes the position maps (optimizer variables)
    optimizer_values = [blocks_scope.get_current_value(v) for v in model.optimizer.variables]

    def loss_fn(dense_values, rows):
        values = list(trainable)
        for i, value in zip(tables.dense_indices, dense_values, strict=True):
            values[i] = value
        with tables.reading(blocks, rows):
            return model.compute_loss_and_updates(
                values,
                non_trainable,
                metrics_values,
                x,
                y,
                sample_weight,
                training=True,
                optimizer_variables=optimizer_values,
            )

    grad_fn = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)
    (_, aux), (dense_grads, row_grads) = grad_fn(
        [trainable[i] for i in tables.dense_indices], [b.rows for b in blocks]
    )
    unscaled_loss, y_pred, non_trainable, metrics_values = aux
    with scope() as rows_scope:
        dense_grads = tables.apply_rows(dense_grads, row_grads, blocks)
    trainable = [rows_scope.get_current_value(v) for v in model.trainable_variables]
    optimizer_values = [rows_scope.get_current_value(v) for v in model.optimizer.variables]
    # The dense part as Keras' own jax step applies it (a loss-scale
    # optimizer's conditional update must run stateless).
    dense_values, optimizer_values = model.optimizer.stateless_apply(
        optimizer_values, dense_grads, [trainable[i] for i in tables.dense_indices]
    )
    for i, value in zip(tables.dense_indices, dense_values, strict=True):
        trainable[i] = value
    logs, metrics_values = model._update_metrics_variables(
        metrics_values, unscaled_loss, x, y, y_pred, sample_weight
    )
    return logs, (trainable, non_trainable, optimizer_values, metrics_values)


_STEPS: dict[str, Callable[..., Any]] = {
    "tensorflow": _tensorflow_step,
    "torch": _torch_step,
    "jax": _jax_step,
}
