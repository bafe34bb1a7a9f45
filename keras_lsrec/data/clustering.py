"""TWIN-V2's offline compression of life-cycle histories: hierarchical clustering of behaviours.

`cluster_histories` turns each row's history of up to 10^5 events into a
shorter history of clusters, in the batch format, with
`history_cluster_size` beside it (`SequenceSchema(cluster_sizes=True)`).
It runs in the data path (numpy), once per distinct history, not in the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_lsrec.data.schema import CLUSTER_SIZE, HISTORY_PREFIX, TARGET_PREFIX, history_key

DEFAULT_MAX_CLUSTER_SIZE = 20


def attribute_vectors(
    x: Mapping[str, Any], vocab_sizes: Mapping[str, int], field: str = "item", attribute: str = "category"
) -> np.ndarray:
    """Content vectors for `cluster_histories` from the ids of a batch: `(vocab_sizes[field],
    vocab_sizes[attribute])`, row `i` the one-hot of the `attribute` seen with id `i` of `field`
    (in `history_*` and `target_*` of `x`); multi-hot for an id seen with several, all zero for
    one never seen and for padding."""
    if not isinstance(x, Mapping):
        raise ValueError(f"`x` must be a dict of arrays in the batch format. Received: {type(x).__name__}")
    sizes = {}
    for name in (field, attribute):
        size = vocab_sizes.get(name) if isinstance(vocab_sizes, Mapping) else None
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(
                f"`vocab_sizes` must give the vocabulary size of field {name!r} (a positive integer). "
                f"Received: `vocab_sizes={vocab_sizes!r}`"
            )
        sizes[name] = int(size)
    vectors = np.zeros((sizes[field], sizes[attribute]), "float32")
    for prefix in (HISTORY_PREFIX, TARGET_PREFIX):
        if prefix + field not in x:
            continue
        if prefix + attribute not in x:
            raise ValueError(f"`x` holds `{prefix + field}` but not `{prefix + attribute}`.")
        ids, values = np.asarray(x[prefix + field]), np.asarray(x[prefix + attribute])
        if ids.shape != values.shape:
            raise ValueError(
                f"`{prefix + attribute}` must have the shape of `{prefix + field}`, {ids.shape}. "
                f"Received {values.shape}."
            )
        for name, array in ((prefix + field, ids), (prefix + attribute, values)):
            size = sizes[field if array is ids else attribute]
            bad = (array < 0) | (array >= size) if array.dtype.kind in "iu" else np.ones(array.shape, bool)
            if bad.any():
                where = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"`{name}` holds {array[where].item()!r} at {name}{list(where)}: ids must be integers "
                    f"in [0, {size}) (`vocab_sizes`)."
                )
        seen = ids != 0
        vectors[ids[seen], values[seen]] = 1.0
    return vectors


def cluster_histories(
    x: Mapping[str, Any],
    vectors: Any,
    max_cluster_size: int = DEFAULT_MAX_CLUSTER_SIZE,
    group_field: str | None = None,
    max_len: int | None = None,
    iterations: int = 10,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Compresses every history of a batch into clusters of similar behaviours (TWIN-V2).

    For each row, the valid events (`history_item != 0`) are split into
    groups (by the value of `history_<group_field>`, or one group), then each
    group is clustered hierarchically: a set of `n > max_cluster_size`
    behaviours is split by k-means (Lloyd, `iterations` steps, on the items'
    `vectors`) into `floor(n ** 0.3)` (at least 2) clusters, and each cluster
    is split again until none has more than `max_cluster_size` behaviours. A
    set whose behaviours all have one vector (the same item, repeated) cannot
    be split by k-means; it is cut into runs of `max_cluster_size` consecutive
    events. Every behaviour belongs to exactly one cluster: nothing is dropped.

    A cluster is represented by its behaviour closest to the cluster's mean
    vector (the paper's rule for categorical features): its ids in every
    history field (`item`, `category`, ..., `time`) are the cluster's, and
    `history_cluster_size` is its number of behaviours. Clusters are ordered
    by their most recent behaviour (most recent last) and left-padded, as
    histories are.

    A row without events (a new user, an all-padding row, or `L = 0`) gets
    an empty clustered history: all padding, `history_cluster_size` 0. With
    `max_len=None` a batch of such rows alone has clustered histories of
    length 0 (which the models accept).

    Rows with equal histories (a user's examples) are clustered once.
    Deterministic for a given `seed`.

    Args:
        x: a batch in the batch format (`history_<f>` `(N, L)`, targets);
            targets and other keys are returned unchanged.
        vectors: `(V, D)` float item vectors, row `i` for item id `i` (e.g.
            a trained model's item embedding table); `V` must exceed the
            largest item id.
        max_cluster_size: the largest cluster (the paper's gamma).
        group_field: an id field whose values are never mixed in a cluster
            (the paper groups by completion rate first), or `None`.
        max_len: the length of the clustered histories; `None` = the most
            clusters any row has. A row with more clusters than `max_len`
            raises a `ValueError` (nothing is cut).
        iterations: Lloyd steps per k-means.
        seed: seed of the k-means initialisation.

    Returns:
        The batch with every `history_<f>` replaced by its clusters' ids and
        `history_cluster_size` added (`SequenceSchema(..., cluster_sizes=True)`).

    Reference:
        Si et al., "TWIN V2: Scaling Ultra-Long User Behavior Sequence
        Modeling for Enhanced CTR Prediction at Kuaishou", CIKM 2024.
    """
    if not isinstance(x, Mapping):
        raise ValueError(f"`x` must be a dict of arrays in the batch format. Received: {type(x).__name__}")
    if history_key("item") not in x:
        raise ValueError(f"`x` must hold `history_item`. Received keys: {sorted(x)}")
    history_keys = [
        k for k in x if k.startswith(HISTORY_PREFIX) and k != history_key(CLUSTER_SIZE) and np.ndim(x[k]) != 3
    ]
    # Item features `(N, L, M|D)`: each cluster keeps its representative event's.
    feature_keys = [k for k in x if k.startswith(HISTORY_PREFIX) and np.ndim(x[k]) == 3]
    if history_key(CLUSTER_SIZE) in x:
        raise ValueError("`x` is already clustered (it holds `history_cluster_size`).")
    _check_int("max_cluster_size", max_cluster_size, 1)
    _check_int("iterations", iterations, 1)
    _check_int("seed", seed, 0)
    if max_len is not None:
        _check_int("max_len", max_len, 0, "None or an integer >= 0")
    if group_field is not None and not isinstance(group_field, str):
        raise ValueError(
            f"`group_field` must be None or a field name. Received: `group_field={group_field!r}`"
        )
    histories = {k: np.asarray(x[k]) for k in history_keys}
    items = histories[history_key("item")]
    if items.ndim != 2:
        raise ValueError(f"`history_item` must have shape (N, L). Received {items.shape}.")
    for key, value in histories.items():
        if value.shape != items.shape or value.dtype.kind not in "iu":
            raise ValueError(
                f"`{key}` must hold integer ids of the shape of `history_item`, {items.shape}. "
                f"Received {value.dtype} {value.shape}."
            )
    for key in feature_keys:
        if np.shape(x[key])[:2] != items.shape:
            raise ValueError(
                f"`{key}` (an item feature) must have the shape of `history_item`, {items.shape}, plus "
                f"its width. Received {np.shape(x[key])}."
            )
    if group_field is not None and history_key(group_field) not in histories:
        fields = sorted(k.removeprefix(HISTORY_PREFIX) for k in histories)
        raise ValueError(f"`group_field={group_field!r}` is not a history field of `x`: {fields}.")
    vectors = np.asarray(vectors, dtype="float32")
    if vectors.ndim != 2 or len(vectors) < 1:
        raise ValueError(
            "`vectors` must have shape (V, D), one row per item id (row 0 for padding). "
            f"Received {vectors.shape}."
        )
    if items.size and int(items.min()) < 0:
        where = tuple(int(i) for i in np.argwhere(items < 0)[0])
        raise ValueError(
            f"`history_item` holds a negative id ({items[where]}) at history_item[{where[0]}, {where[1]}]: "
            "item ids are 0 (padding) or rows of `vectors`."
        )
    if items.size and int(items.max()) >= len(vectors):
        raise ValueError(
            f"`history_item` holds id {int(items.max())}, but `vectors` has {len(vectors)} rows "
            "(one per item id, row 0 for padding)."
        )
    if not np.isfinite(vectors).all():
        bad = int(np.argwhere(~np.isfinite(vectors))[0][0])
        raise ValueError(f"`vectors[{bad}]` is not finite.")

    rng = np.random.default_rng(seed)
    stacked = np.stack([histories[k] for k in history_keys], axis=-1)  # (N, L, fields)
    flat = stacked.reshape(len(items), items.shape[1] * len(history_keys))
    if flat.shape[1]:
        distinct, first, owner = np.unique(flat, axis=0, return_index=True, return_inverse=True)
        owner = owner.reshape(-1)
    else:  # L = 0 (or no rows): every history is the same empty one
        distinct, first, owner = flat[:1], np.zeros(1, "int64"), np.zeros(len(items), "int64")
    per_history = []
    for row in distinct.reshape(len(distinct), items.shape[1], len(history_keys)):
        per_history.append(
            _cluster_row(row, history_keys, vectors, max_cluster_size, group_field, iterations, rng)
        )
    longest = max((len(sizes) for _, sizes in per_history), default=0)
    rows_of = distinct.reshape(len(distinct), items.shape[1], len(history_keys))
    length = longest if max_len is None else int(max_len)
    if longest > length:
        worst = int(np.argmax([len(sizes) for _, sizes in per_history]))
        example = int(np.argmax(owner == worst))
        raise ValueError(
            f"Row {example}'s history forms {longest} clusters > max_len={length}. Raise `max_len` or "
            "`max_cluster_size`; clusters are never dropped."
        )
    out = {k: np.asarray(v) for k, v in x.items() if k not in histories and k not in feature_keys}
    dtype = {k: v.dtype for k, v in histories.items()}
    for i, key in enumerate(history_keys):
        rows = np.zeros((len(distinct), length), dtype[key])
        for r, (positions, _) in enumerate(per_history):
            if len(positions):
                rows[r, length - len(positions) :] = rows_of[r, positions, i]
        out[key] = rows[owner]
    for key in feature_keys:  # (the same ids, the same items: the first row of each history stands)
        values = np.asarray(x[key])
        rows = np.zeros((len(distinct), length) + values.shape[2:], values.dtype)
        for r, (positions, _) in enumerate(per_history):
            if len(positions):
                rows[r, length - len(positions) :] = values[first[r], positions]
        out[key] = rows[owner]
    sizes = np.zeros((len(distinct), length), "int32")
    for r, (_, counts) in enumerate(per_history):
        if len(counts):
            sizes[r, length - len(counts) :] = counts
    out[history_key(CLUSTER_SIZE)] = sizes[owner]
    return out


def _check_int(name: str, value: Any, low: int, requirement: str | None = None) -> None:
    """`value` is an integer >= `low` (numpy integers accepted, bools refused); else a `ValueError`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        requirement = requirement or f"an integer >= {low}"
        raise ValueError(f"`{name}` must be {requirement}. Received: `{name}={value!r}`")


def _cluster_row(row, keys, vectors, max_size, group_field, iterations, rng):
    """One history `(L, fields)` -> (representatives' positions `(M,)`, sizes `(M,)`), oldest first."""
    events = np.nonzero(row[:, keys.index(history_key("item"))] != 0)[0]
    if group_field is None:
        groups = [events]
    else:
        values = row[events, keys.index(history_key(group_field))]
        groups = [events[values == v] for v in np.unique(values)]
    points = vectors[row[:, keys.index(history_key("item"))]]
    clusters = []
    for group in groups:
        if len(group):  # an empty history (a new user) has no cluster
            clusters.extend(_split(group, points, max_size, iterations, rng))
    if not clusters:
        return np.zeros((0,), "int64"), np.zeros((0,), "int32")
    clusters.sort(key=lambda members: members.max())  # by the most recent behaviour
    representatives = []
    for members in clusters:
        member_points = points[members]
        distance = ((member_points - member_points.mean(axis=0)) ** 2).sum(axis=1)
        representatives.append(members[int(np.argmin(distance))])
    sizes = np.array([len(m) for m in clusters], "int32")
    return np.array(representatives), sizes


def _split(members, points, max_size, iterations, rng):
    """Hierarchical k-means: the clusters (arrays of event positions) of `members`, none over `max_size`."""
    done, pending = [], [members]
    while pending:
        members = pending.pop()
        if len(members) <= max_size:
            done.append(members)
            continue
        x = points[members]
        if np.all(x == x[0]):  # one vector: k-means cannot split it; runs of consecutive events
            done.extend(members[i : i + max_size] for i in range(0, len(members), max_size))
            continue
        labels = _kmeans(x, max(2, int(len(members) ** 0.3)), iterations, rng)
        parts = [members[labels == c] for c in np.unique(labels)]
        if len(parts) == 1:  # distinct vectors that Lloyd left together: halve by the first principal axis
            centred = x - x.mean(axis=0)
            axis = np.linalg.svd(centred, full_matrices=False)[2][0]
            order = np.argsort(centred @ axis, kind="stable")
            half = len(order) // 2
            parts = [members[np.sort(order[:half])], members[np.sort(order[half:])]]
        pending.extend(parts)
    return done


def _kmeans(x, k, iterations, rng):
    """Lloyd's k-means of `x` `(n, D)` into `k` clusters, k-means++ seeding; labels `(n,)`."""
    squared = (x**2).sum(axis=1, keepdims=True)
    centres = x[[int(rng.integers(len(x)))]]
    nearest = ((x - centres[0]) ** 2).sum(axis=1, dtype="float64")
    while len(centres) < k and nearest.sum() > 0:
        chosen = x[int(rng.choice(len(x), p=nearest / nearest.sum()))]
        centres = np.concatenate([centres, chosen[None]])
        nearest = np.minimum(nearest, ((x - chosen) ** 2).sum(axis=1, dtype="float64"))
    k = len(centres)
    labels = None
    for _ in range(iterations):
        distance = squared - 2.0 * x @ centres.T + (centres**2).sum(axis=1)
        new = np.argmin(distance, axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        counts = np.bincount(labels, minlength=k)
        sums = np.stack([np.bincount(labels, weights=column, minlength=k) for column in x.T], axis=1)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return labels
