"""IdMatchAttention against an independent numpy reference (the quadratic form of the match kernel)."""

import numpy as np
import pytest
from references import make_mask
from test_case import TestCase, assert_close, to_numpy

from keras_lsrec.layers import IdMatchAttention

B, C, L, D = 4, 5, 9, 3


def np_id_match(candidate_ids, history_ids, values, mask, buckets):
    """o_j = [sum_i w_ji v_i / max(n_j, 1), log(1 + n_j)], w_ji = [c_j = h_i (mod buckets)] mask_i."""
    out = np.zeros(candidate_ids.shape + (values.shape[-1] + 1,))
    for b in range(candidate_ids.shape[0]):
        for j in range(candidate_ids.shape[1]):
            w = (candidate_ids[b, j] % buckets == history_ids[b] % buckets) & mask[b]
            n = w.sum()
            out[b, j, :-1] = (w[:, None] * values[b]).sum(0) / max(n, 1)
            out[b, j, -1] = np.log1p(n)
    return out


def random_inputs(seed, length=L, vocab=7):
    rng = np.random.default_rng(seed)
    mask = make_mask(rng, B, length)  # row 0: all padding
    history = np.where(mask, rng.integers(1, vocab, (B, length)), 0).astype("int32")
    candidates = rng.integers(0, vocab, (B, C)).astype("int32")  # 0: a missing candidate
    candidates[1, 0] = history[1][mask[1]][0]  # at least one match
    values = rng.normal(size=(B, length, D)).astype("float32")
    return candidates, history, values, mask


class TestIdMatchAttention(TestCase):
    @pytest.mark.parametrize("buckets", [64, 3])  # exact; hashed (ids share buckets)
    def test_matches_numpy(self, buckets):
        candidates, history, values, mask = random_inputs(30)
        layer = IdMatchAttention(buckets=buckets)
        out = to_numpy(layer(candidates, history, values, mask=mask))
        assert out.shape == (B, C, D + 1)
        np.testing.assert_allclose(
            out, np_id_match(candidates, history, values, mask, buckets), atol=1e-5, rtol=1e-5
        )
        np.testing.assert_array_equal(out[0], 0.0)  # an all-padding history: nothing matches
        assert out[1, 0, -1] > 0

    def test_without_mask_every_event_counts(self):
        candidates, history, values, _ = random_inputs(31)
        layer = IdMatchAttention(buckets=16)
        everything = np.ones(history.shape, bool)
        assert_close(
            layer(candidates, history, values), np_id_match(candidates, history, values, everything, 16)
        )

    @pytest.mark.parametrize("buckets", [64, 3])
    def test_layer_contract(self, buckets):
        candidates, history, values, mask = random_inputs(32)
        self.run_layer_test(
            IdMatchAttention,
            dict(buckets=buckets),
            dict(candidate_ids=candidates, history_ids=history, values=values, mask=mask),
            (B, C, D + 1),
            expected_num_trainable_weights=0,
            sequence_args=("history_ids", "values"),
        )

    def test_summaries_update_incrementally(self):
        candidates, history, values, mask = random_inputs(33, length=12)
        layer = IdMatchAttention(buckets=5)
        full = to_numpy(layer(candidates, history, values, mask=mask))
        old = to_numpy(layer.summaries(history[:, :8], values[:, :8], mask[:, :8]))
        new = to_numpy(layer.summaries(history[:, 8:], values[:, 8:], mask[:, 8:]))
        assert old.shape == (B, 5, D + 1)
        assert_close(layer.attend(candidates, old + new), full)

    def test_rejects_bad_buckets(self):
        with pytest.raises(ValueError, match="buckets"):
            IdMatchAttention(buckets=0)
