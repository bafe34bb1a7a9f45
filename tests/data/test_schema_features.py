"""Features in the schema (per-row and item-side): kinds, shapes, validation, configs."""

import numpy as np
import pytest

from keras_lsrec.data import Categorical, Dense, SequenceSchema

FEATURES = {"user_age": Categorical(10), "user_tags": Categorical(50, max_values=5), "context": Dense(8)}


def schema(**changes):
    return SequenceSchema({"item": 100, "category": 10}, max_len=20, features=FEATURES, **changes)


def test_keys_shapes_and_dtypes():
    s = schema()
    shapes = s.input_shapes()
    assert shapes["user_age"] == () and shapes["user_tags"] == (5,) and shapes["context"] == (8,)
    inputs = s.inputs()
    assert inputs["context"].dtype == "float32" and inputs["user_tags"].dtype == "int32"
    x = s.random_batch(16, seed=0)
    assert x["context"].dtype == np.float32 and x["user_age"].dtype == np.int64
    assert (x["user_tags"] == 0).any() and (x["user_tags"] != 0).any()
    s.validate(x)
    assert s.vocab_size("user_tags") == 50 and s.is_dense("context") and not s.is_dense("user_age")
    # The request form keeps one value of each feature per request.
    request = s.replace(candidates=3)
    assert request.input_shapes()["user_tags"] == (5,) and request.features == s.features
    request.validate(request.random_batch(4, seed=1))


def test_config_round_trip_and_a_schema_of_before_is_unchanged():
    s = schema()
    assert SequenceSchema.from_config(s.get_config()) == s
    plain = SequenceSchema({"item": 100}, max_len=20)
    assert "features" not in plain.get_config()  # the config of before, key for key
    assert SequenceSchema.from_config(plain.get_config()) == plain and plain.features == {}


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x: x.update(context=x["context"].astype("float64") * np.nan), r"context\[0, 0\] = nan"),
        (lambda x: x.update(context=np.zeros((x["context"].shape[0], 7), "float32")), r"context.*\(B, 8\)"),
        (lambda x: x.update(user_tags=np.ones((x["user_tags"].shape[0], 6), "int64")), "pad shorter bags"),
        (lambda x: x.update(user_tags=x["user_tags"] + 50), "outside the vocabulary"),
        (lambda x: x.update(user_age=x["user_age"] - 20), "negative id"),
        (lambda x: x.update(user_age=x["user_age"].astype("float32") + 0.5), "integer ids"),
        (lambda x: x.update(user_age=x["user_age"][:-1]), "batch size"),
        (lambda x: x.pop("context"), r"Missing field\(s\) \['context'\]"),
    ],
)
def test_bad_values_are_refused_with_the_feature_named(change, message):
    s = schema()
    x = s.random_batch(6, seed=2)
    change(x)
    with pytest.raises(ValueError, match=message):
        s.validate(x)


@pytest.mark.parametrize(
    "features, message",
    [
        ({"item": Categorical(3)}, "id field"),
        ({"history_age": Categorical(3)}, "clash"),
        ({"bad name": Categorical(3)}, "identifiers"),
        (lambda: {"age": Categorical(1)}, "vocab_size"),
        (lambda: {"age": Categorical(3, max_values=0)}, "max_values"),
        (lambda: {"age": Categorical(True)}, "vocab_size"),
        (lambda: {"emb": Dense(0)}, "dim"),
        ({"emb": {"kind": "text"}}, r"features\['emb'\]"),
        (["age"], "mapping"),
    ],
)
def test_bad_feature_specs_are_refused(features, message):
    with pytest.raises(ValueError, match=message):
        SequenceSchema({"item": 100}, max_len=20, features=features() if callable(features) else features)


def test_numpy_integers_are_accepted():
    f = Categorical(np.int64(10), max_values=np.int32(3), dim=np.int16(4))
    assert (f.vocab_size, f.max_values, f.dim) == (10, 3, 4)


def test_synthetic_rows_carry_features_with_a_known_effect():
    from keras_lsrec.data import synthetic
    from keras_lsrec.metrics import auc

    plain = synthetic.generate(num_users=300, examples_per_user=4, max_len=90, seed=1)
    data = synthetic.generate(num_users=300, examples_per_user=4, max_len=90, features=True, seed=1)
    assert set(data.schema.features) == set(synthetic.FEATURES)
    data.schema.validate(data.train.x, data.train.y)
    for key, value in plain.train.x.items():  # the sequences and targets of before
        np.testing.assert_array_equal(data.train.x[key], value)
    np.testing.assert_allclose(data.train.probability_without_features, plain.train.probability)
    test = data.test
    assert auc(test.y, test.probability) > auc(test.y, test.probability_without_features) + 0.05
    requests = synthetic.generate(
        num_users=40, examples_per_user=2, max_len=90, candidates=5, min_candidates=2, features=True
    )
    requests.schema.validate(requests.train.x, requests.train.y)
    rows = requests.train.flatten()
    assert rows.x["user_tags"].shape == (len(rows), 4) and len(rows.probability_without_features) == len(rows)


def test_a_dataset_built_without_a_schema_is_checked_against_the_models():
    from keras_lsrec.data import ArrayDataset
    from keras_lsrec.training.inputs import validated

    s = schema()
    x = s.random_batch(8, seed=3)
    y = np.zeros(8, "float32")
    dataset = ArrayDataset(x, y, 4)  # no `schema=`: its features are read from the arrays
    assert dataset.checked_schema is not None and set(dataset.checked_schema.features) == set(FEATURES)
    validated(dataset, s)
    bad = dict(x, user_age=np.full(8, 10))  # outside the model's vocabulary of 10
    with pytest.raises(ValueError, match="user_age"):
        validated(ArrayDataset(bad, y, 4), s)


ITEM_FEATURES = {"image": Dense(4), "topics": Categorical(30, max_values=3)}


def item_schema(**changes):
    return SequenceSchema({"item": 100}, max_len=20, item_features=ITEM_FEATURES, **changes)


def test_item_features_keys_shapes_and_padding():
    s = item_schema()
    shapes = s.input_shapes()
    assert shapes["target_image"] == (4,) and shapes["history_topics"] == (None, 3)
    assert s.inputs()["history_image"].dtype == "float32" and s.vocab_size("target_topics") == 30
    x = s.random_batch(6, length=9, seed=0)
    assert x["history_image"].shape == (6, 9, 4) and x["target_topics"].shape == (6, 3)
    padded = x["history_item"] == 0
    assert (
        padded.any() and (x["history_image"][padded] == 0).all() and (x["history_topics"][padded] == 0).all()
    )
    s.validate(x)
    request = s.replace(candidates=5)
    assert request.input_shapes()["target_image"] == (5, 4)
    batch = request.random_batch(3, seed=1)
    assert (batch["target_topics"][batch["target_item"] == 0] == 0).all()
    request.validate(batch)
    assert SequenceSchema.from_config(s.get_config()) == s
    assert "item_features" not in SequenceSchema({"item": 9}, max_len=2).get_config()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x: x["history_image"].__setitem__((1, 2, 0), np.inf), r"history_image\[1, 2, 0\] = inf"),
        (lambda x: x.update(history_topics=x["history_topics"][..., :2]), r"\(6, 9, 3\).*pad shorter bags"),
        (lambda x: x.update(target_image=x["target_image"][:, None]), r"target_image.*\(6, 4\)"),
        (lambda x: x.update(target_topics=x["target_topics"] + 30), "outside the vocabulary"),
        (lambda x: x.update(history_topics=x["history_topics"] * 1.5), "integer ids"),
    ],
)
def test_bad_item_feature_values_are_refused_with_the_key_named(change, message):
    s = item_schema()
    x = s.random_batch(6, length=9, seed=2)
    change(x)
    with pytest.raises(ValueError, match=message):
        s.validate(x)


@pytest.mark.parametrize(
    "item_features, message",
    [
        ({"brand": Categorical(5)}, "id field; add it to `vocab_sizes"),
        ({"image": Dense(4, output_dim=8)}, "leave `dim` / `output_dim` unset"),
        ({"topics": Categorical(9, max_values=2, dim=4)}, "leave `dim`"),
        ({"item": Dense(2)}, "already taken"),
        ({"user_age": Dense(2)}, "already taken"),
        ({"bad name": Dense(2)}, "identifiers"),
        ([1], "mapping"),
    ],
)
def test_bad_item_feature_specs_are_refused(item_features, message):
    with pytest.raises(ValueError, match=message):
        SequenceSchema({"item": 100}, max_len=20, features=FEATURES, item_features=item_features)


def test_a_dataset_without_a_schema_reads_item_features_from_the_arrays():
    from keras_lsrec.data import ArrayDataset
    from keras_lsrec.training.inputs import validated

    s = item_schema()
    x = s.random_batch(8, seed=3)
    dataset = ArrayDataset(x, np.zeros(8, "float32"), 4)
    loose = dataset.checked_schema
    assert loose is not None and set(loose.item_features) == {"image", "topics"}
    validated(dataset, s)
    with pytest.raises(ValueError, match="topics"):
        validated(ArrayDataset(dict(x, history_topics=x["history_topics"] + 30), np.zeros(8), 4), s)


def test_a_sequence_dataset_stores_item_features_once_and_gathers_them(tmp_path):
    from keras_lsrec.data import SequenceDataset, synthetic

    data = synthetic.generate(
        num_users=40, examples_per_user=3, max_len=90, features=True, item_features=True
    )
    dataset = data.sequence_dataset("train", batch_size=16)
    assert dataset.schema == data.schema
    assert data.item_tables is not None and dataset.item_tables["image_emb"].shape == (501, 8)
    x, y = dataset.rows(np.arange(len(data.train)))
    for key, value in data.train.x.items():  # the batches equal the split's arrays, key for key
        np.testing.assert_array_equal(x[key], value, err_msg=key)
    assert x["history_image_emb"].dtype == np.float32 and x["history_topics"].dtype == np.int32
    dataset.save(str(tmp_path / "d"))
    again = SequenceDataset.load(str(tmp_path / "d"))
    assert again.schema == dataset.schema
    np.testing.assert_array_equal(again[0][0]["history_topics"], dataset[0][0]["history_topics"])
    # A table too short for the item vocabulary, or with a bad value, is refused by name.
    pairs = {n: (f, dataset.item_tables[n]) for n, f in dataset.item_features.items()}
    build = dict(
        sequences=dataset.sequences,
        offsets=dataset.offsets,
        examples=dataset.examples,
        max_len=90,
        vocab_sizes=dataset.vocab_sizes,
        features=dataset.features,
    )
    short = dict(pairs, image_emb=(Dense(8), pairs["image_emb"][1][:100]))
    with pytest.raises(ValueError, match=r"item_features\['image_emb'\].*one per item id"):
        SequenceDataset(**build, item_features=short)
    nan = pairs["image_emb"][1].copy()
    nan[7, 1] = np.nan
    with pytest.raises(
        ValueError,
        match=r"item_features\['image_emb'\]\[7, 1\] = nan",
    ):
        SequenceDataset(**build, item_features=dict(pairs, image_emb=(Dense(8), nan)))


def test_clustered_histories_keep_each_representatives_item_features():
    from keras_lsrec.data import cluster_histories, synthetic

    data = synthetic.generate(num_users=30, examples_per_user=2, max_len=90, item_features=True)
    assert data.item_tables is not None
    out = cluster_histories(data.train.x, data.item_vectors(), 4, group_field="category")
    for name, table in data.item_tables.items():  # each cluster: its representative item's features
        np.testing.assert_array_equal(out[f"history_{name}"], table[out["history_item"]], err_msg=name)
    data.schema.replace(cluster_sizes=True).validate(out)
