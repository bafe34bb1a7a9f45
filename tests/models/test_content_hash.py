"""SDIM and ETA hash the item's content, not its position (issue 34): `item_content`
drops the `time` block; old `.keras` files keep hashing the whole embedding. The
dot-product searches (TWIN, DARE, SIM's soft search) read it with
`search_position=False`."""

import keras
import numpy as np
import pytest
from test_case import small_batch, to_numpy

from keras_lsrec.data import Categorical, Dense
from keras_lsrec.layers import FieldEmbedding
from keras_lsrec.models import DARE, ETA, SDIM, SIM, TWIN
from keras_lsrec.models.wiring import field_vocab_sizes, item_content, split_inputs


@pytest.mark.parametrize("with_item_features", [False, True])
def test_item_content_drops_the_time_block(row_data, with_item_features):
    features = {"image": Dense(3), "tags": Categorical(9, max_values=2)} if with_item_features else {}
    schema = row_data.schema.replace(item_features=features or None)
    x = schema.random_batch(4, length=6, seed=0, dtype="int32")
    target, history, _ = split_inputs(x, schema)
    layer = FieldEmbedding(field_vocab_sizes(schema), 2, item_features=features or None)
    full = to_numpy(layer(history))
    blocks = np.split(full, full.shape[-1] // 2, axis=-1)  # ids (item, category), time, features
    time = len(schema.fields)
    expected = np.concatenate(blocks[:time] + blocks[time + 1 :], axis=-1)
    np.testing.assert_allclose(to_numpy(item_content(layer(history), schema, 2)), expected)
    # The time block is what `history_time` moves: the content does not move with it.
    moved = dict(history, time=np.where(history["time"] > 0, history["time"] % 5 + 1, 0))
    np.testing.assert_allclose(to_numpy(item_content(layer(moved), schema, 2)), expected)
    assert not np.allclose(to_numpy(layer(moved)), full)


@pytest.mark.parametrize("cls, layer", [(SDIM, "sampling"), (ETA, "hash")])
def test_the_hash_reads_the_content_unless_asked(cls, layer, row_data):
    schema = row_data.schema
    width = {}
    for hash_position in (False, True):
        model = cls(schema, embedding_dim=4, hash_position=hash_position, mlp_units=(8,))
        hashing = model.get_layer(layer)
        kernel = next(w for w in hashing.weights if len(w.shape) >= 2)
        width[hash_position] = kernel.shape[-2] if len(kernel.shape) == 2 else kernel.shape[0]
        if not hash_position:  # (one call: the content path; the other is the model of before)
            x, _ = small_batch(row_data, 4)
            assert np.all(np.isfinite(to_numpy(model(x))))
    assert width == {False: 4 * len(schema.fields), True: 4 * (len(schema.fields) + 1)}
    # A `.keras` config from before the argument existed: hashes the whole embedding, as trained.
    config = cls(schema, embedding_dim=4, hash_position=True).get_config()
    del config["hash_position"]
    assert cls.from_config(config).hyperparameters["hash_position"] is True


@pytest.mark.parametrize("cls, kwargs", [(TWIN, {}), (DARE, {}), (SIM, {"search": "soft"})])
def test_search_scores_read_positions_only_when_asked(cls, kwargs, row_data):
    x, _ = small_batch(row_data, 4)
    time = x["history_time"]
    moved = {**x, "history_time": np.where(time > 0, time % 7 + 1, 0)}  # other positions, same events
    changed = {}
    for search_position in (False, True):
        model = cls(row_data.schema, search_position=search_position, mlp_units=(8,), **kwargs)
        scores = keras.Model(model.inputs, model.get_layer("search").input[0])
        before, after = scores.predict_on_batch(x), scores.predict_on_batch(moved)
        changed[search_position] = not np.allclose(before, after)
    assert changed == {False: False, True: True}
