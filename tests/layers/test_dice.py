"""Dice (DIN's data-adaptive activation) against an independent numpy reference."""

import numpy as np
from references import np_batch_norm, np_sigmoid, randomize_statistics
from test_case import TestCase, assert_close, to_numpy

from keras_lsrec.layers import Dice

B = 4


class TestDice(TestCase):
    def test_matches_numpy(self):
        rng = np.random.default_rng(6)
        x = rng.normal(size=(B, 5)).astype("float32")
        layer = Dice()
        layer.build(x.shape)
        randomize_statistics(layer, rng)
        p = np_sigmoid(np_batch_norm(x, layer.norm))
        assert_close(layer(x, training=False), p * x + (1 - p) * to_numpy(layer.alpha) * x)

    def test_layer_contract(self):
        rng = np.random.default_rng(7)
        x = rng.normal(size=(B, 3, 5)).astype("float32")
        mask = np.arange(3)[None, :] < np.array([[0], [3], [1], [2]])
        self.run_layer_test(
            Dice,
            dict(),
            dict(inputs=x, mask=mask),
            (B, 3, 5),
            expected_num_trainable_weights=1,
            expected_num_non_trainable_weights=2,
            sequence_args=("inputs",),
            output_sequence=True,
        )
