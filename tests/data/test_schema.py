"""SequenceSchema (the batch format) and the padding helper."""

import numpy as np
import pytest

from keras_lsrec.data import SequenceSchema, pad_histories


def test_schema_inputs_and_config():
    schema = SequenceSchema({"item": 10, "category": 3, "shop": 4}, max_len=7, time_vocab_size=8)
    inputs = schema.inputs()
    assert sorted(inputs) == [
        "history_category",
        "history_item",
        "history_shop",
        "history_time",
        "target_category",
        "target_item",
        "target_shop",
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
        (dict(vocab_sizes={"item": 5, "action": 3}, max_len=5), "actions"),
        (dict(vocab_sizes={"item": 5}, max_len=5, actions=0), "actions"),
        (dict(vocab_sizes={"item": 5}, max_len=5, actions=31), "actions"),
        (dict(vocab_sizes={"item": 5}, max_len=5, actions=True), "actions"),
        (dict(vocab_sizes={"item": 5}, max_len=5, features={"action": "categorical:4"}), "action"),
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


@pytest.mark.parametrize(
    "sequences, match",
    [
        ([[1, 2], [3, 2**31]], r"Sequence 1 holds 2147483648 at position 1: ids must be integers in \[0, 21"),
        ([[2**63 + 5]], r"Sequence 0 holds 9223372036854775813 at position 0"),
        ([[1, 2.5]], r"Sequence 0 holds 2\.5 at position 1"),
        ([[1], [3, -4]], r"Sequence 1 holds -4 at position 1"),
        ([[1.0, float("nan")]], r"Sequence 0 holds nan at position 1"),
        ([["7"]], r"Sequence 0 holds '7' at position 0"),
    ],
)
def test_pad_histories_refuses_ids_it_cannot_hold_exactly(sequences, match):
    """Before: ids >= 2^31 wrapped (2^31 became padding 0 at int32) and 2.5 was floored to 2."""
    with pytest.raises(ValueError, match=match):
        pad_histories(sequences, max_len=3)


def test_pad_histories_keeps_integral_floats_and_wider_dtypes():
    np.testing.assert_array_equal(pad_histories([[1.0, 2.0]], max_len=3), [[0, 1, 2]])
    wide = pad_histories([[2**31, 2**40]], max_len=2, dtype="int64")
    assert wide.dtype == np.int64 and wide.tolist() == [[2**31, 2**40]]
    with pytest.raises(ValueError, match="max_len"):
        pad_histories([[1]], max_len=0)


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.array([0.0, np.nan]), r"Labels must be finite\. Received labels\[1\] = nan"),
        (np.array([np.inf, 1.0]), r"Labels must be finite\. Received labels\[0\] = inf"),
        (np.array([1.0, 2.0]), r"Labels must be 0 or 1\. Received labels\[1\] = 2\.0"),
        (np.array([-1.0, 1.0]), r"Labels must be 0 or 1\. Received labels\[0\] = -1\.0"),
        (np.array([[0.0], [1.0]]), r"shape of `target_item`, \(2,\)\. Received \(2, 1\)\. .*reshape\(-1\)"),
        (np.array(["0", "1"]), r"Labels must be numbers"),
    ],
)
def test_validate_labels_checks_single_target_labels(labels, match):
    """Before: a NaN label passed as "not 0 or 1" only by accident of `isin`, and string labels
    compared unequal; now each problem has its message, naming `labels[i]` and the value."""
    schema = SequenceSchema({"item": 10}, max_len=3)
    with pytest.raises(ValueError, match=match):
        schema.validate_labels(np.array([1, 2]), labels)
    schema.validate_labels(np.array([1, 2]), np.array([True, False]))
    schema.validate_labels(np.array([1, 2]), np.array([0, 1], dtype="int8"))


def test_validate_names_the_entry_and_value():
    schema = SequenceSchema({"item": 10}, max_len=3)
    x = {"target_item": np.array([1, 2]), "history_item": np.array([[0, 1, 2], [3, 14, 5]])}
    with pytest.raises(ValueError, match=r"`history_item` holds id 14 at history_item\[1, 1\], outside"):
        schema.validate(x)
    with pytest.raises(ValueError, match=r"`target_item` holds a negative id \(-3\) at target_item\[1\]"):
        schema.validate({**x, "history_item": x["history_item"] % 10, "target_item": np.array([1, -3])})
    with pytest.raises(ValueError, match=r"`target_item` must hold integer ids.*target_item\[1\] = 2\.5"):
        schema.validate({**x, "history_item": x["history_item"] % 10, "target_item": np.array([1.0, 2.5])})


def test_pad_histories_of_new_users_and_zero_length():
    """Empty sequences are rows of padding; `max_len=0` (a day of new users only) gives (N, 0)
    histories (before: refused); the arguments are checked in the house style (before:
    `truncate="no"` truncated)."""
    np.testing.assert_array_equal(pad_histories([[], []], 2), [[0, 0], [0, 0]])
    assert pad_histories([], 3).shape == (0, 3)
    assert pad_histories([[], []], 0).shape == (2, 0)
    assert pad_histories(np.zeros((2, 0), "int64"), np.int64(0)).shape == (2, 0)
    assert pad_histories([[1, 2], []], 0, truncate=True).shape == (2, 0)
    with pytest.raises(ValueError, match="Sequence 0 has 2 events > max_len=0"):
        pad_histories([[1, 2], []], 0)
    np.testing.assert_array_equal(pad_histories(iter([[1], [2, 3]]), 2), [[0, 1], [2, 3]])
    with pytest.raises(ValueError, match=r"`truncate` must be True or False\. Received: `truncate='no'`"):
        pad_histories([[1, 2, 3]], 2, truncate="no")
    for value in (True, -1, 2.0):
        with pytest.raises(
            ValueError, match=rf"`max_len` must be an integer >= 0\. Received: `max_len={value!r}`"
        ):
            pad_histories([[1]], value)
    with pytest.raises(ValueError, match="`dtype` must be an integer dtype"):
        pad_histories([[1]], 2, dtype="not a dtype")
    with pytest.raises(ValueError, match="`sequences` must be a list of id sequences"):
        pad_histories("123", 2)


def test_actions_are_a_history_only_bitmask():
    """`history_action` (B, L): bitmasks of `actions` kinds; no target key; round-trips; validated."""
    schema = SequenceSchema({"item": 10}, max_len=4, candidates=3, actions=3)
    assert sorted(schema.inputs()) == ["history_action", "history_item", "target_item"]
    assert schema.has_actions and schema.vocab_size("history_action") == 8
    assert SequenceSchema.from_config(schema.get_config()) == schema
    assert "actions" not in SequenceSchema({"item": 10}, max_len=4).get_config()  # old configs unchanged
    batch = schema.random_batch(6, seed=1)
    schema.validate(batch)
    assert (
        batch["history_action"].max() < 8 and (batch["history_action"][batch["history_item"] == 0] == 0).all()
    )
    for value, where in ((8, "[1, 2]"), (-1, "[1, 2]")):
        bad = {**batch, "history_action": batch["history_action"].copy()}
        bad["history_action"][1, 2] = value
        with pytest.raises(
            ValueError, match=rf"`history_action` holds {value} at history_action\{where[:-1]}\]"
        ):
            schema.validate(bad)
    with pytest.raises(ValueError, match="history_action.*integer"):
        schema.validate({**batch, "history_action": batch["history_action"] + 0.5})
