"""AUC, GAUC, logloss and NDCG for CTR evaluation (numpy; no backend needed).

Candidate sets: labels of shape `(N, C)` with -1 marking a missing candidate
(the batch format's convention) are scored over the present candidates only.

Bad input is refused, never scored: a NaN or infinite score (a diverged model
would otherwise get AUC 0.5 from the tie rule), or a label other than 0 / 1
(-1 is allowed only where a candidate set marks a missing candidate) raises
`ValueError` saying how many values are wrong and where the first one is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from keras_lsrec.api_export import keras_lsrec_export


def _position(flat_index: int, shape: tuple[int, ...]) -> int | tuple[int, ...]:
    """`flat_index` as an index into an array of `shape` (an int for 1-D input)."""
    if len(shape) <= 1:
        return int(flat_index)
    return tuple(int(i) for i in np.unravel_index(flat_index, shape))


def _refuse_values(name: str, requirement: str, bad: np.ndarray, values: np.ndarray) -> None:
    """Raises if any entry of the boolean array `bad` is set, naming the count and the first."""
    if not bad.any():
        return
    flat = np.flatnonzero(bad.ravel())
    first = int(flat[0])
    raise ValueError(
        f"`{name}` must be {requirement}; {len(flat)} of {bad.size} values are not, the first at "
        f"index {_position(first, bad.shape)}: {float(values.ravel()[first])!r}"
    )


def _check_scores(scores: Any, name: str = "scores", where: Any = None) -> np.ndarray:
    """`scores` as float64, refused when any (of those selected by `where`) is NaN or infinite."""
    s = np.asarray(scores, dtype="float64")
    bad = ~np.isfinite(s)
    if where is not None:
        bad &= np.asarray(where, dtype=bool)
    _refuse_values(name, "finite (a NaN or infinite score cannot be ranked)", bad, s)
    return s


def _check_labels(labels: Any, name: str = "labels", allow_missing: bool = False) -> np.ndarray:
    """`labels` as float64, refused unless each is 0 or 1 (or -1 with `allow_missing`)."""
    y = np.asarray(labels, dtype="float64")
    allowed = (y == 0) | (y == 1)
    if allow_missing:
        allowed |= y == -1
    requirement = "0 or 1, or -1 for a missing candidate" if allow_missing else "0 or 1"
    _refuse_values(name, requirement, ~allowed, y)
    return y


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    """AUC of checked, flat labels and scores."""
    positives = int((y == 1).sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    sorted_scores = s[order]
    ranks = np.empty(len(s), dtype="float64")
    # Average ranks over ties.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    rank_sum = ranks[y == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted as 1/2).

    Returns NaN when only one class is present. Raises `ValueError` for a
    label other than 0 / 1 or a NaN / infinite score (naming how many and
    the first index).
    """
    y = _check_labels(labels).ravel()
    s = _check_scores(scores).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in size: {y.shape} vs {s.shape}")
    return _auc(y, s)


def gauc(labels: Any, scores: Any, groups: Any) -> float:
    """Group AUC: per-group AUC weighted by the group's impressions.

    Groups (users) whose labels hold one class only are skipped. Returns NaN
    when every group is skipped. Labels and scores are checked as in `auc`.
    """
    y = _check_labels(labels).ravel()
    s = _check_scores(scores).ravel()
    g = np.asarray(groups).ravel()
    if not (len(y) == len(s) == len(g)):
        raise ValueError(f"labels, scores and groups differ in size: {len(y)}, {len(s)}, {len(g)}")
    order = np.argsort(g, kind="mergesort")
    boundaries = np.flatnonzero(np.diff(g[order])) + 1
    total, weight = 0.0, 0
    for rows in np.split(order, boundaries):
        value = _auc(y[rows], s[rows])
        if not np.isnan(value):
            total += value * len(rows)
            weight += len(rows)
    return float(total / weight) if weight else float("nan")


def logloss(labels: Any, probabilities: Any, epsilon: float = 1e-7) -> float:
    """Mean binary cross-entropy, probabilities clipped to `[eps, 1 - eps]`.

    Raises `ValueError` for a label other than 0 / 1, a NaN / infinite
    probability, or one outside `[0, 1]` (logits are not probabilities:
    clipping them would give a silently wrong loss).
    """
    y = _check_labels(labels).ravel()
    p = _check_scores(probabilities, "probabilities").ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels and probabilities differ in size: {y.shape} vs {p.shape}")
    _refuse_values("probabilities", "in [0, 1] (logits are not probabilities)", (p < 0) | (p > 1), p)
    p = np.clip(p, epsilon, 1 - epsilon)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def ndcg(labels: Any, scores: Any, k: int = 10) -> float:
    """Mean NDCG@k over requests (rows) of a candidate set, binary gains.

    `labels` and `scores` have shape `(N, C)`; labels of -1 (missing
    candidates) are left out. Per request, `DCG@k = sum_{r <= k} y_(r) /
    log2(r + 1)` over the present candidates sorted by score (ties keep the
    candidate order), divided by the ideal DCG@k. Requests without a click
    are skipped; NaN when every request is. Labels must be 0, 1 or -1 and the
    scores of present candidates finite (`ValueError` otherwise).
    """
    y = _check_labels(labels, allow_missing=True)
    s = np.asarray(scores, dtype="float64")
    if y.ndim != 2 or y.shape != s.shape:
        raise ValueError(f"labels and scores must both have shape (N, C). Received {y.shape} and {s.shape}")
    if not _is_int(k) or k < 1:
        raise ValueError(f"`k` must be a positive integer. Received: `k={k!r}`")
    k = int(k)
    _check_scores(s, where=y >= 0)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    values = []
    for row_y, row_s in zip(y, s, strict=True):
        present = row_y >= 0
        gains = row_y[present]
        if gains.sum() <= 0:
            continue
        ranked = gains[np.argsort(-row_s[present], kind="stable")][:k]
        ideal = np.sort(gains)[::-1][:k]
        values.append((ranked * discounts[: len(ranked)]).sum() / (ideal * discounts[: len(ideal)]).sum())
    return float(np.mean(values)) if values else float("nan")


def evaluate(
    model: Any,
    x: Mapping[str, Any],
    y: Any,
    groups: Any = None,
    batch_size: int = 1024,
    ndcg_at: tuple[int, ...] = (10,),
) -> dict[str, float]:
    """Scores `x` with `model.predict` and returns `{"auc", "gauc", "logloss"}`.

    `groups` holds the user of each row (for GAUC); without it GAUC is NaN.
    For candidate sets (`y` of shape `(N, C)`), AUC, GAUC and logloss are
    taken over the present candidates (label >= 0; every candidate of a row
    belongs to that row's group), and `"ndcg@k"` is added for each k in `ndcg_at`.

    Raises `ValueError`, naming how many values are wrong and the index of the
    first, when a prediction (of a present candidate) is NaN or infinite or
    outside [0, 1], or a label is not 0 / 1 (-1 is allowed for missing
    candidates of `(N, C)` labels only); and when the predictions' shape
    does not match the labels'.
    """
    probabilities = model.predict(x, batch_size=batch_size, verbose=0)
    return evaluate_scores(y, probabilities, groups, ndcg_at)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_cutoffs(ndcg_at: Any) -> tuple[int, ...]:
    """`ndcg_at` as a tuple of positive ints (one int accepted)."""
    cutoffs = (ndcg_at,) if _is_int(ndcg_at) else ndcg_at
    valid = not isinstance(cutoffs, (str, bytes)) and hasattr(cutoffs, "__iter__")
    if valid:
        cutoffs = tuple(cutoffs)
        valid = all(_is_int(k) and k >= 1 for k in cutoffs)
    if not valid:
        raise ValueError(f"`ndcg_at` must be positive integers (cut-offs k). Received: `ndcg_at={ndcg_at!r}`")
    return tuple(int(k) for k in cutoffs)


def evaluate_scores(
    y: Any, probabilities: Any, groups: Any = None, ndcg_at: tuple[int, ...] = (10,)
) -> dict[str, float]:
    """`evaluate` on scores already computed (same metrics, same checks, same candidate-set rules)."""
    y = np.asarray(y)
    probabilities = np.asarray(probabilities)
    if probabilities.shape != y.shape:
        # (N, 1) predictions for (N,) labels (and the like) are fine; a different layout is not.
        if probabilities.size != y.size or np.squeeze(probabilities).shape != np.squeeze(y).shape:
            raise ValueError(
                f"predictions of shape {probabilities.shape} do not match labels of shape {y.shape}"
            )
        probabilities = probabilities.reshape(y.shape)
    candidate_sets = y.ndim == 2
    ndcg_at = _check_cutoffs(ndcg_at)
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != y.shape[:1]:  # one group (user) per row, never broadcast
            raise ValueError(
                f"`groups` must hold one group per row of the labels: shape ({len(y)},). "
                f"Received: `groups` of shape {groups.shape}"
            )
    y = _check_labels(y, allow_missing=candidate_sets)
    probabilities = _check_scores(probabilities, "predictions", where=y >= 0)
    outside = ((probabilities < 0) | (probabilities > 1)) & (y >= 0)
    _refuse_values("predictions", "in [0, 1] (click probabilities)", outside, probabilities)
    result: dict[str, float] = {}
    if candidate_sets:
        result.update({f"ndcg@{k}": ndcg(y, probabilities, k) for k in ndcg_at})
        present = y >= 0
        if groups is not None:
            groups = np.broadcast_to(np.asarray(groups)[:, None], y.shape)[present]
        y, probabilities = y[present], probabilities[present]
    return {
        "auc": auc(y, probabilities),
        "gauc": gauc(y, probabilities, groups) if groups is not None else float("nan"),
        "logloss": logloss(y, probabilities),
        **result,
    }


@keras_lsrec_export
class CandidateSetAUC(keras.metrics.AUC):
    """`keras.metrics.AUC` for candidate sets: labels of -1 (missing candidates) are left out.

    For `compile(metrics=[...])` with `(B, C)` labels; the plain Keras AUC
    would count a -1 label as a click. Missing candidates get weight 0 (times
    any `sample_weight`); the others count as usual.
    """

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> Any:
        y_true = keras.ops.cast(y_true, "float32")
        present = keras.ops.cast(keras.ops.greater_equal(y_true, 0.0), "float32")
        if sample_weight is not None:
            present = present * keras.ops.cast(keras.ops.reshape(sample_weight, (-1, 1)), "float32")
        return super().update_state(keras.ops.maximum(y_true, 0.0), y_pred, sample_weight=present)
