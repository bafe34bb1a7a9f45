"""Gradient mechanics: the same optimizer update on every backend."""

import types

import keras
import numpy as np
import pytest
from test_case import small_batch, to_numpy

import keras_lsrec


@pytest.mark.parametrize("name", ["din", "dare"])
def test_first_adam_step_moves_every_touched_embedding_entry_by_the_learning_rate(name, row_data):
    """Adam's first step is `-lr * g / (|g| + eps)`: +-lr for every entry with
    a gradient, however many times its id occurs in the batch. (tensorflow's
    per-lookup sparse gradients made Keras' Adam move repeated ids by less;
    the tensorflow train step hands the optimizer dense gradients.)"""
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


def test_compile_leaves_the_optimizer_as_keras_made_it(row_data):
    """No method of the user's optimizer is replaced (on one device no table is
    padded, so not even the checkpoint methods), and no state is stashed on it."""
    optimizer = keras.optimizers.Adam()
    attributes = set(vars(optimizer))
    model = keras_lsrec.models.get("din")(row_data.schema, mlp_units=(8,))
    model.compile(optimizer, "binary_crossentropy", table_min_rows=0)
    assert model.table_training is not None and model.table_training.active
    for method in ("apply", "apply_gradients", "save_own_variables", "load_own_variables"):
        assert isinstance(getattr(optimizer, method), types.MethodType), method
    assert not [a for a in set(vars(optimizer)) - attributes if "lsrec" in a]
