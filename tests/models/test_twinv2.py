"""TWIN-V2 on clustered histories: the cluster-aware search and attention against numpy,
the meaning of a cluster size, and the model contract on `cluster_sizes=True` batches."""

import keras
import numpy as np
import pytest
from references import np_normalize
from test_case import TestCase, small_batch, to_numpy

from keras_lsrec.data import cluster_histories
from keras_lsrec.models import TWINV2

SMALL = dict(embedding_dim=4, mlp_units=(8,))


@pytest.fixture(scope="module")
def clustered(row_data):
    """The shared synthetic rows, clustered with item vectors that follow their category."""
    rng = np.random.default_rng(0)
    items = row_data.schema.vocab_sizes["item"]
    categories = np.arange(items) % 8
    vectors = (rng.normal(size=(8, 6))[categories] + 0.1 * rng.normal(size=(items, 6))).astype("float32")
    x, y = small_batch(row_data)
    x = cluster_histories(x, vectors, max_cluster_size=4, group_field="category")
    assert x["history_cluster_size"].max() == 4  # clusters of several events, up to gamma
    return row_data.schema.replace(cluster_sizes=True), x, y


def np_embed(model, x, prefix):
    """The concatenated item, category and time embeddings of `prefix` ("target_" or "history_")."""
    tables = model.get_layer("embedding").tables
    parts = []
    for field in ("item", "category", "time"):
        ids = x[prefix + field] if prefix + field in x else np.zeros_like(x["target_item"])
        parts.append(to_numpy(tables[field].embeddings)[ids])
    return np.concatenate(parts, -1)


def np_attend(target, events, log_size):
    """Softmax of `<e_j, e_t> / sqrt(d) + log n_j` over `events`, pooled."""
    logits = events @ target / np.sqrt(target.shape[-1]) + log_size
    weights = np_normalize(logits[None], np.ones((1, len(events)), bool), "softmax")[0]
    return weights @ events


def np_interest(model, x, short_window=None):
    """Embeddings, `<e_j, e_t> + log n_j`, top-k, softmax of the k logits plus `log n_j`, pooled;
    with `short_window`: the same attention over the most recent `short_window` clusters instead."""
    target, history = np_embed(model, x, "target_"), np_embed(model, x, "history_")
    mask = x["history_item"] != 0
    log_size = np.log(np.maximum(x["history_cluster_size"], 1)).astype("float32")
    scores = np.einsum("bd,bld->bl", target, history) + log_size
    out = np.zeros_like(target)
    for b in range(len(target)):
        valid = np.nonzero(mask[b])[0]
        if not len(valid):
            continue
        if short_window:
            chosen = valid[-short_window:]
        else:
            chosen = valid[np.argsort(-scores[b, valid], kind="stable")[: model.k]]
        out[b] = np_attend(target[b], history[b, chosen], log_size[b, chosen])
    return out


class TestTWINV2(TestCase):
    def test_contract_on_clustered_histories(self, clustered):
        schema, x, y = clustered
        # Mixed precision: the same layers as the registry's contract run, which covers it.
        self.run_model_test(TWINV2, SMALL, schema, x, y, run_mixed_precision=False)

    @pytest.mark.parametrize("k", [3, 50])
    def test_cluster_aware_attention_matches_numpy(self, clustered, k):
        schema, x, _ = clustered
        model = TWINV2(schema, k=k, **SMALL)
        probe = keras.Model(model.inputs, model.get_layer("attention").output)
        np.testing.assert_allclose(to_numpy(probe(x)), np_interest(model, x), atol=1e-5, rtol=1e-5)

    def test_the_short_window_reads_the_recent_clusters_with_their_sizes(self, clustered):
        schema, x, _ = clustered
        model = TWINV2(schema, short_window=3, **SMALL)
        probe = keras.Model(model.inputs, model.get_layer("short_attention").output)
        expected = np_interest(model, x, short_window=3)
        np.testing.assert_allclose(to_numpy(probe(x)), expected, atol=1e-5, rtol=1e-5)

    def test_a_cluster_of_n_weighs_as_n_copies_of_its_representative(self, clustered):
        """With every cluster retrieved, a clustered history scores as the raw history in which
        each representative occurs n times (TWIN-V2 over copies = TWIN over the expansion)."""
        schema, x, _ = clustered
        model = TWINV2(schema, k=1000, **SMALL)
        raw = TWINV2(schema.replace(cluster_sizes=False), k=1000, **SMALL)
        raw.set_weights(model.get_weights())
        sizes = x["history_cluster_size"]
        expanded = {}
        width = int(sizes.sum(1).max())
        for key, value in x.items():
            if key == "history_cluster_size":
                continue
            if key.startswith("history_"):
                rows = [np.repeat(v, n) for v, n in zip(value, sizes, strict=True)]
                expanded[key] = np.stack([np.pad(r, (width - len(r), 0)) for r in rows])
            else:
                expanded[key] = value
        np.testing.assert_allclose(
            to_numpy(model(x, training=False)), to_numpy(raw(expanded, training=False)), atol=1e-5
        )

    @pytest.mark.parametrize("short_window", [None, 3])
    def test_request_form_equals_rows(self, clustered, short_window):
        schema, x, _ = clustered
        model = TWINV2(schema, k=3, short_window=short_window, **SMALL)
        request = model.request_form(candidates=2)
        pair = {k: (np.stack([v, v[::-1]], 1) if k.startswith("target_") else v) for k, v in x.items()}
        scores = to_numpy(request(pair, training=False))
        np.testing.assert_allclose(scores[:, 0], to_numpy(model(x, training=False)), atol=1e-5)
        flipped = {k: (v[::-1] if k.startswith("target_") else v) for k, v in x.items()}
        np.testing.assert_allclose(scores[:, 1], to_numpy(model(flipped, training=False)), atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="exports in-process under tensorflow")
def test_exports_cluster_sizes_and_refuses_an_empty_cluster(clustered, tmp_path):
    import tensorflow as tf

    from keras_lsrec import serving

    schema, x, _ = clustered
    model = TWINV2(schema, k=3, **SMALL)
    path = serving.export(model, str(tmp_path / "twinv2"))
    loaded = tf.saved_model.load(path)
    served = loaded.signatures["serving_default"](**{k: tf.constant(v, "int64") for k, v in x.items()})
    np.testing.assert_allclose(served["probability"].numpy(), to_numpy(model(x, training=False)), atol=1e-5)
    request = model.request_form()
    batch = request.schema.random_batch(2, candidates=5, seed=1)
    served = loaded.signatures["serving_request"](**{k: tf.constant(v) for k, v in batch.items()})
    np.testing.assert_allclose(served["probability"].numpy(), to_numpy(request(batch)), atol=1e-5)
    bad = {k: tf.constant(v, "int64") for k, v in x.items()}
    sizes = np.array(x["history_cluster_size"])
    sizes[x["history_item"] != 0] = 0
    bad["history_cluster_size"] = tf.constant(sizes, "int64")
    with pytest.raises(tf.errors.InvalidArgumentError, match="history_cluster_size"):
        loaded.signatures["serving_default"](**bad)
