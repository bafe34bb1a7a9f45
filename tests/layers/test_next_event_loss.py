"""NextEventLoss (DIEN's auxiliary loss) against a numpy reference."""

import keras
import numpy as np
import pytest
from references import make_mask
from test_case import TestCase, right_pad_rows, to_numpy

from keras_lsrec.layers import NextEventLoss

B, L, D = 4, 6, 3


def softplus(x):
    return np.log1p(np.exp(x))


def np_next_event_loss(states, events, mask):
    """Pairs of consecutive valid events; the negative of an event is the
    event of the previous row (cyclically) with as many events after it."""
    rows = [np.nonzero(m)[0] for m in mask]  # valid positions, oldest first
    total, pairs = 0.0, 0
    for b, valid in enumerate(rows):
        other = rows[(b - 1) % len(rows)]
        for i in range(len(valid) - 1):
            t, nxt = valid[i], valid[i + 1]
            pairs += 1
            total += softplus(-states[b, t] @ events[b, nxt])
            age = len(valid) - 1 - (i + 1)  # events after the positive
            if age < len(other):
                negative = events[(b - 1) % len(rows), other[len(other) - 1 - age]]
                total += softplus(states[b, t] @ negative)
    return total / max(pairs, 1)


def data(seed):
    rng = np.random.default_rng(seed)
    return dict(
        states=rng.normal(size=(B, L, D)).astype("float32"),
        events=rng.normal(size=(B, L, D)).astype("float32"),
        mask=make_mask(rng, B, L),
    )


class TestNextEventLoss(TestCase):
    def test_matches_numpy_on_either_padding(self):
        states, events, mask = data(1).values()
        layer = NextEventLoss(1.0)
        want = np_next_event_loss(states, events, mask)
        np.testing.assert_allclose(float(to_numpy(layer.loss(states, events, mask))), want, rtol=1e-5)
        right = right_pad_rows([states, events, mask], mask)
        np.testing.assert_allclose(float(to_numpy(layer.loss(*right))), want, rtol=1e-5)
        assert float(to_numpy(layer.loss(states, events, np.zeros_like(mask)))) == 0.0  # all padding
        assert float(to_numpy(layer.loss(states[:, :0], events[:, :0], mask[:, :0]))) == 0.0  # L = 0

    def test_adds_the_weighted_loss_in_training_only(self):
        states, events, mask = data(2).values()
        layer = NextEventLoss(0.5)
        out = layer(states, events, mask=mask, training=True)
        np.testing.assert_array_equal(to_numpy(out), states)
        assert len(layer.losses) == 1
        np.testing.assert_allclose(
            float(to_numpy(layer.losses[0])), 0.5 * np_next_event_loss(states, events, mask), rtol=1e-5
        )
        layer(states, events, mask=mask, training=False)
        assert not layer.losses

    def test_layer_contract(self):
        self.run_layer_test(
            NextEventLoss,
            {"weight": 1.0},
            data(3),
            (B, L, D),
            expected_num_trainable_weights=0,
            sequence_args=("states", "events"),
            output_sequence=True,
        )

    @pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="backend-independent")
    def test_rejects_a_negative_weight(self):
        with pytest.raises(ValueError, match="weight"):
            NextEventLoss(-1.0)
