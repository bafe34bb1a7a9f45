"""Features in every registered model: per-row ones (user, context) reach the
tower, item-side ones (a bag of topics, an image vector per item) the item
representation; padding (inside a bag, at padded events) does not matter,
`.keras` keeps them, the request form scores them once per request (the
candidates with their own item features), and their tables train row-sparsely."""

import os

import keras
import numpy as np
import pytest
from test_case import TestCase, small_batch, to_numpy

import keras_lsrec
from keras_lsrec.data import Categorical, Dense
from keras_lsrec.layers import EmbeddingTable
from keras_lsrec.losses import CandidateSetLoss
from keras_lsrec.models import CANDIDATES, ROW
from keras_lsrec.training import keras_private

NAMES = keras_lsrec.models.names()
FEATURES = {
    "user_age": Categorical(10, dim=4),
    "user_tags": Categorical(30, max_values=4, dim=4),
    "context": Dense(5, output_dim=4),
}


ITEM_FEATURES = {"image_emb": Dense(6), "topics": Categorical(20, max_values=3)}


def item_tables(vocab: int, seed: int = 7) -> dict[str, np.ndarray]:
    """A random item table per item feature (row = item id, row 0 zeros), bags padded at the end."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(vocab, 6)).astype("float32")
    count = rng.integers(0, 4, vocab)
    topics = np.where(np.arange(3) < count[:, None], rng.integers(1, 20, (vocab, 3)), 0).astype("int32")
    emb[0], topics[0] = 0, 0
    return {"image_emb": emb, "topics": topics}


def featured_batch(cls, row_data, candidate_data):
    data = candidate_data if cls.INPUT_FORMS[0] == CANDIDATES else row_data
    schema = data.schema.replace(features=FEATURES, item_features=ITEM_FEATURES)
    x, y = small_batch(data)
    extra = schema.random_batch(len(y), seed=5, dtype="int32")
    x.update({name: extra[name] for name in FEATURES})
    x["user_tags"][0] = 0  # an empty bag
    for name, table in item_tables(schema.vocab_sizes["item"]).items():
        x[f"target_{name}"] = table[x["target_item"]]
        x[f"history_{name}"] = table[x["history_item"]]
    return schema, x, y


def call(model, x):
    return to_numpy(model(x, training=False))


@pytest.mark.parametrize("name", NAMES)
def test_every_model_reads_the_row_features(name, row_data, candidate_data, tmp_path):
    cls = keras_lsrec.models.get(name)
    schema, x, _ = featured_batch(cls, row_data, candidate_data)
    model = cls(schema, mlp_units=(8,))
    schema.validate(x)
    p = call(model, x)
    assert np.all(np.isfinite(p))
    # Each kind reaches the output.
    for key, other in [
        ("user_age", (x["user_age"] + 1) % 10),
        ("user_tags", np.where(x["user_tags"] != 0, x["user_tags"] % 29 + 1, 0)),
        ("context", x["context"] + 1.0),
    ]:
        changed = call(model, {**x, key: other})
        assert not np.allclose(changed, p), key
    # The item features reach it, through the history and through the target.
    valid = x["history_item"] != 0
    for key, other in [
        ("history_image_emb", x["history_image_emb"] + valid[..., None]),
        ("target_image_emb", x["target_image_emb"] + 1.0),
        ("history_topics", np.where(x["history_topics"] != 0, x["history_topics"] % 19 + 1, 0)),
    ]:
        changed = call(model, {**x, key: other})
        assert not np.allclose(changed, p), key
    # Where a bag's padding sits does not matter, nor what padded events carry.
    moved = {
        **x,
        "user_tags": np.sort(x["user_tags"], axis=1),
        "history_topics": np.sort(x["history_topics"], axis=-1),
        "history_image_emb": np.where(valid[..., None], x["history_image_emb"], 3.0).astype("float32"),
    }
    np.testing.assert_allclose(call(model, moved), p, atol=1e-5)
    # `.keras` keeps the features and their weights.
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.schema == schema
    np.testing.assert_allclose(call(loaded, x), p, atol=1e-6)
    # The request form: per-row features once per request, the same scores.
    if CANDIDATES in cls.INPUT_FORMS and ROW in cls.INPUT_FORMS:
        request = model.request_form(2)
        rx = {k: (np.repeat(v[:, None], 2, 1) if k.startswith("target_") else v) for k, v in x.items()}
        schema.replace(candidates=2).validate(rx)
        scores = call(request, rx)
        np.testing.assert_allclose(scores[:, 0], p, atol=1e-5)
        np.testing.assert_allclose(scores[:, 1], p, atol=1e-5)


# The models whose features take distinct routes: one item table per field and `RowFeatures`
# into the tower (`din`, as every model built on `wiring`), a search reading the item's content
# cut out of the widened embedding (`eta`, as SIM, SDIM, TWIN and MIRRN), DARE's two tables, a
# candidate set (`ifa`), HSTU's contextual token. Every model's reading of the features is
# checked above.
FEATURE_ROUTES = ("din", "eta", "dare", "ifa", "hstu")


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="CI time: run where SavedModel parity is checkable; the checks above run on every backend",
)
@pytest.mark.parametrize("name", FEATURE_ROUTES)
def test_the_model_contract_holds_with_every_kind_of_feature(name, row_data, candidate_data):
    """The whole contract (padding, all-padding and empty histories, `.keras`,
    SavedModel parity, mixed precision, a training step, bad input) on a schema
    with per-row and item features of every kind, for each route the features
    take. (tensorflow only: on jax it costs ~40 s a model, mostly compilation;
    the reading, padding, `.keras` and request-form checks of
    `test_every_model_reads_the_row_features` run for every model on every
    backend.)"""
    cls = keras_lsrec.models.get(name)
    schema, x, y = featured_batch(cls, row_data, candidate_data)
    loss = CandidateSetLoss() if schema.has_candidates else "binary_crossentropy"
    # Mixed precision casts features in `RowFeatures` / `FieldEmbedding`, the same code for every
    # model: checked on two (a single table and DARE's two), to keep CI inside its budget.
    mixed = name in ("din", "dare")
    TestCase().run_model_test(cls, {"mlp_units": (8,)}, schema, x, y, loss=loss, run_mixed_precision=mixed)


@pytest.mark.parametrize("name", ["din", "dare", "ifa"])
def test_feature_tables_train_row_sparsely(name, row_data, candidate_data):
    cls = keras_lsrec.models.get(name)
    schema, x, y = featured_batch(cls, row_data, candidate_data)
    model = cls(schema, mlp_units=(8,))
    loss = CandidateSetLoss() if schema.has_candidates else "binary_crossentropy"
    model.compile(keras.optimizers.Adam(0.01), loss, table_min_rows=0)
    assert model.table_training is not None
    fields = {t.field for t in model.table_training.tables}
    assert {"user_age", "user_tags", "topics"} <= fields
    tables = [
        t for t in keras_private.all_layers(model) if isinstance(t, EmbeddingTable) and t.field == "user_age"
    ]
    before = [to_numpy(t.embeddings).copy() for t in tables]
    model.train_on_batch(x, y)
    for table, old in zip(tables, before, strict=True):
        new = to_numpy(table.embeddings)
        seen = np.unique(x["user_age"])
        unseen = np.setdiff1d(np.arange(10), seen)
        assert not np.allclose(new[seen], old[seen])
        np.testing.assert_array_equal(new[unseen], old[unseen])  # rows the batch did not touch
