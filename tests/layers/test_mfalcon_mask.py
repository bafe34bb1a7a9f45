"""MFalconMask and the M-FALCON positions against an independent numpy reference."""

import numpy as np
import pytest
from references import make_mask, np_mfalcon_mask
from test_case import TestCase, scatter_rows, to_numpy

from keras_lsrec.layers import MFalconMask
from keras_lsrec.layers.mfalcon_mask import mfalcon_positions, visible_keys

B, L, C = 4, 7, 3


def masks(seed):
    rng = np.random.default_rng(seed)
    history = make_mask(rng, B, L)  # left-padded, row 0 all padding
    candidates = np.ones((B, C), bool)
    candidates[1, 2] = candidates[3, 0] = False  # missing candidates
    return history, candidates


class TestMFalconMask(TestCase):
    @pytest.mark.parametrize("num_context", [0, 2])
    def test_matches_numpy_whatever_the_padding(self, num_context):
        history, candidates = masks(40)
        layer = MFalconMask(num_context=num_context)
        for moved in (history, scatter_rows([history], history)[0], history[:, ::-1]):
            np.testing.assert_array_equal(
                to_numpy(layer(moved, candidates)), np_mfalcon_mask(moved, candidates, num_context)
            )

    def test_candidates_see_the_history_and_themselves_only(self):
        history, candidates = masks(41)
        mask = to_numpy(MFalconMask()(history, candidates))
        block = mask[:, L:, L:]  # candidates x candidates
        np.testing.assert_array_equal(block, np.eye(C)[None] * candidates[:, :, None])
        np.testing.assert_array_equal(mask[:, :L, L:], 0)  # the history never sees a candidate
        np.testing.assert_array_equal(mask[0, L:, :L], 0)  # an all-padding history: itself only

    def test_positions(self):
        history, candidates = masks(42)
        positions, valid = (to_numpy(t) for t in mfalcon_positions(history, candidates, num_context=1))
        counts = history.sum(1)
        for b in range(B):
            assert positions[b, 0] == 0 and valid[b, 0]
            np.testing.assert_array_equal(positions[b, 1:][:L][history[b]], np.arange(1, counts[b] + 1))
            np.testing.assert_array_equal(positions[b, 1 + L :], counts[b] + 1)
        np.testing.assert_array_equal(valid[:, 1:], np.concatenate([history, candidates], 1))
        # Blocks of queries give the rows of the whole mask.
        whole = to_numpy(visible_keys(positions, positions, valid))
        part = to_numpy(visible_keys(positions[:, 4:], positions, valid, query_offset=4))
        np.testing.assert_array_equal(part, whole[:, 4:])

    def test_layer_contract(self):
        history, candidates = masks(43)
        self.run_layer_test(
            MFalconMask,
            dict(num_context=1),
            dict(history_mask=history, candidate_mask=candidates),
            (B, 1 + L + C, 1 + L + C),
            expected_num_trainable_weights=0,
            run_training=False,
        )

    def test_rejects_bad_arguments(self):
        with pytest.raises(ValueError, match="num_context"):
            MFalconMask(num_context=-1)
