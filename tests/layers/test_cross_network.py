"""CrossNetwork (DCNv2's cross layers) against an independent numpy reference."""

import keras
import numpy as np
import pytest
from references import np_cross_network, randomize_statistics
from test_case import TestCase, to_numpy

from keras_lsrec.layers import CrossNetwork


def factors(layer):
    """`(kernels per layer, biases)` of `layer`, by weight name."""
    weights = {v.path.rsplit("/", 1)[-1]: to_numpy(v) for v in layer.weights}
    kernels, biases = [], []
    for i in range(layer.num_layers):
        if layer.low_rank is None:
            kernels.append([weights[f"cross_{i}_kernel"]])
        else:
            kernels.append([weights[f"cross_{i}_down_kernel"], weights[f"cross_{i}_up_kernel"]])
        biases.append(weights[f"cross_{i}_bias"])
    return kernels, biases


class TestCrossNetwork(TestCase):
    @pytest.mark.parametrize("kwargs", [dict(num_layers=3), dict(num_layers=2, low_rank=3)])
    def test_matches_numpy(self, kwargs):
        rng = np.random.default_rng(1)
        x = rng.normal(size=(4, 2, 7)).astype("float32")  # rows of candidates: any leading axes
        layer = CrossNetwork(**kwargs)
        layer.build(x.shape)
        randomize_statistics(layer, rng)  # biases too: nonzero
        np.testing.assert_allclose(
            to_numpy(layer(x)), np_cross_network(x, *factors(layer)), atol=1e-5, rtol=1e-5
        )

    def test_one_layer_is_a_degree_two_polynomial(self):
        """`x_1 = x_0 * (x_0 W + b) + x_0`: doubling the input scales the cross term by 4."""
        layer = CrossNetwork(num_layers=1)
        x = np.random.default_rng(2).normal(size=(3, 5)).astype("float32")
        cross = lambda v: to_numpy(layer(v)) - v - v * to_numpy(layer.biases[0])  # noqa: E731
        np.testing.assert_allclose(cross(2 * x), 4 * cross(x), atol=1e-5, rtol=1e-5)

    def test_layer_contract(self):
        """Low rank here; the full-rank form runs the contract inside `DCNv2Tower`'s."""
        x = np.random.default_rng(3).normal(size=(4, 6)).astype("float32")
        self.run_layer_test(
            CrossNetwork,
            dict(num_layers=2, low_rank=2),
            dict(inputs=x),
            (4, 6),
            expected_num_trainable_weights=6,
        )

    @pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="backend-independent")
    @pytest.mark.parametrize(
        "kwargs, match", [(dict(num_layers=0), "num_layers"), (dict(low_rank=0), "low_rank")]
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            CrossNetwork(**kwargs)
