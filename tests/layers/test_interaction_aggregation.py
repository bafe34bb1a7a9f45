"""InteractionAggregation (FinalMLP's bilinear fusion) against an independent numpy reference."""

import keras
import numpy as np
import pytest
from references import np_interaction_aggregation
from test_case import TestCase, to_numpy

from keras_lsrec.layers import InteractionAggregation


class TestInteractionAggregation(TestCase):
    @pytest.mark.parametrize("num_heads, output_units", [(1, 1), (2, 3)])
    def test_matches_numpy(self, num_heads, output_units):
        rng = np.random.default_rng(7)
        x = rng.normal(size=(4, 2, 6)).astype("float32")
        y = rng.normal(size=(4, 2, 4)).astype("float32")
        layer = InteractionAggregation(num_heads, output_units)
        layer.build(x.shape, y.shape)
        layer.bias.assign(rng.normal(size=(output_units,)).astype("float32"))
        weights = [to_numpy(w) for w in (layer.x_kernel, layer.y_kernel, layer.bilinear_kernel, layer.bias)]
        np.testing.assert_allclose(
            to_numpy(layer(x, y)), np_interaction_aggregation(x, y, *weights), atol=1e-5, rtol=1e-5
        )

    def test_heads_relate_only_their_own_features(self):
        """Two heads: the first half of `x` never meets the second half of `y`."""
        layer = InteractionAggregation(num_heads=2)
        x, y = np.zeros((1, 4), "float32"), np.zeros((1, 4), "float32")
        x[0, 0], y[0, 3] = 1.0, 1.0
        layer.build(x.shape, y.shape)
        linear = to_numpy(layer.x_kernel)[0] + to_numpy(layer.y_kernel)[3]
        np.testing.assert_allclose(to_numpy(layer(x, y))[0], linear, atol=1e-6)

    def test_layer_contract(self):
        rng = np.random.default_rng(8)
        data = dict(x=rng.normal(size=(4, 6)).astype("float32"), y=rng.normal(size=(4, 8)).astype("float32"))
        self.run_layer_test(InteractionAggregation, dict(num_heads=2), data, (4, 1), 4)

    @pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="backend-independent")
    def test_rejects_heads_that_do_not_divide(self):
        with pytest.raises(ValueError, match="num_heads"):
            InteractionAggregation(num_heads=4)(np.ones((2, 6), "float32"), np.ones((2, 8), "float32"))
        with pytest.raises(ValueError, match="output_units"):
            InteractionAggregation(output_units=0)
