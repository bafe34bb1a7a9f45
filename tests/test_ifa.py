"""IFA end to end: candidate-set schema and data, loss, metrics, model properties, serving."""

import keras
import numpy as np
import pytest
from test_case import BACKEND, assert_independent_initial_weights, right_pad_batch, run_model_test, to_numpy
from test_ifa_layers import np_candidate_set_attention, np_linear_cross_attention

from keras_lsrec import metrics
from keras_lsrec.data import SequenceSchema, synthetic
from keras_lsrec.losses import CandidateSetLoss
from keras_lsrec.models import IFA

SMALL = dict(embedding_dim=4, num_heads=2, key_dim=3, candidate_key_dim=4, mlp_units=(8,))
C = 6


@pytest.fixture(scope="module")
def data():
    return synthetic.generate(
        num_users=24, examples_per_user=3, max_len=90, num_items=60, num_categories=8,
        candidates=C, min_candidates=2, seed=4,
    )


def small_batch(data, size=16):
    return {k: v[:size] for k, v in data.train.x.items()}, data.train.y[:size]


def variable(schema):
    return schema.replace(candidates="variable")


# ---------------------------------------------------------------- schema and data
def test_synthetic_candidate_sets(data):
    x, y = data.train.x, data.train.y
    assert x["target_item"].shape == y.shape == data.train.probability.shape and y.shape[1] == C
    missing = x["target_item"] == 0
    assert missing.any() and not missing[:, :2].any()  # at least min_candidates, missing at the end
    assert np.all(y[missing] == -1) and np.all(np.isin(y[~missing], (0, 1)))
    assert np.all(x["target_category"][missing] == 0)
    data.schema.validate(x, y)
    flat = data.train.flatten()
    assert len(flat) == (~missing).sum() and flat.x["history_item"].shape == (len(flat), 90)
    assert np.array_equal(flat.x["target_item"], x["target_item"][~missing])
    # Single-target data is unchanged by the candidate option.
    single = synthetic.generate(num_users=10, examples_per_user=2, max_len=90, num_items=60, num_categories=8, seed=4)
    assert single.train.y.ndim == 1 and single.train.flatten() is single.train


def test_schema_candidate_labels_and_variable_size(data):
    x, y = small_batch(data)
    bad = y.copy()
    row, col = np.argwhere(x["target_item"] == 0)[0]
    bad[row, col] = 0
    with pytest.raises(ValueError, match=rf"labels\[{row}, {col}\] = 0.*missing candidate"):
        data.schema.validate(x, bad)
    bad = y.copy()
    bad[0, 0] = 2
    with pytest.raises(ValueError, match=r"labels\[0, 0\]"):
        data.schema.validate(x, bad)
    flexible = variable(data.schema)
    assert flexible.target_shape == (None,)
    flexible.validate({k: v[:, :4] if k.startswith("target_") else v for k, v in x.items()})
    with pytest.raises(ValueError, match="target_category.*same"):
        flexible.validate({**x, "target_category": x["target_category"][:, :3]})
    with pytest.raises(ValueError, match="6 candidates"):
        data.schema.validate({**x, "target_item": x["target_item"][:, :3]})
    batch = flexible.random_batch(5, candidates=7, seed=1)
    assert batch["target_item"].shape == (5, 7) and (batch["target_item"][:, 0] != 0).all()
    flexible.validate(batch)
    assert SequenceSchema.from_config(flexible.get_config()) == flexible
    with pytest.raises(ValueError, match="candidates"):
        SequenceSchema({"item": 5}, 4, candidates="any")


# ---------------------------------------------------------------- loss and metrics
def np_candidate_set_loss(y, p, listwise_weight, pointwise_weight, eps=1e-7):
    out = []
    for row_y, row_p in zip(y, p):
        valid = row_y >= 0
        if not valid.any():
            out.append(0.0)
            continue
        yy, pp = row_y[valid], np.clip(row_p[valid], eps, 1 - eps)
        point = -np.mean(yy * np.log(pp) + (1 - yy) * np.log(1 - pp))
        logits = np.log(pp / (1 - pp))
        log_softmax = logits - np.log(np.exp(logits).sum())
        listwise = -(yy / yy.sum() * log_softmax).sum() if yy.sum() > 0 else 0.0
        out.append(pointwise_weight * point + listwise_weight * listwise)
    return np.mean(out)


@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.5, 2.0), (0.0, 1.0)])
def test_candidate_set_loss_matches_numpy(weights):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (6, 5)).astype("float32")
    y[1, 3:] = -1  # missing candidates
    y[2] = 0  # no click: no list-wise term
    y[3] = -1  # no candidate at all: 0
    p = rng.random((6, 5)).astype("float32")
    loss = CandidateSetLoss(listwise_weight=weights[0], pointwise_weight=weights[1])
    expected = np_candidate_set_loss(y, p, *weights)
    assert float(to_numpy(loss(y, p))) == pytest.approx(expected, rel=1e-5)
    # Missing candidates do not matter whatever their prediction.
    p2 = p.copy()
    p2[y < 0] = 0.999
    assert float(to_numpy(loss(y, p2))) == pytest.approx(expected, rel=1e-5)
    logits = np.log(p / (1 - p))
    from_logits = CandidateSetLoss(listwise_weight=weights[0], pointwise_weight=weights[1], from_logits=True)
    assert float(to_numpy(from_logits(y, logits))) == pytest.approx(expected, rel=1e-4)
    clone = CandidateSetLoss.from_config(loss.get_config())
    assert clone.get_config() == loss.get_config()
    with pytest.raises(ValueError, match="listwise_weight"):
        CandidateSetLoss(listwise_weight=-1)


def brute_ndcg(y, s, k):
    values = []
    for row_y, row_s in zip(y, s):
        keep = row_y >= 0
        gains, scores = row_y[keep], row_s[keep]
        if gains.sum() == 0:
            continue
        order = sorted(range(len(gains)), key=lambda i: (-scores[i], i))[:k]
        dcg = sum(gains[i] / np.log2(rank + 2) for rank, i in enumerate(order))
        ideal = sum(g / np.log2(rank + 2) for rank, g in enumerate(sorted(gains, reverse=True)[:k]))
        values.append(dcg / ideal)
    return np.mean(values)


def test_ndcg_and_candidate_set_evaluate():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, (30, 8)).astype(float)
    y[:, 6:] = -1
    y[0, :6] = 0  # no click: skipped
    s = np.round(rng.random((30, 8)), 1)
    for k in (1, 3, 10):
        assert metrics.ndcg(y, s, k) == pytest.approx(brute_ndcg(y, s, k), abs=1e-12)
    assert metrics.ndcg(np.where(y > 0, 1.0, y), np.where(y > 0, 1.0, 0.0), 5) == pytest.approx(1.0)

    class Scores:
        def predict(self, x, batch_size=None, verbose=0):
            return s

    users = np.arange(30) % 7
    result = metrics.evaluate(Scores(), {}, y, groups=users, ndcg_at=(3,))
    present = y >= 0
    assert result["auc"] == pytest.approx(metrics.auc(y[present], s[present]))
    groups = np.broadcast_to(users[:, None], y.shape)[present]
    assert result["gauc"] == pytest.approx(metrics.gauc(y[present], s[present], groups))
    assert result["ndcg@3"] == pytest.approx(brute_ndcg(y, s, 3))


# ---------------------------------------------------------------- the model
CASES = {
    "ifa": dict(),
    "ifa_no_set_attention": dict(candidate_attention=False, feature_map="relu"),
    "ifa_favor": dict(feature_map="favor", random_features=8),
    "ifa_no_tr": dict(target_representation=False, value_dim=2, mlp_activation="dice"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_ifa_round_trips(case, data, tmp_path):
    x, y = small_batch(data)
    run_model_test(IFA(data.schema, **SMALL, **CASES[case]), x, y, tmp_path, loss=CandidateSetLoss())


def np_ifa(model, x):
    """The whole forward pass in numpy (tower without batch norm, relu)."""
    tables = model.get_layer("embedding").tables
    fields = ["item", "category", "time"]
    target = {f: x["target_" + f] for f in fields[:2]}
    target["time"] = np.zeros_like(x["target_item"])
    e = np.concatenate([to_numpy(tables[f].embeddings)[target[f]] for f in fields], -1)
    h = np.concatenate([to_numpy(tables[f].embeddings)[x["history_" + f]] for f in fields], -1)
    present = x["target_item"] != 0
    o = np_linear_cross_attention(model.get_layer("cross_attention"), e, h, x["history_item"] != 0)
    features = np.concatenate([e, o, e * o], -1)
    if model.candidate_attention:
        features = np_candidate_set_attention(model.get_layer("candidate_attention"), features, present)
    denses = [layer for layer in model.get_layer("tower").stack if isinstance(layer, keras.layers.Dense)]
    for dense in denses[:-1]:
        features = np.maximum(features @ to_numpy(dense.kernel) + to_numpy(dense.bias), 0)
    last = denses[-1]
    logit = (features @ to_numpy(last.kernel) + to_numpy(last.bias))[..., 0]
    return present / (1 + np.exp(-logit))


@pytest.mark.parametrize("candidate_attention", [True, False])
def test_ifa_matches_numpy_forward_pass(candidate_attention, data):
    x, _ = small_batch(data, 8)
    x["history_item"][0] = 0  # a user without history
    x["history_category"][0] = 0
    x["history_time"][0] = 0
    model = IFA(data.schema, **SMALL, candidate_attention=candidate_attention, input_batch_norm=False, mlp_activation="relu")
    got = to_numpy(model(x))
    np.testing.assert_allclose(got, np_ifa(model, x), atol=1e-5, rtol=1e-5)
    assert np.all(got[x["target_item"] == 0] == 0) and np.all(np.isfinite(got))
    np.testing.assert_allclose(to_numpy(model(right_pad_batch(x))), got, atol=1e-5)


def test_without_set_attention_candidates_are_scored_independently(data):
    x, _ = small_batch(data, 8)
    model = IFA(variable(data.schema), **SMALL, candidate_attention=False)
    together = model.predict(x, verbose=0)
    for j in range(C):
        alone = model.predict({k: v[:, j : j + 1] if k.startswith("target_") else v for k, v in x.items()}, verbose=0)
        np.testing.assert_allclose(alone[:, 0], together[:, j], atol=1e-5)


def test_missing_candidates_stay_out_of_training_batch_statistics(data):
    """In training mode the tower's batch norm sees only present candidates:
    padding a request with missing candidates changes no present score."""
    x, _ = small_batch(data, 8)
    present = 2  # every request of the fixture has at least 2 candidates
    trimmed = {k: v[:, :present] if k.startswith("target_") else v for k, v in x.items()}
    padded = {k: v.copy() for k, v in trimmed.items()}
    for k in padded:
        if k.startswith("target_"):
            padded[k] = np.concatenate([v := trimmed[k], np.zeros((len(v), C - present), v.dtype)], axis=1)
    model = IFA(variable(data.schema), **SMALL)
    got = to_numpy(model(padded, training=True))
    np.testing.assert_allclose(got[:, :present], to_numpy(model(trimmed, training=True)), atol=1e-5)
    assert np.all(got[:, present:] == 0)


def test_ifa_weights_start_from_independent_draws(data):
    assert_independent_initial_weights(IFA(data.schema, **{**SMALL, "key_dim": 4}))


def test_with_set_attention_permuting_candidates_permutes_scores():
    full = synthetic.generate(num_users=8, examples_per_user=1, max_len=90, num_items=60, num_categories=8, candidates=C, seed=9)
    x = full.train.x
    model = IFA(full.schema, **SMALL)
    scores = model.predict(x, verbose=0)
    perm = np.random.default_rng(2).permutation(C)
    permuted = model.predict({k: v[:, perm] if k.startswith("target_") else v for k, v in x.items()}, verbose=0)
    np.testing.assert_allclose(permuted, scores[:, perm], atol=1e-5)
    # ... and the set matters: the same candidate scores differently beside other candidates.
    other = {k: (np.concatenate([v[:, :1], v[::-1, 1:]], 1) if k.startswith("target_") else v) for k, v in x.items()}
    assert not np.allclose(model.predict(other, verbose=0)[:, 0], scores[:, 0], atol=1e-6)


def test_ifa_bad_input(data):
    with pytest.raises(ValueError, match="candidates"):
        IFA(SequenceSchema({"item": 10}, 5))
    model = IFA(data.schema, **SMALL)
    model.compile(optimizer="adam", loss=CandidateSetLoss())
    x, y = small_batch(data)
    y = np.where(y < 0, 0, y)
    with pytest.raises(ValueError, match="missing candidate"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="target_item"):
        model.predict({**x, "target_item": x["target_item"] + 100}, verbose=0)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_ifa_trains_under_mixed_precision(policy, data):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = IFA(data.schema, **SMALL)
        model.compile(optimizer="adam", loss=CandidateSetLoss())
        history = model.fit(data.train.x, data.train.y, batch_size=16, epochs=2, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
        assert np.all(np.isfinite(model.predict(data.test.x, verbose=0)))
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.skipif(BACKEND != "tensorflow", reason="SavedModel export is checked under tensorflow")
def test_ifa_saved_model_serves_candidate_sets(data, tmp_path):
    import tensorflow as tf

    from keras_lsrec import serving

    model = IFA(variable(data.schema), **SMALL)
    path = serving.export(model, str(tmp_path / "ifa"))
    loaded = tf.saved_model.load(path)
    for rows, candidates in ((1, 1), (3, 50), (16, 6)):
        batch = variable(data.schema).random_batch(rows, candidates=candidates, seed=rows)
        served = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in batch.items()})
        np.testing.assert_allclose(served["probability"].numpy(), model.predict(batch, verbose=0), atol=1e-5)
    with pytest.raises(Exception, match="target_category.*shape of `target_item`"):
        batch = {**batch, "target_category": batch["target_category"][:, :2]}
        loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in batch.items()})
