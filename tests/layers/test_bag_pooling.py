"""BagPooling: the masked mean (or sum) of a bag of embeddings."""

import numpy as np
import pytest
from references import make_mask
from test_case import TestCase, to_numpy

from keras_lsrec.layers import BagPooling

B, M, D = 4, 5, 3


def np_bag_pooling(values, mask, mode):
    """Loop reference: the values under the mask, summed or averaged; zeros for an empty bag."""
    out = np.zeros(values.shape[:1] + values.shape[2:], "float64")
    for b in range(values.shape[0]):
        kept = values[b][mask[b]]
        if len(kept):
            out[b] = kept.sum(0) if mode == "sum" else kept.mean(0)
    return out


class TestBagPooling(TestCase):
    @pytest.mark.parametrize("mode", ["mean", "sum"])
    def test_matches_numpy_with_masks_and_an_empty_bag(self, mode):
        rng = np.random.default_rng(0)
        values = rng.normal(size=(B, M, D)).astype("float32")
        mask = make_mask(rng, B, M)  # row 0: an empty bag
        out = to_numpy(BagPooling(mode)(values, mask=mask))
        np.testing.assert_allclose(out, np_bag_pooling(values, mask, mode), atol=1e-6)
        assert np.all(out[0] == 0)
        everything = to_numpy(BagPooling(mode)(values))
        np.testing.assert_allclose(everything, np_bag_pooling(values, np.ones((B, M), bool), mode), atol=1e-6)

    def test_layer_contract(self):
        rng = np.random.default_rng(1)
        self.run_layer_test(
            BagPooling,
            {},
            dict(inputs=rng.normal(size=(B, M, D)).astype("float32"), mask=make_mask(rng, B, M)),
            (B, D),
            expected_num_trainable_weights=0,
            sequence_args=("inputs",),
            run_training=False,
        )

    def test_rejects_an_unknown_mode(self):
        with pytest.raises(ValueError, match="mode"):
            BagPooling("max")
