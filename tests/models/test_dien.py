"""DIEN's auxiliary next-behaviour loss reaches the training loss on every
backend (through the row-sparse step), and only in training."""

import keras
import numpy as np
from test_case import small_batch

from keras_lsrec.models import DIEN


def test_auxiliary_loss_is_added_in_training_only(row_data):
    x, y = small_batch(row_data, 8)
    losses, weights = [], None
    for weight in (0.0, 2.0):
        keras.utils.set_random_seed(0)
        model = DIEN(row_data.schema, embedding_dim=4, mlp_units=(8,), auxiliary_loss_weight=weight)
        weights = model.get_weights() if weights is None else weights
        model.set_weights(weights)  # the same extractor, attention and tower in both
        model.compile(keras.optimizers.SGD(0.0), "binary_crossentropy", table_min_rows=0)
        assert model.table_training is not None and model.table_training.active
        losses.append(float(model.train_on_batch(x, y)))
    assert losses[1] - losses[0] > 0.2  # 2 x the next-behaviour loss (about log 4 at the start)
    np.testing.assert_allclose(float(model.evaluate(x, y, verbose=0)), losses[0], rtol=1e-5)
