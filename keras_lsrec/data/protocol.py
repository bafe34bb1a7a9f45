"""Evaluation protocols on real event tables: DARE's, and a plain leave-last-out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_lsrec.data.cache import CACHE_FORMAT, file_sha256, prepare
from keras_lsrec.data.dataset import SequenceDataset, concatenate_users
from keras_lsrec.data.schema import target_key
from keras_lsrec.validation import check_flag, check_integer

__all__ = ["CACHE_FORMAT", "dare_protocol", "file_sha256", "leave_last_out", "prepare"]

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


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_int(name: str, value: Any, low: int, requirement: str | None = None) -> None:
    if not _is_int(value) or value < low:
        requirement = requirement or f"an integer >= {low}"
        raise ValueError(f"`{name}` must be {requirement}. Received: `{name}={value!r}`")


def _build(events, offsets, min_events, max_len, negatives, fields, batch_size, seed, time, item_features):
    # Every argument before the work: the datasets are built last.
    if isinstance(fields, str) or not isinstance(fields, Sequence) or not fields:
        raise ValueError(f"`fields` must be a list of column names. Received: `fields={fields!r}`")
    check_integer("batch_size", batch_size, 1, requirement="a positive integer")
    check_integer("seed", seed, 0)
    check_flag("time", time)
    check_flag("item_features", item_features)
    fields = list(fields)
    missing = [f for f in ["user", "timestamp"] + fields if f not in events]
    if missing:
        raise ValueError(f"`events` lacks column(s) {missing}; it has {list(events.columns)}")
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
