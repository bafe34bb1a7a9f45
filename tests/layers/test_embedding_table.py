"""EmbeddingTable: one field's table, whose training may read a block of its rows."""

import numpy as np
from keras import ops
from references import left_padded_ids
from test_case import TestCase, to_numpy

from keras_lsrec.layers import EmbeddingTable

B, L = 4, 7
VOCAB = {"item": 30, "category": 5, "time": 9}


class TestEmbeddingTable(TestCase):
    def test_layer_contract(self):
        self.run_layer_test(
            EmbeddingTable,
            dict(input_dim=30, output_dim=3, field="item"),
            dict(inputs=left_padded_ids(np.random.default_rng(1), VOCAB)["item"]),
            (B, L, 3),
            expected_num_trainable_weights=1,
            sequence_args=("inputs",),
            output_sequence=True,
        )

    def test_a_row_block_is_read_in_place_of_the_table(self):
        """After `read_rows(position, rows)`, id `i` reads
        `rows[position[i]]`, whatever the table holds."""
        rng = np.random.default_rng(2)
        x = left_padded_ids(rng, VOCAB)["item"]
        layer = EmbeddingTable(30, 3, field="item")
        dense = to_numpy(layer(x))
        ids = np.concatenate([[0], x.ravel()]).astype("int32")  # the batch's ids, repeats included
        position = np.zeros(30, "int32")
        position[ids] = np.arange(len(ids))  # (a later occurrence wins)
        rows = rng.normal(size=(len(ids), 3)).astype("float32")
        layer.read_rows(ops.convert_to_tensor(position), ops.convert_to_tensor(rows))
        assert layer.reads_rows
        np.testing.assert_array_equal(to_numpy(layer(x)), rows[position[x]])
        table_rows = to_numpy(layer.embeddings)[ids]
        layer.read_rows(ops.convert_to_tensor(position), ops.convert_to_tensor(table_rows))
        np.testing.assert_array_equal(to_numpy(layer(x)), dense)
        layer.read_table()
        assert not layer.reads_rows
        np.testing.assert_array_equal(to_numpy(layer(x)), dense)
