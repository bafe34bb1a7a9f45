"""Evaluation protocols on real event tables: DARE's, a plain leave-last-out, and dlrm_v3's
candidate windows (KuaiRand)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_lsrec.data.cache import CACHE_FORMAT, file_sha256, prepare
from keras_lsrec.data.dataset import CandidateSets, SequenceDataset, concatenate_users
from keras_lsrec.data.readers.kuairand import ACTION_BITS
from keras_lsrec.data.schema import target_key
from keras_lsrec.validation import check_choice, check_flag, check_integer

__all__ = ["CACHE_FORMAT", "candidate_windows", "dare_protocol", "file_sha256", "leave_last_out", "prepare"]

SPLITS = ("train", "validation", "test")


def dare_protocol(
    events: Any,
    *,
    min_events: int = 210,
    max_len: int = 200,
    train_offsets: Sequence[int] = tuple(range(3, 94, 5)),
    validation_offset: int = 1,
    test_offset: int = 0,
    negatives: int = 2,
    fields: Sequence[str] = ("item", "category"),
    batch_size: int = 2048,
    seed: int = 0,
    time: bool = True,
    item_features: bool = True,
) -> dict[str, SequenceDataset]:
    """The data protocol of the DARE code (Taobao / Tmall), every knob exposed.

    For each user with at least `min_events` events (T = index of the last
    event): training positives at positions `T - k` for `k` in
    `train_offsets` (default T-3, T-8, ..., T-93: 19 per user), validation
    at `T - validation_offset` (T-1), test at `T - test_offset` (T). Each
    example's history is the `max_len` events before its position (at most),
    so no history event comes after its target. Each positive gets
    `negatives` negatives with the same history: items drawn with
    probability proportional to their number of events in `events`, never
    an item of the user's whole sequence, each carrying its own category
    (the category of the item's last event). Seeded.

    Args:
        events: an events table from a loader (sorted by user and time).
        item_features: carry the item features the loader attached
            (`events.attrs["item_features"]`, e.g. MovieLens genres) into the
            datasets, stored once per item; `False` leaves them out.

    Returns:
        `{"train", "validation", "test"}`: `SequenceDataset`s (training
        shuffled) whose items are `(batch_dict, labels)`.
    """
    check_integer("min_events", min_events, 1)
    _check_int("validation_offset", validation_offset, 0)
    _check_int("test_offset", test_offset, 0)
    for offset in train_offsets:
        if not _is_int(offset) or offset < 0:
            raise ValueError(
                "`train_offsets` must be non-negative integers (positions before the last event). "
                f"Received: `train_offsets={list(train_offsets)!r}`"
            )
    if not len(train_offsets):
        raise ValueError("`train_offsets` must name at least one position. Received: `train_offsets=[]`")
    offsets = {"train": list(train_offsets), "validation": [validation_offset], "test": [test_offset]}
    longest = max(max(v) for v in offsets.values())
    if min_events <= longest:
        raise ValueError(
            f"`min_events` ({min_events}) must exceed the largest offset ({longest}) "
            "so every target has a history."
        )
    return _build(
        events, offsets, min_events, max_len, negatives, fields, batch_size, seed, time, item_features
    )


def leave_last_out(
    events: Any,
    *,
    min_events: int = 3,
    max_len: int = 200,
    max_train_per_user: int | None = None,
    negatives: int = 1,
    fields: Sequence[str] = ("item", "category"),
    batch_size: int = 256,
    seed: int = 0,
    time: bool = True,
    item_features: bool = True,
) -> dict[str, SequenceDataset]:
    """Time-ordered leave-last-out: test = each user's last event, validation =
    the one before, training = every earlier event that has a history
    (positions 1 .. T-2; the latest `max_train_per_user` of them when set).
    Negatives as in `dare_protocol`. Users with fewer than `min_events` (>= 3)
    events are left out. `max_train_per_user` must be None (all) or >= 1.
    `item_features` as in `dare_protocol`.
    """
    if not _is_int(min_events) or min_events < 3:
        raise ValueError(
            "`min_events` must be an integer >= 3 (train, validation, test). "
            f"Received: `min_events={min_events!r}`"
        )
    if max_train_per_user is not None:
        _check_int("max_train_per_user", max_train_per_user, 1, "None (all positions) or an integer >= 1")
    train = None if max_train_per_user is None else int(max_train_per_user)
    return _build(
        events,
        {"train": train, "validation": [1], "test": [0]},
        min_events,
        max_len,
        negatives,
        fields,
        batch_size,
        seed,
        time,
        item_features,
    )


def candidate_windows(
    events: Any,
    *,
    num_candidates: int = 10,
    max_len: int = 200,
    window_ms: int | None = None,
    label: str = "is_click",
    split: str = "user",
    fractions: Sequence[float] = (0.75, 0.125),
    fields: Sequence[str] = ("item",),
    batch_size: int = 256,
    seed: int = 0,
    time: bool = True,
    item_features: bool = True,
    actions: bool = True,
) -> dict[str, SequenceDataset]:
    """Candidate-set requests as dlrm_v3 builds them from KuaiRand: one per user time window.

    Each user's events (`load_kuairand`'s table: sorted by user and time, an
    `action` bitmask) are cut into time windows: the whole sequence when
    `window_ms` is None (dlrm_v3: one sample per user), otherwise windows
    `[k * window_ms, (k + 1) * window_ms)` of `timestamp` (milliseconds;
    `86_400_000` = one UTC day). A window's last `num_candidates` events are
    the request's candidates, each labelled by its `label` bit of `action`
    (default `"is_click"`: bit 1, dlrm_v3's first task; any key of
    `ACTION_BITS`); its history is the at most `max_len` events of the user
    before the first candidate (earlier windows included), most recent last,
    with `history_time` = reverse position when `time=True` (the
    `SequenceDataset` mechanism) and, when `actions=True`, `history_action`:
    each history event's `action` bitmask (all 8 kinds of `ACTION_BITS`, as
    dlrm_v3's action encoder reads them). The candidates' actions never
    reach a batch: they are the labels. A window with fewer than `num_candidates`
    events, or whose candidates would have no history (the user's first
    events), gives no request (dlrm_v3 skips a user with at most
    `num_candidates` events). dlrm_v3 truncates a long history to its OLDEST
    events; here, as in every protocol of this library, the most recent are kept.

    Splits: `split="user"` (dlrm_v3's rule): users with a request, in id
    order; the first `fractions[0]` of them (rounded) give the training
    requests, the next `fractions[1]` validation, the rest test (dlrm_v3 has
    no validation split: `fractions=(0.75, 0.0)` is its train/test
    split). `split="time"`: requests ordered by the time of their last
    candidate (ties: by user), cut by the same fractions, so no training
    request is later than a validation or test one.

    Args:
        events: an events table with `user`, `timestamp`, `action` and `fields`
            (`keras_lsrec.data.load_kuairand`).
        num_candidates: C, the candidates per request (dlrm_v3: 10).
        max_len: the history window.
        window_ms: the window length in milliseconds, or None (the whole sequence).
        label: the `action` bit that labels a candidate (a key of `ACTION_BITS`).
        split: `"user"` or `"time"` (above).
        fractions: `(train, validation)`, each in [0, 1], their sum at most 1;
            test is the rest.
        fields: the id fields (KuaiRand has `item` only).
        batch_size, seed, time, item_features: as in `dare_protocol`.
        actions: add `history_action` (the schema then has `actions=8`).

    Returns:
        `{"train", "validation", "test"}`: `SequenceDataset`s (training
        shuffled) of requests, `(batch_dict, labels)` with `target_<f>` and
        labels `(B, C)`; their `schema` has `candidates=C`, so
        `keras_lsrec.models.HSTU(splits["train"].schema)` trains on them. The
        candidates are gathered from the stored sequences (the events from each
        request's `end` on), never copied. `save` / `SequenceDataset.load` keep
        them so.
    """
    num_candidates = check_integer("num_candidates", num_candidates, 1, requirement="a positive integer")
    max_len = check_integer("max_len", max_len, 1, requirement="a positive integer")
    if window_ms is not None:
        window_ms = check_integer("window_ms", window_ms, 1, requirement="None or a positive integer")
    check_choice("label", label, tuple(ACTION_BITS))
    check_choice("split", split, ("user", "time"))
    shares = _check_fractions(fractions)
    check_flag("actions", actions)
    fields = _check_dataset_arguments(events, fields, batch_size, seed, time, item_features, ("action",))
    sequences, offsets, _ = concatenate_users(events, fields)
    times = events["timestamp"].to_numpy().astype("int64")
    bit = ACTION_BITS[label]
    event_actions = _action_bitmasks(events)
    event_labels = ((event_actions & bit) != 0).astype("float32")
    user_of_event = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    # Windows: runs of one user's events in one window; a request needs C events and a history.
    window = np.zeros(len(times), "int64") if window_ms is None else times // window_ms
    change = np.flatnonzero((user_of_event[1:] != user_of_event[:-1]) | (window[1:] != window[:-1])) + 1
    stops = np.concatenate([change, [len(times)]]).astype("int64") if len(times) else np.zeros(0, "int64")
    ends = stops - num_candidates
    starts = np.concatenate([[0], change]).astype("int64") if len(times) else stops
    users = user_of_event[stops - 1] if len(times) else stops
    kept = (ends >= starts) & (ends > offsets[users])
    ends, users = ends[kept], users[kept]
    if not len(ends):
        raise ValueError(
            f"No request: no window has num_candidates={num_candidates} events after the user's first "
            f"(window_ms={window_ms}, longest user: {np.diff(offsets).max(initial=0)} events)."
        )
    if split == "user":
        rank = np.searchsorted(np.unique(users), users)  # users with a request, in id order
        owners = len(np.unique(users))
        cut = [int(round(shares[0] * owners)), int(round((shares[0] + shares[1]) * owners))]
        part = np.searchsorted(cut, rank, side="right")
    else:
        order = np.lexsort((users, times[ends + num_candidates - 1]))
        cut = [int(round(shares[0] * len(ends))), int(round((shares[0] + shares[1]) * len(ends)))]
        part = np.empty(len(ends), "int64")
        part[order] = np.searchsorted(cut, np.arange(len(ends)), side="right")
    vocab = {f: _vocab_size(events, f) for f in fields}
    tables = events.attrs.get("item_features") if item_features else None
    # One copy of the per-event arrays for the three splits (stored once, saved once).
    stored_actions = (len(ACTION_BITS), event_actions) if actions else None
    out = {}
    for index, name in enumerate(SPLITS):
        rows = np.sort(np.flatnonzero(part == index))
        first = ends[rows]
        examples = {"user": users[rows], "end": first, "label": event_labels[first]}
        examples.update({target_key(f): sequences[f][first] for f in fields})
        out[name] = CandidateSets(
            sequences,
            offsets,
            examples,
            candidates=num_candidates,
            event_labels=event_labels,
            max_len=max_len,
            vocab_sizes=vocab,
            batch_size=batch_size,
            shuffle=name == "train",
            seed=seed,
            time=time,
            item_features=tables,
            actions=stored_actions,
        )
    return out


def _action_bitmasks(events: Any) -> np.ndarray:
    """`events["action"]` as int32 (once checked, every value fits), or a `ValueError` naming the
    first value that is not a bitmask of KuaiRand's actions (`ACTION_BITS`), its row and its index."""
    values = events["action"].to_numpy()
    limit = 1 << len(ACTION_BITS)
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(
            "`events['action']` must hold integer bitmasks (`load_kuairand`'s). "
            f"Received dtype {values.dtype}."
        )
    bad = (values < 0) | (values >= limit)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"`events['action']` holds {values[row]} at row {row} (index {events.index[row]!r}): a bitmask "
            f"of KuaiRand's {len(ACTION_BITS)} actions ({', '.join(ACTION_BITS)}) lies in [0, {limit})."
        )
    return values.astype("int32")


def _check_fractions(fractions: Any) -> tuple[float, float]:
    ok = isinstance(fractions, Sequence) and not isinstance(fractions, str) and len(fractions) == 2
    values = list(fractions) if ok else []
    ok = ok and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and 0 <= v <= 1
        for v in values
    )
    if not ok or sum(values) > 1:
        raise ValueError(
            "`fractions` must be (train, validation): two numbers in [0, 1] whose sum is at most 1 "
            f"(test is the rest). Received: `fractions={fractions!r}`"
        )
    return float(values[0]), float(values[1])


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(name: str, value: Any, low: int, requirement: str | None = None) -> None:
    if not _is_int(value) or value < low:
        requirement = requirement or f"an integer >= {low}"
        raise ValueError(f"`{name}` must be {requirement}. Received: `{name}={value!r}`")


def _check_dataset_arguments(
    events: Any,
    fields: Any,
    batch_size: Any,
    seed: Any,
    time: Any,
    item_features: Any,
    columns: Sequence[str] = (),
) -> list[str]:
    """The protocols' shared arguments checked, naming the first bad one; `fields` as a list.
    `events` must hold `user`, `timestamp`, `columns` and the fields."""
    if isinstance(fields, str) or not isinstance(fields, Sequence) or not fields:
        raise ValueError(f"`fields` must be a list of column names. Received: `fields={fields!r}`")
    check_integer("batch_size", batch_size, 1, requirement="a positive integer")
    check_integer("seed", seed, 0)
    check_flag("time", time)
    check_flag("item_features", item_features)
    fields = list(fields)
    missing = [f for f in ["user", "timestamp", *columns, *fields] if f not in events]
    if missing:
        raise ValueError(f"`events` lacks column(s) {missing}; it has {list(events.columns)}")
    return fields


def _build(events, offsets, min_events, max_len, negatives, fields, batch_size, seed, time, item_features):
    # Every argument before the work: the datasets are built last.
    fields = _check_dataset_arguments(events, fields, batch_size, seed, time, item_features)
    _check_int("negatives", negatives, 0)
    _check_int("max_len", max_len, 1)
    sequences, all_offsets, _ = concatenate_users(events, fields)
    lengths = np.diff(all_offsets)
    kept = np.flatnonzero(lengths >= min_events)
    if len(kept) == 0:
        raise ValueError(
            f"No user has at least min_events={min_events} events (longest: {lengths.max(initial=0)})."
        )
    # Keep the qualifying users' events only, stored once.
    segments = [np.arange(all_offsets[u], all_offsets[u + 1]) for u in kept]
    take = np.concatenate(segments)
    sequences = {f: v[take] for f, v in sequences.items()}
    lengths = lengths[kept]
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype("int64")
    vocab = {f: _vocab_size(events, f) for f in fields}
    sampler = _NegativeSampler(events, sequences, starts, seed)
    rng = np.random.default_rng([seed, 1])
    out = {}
    for split in SPLITS:
        chosen = offsets[split]
        users, positions = [], []
        for u, n in enumerate(lengths):
            last = n - 1
            if chosen is None or isinstance(chosen, int):  # leave-last-out training: 1 .. T-2
                pos = np.arange(1, last - 1)
                if isinstance(chosen, int):
                    pos = pos[-chosen:]
            else:
                pos = last - np.asarray(chosen)
            users.append(np.full(len(pos), u))
            positions.append(pos)
        user = np.concatenate(users).astype("int64")
        end = starts[user] + np.concatenate(positions).astype("int64")
        examples = _with_negatives(user, end, sequences, sampler, negatives, rng)
        out[split] = SequenceDataset(
            sequences,
            starts,
            examples,
            max_len=max_len,
            vocab_sizes=vocab,
            batch_size=batch_size,
            shuffle=split == "train",
            seed=seed,
            time=time,
            item_features=events.attrs.get("item_features") if item_features else None,
        )
    return out


def _vocab_size(events, field: str) -> int:
    vocabularies = events.attrs.get("vocabularies", {})
    if field in vocabularies:
        return len(vocabularies[field]) + 2  # padding, ids, OOV (see readers)
    return int(events[field].max()) + 1


class _NegativeSampler:
    """Items by popularity, never one of the user's own items; categories carried."""

    def __init__(self, events, sequences, starts, seed):
        items = events["item"].to_numpy()
        self.counts = np.bincount(items)
        self.counts[0] = 0
        self.cumulative = np.cumsum(self.counts, dtype="float64")
        self.fields = {f: np.zeros(len(self.counts), "int32") for f in sequences if f != "item"}
        for field in self.fields:  # the side ids of each item's last event
            self.fields[field][items] = events[field].to_numpy()
        user_of_event = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
        self.width = len(self.counts)
        self.seen = np.unique(user_of_event * self.width + sequences["item"])
        self.rng = np.random.default_rng([seed, 2])

    def draw(self, user: np.ndarray) -> np.ndarray:
        items = np.zeros(len(user), "int64")
        todo = np.arange(len(user))
        for _ in range(1000):
            if not len(todo):
                return items
            uniform = self.rng.random(len(todo)) * self.cumulative[-1]
            draws = np.searchsorted(self.cumulative, uniform, side="right")
            items[todo] = draws
            keys = user[todo] * self.width + draws
            position = np.minimum(np.searchsorted(self.seen, keys), len(self.seen) - 1)
            todo = todo[self.seen[position] == keys]  # `seen` is sorted: a binary search per draw
        raise ValueError(
            "Could not draw negatives outside some users' histories: they have seen almost every item."
        )


def _with_negatives(user, end, sequences, sampler, negatives, rng):
    """Positive rows (target = the event at `end`) each followed by `negatives` sampled rows."""
    per = negatives + 1
    n = len(user)
    rows_user = np.repeat(user, per)
    rows_end = np.repeat(end, per)
    label = np.tile(np.r_[1.0, np.zeros(negatives)], n).astype("float32")
    examples = {"user": rows_user, "end": rows_end, "label": label}
    negative = label == 0
    drawn = sampler.draw(rows_user[negative])
    for field, flat in sequences.items():
        target = flat[rows_end].astype("int32")
        if field == "item":
            target[negative] = drawn
        else:
            target[negative] = sampler.fields[field][drawn]
        examples[target_key(field)] = target
    return examples
