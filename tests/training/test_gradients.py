"""Gradient mechanics: the same optimizer update on every backend."""

import keras
import numpy as np
import pytest
from test_case import small_batch, to_numpy

import keras_lsrec
from keras_lsrec.training import prepare_optimizer


@pytest.mark.parametrize("name", ["din", "dare"])
def test_first_adam_step_moves_every_touched_embedding_entry_by_the_learning_rate(name, row_data):
    """Adam's first step is `-lr * g / (|g| + eps)`: +-lr for every entry with
    a gradient, however many times its id occurs in the batch. (tensorflow's
    per-lookup sparse gradients made Keras' Adam move repeated ids by less;
    `keras_lsrec.training.prepare_optimizer` hands the optimizer dense gradients.)"""
    model = keras_lsrec.models.get(name)(row_data.schema, mlp_units=(8,))
    lr = 0.01
    # epsilon far below any gradient here (without the tower's input BatchNorm some are ~1e-11)
    model.compile(optimizer=keras.optimizers.Adam(lr, epsilon=1e-20), loss="binary_crossentropy")
    x, y = small_batch(row_data)
    assert np.bincount(x["history_category"].ravel())[1:].max() > 1  # ids repeat in the batch
    tables = [v for v in model.trainable_weights if "embedding" in v.path]
    before = [to_numpy(v).copy() for v in tables]
    model.train_on_batch(x, y)
    for b, v in zip(before, tables, strict=True):
        step = np.abs(to_numpy(v) - b)
        moved = step[step > 0]
        # (entries whose gradient is within ~100x of eps move slightly less)
        assert moved.size and moved.max() < 1.001 * lr and moved.min() > 0.95 * lr, (v.path, moved.min())


def test_prepare_optimizer_is_idempotent():
    optimizer = keras.optimizers.Adam()
    apply = prepare_optimizer(optimizer).apply
    assert prepare_optimizer(optimizer).apply == apply  # wrapped once (tensorflow), or untouched
