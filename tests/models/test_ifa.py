"""IFA's properties: the forward pass in numpy, candidate independence and
equivariance, batch statistics over present candidates, SavedModel with any C."""

import keras
import numpy as np
import pytest
from test_candidate_set_attention import np_candidate_set_attention
from test_case import BACKEND, right_pad_batch, small_batch, to_numpy
from test_id_match_attention import np_id_match
from test_linear_cross_attention import np_linear_cross_attention

from keras_lsrec.data import synthetic
from keras_lsrec.losses import CandidateSetLoss
from keras_lsrec.models import IFA

SMALL = dict(embedding_dim=4, num_heads=2, key_dim=3, candidate_key_dim=4, mlp_units=(8,))
C = 6


def variable(schema):
    return schema.replace(candidates="variable")


def np_ifa(model, x):
    """The whole forward pass in numpy (tower without batch norm, relu)."""
    tables = model.get_layer("embedding").tables
    fields = ["item", "category", "time"]
    target = {f: x["target_" + f] for f in fields[:2]}
    target["time"] = np.zeros_like(x["target_item"])
    e = np.concatenate([to_numpy(tables[f].embeddings)[target[f]] for f in fields], -1)
    h = np.concatenate([to_numpy(tables[f].embeddings)[x["history_" + f]] for f in fields], -1)
    present, present_events = x["target_item"] != 0, x["history_item"] != 0
    o = np_linear_cross_attention(model.get_layer("cross_attention"), e, h, present_events)
    features = [e, o, e * o]
    for field in model.match_fields:  # mean of the events sharing the id, log(1 + count)
        buckets = model.get_layer(f"match_{field}").buckets
        features.append(np_id_match(x["target_" + field], x["history_" + field], h, present_events, buckets))
    features = np.concatenate(features, -1)
    if model.candidate_attention:
        features = np_candidate_set_attention(model.get_layer("candidate_attention"), features, present)
    denses = [layer for layer in model.get_layer("tower").stack if isinstance(layer, keras.layers.Dense)]
    for dense in denses[:-1]:
        features = np.maximum(features @ to_numpy(dense.kernel) + to_numpy(dense.bias), 0)
    last = denses[-1]
    logit = (features @ to_numpy(last.kernel) + to_numpy(last.bias))[..., 0]
    return present / (1 + np.exp(-logit))


@pytest.mark.parametrize("candidate_attention", [True, False])
def test_ifa_matches_numpy_forward_pass(candidate_attention, candidate_data):
    x, _ = small_batch(candidate_data, 8)
    x["history_item"][0] = 0  # a user without history
    x["history_category"][0] = 0
    x["history_time"][0] = 0
    model = IFA(
        candidate_data.schema,
        **SMALL,
        candidate_attention=candidate_attention,
        input_batch_norm=False,
        mlp_activation="relu",
    )
    got = to_numpy(model(x))
    np.testing.assert_allclose(got, np_ifa(model, x), atol=1e-5, rtol=1e-5)
    assert np.all(got[x["target_item"] == 0] == 0) and np.all(np.isfinite(got))
    np.testing.assert_allclose(to_numpy(model(right_pad_batch(x))), got, atol=1e-5)


def test_without_set_attention_candidates_are_scored_independently(candidate_data):
    x, _ = small_batch(candidate_data, 8)
    model = IFA(variable(candidate_data.schema), **SMALL, candidate_attention=False)
    together = model.predict(x, verbose=0)
    for j in range(C):
        alone = model.predict(
            {k: v[:, j : j + 1] if k.startswith("target_") else v for k, v in x.items()}, verbose=0
        )
        np.testing.assert_allclose(alone[:, 0], together[:, j], atol=1e-5)


def test_missing_candidates_stay_out_of_training_batch_statistics(candidate_data):
    """In training mode the tower's batch norm sees only present candidates:
    padding a request with missing candidates changes no present score."""
    x, _ = small_batch(candidate_data, 8)
    present = 2  # every request of the fixture has at least 2 candidates
    trimmed = {k: v[:, :present] if k.startswith("target_") else v for k, v in x.items()}
    padded = {k: v.copy() for k, v in trimmed.items()}
    for k in padded:
        if k.startswith("target_"):
            padded[k] = np.concatenate([v := trimmed[k], np.zeros((len(v), C - present), v.dtype)], axis=1)
    model = IFA(variable(candidate_data.schema), **SMALL)
    got = to_numpy(model(padded, training=True))
    np.testing.assert_allclose(got[:, :present], to_numpy(model(trimmed, training=True)), atol=1e-5)
    assert np.all(got[:, present:] == 0)


def test_with_set_attention_permuting_candidates_permutes_scores():
    full = synthetic.generate(
        num_users=8, examples_per_user=1, max_len=90, num_items=60, num_categories=8, candidates=C, seed=9
    )
    x = full.train.x
    model = IFA(full.schema, **SMALL)
    scores = model.predict(x, verbose=0)
    perm = np.random.default_rng(2).permutation(C)
    permuted = model.predict(
        {k: v[:, perm] if k.startswith("target_") else v for k, v in x.items()}, verbose=0
    )
    np.testing.assert_allclose(permuted, scores[:, perm], atol=1e-5)
    # ... and the set matters: the same candidate scores differently beside other candidates.
    other = {
        k: (np.concatenate([v[:, :1], v[::-1, 1:]], 1) if k.startswith("target_") else v)
        for k, v in x.items()
    }
    assert not np.allclose(model.predict(other, verbose=0)[:, 0], scores[:, 0], atol=1e-6)


def test_ifa_bad_input(candidate_data):
    model = IFA(candidate_data.schema, **SMALL)
    model.compile(optimizer="adam", loss=CandidateSetLoss())
    x, y = small_batch(candidate_data)
    y = np.where(y < 0, 0, y)
    with pytest.raises(ValueError, match="missing candidate"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="target_item"):
        model.predict({**x, "target_item": x["target_item"] + 100}, verbose=0)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="SavedModel export is checked under tensorflow")
def test_ifa_saved_model_serves_candidate_sets(candidate_data, tmp_path):
    import tensorflow as tf

    from keras_lsrec import serving

    model = IFA(variable(candidate_data.schema), **SMALL)
    path = serving.export(model, str(tmp_path / "ifa"))
    loaded = tf.saved_model.load(path)
    for rows, candidates in ((1, 1), (3, 50), (16, 6)):
        batch = variable(candidate_data.schema).random_batch(rows, candidates=candidates, seed=rows)
        served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in batch.items()})
        np.testing.assert_allclose(served["probability"].numpy(), model.predict(batch, verbose=0), atol=1e-5)
    with pytest.raises(Exception, match="target_category.*shape of `target_item`"):
        batch = {**batch, "target_category": batch["target_category"][:, :2]}
        loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in batch.items()})


def test_files_saved_before_the_match_reads_load_without_them(candidate_data):
    model = IFA(candidate_data.schema, **SMALL)
    assert [layer.name for layer in model.layers if layer.name.startswith("match_")] == ["match_category"]
    config = model.get_config()
    del config["match_fields"]  # a config written before `match_fields` existed
    old = IFA.from_config(config)
    assert not old.match_fields and not any(layer.name.startswith("match_") for layer in old.layers)


def test_match_fields_must_be_fields(candidate_data):
    with pytest.raises(ValueError, match="match_fields.*genre"):
        IFA(candidate_data.schema, **SMALL, match_fields=("genre",))
    with pytest.raises(ValueError, match="match_fields.*twice"):
        IFA(candidate_data.schema, **SMALL, match_fields=("item", "item"))
    one = IFA(candidate_data.schema, **SMALL, match_fields="item")  # one name, not its letters
    assert [layer.name for layer in one.layers if layer.name.startswith("match_")] == ["match_item"]
