"""Item-feature tables held by the SavedModel (`export(..., item_tables=)`): requests send ids only."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from keras_lsrec import serving
from keras_lsrec.data import Categorical, Dense, SequenceSchema
from keras_lsrec.models import DIN
from keras_lsrec.serving._tf_export import WARMUP_FILE
from keras_lsrec.serving.testing import ModelServer

on_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="the export mechanism is tested on tensorflow here"
)
ITEMS = 60
# `tags` is sent by the client; the SavedModel holds the other two.
SCHEMA = SequenceSchema(
    {"item": ITEMS, "category": 8},
    max_len=40,
    time_vocab_size=41,
    item_features={"image_emb": Dense(6), "topics": Categorical(17, max_values=3), "tags": Categorical(5, 2)},
)
HELD = ("image_emb", "topics")


def make_tables(rows=ITEMS + 3):
    rng = np.random.default_rng(7)
    topics = rng.integers(0, 17, (rows, 3))
    topics[:, 1:] *= rng.integers(0, 2, (rows, 1))  # bags of 1 to 3 topics, padded with 0 at the end
    return {"image_emb": rng.normal(size=(rows, 6)).astype("float32"), "topics": topics.astype("int32")}


TABLES = make_tables()


def with_tables(batch):
    """`batch` with the held features gathered from `TABLES`, zeros at id 0 (the model's full batch)."""
    full = dict(batch)
    for name, table in TABLES.items():
        for part in ("target_", "history_"):
            ids = batch[part + "item"]
            full[part + name] = np.where((ids != 0)[..., None], table[ids], 0).astype(table.dtype)
    return full


def without_held(batch):
    return {k: v for k, v in batch.items() if k.removeprefix("target_").removeprefix("history_") not in HELD}


def call(model, batch):
    return keras.ops.convert_to_numpy(model(batch, training=False))


def serve(loaded, signature, batch, dtype="int64"):
    tensors = {k: tf.constant(v, "float32" if SCHEMA.is_dense(k) else dtype) for k, v in batch.items()}
    return loaded.signatures[signature](**tensors)["probability"].numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`(model, base_dir, version_path)`: a tiny DIN exported once with `TABLES` held."""
    keras.utils.set_random_seed(3)
    model = DIN(SCHEMA, embedding_dim=4, attention_units=(8,), mlp_units=(8,))
    base = str(tmp_path_factory.mktemp("held") / "din")
    return model, base, serving.export(model, base, item_tables=TABLES)


@on_tensorflow
def test_the_savedmodel_gathers_held_features_as_the_model_reads_them(exported):
    model, _, path = exported
    loaded = tf.saved_model.load(path)
    for signature in ("serving_default", "serving_int32", "serving_request"):
        specs = loaded.signatures[signature].structured_input_signature[1]
        assert "history_tags" in specs and "target_tags" in specs
        assert not {"target_image_emb", "history_image_emb", "target_topics", "history_topics"} & set(specs)
    # The tables are held as non-trainable variables, as given.
    held = {v.name.split(":")[0]: v for v in loaded.item_tables}
    assert sorted(held) == ["item_table_image_emb", "item_table_topics"]
    assert not any(v.trainable for v in held.values())
    np.testing.assert_array_equal(held["item_table_topics"].numpy(), TABLES["topics"])
    np.testing.assert_array_equal(held["item_table_image_emb"].numpy(), TABLES["image_emb"])
    # ...and stored once (a Keras weight is stored twice, keras-team/keras#23553).
    stored = [shape for _, shape in tf.train.list_variables(f"{path}/variables/variables")]
    assert stored.count([ITEMS + 3, 6]) == stored.count([ITEMS + 3, 3]) == 1
    # Rows, with padding.
    batch = SCHEMA.random_batch(9, seed=1)
    expected = call(model, with_tables(batch))
    np.testing.assert_allclose(serve(loaded, "serving_default", without_held(batch)), expected, atol=1e-5)
    np.testing.assert_allclose(
        serve(loaded, "serving_int32", without_held(batch), "int32"), expected, atol=1e-5
    )
    # Candidate sets with missing candidates (id 0: zeros, probability 0).
    request = model.request_form()
    rx = request.schema.random_batch(3, candidates=7, seed=2)
    got = serve(loaded, "serving_request", without_held(rx))
    np.testing.assert_allclose(got, call(request, with_tables(rx)), atol=1e-5)
    assert np.all(got[rx["target_item"] == 0] == 0)
    # The server still checks the ids it gathers by.
    bad = dict(without_held(batch), history_item=batch["history_item"] + ITEMS)
    with pytest.raises(tf.errors.InvalidArgumentError, match="history_item"):
        serve(loaded, "serving_default", bad)
    # Warm-up records send what the signatures take; the GPU check passes.
    records = list(tf.data.TFRecordDataset(f"{path}/{WARMUP_FILE}"))
    assert len(records) == 4
    for record in records:
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        inputs = set(log.predict_log.request.inputs)
        assert "target_tags" in inputs and not {"target_image_emb", "history_topics"} & inputs
    assert serving.check(path).ok


@on_tensorflow
@pytest.mark.parametrize(
    "tables, message",
    [
        ({"colour": TABLES["image_emb"]}, r"item_tables\['colour'\].*not an item feature.*image_emb"),
        ({"image_emb": TABLES["image_emb"][: ITEMS - 1]}, r"item_tables\['image_emb'\]` has 59 rows.*60"),
        (
            {"image_emb": TABLES["image_emb"][:, :5]},
            r"item_tables\['image_emb'\]` must have shape \(rows, 6\)",
        ),
        ({"topics": TABLES["topics"][:, 0]}, r"item_tables\['topics'\]` must have shape \(rows, 3\)"),
        ({"image_emb": np.where(np.eye(63, 6, -4) > 0, np.nan, TABLES["image_emb"])}, r"\[4, 0\] = nan"),
        ({"image_emb": np.full((63, 6), 1e39)}, r"item_tables\['image_emb'\].*finite"),
        ({"topics": TABLES["topics"] + 10}, r"item_tables\['topics'\].*id \d+ .*\[0, 17\)"),
        ({"topics": TABLES["topics"] * 1.5}, r"item_tables\['topics'\]` must hold integer ids"),
    ],
)
def test_bad_tables_are_refused_by_name_before_anything_is_written(tables, message, tmp_path):
    model = DIN(SCHEMA, embedding_dim=4, attention_units=(8,), mlp_units=(8,))
    with pytest.raises(ValueError, match=message):
        serving.export(model, str(tmp_path / "models" / "din"), item_tables=tables)
    assert not (tmp_path / "models").exists()


@on_tensorflow
def test_the_client_sends_ids_only_for_held_features(exported):
    model, base, _ = exported
    request = model.request_form()
    batch = SCHEMA.random_batch(5, seed=4)
    rx = request.schema.random_batch(2, candidates=6, seed=5)
    server = ModelServer(base).start()
    try:
        for target in (server.rest_url, server.grpc_target):
            client = serving.Client(target, "din", schema=SCHEMA, held_item_features=HELD, timeout=30)
            np.testing.assert_allclose(
                client.predict(without_held(batch)), call(model, with_tables(batch)), atol=1e-5
            )
            np.testing.assert_allclose(
                client.predict(without_held(rx)), call(request, with_tables(rx)), atol=1e-5
            )
            history = {
                k.removeprefix("history_"): v[1] for k, v in without_held(rx).items() if "history_" in k
            }
            candidates = {
                k.removeprefix("target_"): v[1] for k, v in without_held(rx).items() if "target_" in k
            }
            np.testing.assert_allclose(
                client.score(history, candidates), call(request, with_tables(rx))[1], atol=1e-5
            )
            # A held feature's values, or a bad sent one, are refused before sending.
            with pytest.raises(ValueError, match=r"history_image_emb.*held_item_features"):
                client.predict(with_tables(batch))
            with pytest.raises(ValueError, match="history_tags"):
                client.predict(dict(without_held(batch), history_tags=batch["history_tags"] + 5))
            client.close()
        # A client that sends everything is refused by the server, naming the inputs.
        with pytest.raises(serving.ServingError, match="image_emb"):
            serving.Client(server.grpc_target, "din", timeout=30).predict(with_tables(batch))
    finally:
        server.stop()
    with pytest.raises(ValueError, match=r"'colour' is not an item feature"):
        serving.Client(server.rest_url, "din", schema=SCHEMA, held_item_features=("colour",))


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="CI time: the same subprocess runs from a `.keras` file under tensorflow (~30 s a backend)",
)
def test_the_subprocess_route_carries_the_tables(tmp_path):
    """From jax and torch (and from a `.keras` file) the export runs in a tensorflow subprocess."""
    keras.utils.set_random_seed(4)
    model = DIN(SCHEMA, embedding_dim=4, attention_units=(8,), mlp_units=(8,))
    source = model
    if keras.backend.backend() == "tensorflow":
        source = str(tmp_path / "din.keras")
        model.save(source)
    path = serving.export(source, str(tmp_path / "din"), item_tables=TABLES)
    batch = SCHEMA.random_batch(6, seed=6)
    loaded = tf.saved_model.load(path)
    np.testing.assert_allclose(
        serve(loaded, "serving_default", without_held(batch)), call(model, with_tables(batch)), atol=1e-5
    )
