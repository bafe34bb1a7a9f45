"""The jax train step with row-sparse tables (Keras' own without them).

Stateless, as Keras' jax step is: it takes the train state
`(trainable, non_trainable, optimizer, metrics)` values and returns the new
ones; the table rows and their slots are written into the state inside the
jitted step (the state is donated, so XLA scatters in place).
"""

from __future__ import annotations

from typing import Any

import jax
import keras
import numpy as np
from keras.utils import unpack_x_y_sample_weight

from keras_lsrec.training import keras_private
from keras_lsrec.training.steps import LARGEST, batch_size


def train_step(model: keras.Model, tables: Any, keras_step: Any, state: Any, data: Any) -> Any:
    if tables is None or not tables.active:
        return keras_step(state, data)
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
    logs, metrics_values = _update_metrics(model, metrics_values, unscaled_loss, x, y, y_pred, sample_weight)
    return logs, (trainable, non_trainable, optimizer_values, metrics_values)


def _update_metrics(
    model: keras.Model, values: Any, loss: Any, x: Any, y: Any, y_pred: Any, sample_weight: Any
) -> tuple[Any, list]:
    """The loss tracker and the compiled metrics updated statelessly; the
    logs and the new metric variable values."""
    mapping = list(zip(model.metrics_variables, values, strict=True))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        keras_private.loss_tracker(model).update_state(loss, sample_weight=batch_size(x))
        logs = model.compute_metrics(x, y, y_pred, sample_weight)
    new_values = []
    for variable in model.metrics_variables:
        value = scope.get_current_value(variable)
        new_values.append(variable.value if value is None else value)
    return logs, new_values


def write_rows(variable: keras.Variable, ids: Any, values: Any) -> None:
    variable.assign(variable.value.at[ids].set(values))


def write_positions(variable: keras.Variable, ids: Any, positions: Any) -> None:
    variable.assign(variable.value.at[ids].set(LARGEST).at[ids].min(positions))


def unsupported() -> str | None:
    return None


def process_place() -> tuple[int, int]:
    return jax.process_index(), jax.process_count()


def placed_elsewhere(variable: keras.Variable, distribution: Any) -> str | None:
    """Where `variable` lives when that is not the mesh of `distribution`
    (a model built before it, or under another mesh); `None` when it is."""
    sharding = getattr(variable.value, "sharding", None)
    if sharding is None:
        return None
    mesh = distribution.device_mesh.backend_mesh
    on = getattr(sharding, "mesh", None)
    if on is not None:  # laid out on a mesh: it must be this one
        if on == mesh:
            return None
        return f"a mesh of shape {dict(on.shape)} (the distribution's: {dict(mesh.shape)})"
    devices = set(sharding.device_set)
    if devices == set(mesh.devices.flat):
        return None
    return f"{len(devices)} device(s) ({sorted(str(d) for d in devices)[:4]})"


def local_batch_divisor(distribution: Any) -> int:
    """How many parts this process's batch is split into: the places along the
    batch axis of the mesh that hold a device of this process (the whole axis
    in one process). Keras lays a batch out over that axis
    (`Distribution.get_data_layout`), and jax refuses a split that is not even."""
    name = distribution.batch_dim_name
    mesh = distribution.device_mesh
    if name is None or name not in mesh.axis_names:
        return 1
    devices = np.moveaxis(np.asarray(mesh.backend_mesh.devices), list(mesh.axis_names).index(name), 0)
    places = devices.reshape(devices.shape[0], -1)  # a row per place along the batch axis
    process = jax.process_index()
    return sum(any(d.process_index == process for d in place) for place in places)
