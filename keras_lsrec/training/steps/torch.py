"""The torch train step with row-sparse tables (Keras' own without them)."""

from __future__ import annotations

from typing import Any

import keras
import torch
from keras.utils import unpack_x_y_sample_weight

from keras_lsrec.training import keras_private
from keras_lsrec.training.steps import LARGEST, batch_size


def train_step(model: keras.Model, tables: Any, keras_step: Any, data: Any) -> Any:
    if tables is None or not tables.active:
        return keras_step(data)
    x, y, sample_weight = unpack_x_y_sample_weight(data)
    with torch.no_grad():
        blocks = tables.blocks(x)
    rows = [b.rows.detach().requires_grad_(True) for b in blocks]
    with tables.reading(blocks, rows):
        y_pred = model(x, training=True)
    model.zero_grad()
    loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
    keras_private.loss_tracker(model).update_state(loss, sample_weight=batch_size(x))
    model.optimizer.scale_loss(loss).backward()
    dense_grads = [v.value.grad for v in tables.dense_variables]
    with torch.no_grad():
        dense_grads = tables.apply_rows(dense_grads, [r.grad for r in rows], blocks)
        model.optimizer.apply(dense_grads, tables.dense_variables)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def write_rows(variable: keras.Variable, ids: Any, values: Any) -> None:
    variable.value.data.index_copy_(0, ids.long(), values)


def write_positions(variable: keras.Variable, ids: Any, positions: Any) -> None:
    index = ids.long()
    variable.value.data.index_fill_(0, index, LARGEST)
    variable.value.data.scatter_reduce_(0, index, positions, reduce="amin")


def unsupported() -> str | None:
    return None
