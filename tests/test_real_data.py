"""Real-data loaders on small files in the original formats, the DARE protocol, SequenceDataset."""

import json
import os

import keras
import numpy as np
import pytest

from keras_lsrec.data import (
    SequenceDataset,
    dare_protocol,
    encode_ids,
    leave_last_out,
    load_amazon,
    load_movielens,
    load_taobao,
    load_tmall,
    prepare,
    vocab_sizes,
)

pd = pytest.importorskip("pandas")
MOVIELENS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "ml-latest-small", "ratings.csv")


def write(path, text):
    path.write_text(text)
    return str(path)


# ---------------------------------------------------------------- loaders
def test_load_taobao_remaps_sorts_and_filters(tmp_path):
    path = write(
        tmp_path / "UserBehavior.csv",
        "7,500,90,pv,1511544070\n"
        "7,300,90,buy,1511544000\n"  # earlier than the line above: re-sorted
        "2,300,90,pv,1511550000\n"
        "2,500,91,cart,1511540000\n",
    )
    with pytest.warns(UserWarning, match="out of time order"):
        events = load_taobao(path, progress=False)
    assert list(events.columns) == ["user", "item", "category", "behavior", "timestamp"]
    # ids 1..N in the order of the original ids; users sorted, then time.
    assert events["user"].tolist() == [1, 1, 2, 2]
    assert events["item"].tolist() == [2, 1, 1, 2]
    assert events["behavior"].astype(str).tolist() == ["cart", "pv", "buy", "pv"]
    assert events["timestamp"].is_monotonic_increasing is False and events.groupby("user")["timestamp"].apply(
        lambda t: t.is_monotonic_increasing
    ).all()
    assert events.attrs["report"].unsorted == 2  # lines 2 and 4 are earlier than the line before
    assert list(events.attrs["vocabularies"]["item"]) == [300, 500]
    assert vocab_sizes(events) == {"user": 4, "item": 4, "category": 4}
    assert encode_ids(events.attrs["vocabularies"]["item"], [500, 300, 999]).tolist() == [2, 1, 3]  # 3 = OOV
    page_views = load_taobao(path, behaviors=["pv"], progress=False)
    assert page_views["behavior"].astype(str).tolist() == ["pv", "pv"]
    # Reading in chunks of one line gives the same table.
    pd.testing.assert_frame_equal(load_taobao(path, chunk_rows=1, progress=False), events)


@pytest.mark.parametrize(
    "line, reason",
    [
        ("3,100,9,pv\n", "timestamp: missing or empty"),
        ("3,abc,9,pv,1511544070\n", "item: not an integer"),
        ("3,100,9,click,1511544070\n", "behavior: not one of"),
        ("3,,9,pv,1511544070\n", "item: missing or empty"),
    ],
)
def test_malformed_rows_are_reported_with_line_numbers(tmp_path, line, reason):
    good = "1,100,9,pv,1511544000\n2,101,9,pv,1511544001\n"
    path = write(tmp_path / "UserBehavior.csv", good + line + good)
    with pytest.raises(ValueError, match=rf"{reason}.* at lines \[3\]"):
        load_taobao(path, progress=False)
    with pytest.warns(UserWarning, match="rejected"):
        events = load_taobao(path, errors="skip", progress=False)
    report = events.attrs["report"]
    assert report.rejected_count == 1 and list(report.rejected.values()) == [[3]]
    assert len(events) == 4 - 2  # the rejected line out, then the repeated good lines as duplicates
    assert report.duplicate_count == 2 and report.duplicates == [4, 5]


def test_too_many_columns_is_a_clear_error(tmp_path):
    path = write(tmp_path / "UserBehavior.csv", "1,100,9,pv,1511544000\n1,100,9,pv,1511544000,extra\n")
    with pytest.raises(ValueError, match="malformed file.*line 2"):
        load_taobao(path, progress=False)


def test_load_tmall(tmp_path):
    path = write(
        tmp_path / "user_log_format1.csv",
        "user_id,item_id,cat_id,seller_id,brand_id,time_stamp,action_type\n"
        "10,5,1,3,,1111,0\n"
        "10,6,2,3,8,0512,2\n"
        "11,5,1,3,9,0601,0\n",
    )
    events = load_tmall(path, progress=False)
    assert list(events.columns) == ["user", "item", "category", "seller", "brand", "action", "timestamp"]
    first = events.iloc[0]
    assert (first["user"], first["action"], first["brand"]) == (1, 2, 1)  # May 12 before Nov 11; brand 8 -> 1
    assert events["brand"].tolist() == [1, 0, 2]  # the missing brand is 0
    assert pd.Timestamp(events["timestamp"].iloc[1], unit="s") == pd.Timestamp("2015-11-11")
    assert load_tmall(path, actions=[0], progress=False)["action"].tolist() == [0, 0]
    bad = write(tmp_path / "bad.csv", "user_id,item_id,cat_id,seller_id,brand_id,time_stamp,action_type\n1,2,3,4,5,1341,0\n")
    with pytest.raises(ValueError, match=r"mmdd.*\[2\]"):
        load_tmall(bad, progress=False)


def test_load_amazon_json_lines_csv_and_metadata(tmp_path):
    reviews = [
        {"reviewerID": "B", "asin": "x2", "overall": 4.0, "unixReviewTime": 20, "reviewText": "a, b"},
        {"reviewerID": "A", "asin": "x1", "overall": 5.0, "unixReviewTime": 10},
        {"reviewerID": "B", "asin": "x1", "overall": 3.0, "unixReviewTime": 10},
    ]
    path = write(tmp_path / "reviews_Books_5.json", "".join(json.dumps(r) + "\n" for r in reviews))
    meta = write(
        tmp_path / "meta_Books.json",
        "{'asin': 'x1', 'categories': [['Books', 'Fiction']]}\n" + json.dumps({"asin": "x2", "category": ["Books", "Poetry"]}) + "\n",
    )
    events = load_amazon(path, meta_path=meta, progress=False)
    assert events[["user", "item", "timestamp"]].values.tolist() == [[1, 1, 10], [2, 1, 10], [2, 2, 20]]
    assert events["rating"].tolist() == [5.0, 3.0, 4.0]
    assert list(events.attrs["vocabularies"]["category"]) == ["Fiction", "Poetry"]
    assert events["category"].tolist() == [1, 1, 2]
    broken = write(tmp_path / "broken.json", json.dumps(reviews[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"at lines \[2\]"):
        load_amazon(broken, progress=False)
    csv = write(tmp_path / "ratings_Books.csv", "B,x2,4.0,20\nA,x1,5.0,10\nB,x1,3.0,10\n")
    from_csv = load_amazon(csv, progress=False)
    assert from_csv[["user", "item", "timestamp"]].values.tolist() == [[1, 1, 10], [2, 1, 10], [2, 2, 20]]
    assert (from_csv["category"] == 0).all()  # no metadata: unknown category


def test_load_movielens_formats(tmp_path):
    (tmp_path / "1m").mkdir()
    dat = write(tmp_path / "1m" / "ratings.dat", "1::20::5::978300760\n1::10::3::978300000\n2::10::4::978300001\n")
    write(tmp_path / "1m" / "movies.dat", "10::A (1995)::Comedy|Drama\n20::B (1996)::Horror\n")
    events = load_movielens(dat, progress=False)
    assert events[["user", "item"]].values.tolist() == [[1, 1], [1, 2], [2, 1]]
    assert [events.attrs["vocabularies"]["category"][c - 1] for c in events["category"]] == ["Comedy", "Horror", "Comedy"]
    (tmp_path / "100k").mkdir()
    data = write(tmp_path / "100k" / "u.data", "1\t10\t3\t881250949\n1\t20\t4\t881250950\n")
    flags = ["0"] * 19
    horror = list(flags)
    horror[11] = "1"
    write(tmp_path / "100k" / "u.item", "10|A|01-Jan-1995||http://x|" + "|".join(flags) + "\n20|B|01-Jan-1995||http://y|" + "|".join(horror) + "\n")
    events = load_movielens(data, progress=False)
    assert events["category"].tolist() == [0, 1]  # no genre flag -> 0; Horror
    (tmp_path / "latest").mkdir()
    csv = write(tmp_path / "latest" / "ratings.csv", "userId,movieId,rating,timestamp\n5,10,4.5,100\n5,11,2.0,90\n")
    write(tmp_path / "latest" / "movies.csv", 'movieId,title,genres\n10,"A, The (1995)",Drama|War\n11,B,(no genres listed)\n')
    events = load_movielens(csv, progress=False)
    assert events["item"].tolist() == [2, 1] and events["category"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="Unknown MovieLens file"):
        load_movielens(write(tmp_path / "x.txt", ""), progress=False)


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


# ---------------------------------------------------------------- protocol
def synthetic_events(num_users=6, length=230, num_items=400, seed=0):
    """Events with strictly increasing timestamps per user; item i has category i % 7 + 1."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, num_users + 1):
        n = length + user  # different lengths
        items = rng.integers(1, num_items // 2, n)  # users only see the lower half of the items
        times = np.cumsum(rng.integers(1, 100, n))
        rows += [(user, int(i), int(i % 7 + 1), int(t)) for i, t in zip(items, times)]
    rows.append((num_users + 1, 5, 6, 1))  # a short user: left out
    frame = pd.DataFrame(rows, columns=["user", "item", "category", "timestamp"])
    # Popular unseen items exist (upper half): give them events from a throwaway user.
    extra = pd.DataFrame({"user": num_users + 2, "item": np.arange(num_items // 2, num_items), "timestamp": 0})
    extra["category"] = extra["item"] % 7 + 1
    return pd.concat([frame, extra[frame.columns]], ignore_index=True).sort_values(["user", "timestamp"], kind="stable").reset_index(drop=True)


def test_dare_protocol_positions_leakage_and_negatives():
    events = synthetic_events()
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
            assert np.array_equal(history, users[users["user"] == u + 1]["item"].to_numpy()[position - len(history) : position])
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


def test_sequence_dataset_shuffles_saves_and_feeds_fit(tmp_path):
    from keras_lsrec.models import DARE

    splits = dare_protocol(synthetic_events(), batch_size=64, seed=1)
    train = splits["train"]
    assert len(train) == int(np.ceil(train.num_examples / 64))
    first_epoch = train[0][1].copy(), train[0][0]["target_item"].copy()
    train.on_epoch_end()
    assert not np.array_equal(train[0][0]["target_item"], first_epoch[1])
    assert splits["test"][0][0]["target_item"].tolist() == splits["test"].examples["target_item"][:64].tolist()
    with pytest.raises(IndexError):
        train[len(train)]
    train.save(str(tmp_path / "train"))
    loaded = SequenceDataset.load(str(tmp_path / "train"))
    assert repr(loaded) == repr(train)
    for a, b in zip(loaded.arrays(), train.arrays()):
        keras.tree.map_structure(np.testing.assert_array_equal, a, b)
    model = DARE(train.schema, attention_dim=2, representation_dim=2, k=5, mlp_units=(4,))
    model.compile(optimizer="adam", loss="binary_crossentropy")
    history = model.fit(train, validation_data=splits["validation"], epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and np.isfinite(history.history["val_loss"][0])
    assert model.predict(splits["test"], verbose=0).shape == (splits["test"].num_examples,)


def test_prepare_caches_and_invalidates(tmp_path):
    path = str(tmp_path / "UserBehavior.csv")
    events = synthetic_events(num_users=3)
    events.assign(behavior="pv")[["user", "item", "category", "behavior", "timestamp"]].to_csv(path, header=False, index=False)
    calls = []

    def counting_load(p, **kwargs):
        calls.append(kwargs)
        return load_taobao(p, progress=False, **kwargs)

    cache = str(tmp_path / "cache")
    first = prepare(path, counting_load, dare_protocol, cache, load_args={"behaviors": ["pv"]}, protocol_args={"seed": 1})
    second = prepare(path, counting_load, dare_protocol, cache, load_args={"behaviors": ["pv"]}, protocol_args={"seed": 1})
    assert len(calls) == 1  # the second run read the cache
    assert isinstance(second["train"].examples["label"], np.memmap)
    for split in first:
        for a, b in zip(first[split].arrays(), second[split].arrays()):
            keras.tree.map_structure(np.testing.assert_array_equal, a, b)
    assert sorted(os.listdir(cache)) == ["manifest.json", "sequences", "test", "train", "validation"]
    prepare(path, counting_load, dare_protocol, cache, load_args={"behaviors": ["pv"]}, protocol_args={"seed": 2})
    assert len(calls) == 2  # a changed parameter rebuilds
    with open(path, "a") as f:
        f.write("99,1,1,pv,5\n")
    prepare(path, counting_load, dare_protocol, cache, load_args={"behaviors": ["pv"]}, protocol_args={"seed": 2})
    assert len(calls) == 3  # a changed file rebuilds
