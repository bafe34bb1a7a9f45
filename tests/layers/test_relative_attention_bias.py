"""RelativeAttentionBias against an independent numpy reference."""

import numpy as np
import pytest
from references import np_relative_attention_bias, np_time_bucket
from test_case import TestCase, assert_close, to_numpy

from keras_lsrec.layers import RelativeAttentionBias
from keras_lsrec.layers.relative_attention_bias import time_buckets_of

B, Q, K, H = 3, 4, 6, 2


def inputs(seed):
    rng = np.random.default_rng(seed)
    key_positions = rng.integers(0, 12, (B, K)).astype("int32")
    query_positions = rng.integers(0, 12, (B, Q)).astype("int32")
    key_times = rng.integers(0, 300, (B, K)).astype("int32")
    query_times = rng.integers(0, 300, (B, Q)).astype("int32")
    return query_positions, key_positions, query_times, key_times


def randomized(layer, seed):
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    return layer


class TestRelativeAttentionBias(TestCase):
    @pytest.mark.parametrize(
        "max_distance, time_buckets, with_times",
        [(4, 6, True), (4, 6, False), (None, 6, True), (20, None, True)],
    )
    def test_matches_numpy(self, max_distance, time_buckets, with_times):
        qp, kp, qt, kt = inputs(50)
        layer = RelativeAttentionBias(num_heads=H, max_distance=max_distance, time_buckets=time_buckets)
        layer.build()
        randomized(layer, 51)
        times = (qt, kt) if with_times else (None, None)
        assert_close(layer(qp, kp, *times), np_relative_attention_bias(layer, qp, kp, *times))

    def test_time_buckets_are_exact_log2(self):
        deltas = np.array([0, 1, 2, 3, 4, 7, 8, 9, 1023, 1024, 1025, 2**20 - 1, 2**20, 2**23 + 5], "int32")
        got = to_numpy(time_buckets_of(deltas, 64))
        np.testing.assert_array_equal(got, [np_time_bucket(d, 64) for d in deltas])
        assert to_numpy(time_buckets_of(deltas, 5)).max() == 4

    def test_layer_contract(self):
        qp, kp, qt, kt = inputs(52)
        self.run_layer_test(
            RelativeAttentionBias,
            dict(num_heads=H, max_distance=4, time_buckets=6, bias_initializer="random_normal"),
            dict(query_positions=qp, key_positions=kp, query_times=qt, key_times=kt),
            (B, H, Q, K),
            expected_num_trainable_weights=2,
        )

    @pytest.mark.parametrize(
        "kwargs, match",
        [
            (dict(num_heads=0), "num_heads"),
            (dict(max_distance=0), "max_distance"),
            (dict(time_buckets=1), "time_buckets"),
            (dict(time_buckets=2.5), "time_buckets"),
        ],
    )
    def test_rejects_bad_arguments(self, kwargs, match):
        with pytest.raises(ValueError, match=match):
            RelativeAttentionBias(**kwargs)
