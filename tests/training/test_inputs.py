"""Input validation at the entry points, whatever the input type: dicts,
PyDatasets, tf.data, generators; labels; empty batches."""

import keras
import numpy as np
import pytest
from test_case import small_batch

from keras_lsrec.data import ArrayDataset
from keras_lsrec.models import TWIN

SMALL = dict(embedding_dim=2, k=3, mlp_units=(4,))


class Batches(keras.utils.PyDataset):
    """A user's own PyDataset: the same batch, `n` times."""

    def __init__(self, x, y, n=2):
        super().__init__()
        self.x, self.y, self.n = x, y, n

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return self.x, self.y


@pytest.fixture()
def model(row_data):
    model = TWIN(row_data.schema, **SMALL)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    return model


def bad_ids(x, schema):
    return {**x, "history_item": np.where(x["history_item"] > 0, schema.vocab_sizes["item"] + 3, 0)}


def test_a_pydataset_is_checked_batch_by_batch(model, row_data):
    x, y = small_batch(row_data, 8)
    model.fit(Batches(x, y), epochs=1, verbose=0)  # a good one trains
    with pytest.raises(ValueError, match="history_item.*outside the vocabulary"):
        model.fit(Batches(bad_ids(x, row_data.schema), y), epochs=1, verbose=0)
    with pytest.raises(ValueError, match="history_item.*outside the vocabulary"):
        model.evaluate(Batches(bad_ids(x, row_data.schema), y), verbose=0)
    with pytest.raises(ValueError, match="history_item.*outside the vocabulary"):
        model.fit(x, y, validation_data=Batches(bad_ids(x, row_data.schema), y), epochs=1, verbose=0)


def test_an_extra_key_is_refused_by_name_not_matched_by_position(row_data):
    schema = row_data.schema.replace(time_vocab_size=None)
    model = TWIN(schema, **SMALL)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = small_batch(row_data, 8)  # has history_time, which this schema does not
    for data in (x, Batches(x, y)):
        with pytest.raises(ValueError, match="history_time"):
            model.fit(data, y if data is x else None, epochs=1, verbose=0)
    with pytest.raises(ValueError, match="history_time"):
        model.predict(Batches(x, y), verbose=0)


def test_a_generator_is_checked(model, row_data):
    x, y = small_batch(row_data, 8)

    def batches():
        yield x, y
        yield x, np.full_like(y, np.nan)

    with pytest.raises(ValueError, match=r"labels\[0\] = nan"):
        model.fit(batches(), epochs=1, steps_per_epoch=2, verbose=0)


def test_a_tf_dataset_is_checked(model, row_data):
    tf = pytest.importorskip("tensorflow")
    x, y = small_batch(row_data, 8)
    renamed = {("history_items" if k == "history_item" else k): v for k, v in x.items()}
    with pytest.raises(ValueError, match="history_item"):  # by name, before any data is read
        model.fit(tf.data.Dataset.from_tensors((renamed, y)), epochs=1, verbose=0)
    model.fit(tf.data.Dataset.from_tensors((x, y)), epochs=1, verbose=0)
    with pytest.raises(Exception, match="history_item.*outside the vocabulary"):
        model.fit(tf.data.Dataset.from_tensors((bad_ids(x, row_data.schema), y)), epochs=1, verbose=0)


@pytest.mark.parametrize("value", [np.nan, 2.0, -1.0, 0.5])
def test_single_target_labels_must_be_zero_or_one(model, row_data, value):
    x, y = small_batch(row_data, 8)
    bad = y.astype("float32")
    bad[3] = value
    for call in (
        lambda: model.fit(x, bad, verbose=0),
        lambda: model.train_on_batch(x, bad),
        lambda: model.evaluate(x, bad, verbose=0),
        lambda: model.fit(ArrayDataset(x, bad, batch_size=4), verbose=0),
    ):
        with pytest.raises(ValueError, match=r"labels\[3\]"):
            call()


def test_labels_of_shape_b_by_1_are_accepted(model, row_data):
    x, y = small_batch(row_data, 8)
    model.fit(x, y[:, None], epochs=1, verbose=0)


def test_an_empty_batch_gives_no_predictions(model, row_data):
    x, _ = small_batch(row_data, 8)
    empty = {k: v[:0] for k, v in x.items()}
    assert model.predict(empty, verbose=0).shape == (0,)
    assert model.predict_on_batch(empty).shape == (0,)
