"""DCNv2Tower (cross network + deep MLP -> logit) against an independent numpy reference."""

import keras
import numpy as np
import pytest
from references import np_batch_norm, np_cross_network, np_dense_stack, randomize_statistics
from test_case import TestCase, to_numpy
from test_cross_network import factors

from keras_lsrec.layers import DCNv2Tower


def dense(layer):
    return to_numpy(layer.kernel), to_numpy(layer.bias)


def np_tower(tower, x):
    if tower.norm is not None:
        x = np_batch_norm(x, tower.norm)
    crossed = np_cross_network(x, *factors(tower.cross))
    if tower.deep is None:
        features = crossed
    else:
        layers = [dense(d) for d in tower.deep.stack if isinstance(d, keras.layers.Dense)]
        relu = lambda t: np.maximum(t, 0)  # noqa: E731
        deep_input = crossed if tower.structure == "stacked" else x
        deep = relu(np_dense_stack(deep_input, layers, relu))
        features = deep if tower.structure == "stacked" else np.concatenate([crossed, deep], -1)
    return np_dense_stack(features, [dense(tower.output_dense)])


class TestDCNv2Tower(TestCase):
    @pytest.mark.parametrize(
        "kwargs",
        [
            dict(structure="parallel", input_batch_norm=True),
            dict(structure="stacked", low_rank=2),
            dict(hidden_units=()),  # the cross network alone
        ],
    )
    def test_matches_numpy(self, kwargs):
        rng = np.random.default_rng(9)
        x = rng.normal(size=(4, 3, 6)).astype("float32")
        tower = DCNv2Tower(**{"num_cross_layers": 2, "hidden_units": (5, 4), "activation": "relu", **kwargs})
        tower.build(x.shape)
        randomize_statistics(tower, rng)
        got = to_numpy(tower(x, training=False))
        np.testing.assert_allclose(got, np_tower(tower, x), atol=1e-4, rtol=1e-4)

    def test_layer_contract(self):
        """Rows of candidates with a mask: the batch statistics read the present ones only."""
        rng = np.random.default_rng(10)
        x = rng.normal(size=(4, 5, 6)).astype("float32")
        mask = np.arange(5)[None, :] < np.array([[0], [5], [2], [4]])
        self.run_layer_test(
            DCNv2Tower,
            dict(num_cross_layers=2, hidden_units=(4,), input_batch_norm=True),
            dict(inputs=x, mask=mask),
            (4, 5, 1),
            expected_num_trainable_weights=11,  # BN 2, cross 4, dense + PReLU 3, output 2
            expected_num_non_trainable_weights=2,
            sequence_args=("inputs",),
            output_sequence=True,
        )

    @pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="backend-independent")
    @pytest.mark.parametrize(
        "kwargs, match",
        [(dict(structure="crossed"), "structure"), (dict(num_cross_layers=0), "num_layers")],
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            DCNv2Tower(**kwargs)
