"""FeatureGating (FinalMLP's feature selection) against an independent numpy reference."""

import keras
import numpy as np
import pytest
from references import np_dense_stack, np_feature_gating
from test_case import TestCase, to_numpy

from keras_lsrec.layers import FeatureGating


def gate_layers(layer):
    return [
        (to_numpy(d.kernel), to_numpy(d.bias)) for d in layer.gate.stack if isinstance(d, keras.layers.Dense)
    ]


class TestFeatureGating(TestCase):
    def test_matches_numpy_with_a_context(self):
        rng = np.random.default_rng(4)
        x = rng.normal(size=(4, 3, 6)).astype("float32")
        context = rng.normal(size=(4, 3, 5)).astype("float32")
        layer = FeatureGating(hidden_units=(7,))
        got = to_numpy(layer(x, context=context))
        expected = np_feature_gating(x, np_dense_stack(context, gate_layers(layer)))
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5)

    def test_matches_numpy_with_the_learned_context(self):
        """Without a context the gate reads its learned vector: one gate for every row."""
        rng = np.random.default_rng(5)
        x = rng.normal(size=(4, 6)).astype("float32")
        layer = FeatureGating(hidden_units=(7, 3), context_dim=4)
        got = to_numpy(layer(x))
        logits = np_dense_stack(to_numpy(layer.context)[None], gate_layers(layer))
        np.testing.assert_allclose(got, np_feature_gating(x, logits), atol=1e-5, rtol=1e-5)
        assert np.all((got / x > 0) & (got / x < 2))

    def test_layer_contract(self):
        """With a context here; the learned context runs the contract inside `FinalMLPTower`'s."""
        rng = np.random.default_rng(6)
        data = dict(
            inputs=rng.normal(size=(4, 6)).astype("float32"),
            context=rng.normal(size=(4, 3)).astype("float32"),
        )
        self.run_layer_test(
            FeatureGating,
            dict(hidden_units=(5,), context_dim=3),
            data,
            (4, 6),
            expected_num_trainable_weights=4,
        )

    @pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="backend-independent")
    @pytest.mark.parametrize(
        "kwargs, match", [(dict(hidden_units=(0,)), "hidden_units"), (dict(context_dim=0), "context_dim")]
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            FeatureGating(**kwargs)
