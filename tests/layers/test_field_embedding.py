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
