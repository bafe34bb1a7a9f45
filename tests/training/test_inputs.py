"""Input validation at the entry points, whatever the input type: dicts,
PyDatasets, tf.data, generators; labels; empty batches."""

import keras
import numpy as np
import pytest
from test_case import small_batch

from keras_lsrec.data import ArrayDataset, SequenceDataset, SequenceSchema
from keras_lsrec.data.dataset import ShuffledBatches
from keras_lsrec.models import TWIN
from keras_lsrec.training.inputs import validated

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


def wider(schema, extra=10):
    """`schema` with a larger item vocabulary (another model's schema)."""
    return schema.replace(vocab_sizes={**schema.vocab_sizes, "item": schema.vocab_sizes["item"] + extra})


def test_a_library_dataset_checked_against_another_schema_is_checked_against_the_model(model, row_data):
    """Before: an `ArrayDataset` built without `schema=`, or with another model's, passed through
    unchecked: an id outside the model's vocabulary trained to NaN on jax and failed inside a
    gather on tensorflow and torch."""
    x, y = small_batch(row_data, 8)
    schema = row_data.schema
    bad = bad_ids(x, schema)
    for data in (ArrayDataset(bad, y, 4), ArrayDataset(bad, y, 4, schema=wider(schema))):
        for call in (
            lambda data=data: model.fit(data, epochs=1, verbose=0),
            lambda data=data: model.evaluate(data, verbose=0),
            lambda data=data: model.predict(data, verbose=0),
            lambda data=data: model.fit(x, y, validation_data=data, epochs=1, verbose=0),
        ):
            with pytest.raises(
                ValueError,
                match=r"This ArrayDataset does not fit the model's schema \(its vocabulary of `item` is "
                r"\d+ > the model's \d+\): `history_item` holds id \d+ at history_item\[\d+, "
                r"\d+\], outside the vocabulary",
            ):
                call()
    checked = ArrayDataset(x, y, 4)  # its own ids fit the model: passes through as it is
    assert validated(checked, schema) is checked
    other = ArrayDataset(x, y, 4, schema=wider(schema))  # another schema, ids that fit: checked now
    assert validated(other, schema) is other
    history = model.fit(other, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def sequence_data(vocab_sizes, max_len=3, items=(1, 2, 3, 4, 5)):
    """Two users (3 and 2 events), three examples."""
    return SequenceDataset(
        {"item": np.array(items), "category": np.array([1, 1, 2, 2, 3])},
        np.array([0, 3, 5]),
        {
            "user": np.array([0, 0, 1]),
            "end": np.array([2, 3, 4]),
            "label": np.array([1.0, 0.0, 1.0]),
            "target_item": np.array([3, 7, 5]),
            "target_category": np.array([2, 1, 3]),
        },
        max_len=max_len,
        vocab_sizes=vocab_sizes,
        batch_size=2,
    )


def test_a_sequence_dataset_is_checked_against_the_model_schema():
    schema = SequenceSchema({"item": 10, "category": 4}, max_len=3, time_vocab_size=4)
    model = TWIN(schema, **SMALL)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    same = sequence_data({"item": 10, "category": 4})
    assert validated(same, schema) is same
    larger = sequence_data({"item": 50, "category": 4})  # a larger vocabulary, ids that fit: checked now
    assert validated(larger, schema) is larger
    assert np.isfinite(model.fit(larger, epochs=1, verbose=0).history["loss"][0])
    outside = sequence_data({"item": 50, "category": 4}, items=(1, 2, 30, 4, 5))
    with pytest.raises(
        ValueError,
        match=r"This SequenceDataset does not fit .*`sequences\['item'\]` holds id 30 at "
        r"sequences\['item'\]\[2\], outside the vocabulary \[0, 10\).*vocab_sizes=\{'item': 50",
    ):
        model.fit(outside, epochs=1, verbose=0)
    with pytest.raises(
        ValueError, match=r"max_len=5 > the model's 3\): `history_item` has length 5 > max_len=3"
    ):
        model.fit(sequence_data({"item": 10, "category": 4}, max_len=5), epochs=1, verbose=0)
    with pytest.raises(
        ValueError, match=r"`history_time` .* reaches 3 in example 1, outside the vocabulary \[0, 3\)"
    ):
        validated(same, schema.replace(time_vocab_size=3))
    with pytest.raises(
        ValueError, match=r"lacks the model's keys \['history_shop', 'target_shop'\]\): Missing"
    ):
        validated(same, schema.replace(vocab_sizes={"item": 10, "category": 4, "shop": 3}))


class OwnBatches(ShuffledBatches):
    """A user's own subclass: it checks nothing when built."""

    def __init__(self, x, y):
        self.x, self.y = x, y
        super().__init__(batch_size=4, shuffle=False, seed=0)

    @property
    def num_examples(self):
        return len(self.y)

    def rows(self, rows):
        return {k: v[rows] for k, v in self.x.items()}, self.y[rows]


def test_a_shuffled_batches_subclass_that_checks_nothing_is_checked_batch_by_batch(model, row_data):
    """Before: every `ShuffledBatches` passed through unchecked, whatever it held."""
    x, y = small_batch(row_data, 8)
    own = OwnBatches(x, y)
    assert validated(own, row_data.schema) is not own  # wrapped: every batch checked as it is drawn
    with pytest.raises(ValueError, match="history_item.*outside the vocabulary"):
        model.fit(OwnBatches(bad_ids(x, row_data.schema), y), epochs=1, verbose=0)
