"""DecoupledEmbedding: DARE's attention and representation tables."""

import numpy as np
from references import left_padded_ids
from test_case import TestCase, to_numpy

from keras_lsrec.layers import DecoupledEmbedding

B, L = 4, 7
VOCAB = {"item": 20, "category": 4}


class TestDecoupledEmbedding(TestCase):
    def test_two_tables_with_their_own_dims(self):
        ids = left_padded_ids(np.random.default_rng(1), VOCAB)
        layer = DecoupledEmbedding(VOCAB, attention_dim=2, representation_dim=5)
        att, rep = to_numpy(layer(ids))
        assert att.shape == (B, L, 4) and rep.shape == (B, L, 10)
        for out, tables in ((att, layer.attention.tables), (rep, layer.representation.tables)):
            expected = np.concatenate([to_numpy(tables[f].embeddings)[ids[f]] for f in VOCAB], -1)
            np.testing.assert_allclose(out, expected, atol=1e-7)
        # The two tables are distinct variables.
        assert len({v.path for v in layer.trainable_variables}) == 4

    def test_layer_contract(self):
        self.run_layer_test(
            DecoupledEmbedding,
            dict(vocab_sizes=VOCAB, attention_dim=2, representation_dim=5),
            dict(inputs=left_padded_ids(np.random.default_rng(2), VOCAB)),
            ((B, L, 4), (B, L, 10)),
            expected_num_trainable_weights=4,
            sequence_args=("inputs",),
            output_sequence=True,
        )
