"""HSTUBlock against an independent numpy reference, on the M-FALCON layout."""

import numpy as np
import pytest
from references import make_mask, np_hstu_block, np_mfalcon_mask, np_relative_attention_bias
from test_case import TestCase, to_numpy

from keras_lsrec.layers import HSTUBlock
from keras_lsrec.layers.mfalcon_mask import mfalcon_positions

B, L, C, D = 3, 6, 3, 8


def inputs(seed):
    """Tokens [history | candidates], their M-FALCON positions, validity and times."""
    rng = np.random.default_rng(seed)
    history = make_mask(rng, B, L)  # row 0 all padding
    candidates = np.ones((B, C), bool)
    candidates[2, 1] = False
    positions, valid = (to_numpy(t) for t in mfalcon_positions(history, candidates))
    times = np.concatenate([rng.integers(1, 200, (B, L)) * history, np.zeros((B, C), int)], 1)
    x = rng.normal(size=(B, L + C, D)).astype("float32")
    return x, positions.astype("int32"), valid, times.astype("int32"), history, candidates


def randomize_bias(block, seed):
    rng = np.random.default_rng(seed)
    for weight in block.relative_bias.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))


def reference(block, x, positions, valid, times, history, candidates):
    visible = np_mfalcon_mask(history, candidates)
    bias = np_relative_attention_bias(block.relative_bias, positions, positions, times, times)
    return np.where(valid[..., None], np_hstu_block(block, x, visible, bias), x)


class TestHSTUBlock(TestCase):
    @pytest.mark.parametrize(
        "kwargs",
        [
            dict(time_buckets=8, normalizer_length=None),
            dict(time_buckets=None, normalizer_length=20, value_dim=3),
            dict(time_buckets=8, normalizer_length=20, query_block_size=4),
        ],
    )
    def test_matches_numpy(self, kwargs):
        x, positions, valid, times, history, candidates = inputs(60)
        block = HSTUBlock(num_heads=2, key_dim=4, max_distance=5, **kwargs)
        out = block(x, positions, mask=valid, times=times)
        randomize_bias(block, 61)
        out = to_numpy(block(x, positions, mask=valid, times=times))
        want = reference(block, x, positions, valid, times, history, candidates)
        np.testing.assert_allclose(out, want, atol=2e-5, rtol=1e-5)

    def test_candidates_in_one_pass_equal_separate_passes(self):
        x, positions, valid, times, history, candidates = inputs(63)
        block = HSTUBlock(num_heads=2, key_dim=4, max_distance=5, time_buckets=8, normalizer_length=20)
        together = to_numpy(block(x, positions, mask=valid, times=times))
        for c in range(C):
            keep = list(range(L)) + [L + c]
            alone = to_numpy(block(x[:, keep], positions[:, keep], mask=valid[:, keep], times=times[:, keep]))
            present = candidates[:, c]
            np.testing.assert_allclose(alone[present, -1], together[present, L + c], atol=1e-5)
            np.testing.assert_allclose(
                alone[:, :L], together[:, :L], atol=1e-6
            )  # the history never reads them

    def test_layer_contract(self):
        x, positions, valid, times, *_ = inputs(64)
        self.run_layer_test(
            HSTUBlock,
            dict(
                num_heads=2,
                key_dim=4,
                max_distance=5,
                time_buckets=8,
                dropout=0.1,
                normalizer_length=20,
                query_block_size=4,
                remat=True,
            ),
            dict(sequence=x, positions=positions, mask=valid, times=times),
            (B, L + C, D),
            expected_num_trainable_weights=10,
            sequence_args=("sequence", "positions", "times"),
            output_sequence=True,
        )

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(num_heads=0), "num_heads"),
            (dict(key_dim=-1), "key_dim"),
            (dict(max_distance=0), "max_distance"),
            (dict(dropout=1.0), "dropout"),
            (dict(query_block_size=0), "query_block_size"),
            (dict(normalizer_length=0), "normalizer_length"),
            (dict(epsilon=0), "epsilon"),
        ],
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            HSTUBlock(**kwargs)
