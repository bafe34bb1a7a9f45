"""ActionEncoding: one vector per action kind, summed over the set bits of each bitmask."""

import numpy as np
import pytest
from test_case import TestCase, to_numpy

from keras_lsrec.layers import ActionEncoding

B, L, K, D = 3, 6, 4, 5


def np_action_encoding(table, actions):
    """Bit by bit, with Python integers: the rows of `table` whose bit is set, summed."""
    out = np.zeros(actions.shape + (table.shape[1],), "float32")
    for index in np.ndindex(*actions.shape):
        for kind in range(table.shape[0]):
            if (int(actions[index]) >> kind) & 1:
                out[index] += table[kind]
    return out


def bitmasks(seed, shape=(B, L)):
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 1 << K, shape).astype("int32")
    actions[0] = 0  # no action anywhere in row 0 (also what padding holds)
    return actions


class TestActionEncoding(TestCase):
    def test_matches_numpy(self):
        actions = bitmasks(1)
        layer = ActionEncoding(K, D, embeddings_initializer="normal")
        out = to_numpy(layer(actions))
        table = to_numpy(layer.embeddings)
        np.testing.assert_allclose(out, np_action_encoding(table, actions), atol=1e-6)
        np.testing.assert_array_equal(out[0], 0.0)  # no action: the zero vector
        # One bit: exactly that kind's row; bits at or above num_actions are ignored.
        np.testing.assert_allclose(to_numpy(layer(np.array([4, 4 + (1 << K)]))), table[[2, 2]], atol=1e-6)
        # Any leading shape: candidate sets (B, C) or (B, C, L).
        nested = bitmasks(2, (2, 3, L))
        np.testing.assert_allclose(to_numpy(layer(nested)), np_action_encoding(table, nested), atol=1e-6)

    def test_layer_contract(self):
        self.run_layer_test(
            ActionEncoding,
            {"num_actions": K, "output_dim": D},
            {"actions": bitmasks(3)},
            (B, L, D),
            expected_num_trainable_weights=1,
        )

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(num_actions=0, output_dim=D), "num_actions"),
            (dict(num_actions=32, output_dim=D), "num_actions"),
            (dict(num_actions=K, output_dim=0), "output_dim"),
        ],
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            ActionEncoding(**kwargs)
