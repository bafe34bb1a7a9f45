"""TopKRetrieval against an independent numpy reference."""

import keras
import numpy as np
import pytest
from references import make_mask
from test_case import TestCase, to_numpy

from keras_lsrec.layers import TopKRetrieval

B, L = 4, 7


def np_top_k(scores, mask, k):
    """Indices of the k best valid scores (descending) per row."""
    out = []
    for row in range(scores.shape[0]):
        valid = np.flatnonzero(mask[row])
        out.append(valid[np.argsort(-scores[row, valid], kind="stable")][:k])
    return out


def inputs(seed):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(B, L)).astype("float32")
    items = rng.normal(size=(B, L, 5)).astype("float32")
    return dict(scores=scores, items=items, mask=make_mask(rng))


class TestTopKRetrieval(TestCase):
    @pytest.mark.parametrize("k", [1, 3, L, L + 3])
    def test_matches_numpy(self, k):
        data = inputs(4)
        ids = np.random.default_rng(4).integers(1, 100, (B, L)).astype("int32")
        layer = TopKRetrieval(k)
        (got_items, got_ids), got_mask = to_numpy(
            layer(data["scores"], (data["items"], ids), mask=data["mask"])
        )
        assert got_items.shape == (B, k, 5) and got_mask.shape == (B, k)
        for row, best in enumerate(np_top_k(data["scores"], data["mask"], k)):
            n = len(best)
            np.testing.assert_array_equal(got_mask[row], np.arange(k) < n)
            np.testing.assert_allclose(got_items[row, :n], data["items"][row, best])
            np.testing.assert_array_equal(got_ids[row, :n], ids[row, best])
        assert not got_mask[0].any()  # an all-padding row retrieves nothing valid

    @pytest.mark.parametrize("k", [3, L + 3])
    def test_candidate_scores_retrieve_per_candidate(self, k):
        """Scores (B, C, L): each candidate its own k, gathered from the shared items."""
        data = inputs(5)
        scores = np.random.default_rng(5).normal(size=(B, 4, L)).astype("float32")
        got, got_mask = to_numpy(TopKRetrieval(k)(scores, data["items"], mask=data["mask"]))
        assert got.shape == (B, 4, k, 5) and got_mask.shape == (B, 4, k)
        for c in range(4):
            for row, best in enumerate(np_top_k(scores[:, c], data["mask"], k)):
                n = len(best)
                np.testing.assert_array_equal(got_mask[row, c], np.arange(k) < n)
                np.testing.assert_allclose(got[row, c, :n], data["items"][row, best])

    @pytest.mark.parametrize("k", [3, L + 3])
    def test_layer_contract(self, k):
        self.run_layer_test(
            TopKRetrieval,
            dict(k=k),
            inputs(5),
            ((B, k, 5), (B, k)),
            expected_num_trainable_weights=0,
            sequence_args=("scores", "items"),
            output_mask=True,
            run_training=False,
        )

    def test_dynamic_length_and_dict_items(self):
        scores_in = keras.Input((None,))
        items_in = keras.Input((None, 2))
        mask_in = keras.Input((None,), dtype="bool")
        out, out_mask = TopKRetrieval(4)(scores_in, {"x": items_in}, mask=mask_in)
        model = keras.Model([scores_in, items_in, mask_in], [out["x"], out_mask])
        for length in (2, 9):
            rng = np.random.default_rng(length)
            s = rng.normal(size=(3, length)).astype("float32")
            x = rng.normal(size=(3, length, 2)).astype("float32")
            got, got_mask = model.predict([s, x, np.ones((3, length), bool)], verbose=0)
            assert got.shape == (3, 4, 2)
            np.testing.assert_array_equal(got_mask.sum(-1), [min(4, length)] * 3)
            best = np.argsort(-s, axis=-1)[:, : min(4, length)]
            np.testing.assert_allclose(got[:, : best.shape[1]], np.take_along_axis(x, best[..., None], 1))

    @pytest.mark.parametrize("k", [0, -1, 2.5, True])
    def test_rejects_bad_k(self, k):
        with pytest.raises(ValueError, match="`k`"):
            TopKRetrieval(k)
