"""Synthetic long-sequence CTR data with a planted long-range signal.

Ground truth (documented, so results can be checked against it):

- Items `1..num_items` belong to categories `1..num_categories`
  (`category(i) = 1 + (i - 1) % num_categories`).
- Each user has `long_interests` long-term categories `A` and
  `recent_interests` recent categories `R` (disjoint). The user's history has
  `n` events, `n` uniform in `[recent_window + 30, max_len]`. Events OLDER than
  the last `recent_window` come from `A` with probability `signal` and from the
  other categories (not in `A` or `R`) otherwise; the last `recent_window`
  events come from `R` with probability `signal` and from the other categories
  otherwise. So `A` is visible only in the far past.
- Each example draws the target's category from `A`, `R` or the rest with
  equal probability, and the click from
  `P(click) = sigmoid(bias + long_weight * [c in A] + recent_weight * [c in R])`.

With `candidates=C`, every example is a request: C candidates for one user,
each drawn and labelled as above independently (the same planted signal), so
labels have shape `(N, C)`. With `min_candidates < C`, a request keeps a
uniform number in `[min_candidates, C]` of them; the missing ones are at the
end, with id 0 in every target field, label -1 and probability NaN.

With `features=True` the rows also carry per-row features with a planted,
additive effect on the logit (drawn from their own random stream, so the
sequences, targets and labels of `features=False` are unchanged for a seed
but for the effect): `user_segment` (`Categorical(9)`, one of 8 segments per
user, each with a logit offset drawn from N(0, `feature_weight`^2)),
`user_tags` (`Categorical(21, max_values=4)`: 0 to 4 of 20 tags per user, the
offset is the mean of the tags' offsets, drawn like the segments') and
`context` (`Dense(4)`, N(0, 1) per row, offset `feature_weight * (0.8 x_0 -
0.6 x_1 + 0.4 x_2)`, x_3 is noise). `Split.probability` includes them, so
the Bayes AUC with and without features can be compared
(`Split.probability_without_features`).

With `item_features=True` every item also carries item-side features
(`ITEM_FEATURES`, from a random stream of their own, stored once per item in
`SyntheticData.item_tables`): `topics` (`Categorical(17, max_values=3)`, 0
to 3 of 16 topics per item) and `image_emb` (`Dense(8)`, N(0, 1) per item),
present on the target and on every event (`target_<f>`, `history_<f>`). The
target's own features move its logit by `feature_weight * (mean of its
topics' effects, each N(0, 1), + 0.5 * image_emb . a)`, `a` a fixed unit
vector; `probability_without_features` leaves these out too. Item ids alone
can learn an item's offset only from its own rows; the features give it to
every item.

A model that reads only the last `recent_window` events cannot tell `A` from
the rest, so it loses a large part of the attainable AUC; the exact
probabilities are returned (`Split.probability`) to compute the Bayes AUC.
Users are split into train / validation / test, so no user is in two splits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_lsrec.data.clustering import DEFAULT_MAX_CLUSTER_SIZE, attribute_vectors, cluster_histories
from keras_lsrec.data.dataset import SequenceDataset
from keras_lsrec.data.features import Categorical, Dense
from keras_lsrec.data.schema import TARGET_PREFIX, SequenceSchema, history_key, target_key
from keras_lsrec.validation import check_finite, check_flag, check_integer


@dataclass
class Split:
    """One split: `x` in the batch format, labels `y`, `users`, true P(click)."""

    x: dict[str, np.ndarray]
    y: np.ndarray
    users: np.ndarray
    probability: np.ndarray
    probability_without_features: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.y)

    def flatten(self) -> Split:
        """A candidate-set split as one row per present candidate (for single-target models)."""
        if self.y.ndim == 1:
            return self
        present = self.y >= 0
        rows = np.nonzero(present)[0]
        x = {k: (v[present] if k.startswith(TARGET_PREFIX) else v[rows]) for k, v in self.x.items()}
        without = self.probability_without_features
        return Split(
            x=x,
            y=self.y[present],
            users=self.users[rows],
            probability=self.probability[present],
            probability_without_features=None if without is None else without[present],
        )


@dataclass
class SyntheticData:
    schema: SequenceSchema
    train: Split
    validation: Split
    test: Split
    item_tables: dict[str, np.ndarray] | None = None
    """With item features: `{name: (num_items + 1, M|D)}`, row = item id (row 0 zeros)."""

    def sequence_dataset(self, split: str, **kwargs: Any) -> SequenceDataset:
        """Split `split` ("train", "validation" or "test"; rows, not candidate
        sets) as a `SequenceDataset`: each user's history stored once, every
        example's history all of its user's events. Its batches equal
        `split.x` row for row. `kwargs`: `batch_size`, `shuffle`, `seed`, ...
        """
        part: Split = getattr(self, split)
        if self.schema.has_candidates:
            raise ValueError("`sequence_dataset` holds rows; flatten candidate sets first (`Split.flatten`).")
        users, first, owner = np.unique(part.users, return_index=True, return_inverse=True)
        history = {f: part.x[history_key(f)][first] for f in self.schema.vocab_sizes}
        lengths = (history["item"] != 0).sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype("int64")
        sequences = {f: h[h != 0].astype("int32") for f, h in history.items()}  # left-padded: row order kept
        examples = {"user": owner.astype("int64"), "end": offsets[owner + 1], "label": part.y}
        examples.update({target_key(f): part.x[target_key(f)] for f in self.schema.vocab_sizes})
        examples.update({name: part.x[name] for name in self.schema.features})
        tables = self.item_tables or {}
        return SequenceDataset(
            sequences,
            offsets,
            examples,
            self.schema.max_len,
            self.schema.vocab_sizes,
            features=self.schema.features,
            item_features={n: (f, tables[n]) for n, f in self.schema.item_features.items()},
            **kwargs,
        )

    def item_vectors(self) -> np.ndarray:
        """`(num_items + 1, num_categories + 1)`: each item's category, one-hot
        (row 0, padding, all zero): the only attribute items have here, as
        content vectors for `cluster_histories`."""
        items, categories = self.schema.vocab_sizes["item"], self.schema.vocab_sizes["category"]
        ids = np.arange(1, items)
        every_item = {"history_item": ids, "history_category": 1 + (ids - 1) % (categories - 1)}
        return attribute_vectors(every_item, self.schema.vocab_sizes)

    def clustered(self, max_cluster_size: int = DEFAULT_MAX_CLUSTER_SIZE) -> SyntheticData:
        """This data with every history compressed by `cluster_histories`
        (on `item_vectors`, grouped by category) for `TWINV2`; the schema gains
        `cluster_sizes=True`. Labels, users and probabilities are unchanged."""
        vectors = self.item_vectors()

        def compress(split: Split) -> Split:
            x = cluster_histories(split.x, vectors, max_cluster_size, group_field="category")
            return Split(x=x, y=split.y, users=split.users, probability=split.probability)

        return SyntheticData(
            schema=self.schema.replace(cluster_sizes=True),
            train=compress(self.train),
            validation=compress(self.validation),
            test=compress(self.test),
        )


SPLIT_NAMES = ("train", "validation", "test")


def _users_per_split(num_users: int, splits: Any) -> tuple[int, int, int]:
    """How many users each split gets (the rounding `generate` uses)."""
    n_train = int(round(splits[0] * num_users))
    n_val = int(round(splits[1] * num_users))
    return n_train, n_val, num_users - n_train - n_val


def generate(
    num_users: int = 2000,
    examples_per_user: int = 8,
    max_len: int = 200,
    num_items: int = 500,
    num_categories: int = 40,
    recent_window: int = 50,
    long_interests: int = 2,
    recent_interests: int = 2,
    signal: float = 0.5,
    bias: float = -1.5,
    long_weight: float = 3.0,
    recent_weight: float = 2.5,
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1),
    candidates: int | None = None,
    min_candidates: int | None = None,
    features: bool = False,
    feature_weight: float = 1.0,
    item_features: bool = False,
    seed: int = 0,
) -> SyntheticData:
    """Generate the data described in the module docstring.

    Returns a `SyntheticData` with the schema (fields `item`, `category` and a
    reverse-position `history_time`, vocabulary `max_len + 1`; `candidates=C`
    when given) and the three splits. Deterministic for a given `seed`.
    """
    positive = "a positive integer"
    num_users = check_integer("num_users", num_users, 1, requirement=positive)
    examples_per_user = check_integer("examples_per_user", examples_per_user, 1, requirement=positive)
    max_len = check_integer("max_len", max_len, 1, requirement=positive)
    num_items = check_integer("num_items", num_items, 1, requirement=positive)
    num_categories = check_integer("num_categories", num_categories, 1, requirement=positive)
    recent_window = check_integer("recent_window", recent_window, 1, requirement=positive)
    long_interests = check_integer("long_interests", long_interests, 0)
    recent_interests = check_integer("recent_interests", recent_interests, 0)
    seed = check_integer("seed", seed, 0)
    features = check_flag("features", features)
    item_features = check_flag("item_features", item_features)
    for name, value in [
        ("signal", signal),
        ("bias", bias),
        ("long_weight", long_weight),
        ("recent_weight", recent_weight),
        ("feature_weight", feature_weight),
    ]:
        check_finite(name, value)
    if max_len < recent_window + 30:
        raise ValueError(
            f"`max_len` must be >= recent_window + 30 = {recent_window + 30} so the "
            f"far past exists. Received: max_len={max_len}"
        )
    if long_interests + recent_interests >= num_categories:
        raise ValueError(
            "`long_interests + recent_interests` must leave other categories. "
            f"Received: {long_interests} + {recent_interests} >= {num_categories}"
        )
    if num_items < num_categories:
        raise ValueError(f"`num_items` ({num_items}) must be >= `num_categories` ({num_categories}).")
    if len(splits) != 3 or abs(sum(splits) - 1.0) > 1e-6 or min(splits) < 0:
        raise ValueError(f"`splits` must be 3 fractions summing to 1. Received: {splits}")
    counts = _users_per_split(num_users, splits)
    empty = [name for name, n, share in zip(SPLIT_NAMES, counts, splits, strict=True) if share > 0 and n == 0]
    if empty:
        more = (n for n in range(num_users, num_users + 10_000) if min(_users_per_split(n, splits)) > 0)
        enough = next(more, "more")
        raise ValueError(
            f"`num_users={num_users}` leaves the {' and '.join(empty)} split(s) without a user "
            f"(`splits={tuple(splits)}` gives {' / '.join(map(str, counts))} users): "
            f"pass at least `num_users={enough}`, or a zero fraction for a split you do not want."
        )
    fewest = 0  # with candidates: the fewest a request keeps
    if candidates is not None:
        candidates = check_integer("candidates", candidates, 1, requirement="None or a positive integer")
        fewest = candidates if min_candidates is None else min_candidates
        integral = isinstance(fewest, (int, np.integer)) and not isinstance(fewest, bool)
        if not integral or not 1 <= fewest <= candidates:
            raise ValueError(
                f"`min_candidates` must be in [1, candidates={candidates}]. "
                f"Received: min_candidates={fewest!r}"
            )
    rng = np.random.default_rng(seed)
    schema = SequenceSchema(
        {"item": num_items + 1, "category": num_categories + 1},
        max_len=max_len,
        candidates=candidates,
        time_vocab_size=max_len + 1,
        features=FEATURES if features else None,
        item_features=ITEM_FEATURES if item_features else None,
    )
    per_row = () if candidates is None else (candidates,)
    items_by_category = [np.arange(c, num_items + 1, num_categories) for c in range(1, num_categories + 1)]
    categories = np.arange(1, num_categories + 1)

    n_rows = num_users * examples_per_user
    hist_item = np.zeros((num_users, max_len), dtype="int32")
    hist_cat = np.zeros((num_users, max_len), dtype="int32")
    hist_time = np.zeros((num_users, max_len), dtype="int32")
    tgt_item = np.zeros((n_rows,) + per_row, dtype="int32")
    tgt_cat = np.zeros((n_rows,) + per_row, dtype="int32")
    prob = np.zeros((n_rows,) + per_row, dtype="float64")

    def draw_items(cats: np.ndarray) -> np.ndarray:
        flat = [rng.choice(items_by_category[c - 1]) for c in np.ravel(cats)]
        return np.array(flat, "int32").reshape(np.shape(cats))

    for u in range(num_users):
        chosen = rng.choice(categories, long_interests + recent_interests, replace=False)
        long_set, recent_set = chosen[:long_interests], chosen[long_interests:]
        others = np.setdiff1d(categories, chosen)
        n = int(rng.integers(recent_window + 30, max_len + 1))
        n_far = n - recent_window
        far = np.where(
            rng.random(n_far) < signal,
            rng.choice(long_set, n_far),
            rng.choice(others, n_far),
        )
        recent = np.where(
            rng.random(recent_window) < signal,
            rng.choice(recent_set, recent_window),
            rng.choice(others, recent_window),
        )
        cats = np.concatenate([far, recent]).astype("int32")
        hist_cat[u, max_len - n :] = cats
        hist_item[u, max_len - n :] = draw_items(cats)
        hist_time[u, max_len - n :] = np.arange(n, 0, -1)

        shape = (examples_per_user,) + per_row
        kind = rng.integers(0, 3, shape)
        target_cats = np.where(
            kind == 0,
            rng.choice(long_set, shape),
            np.where(kind == 1, rng.choice(recent_set, shape), rng.choice(others, shape)),
        ).astype("int32")
        rows = slice(u * examples_per_user, (u + 1) * examples_per_user)
        tgt_cat[rows] = target_cats
        tgt_item[rows] = draw_items(target_cats)
        logit = bias + long_weight * (kind == 0) + recent_weight * (kind == 1)
        prob[rows] = 1.0 / (1.0 + np.exp(-logit))

    prob_without = prob
    row_features: dict[str, np.ndarray] = {}
    offset = np.zeros((n_rows,) + per_row)
    if features:
        row_features, row_offset = _row_features(num_users, examples_per_user, feature_weight, seed)
        offset = offset + row_offset.reshape((n_rows,) + (1,) * len(per_row))
    tables: dict[str, np.ndarray] | None = None
    if item_features:
        tables, item_offset = _item_features(num_items, feature_weight, seed)
        offset = offset + item_offset[tgt_item]
    if features or item_features:
        prob = 1.0 / (1.0 + np.exp(-(np.log(prob) - np.log1p(-prob) + offset)))
    labels = (rng.random(prob.shape) < prob).astype("float32")
    if candidates is not None and fewest < candidates:
        kept = rng.integers(fewest, candidates + 1, n_rows)
        missing = np.arange(candidates)[None, :] >= kept[:, None]
        tgt_item[missing] = 0
        tgt_cat[missing] = 0
        labels[missing] = -1
        prob[missing] = np.nan
        if features or item_features:
            prob_without = prob_without.copy()
            prob_without[missing] = np.nan
    users = np.repeat(np.arange(num_users), examples_per_user)
    order = rng.permutation(num_users)
    n_train, n_val, _ = _users_per_split(num_users, splits)
    user_parts = (order[:n_train], order[n_train : n_train + n_val], order[n_train + n_val :])

    def make_split(part: np.ndarray) -> Split:
        rows = np.flatnonzero(np.isin(users, part))
        rows = rows[rng.permutation(len(rows))]
        owner = users[rows]
        x = {
            "target_item": tgt_item[rows],
            "target_category": tgt_cat[rows],
            "history_item": hist_item[owner],
            "history_category": hist_cat[owner],
            "history_time": hist_time[owner],
            **{name: value[rows] for name, value in row_features.items()},
        }
        for name, table in (tables or {}).items():  # row 0 (padding, missing candidates) is zeros
            x[target_key(name)] = table[x["target_item"]]
            x[history_key(name)] = table[x["history_item"]]
        without = prob_without[rows] if features or item_features else None
        return Split(
            x=x, y=labels[rows], users=owner, probability=prob[rows], probability_without_features=without
        )

    train, validation, test = (make_split(p) for p in user_parts)
    return SyntheticData(schema=schema, train=train, validation=validation, test=test, item_tables=tables)


FEATURES = {
    "user_segment": Categorical(9),
    "user_tags": Categorical(21, max_values=4),
    "context": Dense(4),
}
"""The per-row features of `generate(features=True)`."""


ITEM_FEATURES = {"topics": Categorical(17, max_values=3), "image_emb": Dense(8)}
"""The item-side features of `generate(item_features=True)`."""


def _item_features(num_items: int, weight: float, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each item's features (row = item id, row 0 zeros) and its logit offset,
    from a random stream of their own."""
    rng = np.random.default_rng([seed, 2])
    topic_effect = np.concatenate([[0.0], rng.normal(0.0, 1.0, 16)])
    count = rng.integers(0, 4, num_items + 1)
    topics = np.array([np.pad(rng.choice(np.arange(1, 17), c, replace=False), (0, 3 - c)) for c in count])
    image = rng.normal(size=(num_items + 1, 8))
    direction = rng.normal(size=8)
    direction /= np.linalg.norm(direction)
    offset = weight * (topic_effect[topics].sum(1) / np.maximum(count, 1) + 0.5 * image @ direction)
    topics[0], image[0], offset[0] = 0, 0.0, 0.0
    return {"topics": topics.astype("int32"), "image_emb": image.astype("float32")}, offset


def _row_features(
    num_users: int, examples_per_user: int, weight: float, seed: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The rows' features (users in order, `examples_per_user` rows each) and
    their logit offsets, from a random stream of their own."""
    rng = np.random.default_rng([seed, 1])
    segment_effect = np.concatenate([[0.0], rng.normal(0.0, weight, 8)])
    tag_effect = np.concatenate([[0.0], rng.normal(0.0, weight, 20)])
    segment = rng.integers(1, 9, num_users)
    count = rng.integers(0, 5, num_users)
    tags = np.array([np.pad(rng.choice(np.arange(1, 21), c, replace=False), (0, 4 - c)) for c in count])
    tag_offset = tag_effect[tags].sum(1) / np.maximum(count, 1)
    n_rows = num_users * examples_per_user
    context = rng.normal(size=(n_rows, 4))
    offset = np.repeat(segment_effect[segment] + tag_offset, examples_per_user)
    offset = offset + weight * (context @ np.array([0.8, -0.6, 0.4, 0.0]))
    values = {
        "user_segment": np.repeat(segment, examples_per_user).astype("int32"),
        "user_tags": np.repeat(tags, examples_per_user, axis=0).astype("int32"),
        "context": context.astype("float32"),
    }
    return values, offset
