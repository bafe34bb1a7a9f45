"""AUC / GAUC / logloss against brute-force references."""

import numpy as np
import pytest

from keras_lsrec import metrics


def brute_auc(y, s):
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return np.nan
    diff = pos[:, None] - neg[None, :]
    return ((diff > 0).sum() + 0.5 * (diff == 0).sum()) / (len(pos) * len(neg))


def brute_gauc(y, s, g):
    total = weight = 0.0
    for user in np.unique(g):
        rows = g == user
        value = brute_auc(y[rows], s[rows])
        if not np.isnan(value):
            total += value * rows.sum()
            weight += rows.sum()
    return total / weight


def test_auc_and_gauc_match_brute_force_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500).astype(float)
    s = np.round(rng.random(500), 1)  # many ties
    g = rng.integers(0, 40, 500)
    g[:5] = 999  # a user ...
    y[:5] = 1  # ... with one class only: skipped
    assert metrics.auc(y, s) == pytest.approx(brute_auc(y, s), abs=1e-12)
    assert metrics.gauc(y, s, g) == pytest.approx(brute_gauc(y, s, g), abs=1e-12)


def test_logloss_and_degenerate_cases():
    y = np.array([1.0, 0.0])
    p = np.array([0.8, 0.1])
    assert metrics.logloss(y, p) == pytest.approx(-(np.log(0.8) + np.log(0.9)) / 2)
    assert np.isfinite(metrics.logloss(y, np.array([1.0, 0.0])))
    assert np.isnan(metrics.auc([1, 1], [0.2, 0.3]))
    assert np.isnan(metrics.gauc([1, 0], [0.2, 0.3], [1, 2]))
    with pytest.raises(ValueError, match="differ in size"):
        metrics.auc([1, 0], [0.1])


def test_evaluate_uses_predict():
    class Constant:
        def predict(self, x, batch_size=None, verbose=0):
            return x["score"]

    x = {"score": np.array([0.9, 0.2, 0.7, 0.1])}
    y = np.array([1, 0, 0, 1])
    result = metrics.evaluate(Constant(), x, y, groups=np.array([0, 0, 1, 1]))
    assert result["auc"] == pytest.approx(brute_auc(y, x["score"]))
    assert result["gauc"] == pytest.approx(0.5)
    assert set(result) == {"auc", "gauc", "logloss"}


def brute_ndcg(y, s, k):
    values = []
    for row_y, row_s in zip(y, s, strict=True):
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


