"""ArrayDataset and SequenceDataset: seeded order, batches in the library's format, save/load, fit."""

import os
import re

import keras
import numpy as np
import pytest

from keras_lsrec.data import ArrayDataset, SequenceDataset, SequenceSchema, dare_protocol, leave_last_out
from keras_lsrec.data.dataset import _maps_file


def test_array_dataset_seeded_order_covers_every_row_once_per_epoch():
    # Every row is told apart by its target (1..10); labels are valid 0/1 (validated at construction).
    x = {
        "target_item": np.arange(1, 11, dtype="int32"),
        "history_item": np.arange(40, dtype="int32").reshape(10, 4),
    }
    y = (np.arange(1, 11) % 2).astype("float32")
    rows = x["target_item"]
    data = ArrayDataset(x, y, batch_size=4, shuffle=True, seed=7)
    assert len(data) == 3 and [len(data[i][1]) for i in range(3)] == [4, 4, 2]

    def epoch(dataset):
        return np.concatenate([dataset[i][0]["target_item"] for i in range(len(dataset))])

    first = epoch(data)
    assert sorted(first.tolist()) == rows.tolist() and first.tolist() != rows.tolist()
    batch, labels = data[0]
    np.testing.assert_array_equal(labels, batch["target_item"] % 2)  # rows stay aligned
    np.testing.assert_array_equal(batch["history_item"][:, 0], 4 * (batch["target_item"] - 1))
    data.on_epoch_end()
    second = epoch(data)
    assert sorted(second.tolist()) == rows.tolist() and second.tolist() != first.tolist()
    # The order depends on the seed only: a new dataset with the seed replays it.
    replay = ArrayDataset(x, y, batch_size=4, shuffle=True, seed=7)
    assert epoch(replay).tolist() == first.tolist()
    assert epoch(ArrayDataset(x, y, batch_size=4)).tolist() == rows.tolist()
    with pytest.raises(ValueError, match="history_item"):
        ArrayDataset({**x, "history_item": x["history_item"][:5]}, y)
    with pytest.raises(ValueError, match="batch_size"):
        ArrayDataset(x, y, batch_size=0)


def test_sequence_dataset_shuffles_saves_and_feeds_fit(tmp_path, make_events):
    from keras_lsrec.models import DARE

    splits = dare_protocol(make_events(), batch_size=64, seed=1)
    train = splits["train"]
    assert len(train) == int(np.ceil(train.num_examples / 64))
    first_epoch = train[0][1].copy(), train[0][0]["target_item"].copy()
    train.on_epoch_end()
    assert not np.array_equal(train[0][0]["target_item"], first_epoch[1])
    test = splits["test"]
    assert test[0][0]["target_item"].tolist() == test.examples["target_item"][:64].tolist()
    with pytest.raises(IndexError):
        train[len(train)]
    train.save(str(tmp_path / "train"))
    loaded = SequenceDataset.load(str(tmp_path / "train"))
    assert repr(loaded) == repr(train)
    for a, b in zip(loaded.arrays(), train.arrays(), strict=True):
        keras.tree.map_structure(np.testing.assert_array_equal, a, b)
    model = DARE(train.schema, attention_dim=2, representation_dim=2, k=5, mlp_units=(4,))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(train, validation_data=splits["validation"], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and np.isfinite(history.history["val_loss"][0])
    assert model.predict(splits["test"], verbose=0).shape == (splits["test"].num_examples,)


SCHEMA = SequenceSchema({"item": 10, "category": 4}, max_len=3)


def array_data(rows=6):
    rng = np.random.default_rng(0)
    x = {
        "target_item": rng.integers(1, 10, rows).astype("int32"),
        "target_category": rng.integers(1, 4, rows).astype("int32"),
        "history_item": rng.integers(0, 10, (rows, 3)).astype("int32"),
        "history_category": rng.integers(0, 4, (rows, 3)).astype("int32"),
    }
    return x, (np.arange(rows) % 2).astype("float32")


def changed(x, key, row, value, dtype=None):
    values = x[key].astype(dtype or x[key].dtype)
    values[row] = value
    return {**x, key: values}


SAME = "same"  # without a schema, the same message


@pytest.mark.parametrize(
    "change, match, without_schema",
    [
        (
            lambda x, y: (changed(x, "history_item", (2, 1), 50), y),
            r"`history_item` holds id 50 at history_item\[2, 1\], outside the vocabulary \[0, 10\)",
            None,
        ),  # without a schema, no vocabulary bound is known
        (
            lambda x, y: (changed(x, "target_category", 4, -1), y),
            r"`target_category` holds a negative id \(-1\) at target_category\[4\]",
            SAME,
        ),
        (
            lambda x, y: (changed(x, "target_item", 1, 2.5, "float64"), y),
            r"`target_item` must hold integer ids\. Received dtype float64: target_item\[1\] = 2\.5",
            SAME,
        ),
        (
            lambda x, y: ({**x, "target_shop": x["target_item"]}, y),
            r"Unknown field\(s\) \['target_shop'\]",
            r"Missing field\(s\) \['history_shop'\]",
        ),  # without a schema, a new field is expected in full
        (
            lambda x, y: ({k: v for k, v in x.items() if k != "history_category"}, y),
            r"Missing field\(s\) \['history_category'\]",
            SAME,
        ),
        (
            lambda x, y: (x, np.where(np.arange(6) == 3, 2.0, y)),
            r"Labels must be 0 or 1\. Received labels\[3\] = 2\.0",
            SAME,
        ),
        (
            lambda x, y: (x, np.where(np.arange(6) == 5, np.nan, y)),
            r"Labels must be finite\. Received labels\[5\] = nan",
            SAME,
        ),
    ],
)
def test_array_dataset_validates_its_contents_at_construction(change, match, without_schema):
    """Before: every one of these was accepted and failed (or trained on garbage) later."""
    x, y = change(*array_data())
    with pytest.raises(ValueError, match=match):
        ArrayDataset(x, y, batch_size=2, schema=SCHEMA)
    if without_schema is not None:
        with pytest.raises(ValueError, match=match if without_schema == SAME else without_schema):
            ArrayDataset(x, y, batch_size=2)
    else:
        ArrayDataset(x, y, batch_size=2)


def test_array_dataset_reads_labels_of_shape_b_by_1_as_b():
    x, y = array_data()
    ArrayDataset(x, y[:, None], schema=SCHEMA)  # as `fit(x, y[:, None])` does
    with pytest.raises(ValueError, match=r"Labels must be 0 or 1\. Received labels\[2\] = 5\.0"):
        ArrayDataset(x, np.where(np.arange(6) == 2, 5.0, y)[:, None], schema=SCHEMA)
    with pytest.raises(ValueError, match=r"shape of `target_item`, \(6,\)\. Received \(6, 2\)"):
        ArrayDataset(x, np.stack([y, y], 1), schema=SCHEMA)


def test_array_dataset_candidate_sets_take_minus_one_only_at_missing_candidates():
    schema = SequenceSchema({"item": 10}, max_len=3, candidates=3)
    x = {"target_item": np.array([[1, 2, 0], [3, 4, 5]]), "history_item": np.array([[0, 1, 2], [3, 4, 5]])}
    y = np.array([[1.0, 0.0, -1.0], [0.0, 0.0, 1.0]])
    data = ArrayDataset(x, y, batch_size=2, schema=schema)
    assert data.schema is schema and ArrayDataset(x, y).schema is None
    with pytest.raises(ValueError, match=r"Labels must be 0 or 1\. Received labels\[1, 0\] = -1\.0"):
        ArrayDataset(x, np.array([[1.0, 0.0, -1.0], [-1.0, 0.0, 1.0]]), schema=schema)
    with pytest.raises(ValueError, match=r"labels\[0, 2\] = 0\.0, but target_item\[0, 2\] = 0 marks"):
        ArrayDataset(x, np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), schema=schema)


def sequence_parts():
    """Two users (3 and 2 events), three examples."""
    sequences = {"item": np.array([1, 2, 3, 4, 5]), "category": np.array([1, 1, 2, 2, 3])}
    offsets = np.array([0, 3, 5])
    examples = {
        "user": np.array([0, 0, 1]),
        "end": np.array([2, 3, 4]),
        "label": np.array([1.0, 0.0, 1.0]),
        "target_item": np.array([3, 7, 5]),
        "target_category": np.array([2, 1, 3]),
    }
    return sequences, offsets, examples, {"item": 10, "category": 4}


def with_entry(arrays, key, index, value, dtype=None):
    values = np.array(arrays[key], dtype=dtype or arrays[key].dtype)
    values[index] = value
    return {**arrays, key: values}


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda s, o, e, v: (with_entry(s, "item", 3, 12), o, e, v),
            r"`sequences\['item'\]` holds id 12 at sequences\['item'\]\[3\], "
            r"outside the vocabulary \[0, 10\)",
        ),
        (
            lambda s, o, e, v: (with_entry(s, "category", 0, -2), o, e, v),
            r"`sequences\['category'\]` holds a negative id \(-2\) at sequences\['category'\]\[0\]",
        ),
        (
            lambda s, o, e, v: (with_entry(s, "item", 1, 2.5, "float64"), o, e, v),
            r"`sequences\['item'\]` must hold integer ids.*sequences\['item'\]\[1\] = 2\.5",
        ),
        (
            lambda s, o, e, v: (s, np.array([0, 3, 4]), e, v),
            r"`offsets` must run from 0 to the number of events \(5\)",
        ),
        (lambda s, o, e, v: (s, np.array([0, 3, 2, 5]), e, v), r"offsets\[2\] = 2 < offsets\[1\] = 3"),
        (
            lambda s, o, e, v: (s, o, with_entry(e, "user", 2, 2), v),
            r"`examples\['user'\]\[2\]` = 2 is not a user",
        ),
        (
            lambda s, o, e, v: (s, o, with_entry(e, "end", 1, 4), v),
            r"`examples\['end'\]\[1\]` = 4 lies outside the events of its user 0, \[0, 3\]",
        ),
        (
            lambda s, o, e, v: (s, o, with_entry(e, "target_item", 2, 10), v),
            r"`examples\['target_item'\]` holds id 10 at examples\['target_item'\]\[2\], outside",
        ),
        (
            lambda s, o, e, v: (s, o, with_entry(e, "label", 1, 3.0), v),
            r"Labels must be 0 or 1\. Received labels\[1\] = 3\.0",
        ),
        (
            lambda s, o, e, v: (s, o, with_entry(e, "label", 0, np.nan), v),
            r"Labels must be finite\. Received labels\[0\] = nan",
        ),
        (
            lambda s, o, e, v: (s, o, {**e, "target_shop": e["target_item"]}, v),
            r"`examples` has unknown key\(s\) \['target_shop'\]",
        ),
        (
            lambda s, o, e, v: (s, o, e, {"item": 10}),
            r"`vocab_sizes` must name the fields.*Missing: \['category'\]",
        ),
        (
            lambda s, o, e, v: (s, o, e, {**v, "shop": 3}),
            r"`vocab_sizes` must name the fields.*unknown: \['shop'\]",
        ),
        (
            lambda s, o, e, v: (s, o, {**e, "label": e["label"][:2]}, v),
            r"`examples\['user'\]` must be 1-D with one entry per example \(2, as `examples\['label'\]`\)",
        ),
    ],
)
def test_sequence_dataset_validates_its_storage_at_construction(change, match):
    """Before: every one of these was accepted, and batches later held wrong ids or histories."""
    sequences, offsets, examples, vocab = sequence_parts()
    SequenceDataset(sequences, offsets, examples, max_len=3, vocab_sizes=vocab)  # valid as they are
    sequences, offsets, examples, vocab = change(*sequence_parts())
    with pytest.raises(ValueError, match=match):
        SequenceDataset(sequences, offsets, examples, max_len=3, vocab_sizes=vocab)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="backend-independent")
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": True}, "`batch_size` must be a positive integer. Received: `batch_size=True`"),
        ({"batch_size": 2.0}, "`batch_size` must be a positive integer. Received: `batch_size=2.0`"),
        ({"batch_size": 0}, "`batch_size` must be a positive integer. Received: `batch_size=0`"),
        ({"shuffle": "no"}, "`shuffle` must be True or False. Received: `shuffle='no'`"),
        ({"seed": -1}, "`seed` must be an integer >= 0. Received: `seed=-1`"),
        ({"seed": "a"}, "`seed` must be an integer >= 0. Received: `seed='a'`"),
    ],
)
def test_dataset_arguments_are_refused_by_name(kwargs, message):
    """Issue 32: `batch_size=True` made batches of one row, `shuffle="no"` shuffled, and a bad
    `seed` failed in numpy's words; numpy integers are taken as Python's."""
    x, y = array_data()
    with pytest.raises(ValueError, match=re.escape(message)):
        ArrayDataset(x, y, **{"batch_size": 2, **kwargs})
    dataset = ArrayDataset(x, y, batch_size=np.int64(4), shuffle=np.bool_(True), seed=np.int64(3))
    assert (dataset.batch_size, dataset.shuffle, dataset.seed, len(dataset)) == (4, True, 3, 2)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="backend-independent")
def test_a_damaged_saved_dataset_is_refused_naming_the_file(tmp_path, make_events):
    """Issue 32: a damaged `dataset.json` or `.npy` file failed in json's or numpy's words
    without the path; arrays that disagree did not say which dataset."""
    dataset = leave_last_out(make_events(num_users=3, length=12), max_len=5)["train"]

    def saved(name):
        dataset.save(str(tmp_path / name))
        return tmp_path / name

    assert SequenceDataset.load(str(saved("good"))).num_examples == dataset.num_examples
    nothing = tmp_path / "nothing" / "dataset.json"
    with pytest.raises(FileNotFoundError, match=re.escape(f"{nothing} is missing")):
        SequenceDataset.load(str(tmp_path / "nothing"))
    (saved("json") / "dataset.json").write_text("{garbage")
    with pytest.raises(
        ValueError, match=re.escape(f"{tmp_path / 'json' / 'dataset.json'} is not a description")
    ):
        SequenceDataset.load(str(tmp_path / "json"))
    (saved("npy") / "offsets.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(
        ValueError, match=re.escape(f"{tmp_path / 'npy' / 'offsets.npy'} is not a readable .npy")
    ):
        SequenceDataset.load(str(tmp_path / "npy"))
    (saved("gone") / "offsets.npy").unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(f"{tmp_path / 'gone' / 'offsets.npy'} is missing")):
        SequenceDataset.load(str(tmp_path / "gone"))
    np.save(saved("short") / "offsets.npy", np.zeros(2, "int64"))
    with pytest.raises(
        ValueError, match=re.escape(f"The dataset in {tmp_path / 'short'} is not consistent: `offs")
    ):
        SequenceDataset.load(str(tmp_path / "short"))
    with pytest.raises(ValueError, match=re.escape("`batch_size` must be a positive integer")):
        SequenceDataset.load(str(tmp_path / "good"), batch_size=0)  # the caller's override, named as such


def actions_dataset(actions=None):
    """`sequence_parts()` (5 events of 2 users) as a dataset, with `actions=(K, flat)` if given."""
    sequences, offsets, examples, vocab = sequence_parts()
    return SequenceDataset(sequences, offsets, examples, max_len=3, vocab_sizes=vocab, actions=actions)


def test_sequence_dataset_actions_gather_the_history_only_and_round_trip(tmp_path):
    """`actions=(K, flat)`: `history_action` holds the bitmasks of each history's own events, left-
    padded like the ids; saved and loaded with the sequences; a bad bitmask is named at construction."""
    flat = np.array([1, 0, 3, 2, 1])
    data = actions_dataset((2, flat))
    assert data.schema.actions == 2
    x, _ = data[0]
    # Histories: user 0 before event 2 -> events 0, 1; before 3 -> 0, 1, 2; user 1 before 4 -> event 3.
    np.testing.assert_array_equal(x["history_item"], [[0, 1, 2], [1, 2, 3], [0, 0, 4]])
    np.testing.assert_array_equal(x["history_action"], [[0, 1, 0], [1, 0, 3], [0, 0, 2]])
    assert "target_action" not in x
    data.save(str(tmp_path / "d"))
    loaded = SequenceDataset.load(str(tmp_path / "d"))
    assert loaded.schema == data.schema
    np.testing.assert_array_equal(loaded[0][0]["history_action"], x["history_action"])
    with pytest.raises(ValueError, match=r"`actions\[1\]` holds 4 at actions\[1\]\[2\]"):
        actions_dataset((2, with_entry({"a": flat}, "a", 2, 4)["a"]))
    with pytest.raises(ValueError, match=r"one bitmask per stored event \(5\)"):
        actions_dataset((2, flat[:4]))


def test_actions_against_a_model_of_fewer_kinds_and_a_shared_folder(tmp_path):
    """A model encoding fewer action kinds than the dataset stores: its bitmasks are checked, the
    first one out of range named. A shared `sequences_dir` refuses arrays that differ from its own,
    and takes a loaded dataset's own memory-mapped arrays back without comparing them."""
    data = actions_dataset((3, np.array([1, 0, 3, 2, 1])))
    assert data.check_schema(data.schema.replace(actions=2))  # every stored bitmask fits 2 kinds
    wide = actions_dataset((3, np.array([1, 0, 4, 2, 1])))
    with pytest.raises(ValueError, match=r"`actions\[1\]` holds 4 at actions\[1\]\[2\].*actions=2 kinds"):
        wide.check_schema(wide.schema.replace(actions=2))
    events = str(tmp_path / "events")
    data.save(str(tmp_path / "a"), sequences_dir=events)
    with pytest.raises(ValueError, match=r"actions\.npy already holds other values"):
        wide.save(str(tmp_path / "b"), sequences_dir=events)
    plain = actions_dataset()
    plain.save(str(tmp_path / "c"), sequences_dir=events)  # the same events: shared
    assert SequenceDataset.load(str(tmp_path / "c")).schema == plain.schema
    loaded = SequenceDataset.load(str(tmp_path / "a"))
    stored = loaded.event_actions
    path = os.path.join(events, "actions.npy")
    assert _maps_file(stored, path)
    assert not any(_maps_file(view, path) for view in (stored[1:], stored[::-1], np.array(stored)))
    loaded.save(str(tmp_path / "a2"), sequences_dir=events)
    assert SequenceDataset.load(str(tmp_path / "a2")).schema == data.schema
    for bad in (0, 31, np.int64(4) + 0.5, "3"):
        with pytest.raises(ValueError, match=r"`actions\[0\]` must be an integer in \[1, 30\]"):
            actions_dataset((bad, np.zeros(5, int)))
    assert actions_dataset((np.int64(2), np.zeros(5, int))).action_kinds == 2


def test_array_dataset_infers_and_checks_actions():
    schema = SequenceSchema({"item": 10}, max_len=5, actions=3)
    x = schema.random_batch(6, seed=2)
    assert (
        ArrayDataset(x, np.ones(6, "float32")).checked_schema.actions
        == int(x["history_action"].max()).bit_length()
    )
    x["history_action"][2, 4] = 8
    with pytest.raises(ValueError, match=r"`history_action` holds 8 at history_action\[2, 4\]"):
        ArrayDataset(x, np.ones(6, "float32"), schema=schema)
