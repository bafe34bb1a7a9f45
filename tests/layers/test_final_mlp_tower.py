"""FinalMLPTower (two gated streams + bilinear fusion -> logit) against an independent numpy reference."""

import keras
import numpy as np
import pytest
from references import (
    np_dense_stack,
    np_feature_gating,
    np_interaction_aggregation,
    randomize_statistics,
)
from test_case import TestCase, to_numpy

from keras_lsrec.layers import FinalMLPTower


def denses(mlp):
    return [(to_numpy(d.kernel), to_numpy(d.bias)) for d in mlp.stack if isinstance(d, keras.layers.Dense)]


def np_tower(tower, x):
    relu = lambda t: np.maximum(t, 0)  # noqa: E731
    streams = []
    for gate, stream in zip(tower.gates, tower.streams, strict=True):
        logits = np_dense_stack(to_numpy(gate.context)[None], denses(gate.gate))
        streams.append(relu(np_dense_stack(np_feature_gating(x, logits), denses(stream), relu)))
    fusion = tower.fusion
    weights = [to_numpy(w) for w in (fusion.x_kernel, fusion.y_kernel, fusion.bilinear_kernel, fusion.bias)]
    return np_interaction_aggregation(*streams, *weights)


class TestFinalMLPTower(TestCase):
    def test_matches_numpy(self):
        rng = np.random.default_rng(11)
        x = rng.normal(size=(4, 3, 6)).astype("float32")
        tower = FinalMLPTower((6,), (5, 4), activation="relu", gate_units=(3,), num_heads=2)
        tower.build(x.shape)
        randomize_statistics(tower, rng)
        got = to_numpy(tower(x, training=False))
        np.testing.assert_allclose(got, np_tower(tower, x), atol=1e-4, rtol=1e-4)

    def test_streams_have_their_own_gates(self):
        tower = FinalMLPTower((4,), gate_units=(3,))
        tower.build((2, 6))
        assert not np.allclose(to_numpy(tower.gates[0].context), to_numpy(tower.gates[1].context))

    def test_layer_contract(self):
        """Rows of candidates with a mask: the batch statistics read the present ones only."""
        rng = np.random.default_rng(12)
        x = rng.normal(size=(4, 5, 6)).astype("float32")
        mask = np.arange(5)[None, :] < np.array([[0], [5], [2], [4]])
        self.run_layer_test(
            FinalMLPTower,
            dict(stream1_units=(4,), stream2_units=(6, 2), gate_units=(3,), num_heads=2, dropout=0.1),
            dict(inputs=x, mask=mask),
            (4, 5, 1),
            expected_num_trainable_weights=23,  # gates 5 + 5, streams 3 + 6, fusion 4
            sequence_args=("inputs",),
            output_sequence=True,
        )

    @pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="backend-independent")
    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(stream1_units=(6,), num_heads=4), "num_heads"),
            (dict(gate_units=(0,)), "gate_units"),
            (dict(stream2_units=(0,)), "stream2_units"),
        ],
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            FinalMLPTower(**kwargs)
