"""TWIN-V2's hierarchical clustering (`cluster_histories`), against constructions whose clusters are known."""

import numpy as np
import pytest

from keras_lsrec.data import SequenceSchema, cluster_histories


def blobs(sizes, dim=4, seed=0):
    """Item vectors in well-separated blobs: items of blob b are 1 + b * 100 + j."""
    rng = np.random.default_rng(seed)
    vectors = np.zeros((100 * len(sizes) + 1, dim), "float32")
    for b, size in enumerate(sizes):
        centre = rng.normal(size=dim) * 100
        vectors[1 + 100 * b : 1 + 100 * b + size] = centre + rng.normal(size=(size, dim))
    return vectors


def history(events, length):
    """One left-padded row of item ids, plus a category (the blob) and a reverse-position time."""
    items = np.zeros(length, "int64")
    items[length - len(events) :] = events
    category = np.where(items > 0, 1 + (items - 1) // 100, 0)
    time = np.where(items > 0, length - np.arange(length), 0)
    return items, category, time


def batch(rows, length):
    parts = [history(r, length) for r in rows]
    return {
        "history_item": np.stack([p[0] for p in parts]),
        "history_category": np.stack([p[1] for p in parts]),
        "history_time": np.stack([p[2] for p in parts]),
        "target_item": np.arange(1, len(rows) + 1),
        "target_category": np.ones(len(rows), "int64"),
    }


def clusters_of(out, row):
    valid = out["history_item"][row] != 0
    return {k: v[row][valid] for k, v in out.items() if k.startswith("history_")}


def test_separated_blobs_are_the_clusters_and_each_is_represented_by_its_most_central_event():
    vectors = blobs([15, 9])
    rng = np.random.default_rng(1)
    events = rng.permutation(np.concatenate([np.arange(1, 16), np.arange(101, 110)]))
    x = batch([events], 30)
    out = cluster_histories(x, vectors, max_cluster_size=20)
    got = clusters_of(out, 0)
    assert sorted(got["history_cluster_size"].tolist()) == [9, 15]
    for items in (np.arange(1, 16), np.arange(101, 110)):
        distance = ((vectors[items] - vectors[items].mean(0)) ** 2).sum(1)
        central = items[np.argmin(distance)]
        j = int(np.nonzero(got["history_item"] == central)[0][0])
        assert got["history_cluster_size"][j] == len(items)
        assert got["history_category"][j] == 1 + (central - 1) // 100  # the representative's own ids
        position = int(np.nonzero(x["history_item"][0] == central)[0][0])
        assert got["history_time"][j] == x["history_time"][0, position]
    # Ordered by each cluster's most recent event, most recent last.
    last_blob = (events[-1] - 1) // 100
    assert (got["history_item"][-1] - 1) // 100 == last_blob
    np.testing.assert_array_equal(out["target_item"], x["target_item"])


@pytest.mark.parametrize("gamma", [1, 5, 20])
def test_every_event_is_in_one_cluster_of_at_most_gamma(gamma):
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(301, 8)).astype("float32")
    rows = [rng.integers(1, 301, n) for n in (0, 3, 57, 200)]
    x = batch(rows, 200)
    out = cluster_histories(x, vectors, max_cluster_size=gamma, group_field="category")
    SequenceSchema(
        {"item": 301, "category": 4}, max_len=200, time_vocab_size=201, cluster_sizes=True
    ).validate(out)
    for r, events in enumerate(rows):
        got = clusters_of(out, r)
        sizes = got["history_cluster_size"]
        assert sizes.sum() == len(events) and sizes.max(initial=1) <= gamma and sizes.min(initial=1) >= 1
        assert set(got["history_item"]) <= set(events)  # representatives are events of the row
        if gamma == 1:
            np.testing.assert_array_equal(got["history_item"], events)  # nothing to compress
    assert (out["history_cluster_size"][0] == 0).all()  # an empty history stays empty


def test_repeats_of_one_item_form_runs_of_gamma_and_groups_never_mix():
    vectors = blobs([3, 3])
    events = np.array([1] * 45 + [101] * 4)
    out = cluster_histories(batch([events], 60), vectors, max_cluster_size=20, group_field="category")
    got = clusters_of(out, 0)
    np.testing.assert_array_equal(got["history_cluster_size"], [20, 20, 5, 4])
    np.testing.assert_array_equal(got["history_item"], [1, 1, 1, 101])


def test_equal_histories_cluster_alike_and_the_result_is_deterministic():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(101, 4)).astype("float32")
    events = rng.integers(1, 101, 80)
    x = batch([events, events[5:], events], 90)
    out = cluster_histories(x, vectors, max_cluster_size=6, seed=4)
    for key in out:
        if key.startswith("history_"):
            np.testing.assert_array_equal(out[key][0], out[key][2])
        np.testing.assert_array_equal(
            out[key], cluster_histories(x, vectors, max_cluster_size=6, seed=4)[key]
        )


def test_bad_input_is_refused_by_name():
    vectors = blobs([5])
    x = batch([np.arange(1, 6)], 10)
    with pytest.raises(ValueError, match="vectors"):
        cluster_histories(x, vectors[:3])
    with pytest.raises(ValueError, match="max_cluster_size"):
        cluster_histories(x, vectors, max_cluster_size=0)
    with pytest.raises(ValueError, match="group_field"):
        cluster_histories(x, vectors, group_field="shop")
    with pytest.raises(ValueError, match="max_len=1"):
        cluster_histories(x, vectors, max_cluster_size=2, max_len=1)
    bad = np.array(vectors)
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"vectors\[3\]"):
        cluster_histories(x, bad)
    with pytest.raises(ValueError, match="already clustered"):
        cluster_histories(cluster_histories(x, vectors), vectors)


def test_schema_validates_cluster_sizes():
    schema = SequenceSchema({"item": 10}, max_len=4, cluster_sizes=True)
    x = {"target_item": np.array([1]), "history_item": np.array([[0, 3, 4, 5]])}
    schema.validate({**x, "history_cluster_size": np.array([[0, 1, 7, 2]])})
    with pytest.raises(ValueError, match=r"history_cluster_size\[0, 2\]"):
        schema.validate({**x, "history_cluster_size": np.array([[0, 1, 0, 2]])})
    with pytest.raises(ValueError, match=r"history_cluster_size\[0, 0\]"):
        schema.validate({**x, "history_cluster_size": np.array([[2**31, 1, 1, 1]])})
    with pytest.raises(ValueError, match="history_cluster_size"):
        schema.validate(x)
    assert SequenceSchema.from_config(schema.get_config()) == schema
    schema.validate(schema.random_batch(3))


def test_synthetic_data_clustered_for_twinv2():
    from keras_lsrec.data import synthetic

    data = synthetic.generate(num_users=20, examples_per_user=2, max_len=90, num_items=60, num_categories=8)
    clustered = data.clustered(max_cluster_size=6)
    assert clustered.schema == data.schema.replace(cluster_sizes=True)
    vectors = data.item_vectors()
    assert vectors.shape == (61, 9) and (vectors[1:].sum(1) == 1).all()
    assert vectors[9, 1] == 1  # item 9 is of category 1
    for before, after in zip((data.train, data.test), (clustered.train, clustered.test), strict=True):
        clustered.schema.validate(after.x, after.y)
        np.testing.assert_array_equal(after.y, before.y)
        sizes = after.x["history_cluster_size"]
        np.testing.assert_array_equal(sizes.sum(1), (before.x["history_item"] != 0).sum(1))
        assert sizes.max() <= 6


def test_attribute_vectors_from_the_ids_seen():
    from keras_lsrec.data import attribute_vectors

    x = {
        "history_item": np.array([[0, 1, 2], [0, 0, 3]]),
        "history_category": np.array([[0, 2, 1], [0, 0, 2]]),
        "target_item": np.array([3, 4]),
        "target_category": np.array([1, 1]),  # item 3 seen with categories 2 and 1
    }
    vectors = attribute_vectors(x, {"item": 6, "category": 3})
    expected = np.zeros((6, 3), "float32")
    expected[[1, 2, 3, 3, 4], [2, 1, 2, 1, 1]] = 1.0  # item 5 never seen, row 0 padding: zero
    np.testing.assert_array_equal(vectors, expected)


@pytest.mark.parametrize("group_field", [None, "category"])
def test_empty_histories_cluster_to_padding(group_field):
    """Before: with `group_field=None`, a new user's empty history (and an all-padding batch, and
    L = 0) failed with numpy's "zero-size array to reduction operation maximum"."""
    vectors = blobs([15, 9])
    schema = SequenceSchema(
        {"item": len(vectors), "category": 4}, max_len=30, time_vocab_size=31, cluster_sizes=True
    )
    x = batch([np.arange(1, 16), np.array([], "int64")], 30)  # row 1: a new user
    out = cluster_histories(x, vectors, group_field=group_field)
    schema.validate(out)
    assert (out["history_item"][1] == 0).all() and (out["history_cluster_size"][1] == 0).all()
    assert out["history_cluster_size"][0].sum() == 15
    new_users = batch([[], []], 30)  # an all-padding batch
    out = cluster_histories(new_users, vectors, group_field=group_field)
    schema.validate(out)
    assert out["history_item"].shape == out["history_cluster_size"].shape == (2, 0)  # the most clusters: 0
    out = cluster_histories(new_users, vectors, group_field=group_field, max_len=4)
    assert out["history_cluster_size"].shape == (2, 4) and not out["history_cluster_size"].any()
    for empty in (batch([[], []], 0), {k: v[:0] for k, v in x.items()}):  # L = 0; no rows
        out = cluster_histories(empty, vectors, group_field=group_field, max_len=3)
        schema.validate(out)
        assert out["history_cluster_size"].shape == (len(empty["target_item"]), 3)
        assert not out["history_item"].any() and out["history_item"].dtype == x["history_item"].dtype


def test_arguments_are_checked_in_the_house_style():
    """Before: `max_cluster_size=True` and `max_len=2.5` (read as 2) were accepted, and a negative
    item id read the vector of the last item."""
    vectors = blobs([5])
    x = batch([np.arange(1, 6)], 10)
    integers = dict(
        max_cluster_size=np.int64(2), iterations=np.int32(3), max_len=np.int64(5), seed=np.uint8(1)
    )
    assert cluster_histories(x, vectors, **integers)["history_cluster_size"].shape == (1, 5)
    for name, value in [
        ("max_cluster_size", True),
        ("iterations", 2.0),
        ("max_len", 2.5),
        ("max_len", -1),
        ("max_len", False),
        ("seed", -1),
        ("group_field", 3),
    ]:
        with pytest.raises(ValueError, match=rf"`{name}` must be .*Received: `{name}={value!r}`"):
            cluster_histories(x, vectors, **{name: value})
    with pytest.raises(ValueError, match=r"negative id \(-3\) at history_item\[0, 6\]"):
        cluster_histories(
            {**x, "history_item": np.where(x["history_item"] == 2, -3, x["history_item"])}, vectors
        )
    with pytest.raises(ValueError, match="`x` must be a dict"):
        cluster_histories([x], vectors)


def test_attribute_vectors_refuse_ids_outside_the_vocabularies():
    """Before: a negative id set the row of the last item; an id beyond the vocabulary, an IndexError."""
    from keras_lsrec.data import attribute_vectors

    x = {"history_item": np.array([[0, 1, -1]]), "history_category": np.array([[0, 2, 1]])}
    with pytest.raises(ValueError, match=r"`history_item` holds -1 at history_item\[0, 2\].*\[0, 6\)"):
        attribute_vectors(x, {"item": 6, "category": 3})
    x["history_item"] = np.array([[0, 1, 2]])
    with pytest.raises(ValueError, match=r"`history_category` holds 2 at history_category\[0, 1\].*\[0, 2\)"):
        attribute_vectors(x, {"item": 6, "category": 2})
    with pytest.raises(ValueError, match="vocabulary size of field 'category'"):
        attribute_vectors(x, {"item": 6})
    assert attribute_vectors(x, {"item": np.int64(6), "category": 3}).shape == (6, 3)
