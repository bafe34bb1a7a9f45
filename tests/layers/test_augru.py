"""AUGRU (and the plain GRU it is without attention) against a numpy reference."""

import keras
import numpy as np
import pytest
from references import make_mask, np_sigmoid
from test_case import TestCase, to_numpy

from keras_lsrec.layers import AUGRU

B, L, D, H = 4, 6, 5, 3


def np_augru(layer, x, attention, mask):
    """The recurrence, one row and one step at a time: padded steps skipped."""
    w, u = to_numpy(layer.kernel), to_numpy(layer.recurrent_kernel)
    b, c = to_numpy(layer.bias), to_numpy(layer.recurrent_bias)
    final = np.zeros((x.shape[0], H), "float32")
    states = np.zeros((x.shape[0], x.shape[1], H), "float32")
    for row in range(x.shape[0]):
        h = np.zeros(H)
        for t in range(x.shape[1]):
            if not mask[row, t]:
                continue
            gx, gh = x[row, t] @ w + b, h @ u + c
            update = np_sigmoid(gx[:H] + gh[:H])
            reset = np_sigmoid(gx[H : 2 * H] + gh[H : 2 * H])
            new = np.tanh(gx[2 * H :] + reset * gh[2 * H :])
            if attention is not None:
                update = attention[row, t] * update
            h = (1 - update) * h + update * new
            states[row, t] = h
        final[row] = h
    return final, states


def data(seed):
    rng = np.random.default_rng(seed)
    return dict(
        inputs=rng.normal(size=(B, L, D)).astype("float32"),
        attention=rng.uniform(size=(B, L)).astype("float32"),
        mask=make_mask(rng, B, L),
    )


class TestAUGRU(TestCase):
    @pytest.mark.parametrize("attend", [True, False], ids=["augru", "gru"])
    def test_matches_numpy(self, attend):
        x, a, mask = data(1).values()
        a = a if attend else None
        layer = AUGRU(H)
        final = to_numpy(layer(x, attention=a, mask=mask))
        want_final, want_states = np_augru(layer, x, a, mask)
        np.testing.assert_allclose(final, want_final, atol=1e-5)
        np.testing.assert_array_equal(final[0], 0.0)  # all padding: the zero state
        sequences = AUGRU.from_config({**layer.get_config(), "return_sequences": True})
        sequences.build(x.shape)
        sequences.set_weights(layer.get_weights())
        states = to_numpy(sequences(x, attention=a, mask=mask))
        np.testing.assert_allclose(states, want_states, atol=1e-5)  # zero at padding

    def test_candidate_sets_match_each_candidate(self):
        x, _, mask = data(2).values()
        scores = np.random.default_rng(2).uniform(size=(B, 3, L)).astype("float32")
        layer = AUGRU(H, return_sequences=True)
        out = to_numpy(layer(x, attention=scores, mask=mask))
        assert out.shape == (B, 3, L, H)
        for c in range(3):
            np.testing.assert_allclose(out[:, c], np_augru(layer, x, scores[:, c], mask)[1], atol=1e-5)

    def test_full_attention_is_the_gru_and_empty_sequences_the_zero_state(self):
        x, _, mask = data(3).values()
        layer = AUGRU(H)
        ones = np.ones((B, L), "float32")
        np.testing.assert_allclose(
            to_numpy(layer(x, attention=ones, mask=mask)), to_numpy(layer(x, mask=mask)), atol=1e-6
        )
        empty = to_numpy(layer(x[:, :0], attention=ones[:, :0], mask=mask[:, :0]))
        np.testing.assert_array_equal(empty, np.zeros((B, H), "float32"))

    @pytest.mark.parametrize("sequences", [False, True], ids=["final", "sequences"])
    def test_layer_contract(self, sequences):
        self.run_layer_test(
            AUGRU,
            {"units": H, "return_sequences": sequences},
            data(4),
            (B, L, H) if sequences else (B, H),
            expected_num_trainable_weights=4,
            sequence_args=("inputs", "attention"),
            output_sequence=sequences,
        )

    @pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="backend-independent")
    def test_rejects_bad_units(self):
        with pytest.raises(ValueError, match="units"):
            AUGRU(0)
