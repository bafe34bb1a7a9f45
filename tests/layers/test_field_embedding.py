"""FieldEmbedding: one table per id field, concatenated."""

import numpy as np
import pytest
from references import left_padded_ids
from test_case import TestCase, to_numpy

from keras_lsrec.layers import FieldEmbedding

B, L = 4, 7
VOCAB = {"item": 30, "category": 5, "time": 9}


class TestFieldEmbedding(TestCase):
    def test_matches_the_tables(self):
        ids = left_padded_ids(np.random.default_rng(0), VOCAB)
        layer = FieldEmbedding(VOCAB, output_dim=3)
        out = to_numpy(layer(ids))
        tables = [to_numpy(layer.tables[f].embeddings)[ids[f]] for f in VOCAB]
        np.testing.assert_allclose(out, np.concatenate(tables, -1), atol=1e-7)

    def test_layer_contract(self):
        self.run_layer_test(
            FieldEmbedding,
            dict(vocab_sizes=VOCAB, output_dim=3),
            dict(inputs=left_padded_ids(np.random.default_rng(1), VOCAB)),
            (B, L, 9),
            expected_num_trainable_weights=3,
            sequence_args=("inputs",),
            output_sequence=True,
        )

    def test_rejects_bad_arguments(self):
        with pytest.raises(ValueError, match="output_dim"):
            FieldEmbedding({"item": 3}, output_dim=0)
        with pytest.raises(ValueError, match="vocab_sizes"):
            FieldEmbedding({"item": 0}, output_dim=2)
        with pytest.raises(ValueError, match="Missing id field"):
            FieldEmbedding({"item": 3, "category": 2}, 2)({"item": np.ones((1, 2), "int32")})


ITEM_FEATURES = {"topics": {"kind": "categorical", "vocab_size": 12, "max_values": 3, "dim": None}}
ITEM_FEATURES["image"] = {"kind": "dense", "dim": 5, "output_dim": None}


def with_item_features(rng, right_padded=False):
    """Left- (or right-) padded ids plus each event's bag of topics (padded at the end,
    some empty) and image vector; zeros at padded events."""
    ids = left_padded_ids(rng, VOCAB)
    if right_padded:  # the same events, moved to the front of each row
        order = np.argsort(ids["item"] == 0, axis=1, kind="stable")
        ids = {f: np.take_along_axis(x, order, 1) for f, x in ids.items()}
    valid = ids["item"] != 0
    count = rng.integers(0, 4, (B, L))
    topics = np.where(np.arange(3) < count[..., None], rng.integers(1, 12, (B, L, 3)), 0)
    ids["topics"] = np.where(valid[..., None], topics, 0).astype("int32")
    ids["image"] = np.where(valid[..., None], rng.normal(size=(B, L, 5)), 0).astype("float32")
    return ids


def np_field_embedding(layer, x):
    """Independent reference: each field's table row; a bag's mean of its non-zero ids'
    rows (zeros when empty); the image's x W + b; concatenated in that order."""
    parts = [to_numpy(layer.tables[f].embeddings)[x[f]] for f in VOCAB]
    encoders = layer.item_features.encoders
    table = to_numpy(encoders["topics"].embeddings)
    bags = np.zeros((B, L, 3))
    for b in range(B):
        for t in range(L):
            ids = [i for i in x["topics"][b, t] if i != 0]
            if ids:
                bags[b, t] = table[ids].mean(0)
    image = x["image"] @ to_numpy(encoders["image"].kernel) + to_numpy(encoders["image"].bias)
    return np.concatenate(parts + [bags, image], -1)


class TestItemFeatures(TestCase):
    @pytest.mark.parametrize("right_padded", [False, True])
    def test_matches_numpy(self, right_padded):
        x = with_item_features(np.random.default_rng(3), right_padded)
        layer = FieldEmbedding(VOCAB, output_dim=3, item_features=ITEM_FEATURES)
        out = to_numpy(layer(x))
        assert out.shape == (B, L, 5 * 3) and layer.blocks == 5
        np.testing.assert_allclose(out, np_field_embedding(layer, x), atol=1e-5)

    def test_a_target_set_and_the_all_padding_row(self):
        x = with_item_features(np.random.default_rng(4))
        layer = FieldEmbedding(VOCAB, output_dim=3, item_features=ITEM_FEATURES)
        out = to_numpy(layer(x))
        # Row 0 is all padding: the id blocks read row 0 of each table, empty bags are zeros.
        np.testing.assert_allclose(out[0, :, 9:12], 0.0)
        # Candidates (B, C) embed like events (B, L): the same layer, the same rows.
        np.testing.assert_allclose(
            to_numpy(layer({k: v[:, :2] for k, v in x.items()})), out[:, :2], atol=1e-6
        )

    def test_layer_contract(self):
        self.run_layer_test(
            FieldEmbedding,
            dict(vocab_sizes=VOCAB, output_dim=3, item_features=ITEM_FEATURES),
            dict(inputs=with_item_features(np.random.default_rng(5))),
            (B, L, 15),
            expected_num_trainable_weights=6,
        )
