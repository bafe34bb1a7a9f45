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


# Bad input is refused with the culprit named (how many, the first index), never scored.


class Predicts:
    def __init__(self, scores):
        self.scores = scores

    def predict(self, x, batch_size=None, verbose=0):
        return self.scores


@pytest.mark.parametrize(
    "scores, match",
    [
        (np.full(4, np.nan), r"`predictions` must be finite .*4 of 4 values are not, .* index 0: nan"),
        (np.array([0.2, 0.4, np.nan, 0.9]), r"`predictions` must be finite .*1 of 4 .* index 2: nan"),
        (np.array([0.2, np.inf, 0.3, -np.inf]), r"`predictions` must be finite .*2 of 4 .* index 1: inf"),
        (np.array([0.2, 1.7, 0.3, 0.1]), r"`predictions` must be in \[0, 1\].*1 of 4 .* index 1: 1.7"),
    ],
    ids=["all-nan", "one-nan", "inf", "logit"],
)
def test_evaluate_refuses_non_finite_or_out_of_range_predictions(scores, match):
    y = np.array([1, 0, 0, 1])
    with pytest.raises(ValueError, match=match):
        metrics.evaluate(Predicts(scores), {}, y, groups=np.array([0, 0, 1, 1]))


@pytest.mark.parametrize(
    "labels, match",
    [
        (np.array([1, 0, 2, 1]), r"`labels` must be 0 or 1; 1 of 4 values are not, the first at index 2: 2"),
        (np.array([1, -1, 0, 1]), r"`labels` must be 0 or 1; 1 of 4 .* index 1: -1.0"),
        (np.array([1, 0, np.nan, 0.5]), r"`labels` must be 0 or 1; 2 of 4 .* index 2: nan"),
    ],
    ids=["two", "minus-one-in-rows", "nan-and-half"],
)
def test_evaluate_refuses_labels_that_are_not_clicks(labels, match):
    with pytest.raises(ValueError, match=match):
        metrics.evaluate(Predicts(np.array([0.9, 0.2, 0.7, 0.1])), {}, labels)


def test_candidate_set_checks_name_the_cell_and_ignore_missing_candidates():
    y = np.array([[1, 0, -1], [0, 1, 0]], dtype=float)
    s = np.array([[0.9, 0.2, np.nan], [0.3, 0.8, 0.1]])  # NaN for a missing candidate: not used, fine
    result = metrics.evaluate(Predicts(s), {}, y, groups=np.array([0, 1]), ndcg_at=(2,))
    assert result["auc"] == pytest.approx(1.0) and result["ndcg@2"] == pytest.approx(1.0)
    s[1, 2] = np.nan  # ... but not for a present one
    with pytest.raises(ValueError, match=r"`predictions` must be finite .*1 of 6 .* index \(1, 2\): nan"):
        metrics.evaluate(Predicts(s), {}, y)
    y[0, 1] = 2
    with pytest.raises(ValueError, match=r"`labels` must be 0 or 1, or -1 for a missing candidate.*\(0, 1\)"):
        metrics.evaluate_scores(y, np.full(y.shape, 0.5))
    with pytest.raises(ValueError, match=r"`scores` must be finite .*index \(1, 2\)"):
        metrics.ndcg(np.where(y > 1, 1, y), s)
    with pytest.raises(ValueError, match=r"`labels` must be 0 or 1, or -1.*\(0, 1\): 2.0"):
        metrics.ndcg(y, np.zeros(y.shape))


def test_evaluate_refuses_predictions_of_another_layout():
    y = np.array([[1, 0, 0], [0, 1, 0]], dtype=float)
    assert metrics.evaluate(Predicts(np.ones((2, 3, 1)) / 2), {}, y)["auc"] == pytest.approx(0.5)
    message = r"predictions of shape \(3, 2\) do not match labels of shape \(2, 3\)"
    with pytest.raises(ValueError, match=message):
        metrics.evaluate(Predicts(np.ones((3, 2)) / 2), {}, y)


@pytest.mark.parametrize("name", ["auc", "gauc", "logloss"])
def test_numpy_metrics_refuse_nan_scores_and_bad_labels(name):
    def call(labels, scores):
        args = (labels, scores, np.zeros(len(labels))) if name == "gauc" else (labels, scores)
        return getattr(metrics, name)(*args)

    argument = "probabilities" if name == "logloss" else "scores"
    with pytest.raises(ValueError, match=rf"`{argument}` must be finite .*3 of 3 values .*index 0: nan"):
        call(np.array([1, 0, 1]), np.full(3, np.nan))
    with pytest.raises(ValueError, match=rf"`{argument}` must be finite .*1 of 3 .*index 2: nan"):
        call(np.array([1, 0, 1]), np.array([0.3, 0.2, np.nan]))
    with pytest.raises(ValueError, match=r"`labels` must be 0 or 1; 1 of 3 .*index 1: 3.0"):
        call(np.array([1, 3, 0]), np.array([0.3, 0.2, 0.1]))
    assert np.isfinite(call(np.array([1, 0, 1]), np.array([0.3, 0.2, 0.6])))


def test_logloss_refuses_logits():
    with pytest.raises(ValueError, match=r"`probabilities` must be in \[0, 1\].*1 of 2 .*index 0: 2.5"):
        metrics.logloss([1, 0], [2.5, 0.1])


def test_groups_and_cutoffs_are_checked_by_name():
    """Issue 32: one group for two candidate-set rows was broadcast (a GAUC over a made-up
    grouping); `ndcg_at=3` failed in Python's words and `ndcg_at=(True,)` reported `ndcg@True`."""
    labels = np.array([[1, 0, -1.0], [0, 1, 0]])
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3]])
    with pytest.raises(
        ValueError, match=r"`groups` must hold one group per row .* \(2,\)\. Received: .*\(1,\)"
    ):
        metrics.evaluate_scores(labels, scores, groups=[7])
    with pytest.raises(
        ValueError, match=r"`groups` must hold one group per row .* \(4,\)\. Received: .*\(4, 2\)"
    ):
        metrics.evaluate_scores(np.array([0, 1, 0, 1.0]), np.full(4, 0.5), groups=np.ones((4, 2)))
    for cutoffs in [(0,), (True,), ("x",), "10"]:
        with pytest.raises(ValueError, match=r"`ndcg_at` must be positive integers"):
            metrics.evaluate_scores(labels, scores, ndcg_at=cutoffs)
    assert set(metrics.evaluate_scores(labels, scores, ndcg_at=np.int64(3))) >= {"ndcg@3"}
    with pytest.raises(ValueError, match=r"`k` must be a positive integer\. Received: `k=True`"):
        metrics.ndcg(labels, scores, k=True)
    assert metrics.ndcg(labels, scores, k=np.int64(1)) == 1.0
