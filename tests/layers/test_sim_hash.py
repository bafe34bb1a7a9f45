"""SimHash and CollisionPooling (ETA's search, SDIM) against independent numpy references."""

import keras
import numpy as np
import pytest
from references import make_mask
from test_case import TestCase, to_numpy

from keras_lsrec.layers import CollisionPooling, SimHash, TopKRetrieval

B, L, D = 4, 9, 6


def np_codes(x, projections, num_hashes, num_bits):
    signs = np.where(x @ projections >= 0, 1.0, -1.0)
    return signs.reshape(x.shape[:-1] + (num_hashes, num_bits))


def np_collision_pooling(layer, q, k, v, mask):
    """Per hash: the mean of the values whose code equals the query's; then the mean over hashes."""
    r = to_numpy(layer.hash.projections)
    qc = np_codes(q, r, layer.num_hashes, layer.num_bits)  # (B, H, n)
    kc = np_codes(k, r, layer.num_hashes, layer.num_bits)  # (B, L, H, n)
    out = np.zeros((q.shape[0], v.shape[-1]))
    for b in range(q.shape[0]):
        per_hash = []
        for h in range(layer.num_hashes):
            hit = [i for i in range(k.shape[1]) if mask[b, i] and np.array_equal(kc[b, i, h], qc[b, h])]
            per_hash.append(v[b, hit].mean(0) if hit else np.zeros(v.shape[-1]))
        out[b] = np.mean(per_hash, 0)
    return out


def inputs(seed):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(B, D)).astype("float32")
    k = rng.normal(size=(B, L, D)).astype("float32")
    k[:, ::3] = q[:, None] * 2.0  # some behaviours parallel to the query: they always collide
    v = rng.normal(size=(B, L, 5)).astype("float32")
    return dict(query=q, keys=k, values=v, mask=make_mask(rng, B, L))


class TestSimHash(TestCase):
    def test_codes_are_the_signs_of_fixed_projections(self):
        x = np.random.default_rng(0).normal(size=(3, 5, D)).astype("float32")
        layer = SimHash(num_bits=4, num_hashes=2, seed=7)
        codes = to_numpy(layer(x))
        assert codes.shape == (3, 5, 2, 4) and set(np.unique(codes)) <= {-1.0, 1.0}
        np.testing.assert_array_equal(codes, np_codes(x, to_numpy(layer.projections), 2, 4))
        assert not layer.trainable_weights and len(layer.non_trainable_weights) == 1
        # The same seed gives the same hashes; parallel vectors share their code.
        np.testing.assert_array_equal(to_numpy(SimHash(4, 2, seed=7)(x)), codes)
        np.testing.assert_array_equal(to_numpy(layer(3.0 * x)), codes)

    def test_layer_contract(self):
        self.run_layer_test(
            SimHash,
            dict(num_bits=8, num_hashes=2, seed=1),
            {"inputs": np.random.default_rng(1).normal(size=(B, D)).astype("float32")},
            (B, 2, 8),
            expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=1,
            run_training=False,
        )

    def test_rejects_bad_arguments(self):
        with pytest.raises(ValueError, match="num_bits"):
            SimHash(0)


class TestCollisionPooling(TestCase):
    @pytest.mark.parametrize("num_bits, num_hashes", [(1, 1), (2, 8), (3, 48)])
    def test_matches_numpy(self, num_bits, num_hashes):
        data = inputs(num_bits)
        layer = CollisionPooling(num_bits, num_hashes, seed=3)
        out = to_numpy(layer(**data))
        expected = np_collision_pooling(layer, *data.values())
        np.testing.assert_allclose(out, expected, atol=1e-5)
        np.testing.assert_array_equal(out[0], 0.0)  # all padding: nothing collides
        assert np.abs(out[1:]).sum() > 0  # the parallel behaviours always collide

    def test_candidate_sets_hash_the_history_once(self):
        data = inputs(4)
        queries = np.random.default_rng(4).normal(size=(B, 3, D)).astype("float32")
        layer = CollisionPooling(2, 8, seed=3)
        out = to_numpy(layer(queries, data["keys"], data["values"], mask=data["mask"]))
        assert out.shape == (B, 3, 5)
        for c in range(3):
            expected = np_collision_pooling(layer, queries[:, c], data["keys"], data["values"], data["mask"])
            np.testing.assert_allclose(out[:, c], expected, atol=1e-5)

    def test_layer_contract(self):
        self.run_layer_test(
            CollisionPooling,
            dict(num_bits=2, num_hashes=4, seed=0),
            inputs(5),
            (B, 5),
            expected_num_trainable_weights=0,
            expected_num_non_trainable_weights=1,
            sequence_args=("keys", "values"),
        )

    def test_rejects_mismatched_sizes(self):
        with pytest.raises(ValueError, match="one size"):
            CollisionPooling()(np.ones((2, 3), "float32"), np.ones((2, 4, 5), "float32"))


def test_top_k_with_a_mask_per_candidate():
    """SIM's hard search: each candidate retrieves among its own events (e.g. its category's)."""
    rng = np.random.default_rng(6)
    scores = rng.normal(size=(B, 3, L)).astype("float32")
    items = rng.normal(size=(B, L, 2)).astype("float32")
    own = rng.random((B, 3, L)) < 0.4
    got, got_mask = to_numpy(TopKRetrieval(3)(scores, items, mask=own))
    for b in range(B):
        for c in range(3):
            valid = np.flatnonzero(own[b, c])
            best = valid[np.argsort(-scores[b, c, valid], kind="stable")][:3]
            np.testing.assert_array_equal(got_mask[b, c], np.arange(3) < len(best))
            np.testing.assert_allclose(got[b, c, : len(best)], items[b, best])
    assert keras.ops.convert_to_numpy(got_mask).dtype == bool
