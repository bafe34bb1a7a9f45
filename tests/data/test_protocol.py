"""The DARE protocol and leave-last-out (positions, leakage, negatives) and the `prepare` cache."""

import os
import re
from typing import Any

import keras
import numpy as np
import pytest

from keras_lsrec.data import dare_protocol, leave_last_out, load_movielens, load_taobao, prepare

MOVIELENS = os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "shared", "data", "ml-latest-small", "ratings.csv"
)


def test_dare_protocol_positions_leakage_and_negatives(make_events):
    events = make_events()
    splits = dare_protocol(events, min_events=210, max_len=200, negatives=2, seed=3, batch_size=64)
    train = splits["train"]
    users = events[events["user"] <= 6]
    lengths = users.groupby("user").size().to_numpy()
    assert train.num_examples == 6 * 19 * 3 and splits["test"].num_examples == 6 * 3
    examples = train.examples
    labels = examples["label"]
    assert np.array_equal(labels, np.tile([1.0, 0.0, 0.0], 6 * 19))
    for u, n in enumerate(lengths):
        rows = (examples["user"] == u) & (labels == 1)
        positions = examples["end"][rows] - train.offsets[u]
        assert sorted(n - 1 - positions) == list(range(3, 94, 5))  # T-3, T-8, ..., T-93
    for name, offset in (("validation", 1), ("test", 0)):
        split = splits[name]
        positive = split.examples["label"] == 1
        positions = split.examples["end"][positive] - split.offsets[split.examples["user"][positive]]
        assert np.array_equal(positions, lengths - 1 - offset)
    user_times = [g["timestamp"].to_numpy() for _, g in users.groupby("user")]
    user_items = [set(g["item"]) for _, g in users.groupby("user")]
    for split in splits.values():
        x, y = split.arrays()
        split.schema.validate(x, y)
        for row in range(len(y)):
            u = split.examples["user"][row]
            position = split.examples["end"][row] - split.offsets[u]
            history = x["history_item"][row][x["history_item"][row] != 0]
            assert len(history) == min(200, position)
            # No leakage: every history event is strictly earlier than the target event.
            assert user_times[u][position - len(history) : position].max() < user_times[u][position]
            user_items_in_order = users[users["user"] == u + 1]["item"].to_numpy()
            assert np.array_equal(history, user_items_in_order[position - len(history) : position])
            if y[row] == 0:
                assert x["target_item"][row] not in user_items[u]  # never from the user's history
                assert x["target_category"][row] == x["target_item"][row] % 7 + 1  # its own category
            assert x["history_time"][row][-1] == 1
    # Deterministic with a seed; another seed draws other negatives.
    again = dare_protocol(events, seed=3, batch_size=64)["train"].examples
    assert all(np.array_equal(again[k], examples[k]) for k in examples)
    other = dare_protocol(events, seed=4, batch_size=64)["train"].examples
    assert not np.array_equal(other["target_item"], examples["target_item"])
    with pytest.raises(ValueError, match="min_events"):
        dare_protocol(events, min_events=50)


@pytest.mark.skipif(not os.path.isfile(MOVIELENS), reason="../shared/data/ml-latest-small is not present")
def test_real_movielens_file_and_leave_last_out():
    events = load_movielens(MOVIELENS, progress=False)
    assert len(events) == 100_836 and events["user"].max() == 610
    assert events["category"].min() >= 0 and (events["category"] > 0).mean() > 0.99
    splits = leave_last_out(events, max_len=50, max_train_per_user=5, negatives=1)
    assert splits["test"].num_examples == 2 * 610
    x, y = splits["test"].arrays()
    assert x["history_item"].shape == (1220, 50) and set(np.unique(y)) == {0.0, 1.0}
    splits["test"].schema.validate(x, y)


# calls of `counting_load` (a module-level loader: its closure would be part of the cache key)
CALLS: list[dict[str, Any]] = []


def counting_load(p, **kwargs):
    CALLS.append(kwargs)
    return load_taobao(p, progress=False, **kwargs)


def test_prepare_caches_and_invalidates(tmp_path, make_events):
    path = str(tmp_path / "UserBehavior.csv")
    events = make_events(num_users=3)
    columns = ["user", "item", "category", "behavior", "timestamp"]
    events.assign(behavior="pv")[columns].to_csv(path, header=False, index=False)
    calls = CALLS
    calls.clear()
    cache = str(tmp_path / "cache")
    load_args = {"behaviors": ["pv"]}
    first = prepare(path, counting_load, dare_protocol, cache, load_args=load_args, protocol_args={"seed": 1})
    second = prepare(
        path, counting_load, dare_protocol, cache, load_args=load_args, protocol_args={"seed": 1}
    )
    assert len(calls) == 1  # the second run read the cache
    assert isinstance(second["train"].examples["label"], np.memmap)
    for split in first:
        for a, b in zip(first[split].arrays(), second[split].arrays(), strict=True):
            keras.tree.map_structure(np.testing.assert_array_equal, a, b)
    (entry,) = [n for n in os.listdir(cache) if not n.startswith(".")]  # one entry, beside the marker
    assert sorted(os.listdir(cache)) == [".keras_lsrec_cache", entry]
    assert sorted(os.listdir(os.path.join(cache, entry))) == [
        "manifest.json",
        "sequences",
        "test",
        "train",
        "validation",
    ]
    prepare(path, counting_load, dare_protocol, cache, load_args=load_args, protocol_args={"seed": 2})
    assert len(calls) == 2  # a changed parameter rebuilds
    with open(path, "a") as f:
        f.write("99,1,1,pv,5\n")
    prepare(path, counting_load, dare_protocol, cache, load_args=load_args, protocol_args={"seed": 2})
    assert len(calls) == 3  # a changed file rebuilds


@pytest.mark.parametrize("value", [0, -1, 2.5, True])
def test_leave_last_out_refuses_a_bad_max_train_per_user(make_events, value):
    """Before: 0 kept every training position (`positions[-0:]`) and a negative one dropped some."""
    with pytest.raises(
        ValueError,
        match=rf"`max_train_per_user` must be None \(all positions\) or an integer >= 1\. "
        rf"Received: `max_train_per_user={value!r}`",
    ):
        leave_last_out(make_events(num_users=2, length=20), max_train_per_user=value)


def test_leave_last_out_keeps_the_latest_max_train_per_user(make_events):
    events = make_events(num_users=2, length=20)
    users = events.groupby("user").size()
    kept = int((users >= 3).sum())
    splits = leave_last_out(events, max_train_per_user=np.int64(1), negatives=1)
    assert splits["train"].num_examples == kept * 2  # one positive (and its negative) per user
    assert leave_last_out(events, negatives=0)["train"].num_examples == int((users[users >= 3] - 3).sum())


@pytest.mark.parametrize(
    "item, match",
    [
        (-5, r"`events\['item'\]` holds -5 at row 3 \(index 3\): ids must lie in \[0, 2\^31\)"),
        (2.5, r"`events\['item'\]` must hold integer ids .*Received dtype float64"),
    ],
)
def test_protocols_refuse_ids_they_would_wrap_or_floor(make_events, item, match):
    """Before: ids were cast to int32 unchecked (a float was floored, a large id wrapped)."""
    events = make_events(num_users=2, length=20)
    events["item"] = events["item"].astype(type(item))
    events.loc[3, "item"] = item
    with pytest.raises(ValueError, match=match):
        leave_last_out(events)


def test_dare_protocol_refuses_negative_offsets(make_events):
    with pytest.raises(ValueError, match=r"`train_offsets` must be non-negative integers.*\[3, -2\]"):
        dare_protocol(make_events(), train_offsets=(3, -2))


def test_protocols_carry_the_loaders_item_features(make_events):
    """An item feature the loader attached (MovieLens' genres) reaches every split, gathered per
    item at batch time; `item_features=False` leaves it out."""
    from keras_lsrec.data import Categorical

    events = make_events(num_users=3, length=30, num_items=50)
    vocab = int(events["item"].max()) + 1
    table = (np.arange(vocab)[:, None] % 5 + np.arange(2)[None, :]).astype("int32")
    table[0] = 0
    events.attrs["item_features"] = {"genres": (Categorical(7, max_values=2), table)}
    splits = leave_last_out(events, max_len=20, negatives=1)
    for dataset in splits.values():
        x, y = dataset[0]
        dataset.schema.validate(x, y)
        np.testing.assert_array_equal(x["target_genres"], table[x["target_item"]])
        np.testing.assert_array_equal(x["history_genres"], table[x["history_item"]])
    assert "target_genres" not in leave_last_out(events, max_len=20, item_features=False)["test"][0][0]


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="backend-independent")
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "`batch_size` must be a positive integer. Received: `batch_size=0`"),
        ({"seed": -1}, "`seed` must be an integer >= 0. Received: `seed=-1`"),
        ({"time": "no"}, "`time` must be True or False. Received: `time='no'`"),
        ({"item_features": 1}, "`item_features` must be True or False. Received: `item_features=1`"),
        ({"fields": "item"}, "`fields` must be a list of column names. Received: `fields='item'`"),
        ({"min_events": "210"}, "`min_events` must be an integer >= 1. Received: `min_events='210'`"),
    ],
)
def test_protocol_arguments_are_refused_before_the_work(make_events, kwargs, message):
    """Issue 32: `batch_size=0` and a negative `seed` failed after the examples were drawn
    (the seed in numpy's words), `fields="item"` looked for columns 'i', 't', 'e', 'm'."""
    protocol = leave_last_out if "min_events" not in kwargs else dare_protocol
    with pytest.raises(ValueError, match=re.escape(message)):
        protocol(make_events(num_users=2, length=20), **kwargs)
