"""SequenceSchema (the batch format) and the padding helper."""

import numpy as np
import pytest

from keras_lsrec.data import SequenceSchema, pad_histories


def test_schema_inputs_and_config():
    schema = SequenceSchema({"item": 10, "category": 3, "shop": 4}, max_len=7, time_vocab_size=8)
    inputs = schema.inputs()
    assert sorted(inputs) == [
        "history_category", "history_item", "history_shop", "history_time",
        "target_category", "target_item", "target_shop",
    ]
    assert tuple(inputs["history_item"].shape) == (None, None)
    assert tuple(inputs["target_item"].shape) == (None,)
    assert schema.fields == ("item", "category", "shop")
    assert SequenceSchema.from_config(schema.get_config()) == schema
    listwise = SequenceSchema({"item": 10}, max_len=5, candidates=4)
    assert tuple(listwise.inputs()["target_item"].shape) == (None, 4)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(vocab_sizes={"category": 3}, max_len=5), "item"),
        (dict(vocab_sizes={"item": 1}, max_len=5), "item"),
        (dict(vocab_sizes={"item": 5, "time": 4}, max_len=5), "time"),
        (dict(vocab_sizes={"item": 5}, max_len=0), "max_len"),
        (dict(vocab_sizes={"item": 5}, max_len=5, candidates=0), "candidates"),
        (dict(vocab_sizes={"item": 5, "bad name": 3}, max_len=5), "identifier"),
    ],
)
def test_schema_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SequenceSchema(**kwargs)


def test_validate_labels():
    schema = SequenceSchema({"item": 10}, max_len=3)
    x = {"target_item": np.array([1, 2]), "history_item": np.array([[0, 1, 2], [3, 4, 5]])}
    schema.validate(x, labels=np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="Labels must have the shape of `target_item`"):
        schema.validate(x, labels=np.array([0.0]))
    with pytest.raises(ValueError, match="0 or 1"):
        schema.validate(x, labels=np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="length 2, other history"):
        SequenceSchema({"item": 10, "category": 3}, max_len=3).validate(
            {**x, "target_category": np.array([1, 1]), "history_category": np.ones((2, 2), int)}
        )


def test_pad_histories_left_pads_and_refuses_to_truncate_silently():
    out = pad_histories([[1, 2], [], [3, 4, 5]], max_len=3)
    np.testing.assert_array_equal(out, [[0, 1, 2], [0, 0, 0], [3, 4, 5]])
    with pytest.raises(ValueError, match="Sequence 0 has 4 events > max_len=3"):
        pad_histories([[1, 2, 3, 4]], max_len=3)
    np.testing.assert_array_equal(pad_histories([[1, 2, 3, 4]], 3, truncate=True), [[2, 3, 4]])
