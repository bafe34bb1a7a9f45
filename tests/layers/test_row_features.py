"""RowFeatures: per-row categorical, multi-valued and dense features as one vector."""

import numpy as np
import pytest
from test_case import TestCase, to_numpy

from keras_lsrec.data import Categorical, Dense
from keras_lsrec.layers import RowFeatures

B = 5
FEATURES: dict[str, Categorical | Dense] = {
    "user_age": Categorical(10, dim=3),
    "user_tags": Categorical(20, max_values=4, dim=2),
    "context": Dense(6, output_dim=4),
}
CONFIGS = {name: f.get_config() for name, f in FEATURES.items()}


def batch(rng, empty_bag_row=0):
    tags = rng.integers(1, 20, (B, 4))
    count = rng.integers(1, 5, B)
    count[empty_bag_row] = 0
    tags = np.where(np.arange(4)[None, :] < count[:, None], tags, 0)  # padded at the end
    return {
        "user_age": rng.integers(0, 10, B).astype("int32"),
        "user_tags": tags.astype("int32"),
        "context": rng.normal(size=(B, 6)).astype("float32"),
    }


def np_row_features(layer, x):
    """Independent reference: table rows, the mean of a bag's non-zero ids' rows, x W + b."""
    age = to_numpy(layer.encoders["user_age"].embeddings)[x["user_age"]]
    table = to_numpy(layer.encoders["user_tags"].embeddings)
    tags = np.zeros((B, 2))
    for b in range(B):
        ids = [i for i in x["user_tags"][b] if i != 0]
        if ids:
            tags[b] = table[ids].mean(0)
    dense = layer.encoders["context"]
    context = x["context"] @ to_numpy(dense.kernel) + to_numpy(dense.bias)
    return np.concatenate([age, tags, context], -1)


class TestRowFeatures(TestCase):
    def test_matches_numpy(self):
        x = batch(np.random.default_rng(0))
        layer = RowFeatures(CONFIGS)
        out = to_numpy(layer(x))
        assert out.shape == (B, 3 + 2 + 4) and np.all(out[0, 3:5] == 0)  # row 0: an empty bag
        np.testing.assert_allclose(out, np_row_features(layer, x), atol=1e-6)

    def test_where_a_bag_is_padded_does_not_matter(self):
        x = batch(np.random.default_rng(1))
        layer = RowFeatures(FEATURES)
        moved = dict(x, user_tags=np.sort(x["user_tags"], axis=1))  # the zeros first
        np.testing.assert_allclose(to_numpy(layer(x)), to_numpy(layer(moved)), atol=1e-6)

    def test_layer_contract(self):
        self.run_layer_test(
            RowFeatures,
            dict(features=CONFIGS),
            dict(inputs=batch(np.random.default_rng(2))),
            (B, 9),
            expected_num_trainable_weights=4,
        )

    def test_refuses_bad_arguments(self):
        with pytest.raises(ValueError, match="at least one"):
            RowFeatures({})
        with pytest.raises(ValueError, match="Categorical"):
            RowFeatures({"a": {"kind": "text"}})
        with pytest.raises(ValueError, match="Missing feature"):
            RowFeatures(FEATURES)({"user_age": np.zeros(2, "int32")})
