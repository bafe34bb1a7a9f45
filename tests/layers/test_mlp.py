"""MLP (the tower) against an independent numpy reference."""

import numpy as np
import pytest
from references import np_batch_norm, np_sigmoid, randomize_statistics
from test_case import TestCase, to_numpy

from keras_lsrec.layers import MLP

B = 4


def np_mlp(layer, x):
    for sub in layer.stack:
        name = type(sub).__name__
        if name == "BatchNormalization":
            x = np_batch_norm(x, sub)
        elif name == "Dense":
            x = x @ to_numpy(sub.kernel) + to_numpy(sub.bias)
        elif name == "PReLU":
            x = np.maximum(x, 0) + to_numpy(sub.alpha) * np.minimum(x, 0)
        elif name == "Dice":
            p = np_sigmoid(np_batch_norm(x, sub.norm))
            x = p * x + (1 - p) * to_numpy(sub.alpha) * x
        elif name == "Dropout":
            pass  # inference mode
        elif name == "Activation":
            x = {"relu": lambda t: np.maximum(t, 0), "linear": lambda t: t}[sub.activation.__name__](x)
        else:
            raise AssertionError(name)
    return x


# (kwargs, output units, trainable weights, non-trainable weights)
CASES = [
    (dict(hidden_units=(6, 4), activation="prelu", input_batch_norm=True, output_units=1), 1, 10, 2),
    (dict(hidden_units=(5,), activation="dice", batch_norm=True), 5, 5, 4),
    (dict(hidden_units=(3, 3), activation="relu", dropout=0.2, output_units=2), 2, 6, 0),
]


class TestMLP(TestCase):
    @pytest.mark.parametrize("kwargs", [c[0] for c in CASES])
    def test_matches_numpy(self, kwargs):
        rng = np.random.default_rng(5)
        x = rng.normal(size=(B, 9)).astype("float32")
        layer = MLP(**kwargs)
        layer.build(x.shape)
        randomize_statistics(layer, rng)
        np.testing.assert_allclose(to_numpy(layer(x, training=False)), np_mlp(layer, x), atol=1e-5, rtol=1e-5)

    @pytest.mark.parametrize("kwargs, units, trainable, non_trainable", CASES)
    def test_layer_contract(self, kwargs, units, trainable, non_trainable):
        """Rows of candidates with a mask: missing rows are 'padding' of the set."""
        rng = np.random.default_rng(6)
        x = rng.normal(size=(B, 5, 9)).astype("float32")
        mask = np.arange(5)[None, :] < np.array([[0], [5], [2], [4]])
        self.run_layer_test(
            MLP,
            kwargs,
            dict(inputs=x, mask=mask),
            (B, 5, units),
            expected_num_trainable_weights=trainable,
            expected_num_non_trainable_weights=non_trainable,
            sequence_args=("inputs",),
            output_sequence=True,
        )

    @pytest.mark.parametrize("activation", ["prelu", "dice"])
    def test_batch_statistics_skip_masked_rows(self, activation):
        """Training-mode batch norm with a row mask: the valid rows' outputs and the
        moving statistics are those of the valid rows alone, whatever the padding holds."""
        rng = np.random.default_rng(7)
        x = rng.normal(size=(4, 5, 6)).astype("float32")
        mask = np.arange(5)[None, :] < np.array([[5], [3], [1], [4]])
        layer = MLP(
            hidden_units=(4,), activation=activation, input_batch_norm=True, batch_norm=True, output_units=1
        )
        layer.build(x.shape)
        junk = np.where(mask[..., None], x, 1e3 * rng.normal(size=x.shape)).astype("float32")
        got = to_numpy(layer(junk, training=True, mask=mask))
        norm = layer.stack[0]
        # Moving mean after one step: momentum update towards the valid rows' mean only.
        np.testing.assert_allclose(
            to_numpy(norm.moving_mean), (1 - norm.momentum) * x[mask].mean(0), atol=1e-5
        )
        # The valid rows equal the same rows computed alone (as one flat batch).
        flat = to_numpy(layer(x[mask][None], training=True))[0]
        np.testing.assert_allclose(got[mask], flat, atol=1e-4, rtol=1e-4)
        assert np.all(np.isfinite(got))

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(dropout=1.0), "dropout"),
            (dict(hidden_units=(0,)), "hidden_units"),
            (dict(output_units=0), "output_units"),
        ],
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            MLP(**kwargs)
