"""Datasets whose shuffling is seeded in numpy, so every backend sees the same batches.

`SequenceDataset`: examples that point into per-user sequences, histories
gathered per batch. `ArrayDataset`: batches of in-memory arrays.
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import keras
import numpy as np

from keras_lsrec.data.features import Categorical, Dense, feature_from_config
from keras_lsrec.data.schema import (
    ACTION,
    CLUSTER_SIZE,
    HISTORY_PREFIX,
    MAX_ACTIONS,
    TARGET_PREFIX,
    TIME,
    SequenceSchema,
    history_key,
    target_key,
)
from keras_lsrec.validation import check_flag, check_integer


class ShuffledBatches(keras.utils.PyDataset):
    """Batches `rows(indices)` of `num_examples` examples, in order or in a
    seeded order re-drawn after every epoch (`numpy`'s generator seeded with
    `(seed, epoch)`). Keras' own `fit(shuffle=True)` draws from the backend's
    random stream, which differs between backends; this order does not, so
    the same seed trains on the same batches everywhere. Pass
    `fit(dataset, shuffle=False)`: with the default `shuffle=True` Keras also
    reorders the batches of any `PyDataset`, with Python's `random`, whose
    state differs between backends. Subclasses define `num_examples` and
    `rows`.

    A subclass that validates its contents when built says against which
    schema (`checked_schema`) and how to check them against another
    (`_check_contents`); `check_schema(model.schema)` then tells the model's
    entry points whether its batches need checking one by one (see
    `keras_lsrec.training.inputs`)."""

    def __init__(self, batch_size: int, shuffle: bool, seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_size = check_integer("batch_size", batch_size, 1, requirement="a positive integer")
        self.shuffle = check_flag("shuffle", shuffle)
        self.seed = check_integer("seed", seed, 0)
        self._epoch = 0
        self._order = self._draw_order()

    @property
    def num_examples(self) -> int:
        raise NotImplementedError

    def rows(self, rows: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        raise NotImplementedError

    def __len__(self) -> int:
        return math.ceil(self.num_examples / self.batch_size)

    def _draw_order(self) -> np.ndarray | None:
        if not self.shuffle:
            return None
        return np.random.default_rng([self.seed, self._epoch]).permutation(self.num_examples)

    def on_epoch_end(self) -> None:
        self._epoch += 1
        self._order = self._draw_order()

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch index {index} out of range [0, {len(self)})")
        rows = np.arange(index * self.batch_size, min((index + 1) * self.batch_size, self.num_examples))
        if self._order is not None:
            rows = self._order[rows]
        return self.rows(rows)

    def arrays(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every example at once, in order (for small splits: `metrics.evaluate`)."""
        return self.rows(np.arange(self.num_examples))

    # -- which schema the batches follow ----------------------------------------
    @property
    def checked_schema(self) -> SequenceSchema | None:
        """The schema every batch was checked against when the dataset was built;
        `None` when its contents were not checked (the base class: a subclass that does not)."""
        return None

    def check_schema(self, schema: SequenceSchema) -> bool:
        """Whether every batch follows `schema` (a model's): `True` when the
        dataset was checked, when built, against a schema that `schema`
        accepts whole (the same keys and forms, every vocabulary no larger,
        `max_len` no longer), or, otherwise, once its contents are checked
        against `schema` now (in memory: a pass over the ids; stored
        sequences: the ids of the fields whose vocabulary is larger); a
        `ValueError` naming the field, the entry and the value when some
        batch would break `schema`; `False` when the dataset cannot tell
        (`checked_schema` is `None`: its batches must be checked as they are drawn)."""
        checked = self.checked_schema
        if checked is None:
            return False
        fitting = self.__dict__.setdefault("_fitting", [])  # schemas checked against, shared by shards
        difference = schema_covers(schema, checked)
        if difference is None or any(schema == s for s in fitting):
            return True
        try:
            self._check_contents(schema)
        except ValueError as error:
            raise ValueError(
                f"This {type(self).__name__} does not fit the model's schema ({difference}): "
                f"{error} ({self._built_against()}.)"
            ) from None
        fitting.append(schema)
        return True

    def _check_contents(self, schema: SequenceSchema) -> None:
        """Raise a `ValueError` naming the field, the entry and the value unless every batch follows
        `schema`."""
        raise NotImplementedError

    def _built_against(self) -> str:
        return f"it was checked, when built, against {self.checked_schema!r}"


class ArrayDataset(ShuffledBatches):
    """Batches of in-memory arrays in the batch format, shuffled by a seed.

    `fit(ArrayDataset(x, y, 256, shuffle=True, seed=0), shuffle=False)`
    trains on the same batches on tensorflow, jax and torch (with
    `fit(x, y, shuffle=True)` the order comes from each backend's own random
    stream).

    The contents are validated once, here, by `SequenceSchema.validate`
    (keys, integer ids, shapes, ids in the vocabulary, labels 0/1 and finite,
    -1 exactly at missing candidates), so a bad id or label is refused with
    its key, position and value before any training starts. Without a
    `schema` everything but the vocabularies' upper bounds is checked (the
    schema is then the loosest one `x` fits).

    Args:
        x: `{name: array}` in the batch format, every array with the same first dimension.
        y: labels, the shape of `x["target_item"]` (`(B, 1)` is also accepted for rows).
        batch_size: rows per batch (the last batch may be smaller).
        shuffle: reshuffle the rows every epoch.
        seed: the shuffling seed.
        schema: the `SequenceSchema` the data must follow (also `dataset.schema`).
        **kwargs: `keras.utils.PyDataset` options.
    """

    def __init__(
        self,
        x: Mapping[str, np.ndarray],
        y: np.ndarray,
        batch_size: int = 256,
        shuffle: bool = False,
        seed: int = 0,
        schema: SequenceSchema | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(x, Mapping):
            raise ValueError(f"`x` must be a dict of arrays keyed by input name. Received {type(x).__name__}")
        if schema is not None and not isinstance(schema, SequenceSchema):
            raise ValueError(f"`schema` must be a SequenceSchema or None. Received: `schema={schema!r}`")
        self.x = {k: np.asarray(v) for k, v in x.items()}
        self.y = np.asarray(y)
        sizes = {k: len(v) for k, v in self.x.items()}
        if self.y.ndim == 0 or any(n != len(self.y) for n in sizes.values()):
            raise ValueError(f"Every array of `x` needs {self.y.size} rows, as `y`. Received: {sizes}")
        self.schema = schema
        checked = schema or _loosest_schema(self.x)
        checked.validate(self.x, self._labels(checked))
        self._checked_schema = checked
        super().__init__(batch_size, shuffle, seed, **kwargs)

    def _labels(self, schema: SequenceSchema) -> np.ndarray:
        """`y`; `(B, 1)` labels of rows read as `(B,)`, as at the models' entry points."""
        if not schema.has_candidates and self.y.ndim == 2 and self.y.shape[1] == 1:
            return self.y[:, 0]
        return self.y

    @property
    def checked_schema(self) -> SequenceSchema | None:
        """`schema`, or, built without one, the loosest schema `x` follows (its own largest ids)."""
        return self._checked_schema

    def _check_contents(self, schema: SequenceSchema) -> None:
        schema.validate(self.x, self._labels(schema))  # in memory: a few vector passes

    def _built_against(self) -> str:
        if self.schema is None:
            return (
                "it was built without `schema=`, so its ids were checked against no vocabulary; "
                "pass `schema=model.schema` to check it when it is built"
            )
        return f"it was built with `schema={self.schema!r}`"

    @property
    def num_examples(self) -> int:
        return len(self.y)

    def rows(self, rows: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        return {k: v[rows] for k, v in self.x.items()}, self.y[rows]


class SequenceDataset(ShuffledBatches):
    """Batches in the library's format, built from sequences stored once per user.

    Storage (no history is copied into a row):

    - `sequences`: per id field, one flat array of every user's events,
      user after user, oldest first; `offsets` (U + 1): user `u`'s events are
      `[offsets[u], offsets[u + 1])`;
    - `examples`: `user` (index into `offsets`), `end` (flat index of the
      first event NOT in the history: the history is the events of that user
      before `end`, at most `max_len` of them), `target_<f>` per field, and
      `label`.

    The storage is validated once, at construction (a memory-mapped dataset
    is read through once): integer ids within `vocab_sizes` (the schema's
    `validate_ids`), `offsets` from 0 to the number of events, never
    decreasing, every example's user and `end` inside that user's events,
    labels 0/1 and finite (`validate_labels`), no unknown or missing key. A
    `ValueError` names the array, the entry and the value.

    Features (`SequenceSchema(features=..., item_features=...)`): a per-row
    feature's values are an `examples[name]` array, `(N,)`, `(N, M)` or
    `(N, D)`; an item feature is stored once per item, a table whose row `i`
    holds item `i`'s bag or vector (`(vocabulary of item, M|D)`, row 0 for
    padding), gathered for the targets and the events of every batch: a
    history of L events never costs L copies of a vector.

    Actions (`SequenceSchema(actions=K)`): `actions=(K, flat)` stores one
    bitmask per event beside the sequences, gathered into `history_action`
    for the events of a history only (a target's action is never in a batch).

    `__getitem__(i)` gathers batch `i`'s histories, left-padded to `max_len`
    (most recent last), plus `history_time` (reverse position: most recent =
    1) when `time=True`, and its item features (zeros at padding), and
    returns `(batch_dict, labels)`. With
    `shuffle=True` the example order is re-drawn (seeded) after every epoch.
    Works with `fit`, `evaluate` and `predict` on any backend.

    Args:
        sequences: `{field: flat int array}`, `item` required.
        offsets: `(U + 1,)` int array.
        examples: `{"user", "end", "target_<f>" for every field, "label"}`.
        max_len: the history window.
        vocab_sizes: `{field: size}` for the schema.
        batch_size: rows per batch (the last batch may be smaller).
        shuffle: reshuffle the examples every epoch.
        seed: the shuffling seed.
        time: add `history_time`.
        features: per-row features `{name: Categorical | Dense}`, their values
            in `examples[name]`.
        item_features: `{name: (Categorical(V, max_values=M) | Dense(D), table)}`,
            `table[i]` the feature of item `i`.
        actions: `(K, flat)`: the number of action kinds and one bitmask in
            `[0, 2^K)` per stored event (aligned with `sequences`), or `None`.
        **kwargs: `keras.utils.PyDataset` options (`workers`,
            `use_multiprocessing`, `max_queue_size`).
    """

    def __init__(
        self,
        sequences: Mapping[str, np.ndarray],
        offsets: np.ndarray,
        examples: Mapping[str, np.ndarray],
        max_len: int,
        vocab_sizes: Mapping[str, int],
        batch_size: int = 256,
        shuffle: bool = False,
        seed: int = 0,
        time: bool = True,
        features: Mapping[str, Any] | None = None,
        item_features: Mapping[str, tuple[Any, np.ndarray]] | None = None,
        actions: tuple[int, np.ndarray] | None = None,
        **kwargs: Any,
    ) -> None:
        if "item" not in sequences:
            raise ValueError(f"`sequences` must contain 'item'. Received fields: {sorted(sequences)}")
        fields = list(sequences)
        for name, pair in (item_features or {}).items():
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise ValueError(
                    f"`item_features[{name!r}]` must be a pair (feature spec, table of one row per item). "
                    f"Received: {type(pair).__name__}"
                )
        self.features = {n: feature_from_config(f) for n, f in (features or {}).items()}
        self.item_features = {n: feature_from_config(f) for n, (f, _) in (item_features or {}).items()}
        self.item_tables = {n: _array(t) for n, (_, t) in (item_features or {}).items()}
        if actions is not None and (not isinstance(actions, tuple) or len(actions) != 2):
            raise ValueError(
                "`actions` must be a pair (number of action kinds, one bitmask per stored event). "
                f"Received: {type(actions).__name__}"
            )
        kinds = None if actions is None else check_integer("actions[0]", actions[0], 1, MAX_ACTIONS)
        self.action_kinds = kinds
        self.event_actions = None if actions is None else _array(actions[1])
        needed = ["user", "end", "label"] + [target_key(f) for f in fields] + list(self.features)
        missing = [k for k in needed if k not in examples]
        if missing:
            raise ValueError(f"`examples` lacks {missing}. Expected keys: {needed}")
        unknown = [k for k in examples if k not in needed]
        if unknown:
            raise ValueError(
                f"`examples` has unknown key(s) {unknown}; expected exactly {needed} (a target field "
                "needs its sequence in `sequences`)."
            )
        absent = [f for f in fields if f not in vocab_sizes]
        extra = [f for f in vocab_sizes if f not in fields]
        if absent or extra:
            raise ValueError(
                f"`vocab_sizes` must name the fields of `sequences`, {fields}. "
                f"Missing: {absent}; unknown: {extra}."
            )
        # Arrays are kept as given (memory-mapped ones stay on disk).
        self.sequences = {f: _array(v) for f, v in sequences.items()}
        self.offsets = _array(offsets)
        self.examples = {k: _array(examples[k]) for k in needed}
        self.max_len = int(max_len)
        self.vocab_sizes = {f: int(vocab_sizes[f]) for f in fields}
        self.time = bool(time)
        self.repeated = 0  # examples a `shard(even=True)` repeats
        self._validate()
        super().__init__(batch_size, shuffle, seed, **kwargs)

    def _validate(self) -> None:
        """The storage checks of the class docstring; ids and labels through the schema's validators."""
        schema = self.schema
        events = len(self.sequences["item"])
        for field, flat in self.sequences.items():
            name = f"sequences[{field!r}]"
            if flat.ndim != 1 or len(flat) != events:
                raise ValueError(
                    f"`{name}` must be one flat array of every user's events, like `sequences['item']` "
                    f"({events} events). Received shape {flat.shape}."
                )
            schema.validate_ids(history_key(field), flat, name=name)
        if self.event_actions is not None:
            if self.event_actions.shape != (events,):
                raise ValueError(
                    f"`actions` must hold one bitmask per stored event ({events}). "
                    f"Received shape {self.event_actions.shape}."
                )
            schema.validate_actions(self.event_actions, name="actions[1]")
        offsets = self.offsets
        if offsets.ndim != 1 or len(offsets) < 1 or not np.issubdtype(offsets.dtype, np.integer):
            raise ValueError(
                f"`offsets` must be a 1-D integer array (users + 1 entries). Received shape "
                f"{offsets.shape}, dtype {offsets.dtype}."
            )
        if offsets[0] != 0 or offsets[-1] != events:
            raise ValueError(
                f"`offsets` must run from 0 to the number of events ({events}). "
                f"Received offsets[0] = {offsets[0]}, offsets[-1] = {offsets[-1]}."
            )
        falling = np.flatnonzero(offsets[1:] < offsets[:-1])
        if len(falling):
            u = int(falling[0])
            raise ValueError(
                f"`offsets` must never decrease: offsets[{u + 1}] = {offsets[u + 1]} < "
                f"offsets[{u}] = {offsets[u]}."
            )
        rows = len(self.examples["label"])
        for key, values in self.examples.items():
            if key in self.features:
                if values.ndim < 1 or len(values) != rows:
                    raise ValueError(
                        f"`examples[{key!r}]` must hold one value per example ({rows}, as "
                        f"`examples['label']`). Received shape {values.shape}."
                    )
                schema._validate_feature(key, values)
                continue
            if values.ndim != 1 or len(values) != rows:
                raise ValueError(
                    f"`examples[{key!r}]` must be 1-D with one entry per example ({rows}, as "
                    f"`examples['label']`). Received shape {values.shape}."
                )
            if key != "label" and not np.issubdtype(values.dtype, np.integer):
                raise ValueError(f"`examples[{key!r}]` must hold integers. Received dtype {values.dtype}.")
        users = self.examples["user"]
        outside = (users < 0) | (users >= len(offsets) - 1)
        if outside.any():
            i = int(np.argmax(outside))
            raise ValueError(
                f"`examples['user'][{i}]` = {users[i]} is not a user: users are 0..{len(offsets) - 2} "
                "(the positions in `offsets`)."
            )
        ends = self.examples["end"]
        first, last = offsets[users], offsets[users + 1]
        outside = (ends < first) | (ends > last)
        if outside.any():
            i = int(np.argmax(outside))
            raise ValueError(
                f"`examples['end'][{i}]` = {ends[i]} lies outside the events of its user "
                f"{users[i]}, [{first[i]}, {last[i]}]: the history must be that user's events before `end`."
            )
        for field in self.sequences:
            key = target_key(field)
            schema.validate_ids(key, self.examples[key], name=f"examples[{key!r}]")
        schema.validate_labels(self.examples[target_key("item")], self.examples["label"])
        items = self.vocab_sizes["item"]
        for name, table in self.item_tables.items():
            if len(table) < items:
                raise ValueError(
                    f"`item_features[{name!r}]` has {len(table)} rows; it needs one per item id, "
                    f"[0, {items}) (row 0 for padding)."
                )
            feature = self.item_features[name]
            where = f"item_features[{name!r}]"
            if table.shape[1:] != feature.shape:
                raise ValueError(
                    f"`{where}` must have shape (items, {feature.shape[0]}). Received {table.shape}."
                )
            if isinstance(feature, Categorical):
                schema.validate_ids(history_key(name), table, name=where)
            elif table.dtype.kind not in "biuf" or not np.isfinite(table).all():
                bad = np.argwhere(~np.isfinite(table))[0] if table.dtype.kind == "f" else (0, 0)
                raise ValueError(
                    f"`{where}` must hold finite numbers. Received {where}[{bad[0]}, {bad[1]}] = "
                    f"{table[tuple(bad)].item()!r}."
                )

    # -- the batch format -----------------------------------------------------
    @property
    def schema(self) -> SequenceSchema:
        return SequenceSchema(
            self.vocab_sizes,
            max_len=self.max_len,
            time_vocab_size=self.max_len + 1 if self.time else None,
            features=self.features,
            item_features=self.item_features,
            actions=self.action_kinds,
        )

    @property
    def checked_schema(self) -> SequenceSchema | None:
        return self.schema

    def _check_contents(self, schema: SequenceSchema) -> None:
        """The keys, dtypes and history length of a batch (from no example), then the stored ids
        of every field whose vocabulary is larger than `schema`'s (one pass over them) and the
        longest history's reverse positions (`history_time`)."""
        schema.validate(*self.rows(np.arange(0)))
        for field, flat in self.sequences.items():
            if self.vocab_sizes[field] > schema.vocab_size(history_key(field)):
                schema.validate_ids(history_key(field), flat, name=f"sequences[{field!r}]")
                key = target_key(field)
                schema.validate_ids(key, self.examples[key], name=f"examples[{key!r}]")
        for name, feature in self.features.items():
            if isinstance(feature, Categorical) and feature.vocab_size > schema.vocab_size(name):
                schema.validate_ids(name, self.examples[name], name=f"examples[{name!r}]")
        kinds = self.action_kinds
        if self.event_actions is not None and kinds is not None and schema.actions is not None:
            if kinds > schema.actions:  # bitmasks of more kinds than the model encodes
                schema.validate_actions(self.event_actions, name="actions[1]")
        for name, feature in self.item_features.items():
            key = history_key(name)
            if isinstance(feature, Categorical) and feature.vocab_size > schema.vocab_size(key):
                schema.validate_ids(key, self.item_tables[name], name=f"item_features[{name!r}]")
        time_vocab = schema.time_vocab_size
        if self.time and time_vocab is not None and self.max_len + 1 > time_vocab:
            users = self.examples["user"]
            lengths = np.minimum(self.examples["end"] - self.offsets[users], self.max_len)
            longest = int(lengths.max(initial=0))
            if longest >= time_vocab:
                i = int(np.argmax(lengths))
                raise ValueError(
                    f"`history_time` (the reverse position, 1 = most recent) reaches {longest} in "
                    f"example {i}, outside the vocabulary [0, {time_vocab}) of `history_time`."
                )

    def _built_against(self) -> str:
        return f"it was built with vocab_sizes={self.vocab_sizes}, max_len={self.max_len}, time={self.time}"

    @property
    def num_examples(self) -> int:
        return len(self.examples["label"])

    def rows(self, rows: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The examples at `rows` in the batch format: `(batch_dict, labels)`."""
        users = self.examples["user"][rows]
        ends = self.examples["end"][rows].astype("int64")
        starts = self.offsets[users]
        index = ends[:, None] - self.max_len + np.arange(self.max_len)[None, :]
        valid = index >= starts[:, None]
        index = np.where(valid, index, 0)
        batch = {target_key(f): self.examples[target_key(f)][rows].astype("int32") for f in self.sequences}
        for field, flat in self.sequences.items():
            batch[history_key(field)] = np.where(valid, flat[index], 0).astype("int32")
        if self.time:
            reverse = np.arange(self.max_len, 0, -1, dtype="int32")[None, :]
            batch[history_key(TIME)] = np.where(valid, reverse, 0).astype("int32")
        if self.event_actions is not None:
            batch[history_key(ACTION)] = np.where(valid, self.event_actions[index], 0).astype("int32")
        for name, feature in self.features.items():
            batch[name] = np.asarray(self.examples[name][rows]).astype(feature.dtype)
        for name, feature in self.item_features.items():
            table = self.item_tables[name]
            batch[target_key(name)] = np.asarray(table[batch[target_key("item")]]).astype(feature.dtype)
            events = np.asarray(table[batch[history_key("item")]])
            batch[history_key(name)] = np.where(valid[..., None], events, 0).astype(feature.dtype)
        return batch, self.examples["label"][rows].astype("float32")

    @property
    def users(self) -> np.ndarray:
        """The user (index) of every example, in order: GAUC groups."""
        return self.examples["user"]

    # -- many processes ---------------------------------------------------------
    def shard(self, index: int, count: int, even: bool = True) -> SequenceDataset:
        """The examples of users `u` with `u % count == index`: shard `index` of `count`.

        Deterministic, and the `count` shards are disjoint and together hold
        every example, so N training processes (`keras_lsrec.distribution.process_shard`)
        read each example once. With `even=True` (for training) every shard
        has as many examples as the largest, so processes stepping together
        get batches of the same sizes: a shorter shard repeats its own first
        examples (as PyTorch's `DistributedSampler` does; `repeated` counts
        them, no example is dropped). `even=False` keeps each shard exact (for evaluation). The
        shard shares the sequences (nothing is copied or re-validated).
        """
        for name, value, low in (("count", count, 1), ("index", index, 0)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < low:
                raise ValueError(f"`{name}` must be an integer >= {low}. Received: {name}={value!r}")
        if index >= count:
            raise ValueError(f"`index` must be below `count`. Received: index={index}, count={count}")
        owner = np.asarray(self.examples["user"]) % count
        rows = np.flatnonzero(owner == index)
        repeated = 0
        if even:
            total = int(np.bincount(owner, minlength=count).max())
            if len(rows) == 0 and total:
                raise ValueError(
                    f"Shard {index} of {count} holds no example ({len(self.offsets) - 1} users): "
                    "use fewer processes than users with examples."
                )
            repeated = total - len(rows)
            rows = np.resize(rows, total)
        shard = copy.copy(self)
        shard.examples = {k: np.asarray(v[rows]) for k, v in self.examples.items()}
        shard.repeated = repeated
        shard._epoch = 0
        shard._order = shard._draw_order()
        return shard

    # -- storage ----------------------------------------------------------------
    def save(self, directory: str, sequences_dir: str | None = None) -> None:
        """Writes the arrays (`.npy`, memory-mappable) and a `dataset.json`.

        `sequences_dir` (default: `directory`) is where the per-event arrays
        (sequences, offsets, actions, a candidate set's labels) and the item
        tables go; datasets over the same users (the splits of a protocol)
        can share one copy. An array it already holds is not rewritten; one
        that differs from this dataset's is refused (`ValueError` naming the file).
        """
        os.makedirs(directory, exist_ok=True)
        sequences_dir = sequences_dir or directory
        os.makedirs(sequences_dir, exist_ok=True)
        config, arrays = self._stored()
        for name, values in {**arrays, "offsets": self.offsets}.items():
            path = os.path.join(sequences_dir, f"{name}.npy")
            if not os.path.isfile(path):
                np.save(path, values)
            elif _maps_file(values, path):
                continue  # loaded from this very file: nothing to write or compare
            elif not np.array_equal(np.load(path, mmap_mode="r"), values):
                raise ValueError(
                    f"{path} already holds other values: `sequences_dir` is shared only by datasets "
                    "over the same events (and, for candidate sets, the same labels); save this one "
                    "to another folder."
                )
        for key, values in self.examples.items():
            np.save(os.path.join(directory, f"example_{key}.npy"), values)
        config["sequences"] = os.path.relpath(sequences_dir, directory)
        with open(os.path.join(directory, "dataset.json"), "w") as f:
            json.dump(config, f, indent=1)

    def _stored(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """What `save` writes: the description, and the per-event and per-item arrays by file
        name (stored once for datasets that share their sequences)."""
        config: dict[str, Any] = dict(
            fields=list(self.sequences),
            examples=list(self.examples),
            max_len=self.max_len,
            vocab_sizes=self.vocab_sizes,
            batch_size=self.batch_size,
            shuffle=self.shuffle,
            seed=self.seed,
            time=self.time,
            features={n: f.get_config() for n, f in self.features.items()},
            item_features={n: f.get_config() for n, f in self.item_features.items()},
        )
        arrays = {f"sequence_{field}": flat for field, flat in self.sequences.items()}
        arrays.update({f"item_{name}": table for name, table in self.item_tables.items()})
        if self.event_actions is not None:
            config["actions"] = self.action_kinds
            arrays["actions"] = self.event_actions
        return config, arrays

    @classmethod
    def load(cls, directory: str, mmap: bool = True, **overrides: Any) -> SequenceDataset:
        """Reads a dataset written by `save`; arrays are memory-mapped by default.

        A missing, damaged or inconsistent file is refused naming it (or the
        directory, for contents that do not agree with each other)."""
        description = os.path.join(os.fspath(directory), "dataset.json")
        if not os.path.isfile(description):
            raise FileNotFoundError(
                f"{description} is missing: `directory` must be a folder written by SequenceDataset.save."
            )
        try:
            with open(description, encoding="utf-8") as f:
                config = json.load(f)
            shared = os.path.join(directory, config.pop("sequences"))
            fields, names = config.pop("fields"), config.pop("examples")
            specs = config.pop("item_features", {})
            action_kinds = config.pop("actions", None)
            candidates = config.pop("candidates", None)
        except (ValueError, KeyError, TypeError, AttributeError) as error:  # JSONDecodeError is a ValueError
            raise ValueError(
                f"{description} is not a description written by SequenceDataset.save: {error!r}"
            ) from None
        mode: Literal["r"] | None = "r" if mmap else None

        def read(name: str, folder: str = directory) -> np.ndarray:
            path = os.path.normpath(os.path.join(folder, name + ".npy"))
            if not os.path.isfile(path):
                raise FileNotFoundError(f"{path} is missing ({description} lists it).")
            try:
                return np.load(path, mmap_mode=mode)
            except (ValueError, OSError, EOFError) as error:
                raise ValueError(f"{path} is not a readable .npy array: {error}") from None

        sequences = {f: read(f"sequence_{f}", shared) for f in fields}
        examples = {k: read(f"example_{k}") for k in names}
        config["item_features"] = {n: (spec, read(f"item_{n}", shared)) for n, spec in specs.items()}
        if action_kinds is not None:
            config["actions"] = (action_kinds, read("actions", shared))
        offsets = read("offsets", shared)
        kind: type[SequenceDataset] = cls
        if candidates is not None:  # candidate-set requests (`candidate_windows`)
            kind = CandidateSets
            config.update(candidates=candidates, event_labels=read("event_labels", shared))
        try:
            return kind(sequences, offsets, examples, **{**config, **overrides})
        except ValueError as error:
            if any(f"`{name}" in str(error) for name in overrides):
                raise  # an override of the caller's, named by the message
            raise ValueError(f"The dataset in {directory} is not consistent: {error}") from None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.num_examples:,} examples of {len(self.offsets) - 1:,} users, "
            f"max_len={self.max_len}, batch_size={self.batch_size}, shuffle={self.shuffle})"
        )


class CandidateSets(SequenceDataset):
    """A `SequenceDataset` of candidate-set requests (`candidate_windows`): the targets of an
    example are the `candidates` events of its user from `end` on, labelled by `event_labels`
    (one per stored event), both gathered at batch time; its history, the events before `end`.
    `examples` holds, as for the base class, the first candidate's ids and label. `save` adds
    `candidates` and the event labels; `SequenceDataset.load` returns this class for them."""

    def __init__(
        self,
        sequences: Any,
        offsets: Any,
        examples: Any,
        *,
        candidates: int,
        event_labels: np.ndarray,
        **kwargs: Any,
    ) -> None:
        self.candidates = int(candidates)
        self.event_labels = np.asarray(event_labels)
        super().__init__(sequences, offsets, examples, **kwargs)
        events = len(self.sequences["item"])
        if self.event_labels.shape != (events,):
            raise ValueError(
                f"`event_labels` must hold one label per stored event ({events}). "
                f"Received shape {self.event_labels.shape}."
            )
        self.schema.validate_labels(self.sequences["item"], self.event_labels)
        users, ends = self.examples["user"], self.examples["end"]
        beyond = ends + self.candidates > self.offsets[users + 1]
        if beyond.any():
            i = int(np.argmax(beyond))
            raise ValueError(
                f"`examples['end'][{i}]` = {ends[i]}: its {self.candidates} candidates run past the "
                f"events of user {users[i]} (which end at {self.offsets[users[i] + 1]})."
            )

    @property
    def schema(self) -> SequenceSchema:
        return super().schema.replace(candidates=self.candidates)

    def rows(self, rows: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """The requests at `rows`: histories as the base class, `(B, C)` targets and labels."""
        batch, _ = super().rows(rows)
        ends = self.examples["end"][rows].astype("int64")
        index = ends[:, None] + np.arange(self.candidates)[None, :]
        for field, flat in self.sequences.items():
            batch[target_key(field)] = np.asarray(flat[index]).astype("int32")
        for name, feature in self.item_features.items():
            table = self.item_tables[name]
            batch[target_key(name)] = np.asarray(table[batch[target_key("item")]]).astype(feature.dtype)
        return batch, np.asarray(self.event_labels[index]).astype("float32")

    def _stored(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        config, arrays = super()._stored()
        config["candidates"] = self.candidates
        arrays["event_labels"] = self.event_labels
        return config, arrays


def concatenate_users(
    events: Any, fields: Sequence[str]
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """`(sequences, offsets, user_ids)` from an events table sorted by (user, time)."""
    users = events["user"].to_numpy()
    if len(users) and np.any(users[1:] < users[:-1]):
        raise ValueError("`events` must be sorted by user then time (as the loaders return them).")
    boundaries = np.flatnonzero(users[1:] != users[:-1]) + 1
    offsets = np.concatenate([[0], boundaries, [len(users)]] if len(users) else [[0]]).astype("int64")
    sequences = {f: _int32_ids(events, f) for f in fields}
    return sequences, offsets, users[offsets[:-1]] if len(users) else users[:0]


def _int32_ids(events: Any, field: str) -> np.ndarray:
    """`events[field]` as int32 ids, or a `ValueError` naming the first id that is not one (never wrapped)."""
    values = events[field].to_numpy()
    if not np.issubdtype(values.dtype, np.integer):
        raise ValueError(
            f"`events[{field!r}]` must hold integer ids (the loaders' ids 1..N). "
            f"Received dtype {values.dtype}."
        )
    bad = (values < 0) | (values > 2**31 - 1)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(
            f"`events[{field!r}]` holds {values[row]} at row {row} (index {events.index[row]!r}): ids "
            "must lie in [0, 2^31). Remap them to 1..N first (the loaders do; `encode_ids` maps other "
            "ids the same way)."
        )
    return values.astype("int32")


def _loosest_schema(x: Mapping[str, np.ndarray]) -> SequenceSchema:
    """The loosest schema `x` can follow: its fields, each vocabulary just larger than its largest id,
    its history length, its candidate axis. `validate` with it checks everything but vocabulary bounds."""

    def largest(value: np.ndarray) -> int:
        return int(value.max()) if value.size and np.issubdtype(value.dtype, np.integer) else 0

    sizes: dict[str, int] = {"item": 2}
    # An item feature's history is (B, L, M|D): floats are `Dense`, ids a bag.
    item_features: dict[str, Any] = {}
    for key, value in x.items():
        field = key.removeprefix(HISTORY_PREFIX)
        if field != key and value.ndim == 3 and field.isidentifier() and field != "item":
            values = [value, x.get(target_key(field), value[:0])]
            if value.dtype.kind == "f":
                item_features[field] = Dense(value.shape[2])
            else:
                vocab = max(2, *(largest(np.asarray(v)) + 1 for v in values))
                item_features[field] = Categorical(vocab, max_values=value.shape[2])
    for key, value in x.items():
        for prefix in (TARGET_PREFIX, HISTORY_PREFIX):
            field = key[len(prefix) :]
            if (
                key.startswith(prefix)
                and field.isidentifier()
                and field not in (TIME, CLUSTER_SIZE, ACTION)
                and field not in item_features
            ):
                sizes[field] = max(sizes.get(field, 2), largest(value) + 1)
    history, target, time = x.get(history_key("item")), x.get(target_key("item")), x.get(history_key(TIME))
    max_len = history.shape[1] if history is not None and history.ndim == 2 else 1
    candidates = target.shape[1] if target is not None and target.ndim == 2 and target.shape[1] else None
    # Any other key is a per-row feature: floats are `Dense`, ids one per row or a bag.
    features: dict[str, Any] = {}
    for key, value in x.items():
        if key.startswith((TARGET_PREFIX, HISTORY_PREFIX)) or not key.isidentifier() or key in sizes:
            continue
        if value.dtype.kind == "f" and value.ndim == 2 and value.shape[1]:
            features[key] = Dense(value.shape[1])
        elif value.ndim in (1, 2) and (value.ndim == 1 or value.shape[1]):
            bag = value.shape[1] if value.ndim == 2 else None
            features[key] = Categorical(max(2, largest(value) + 1), max_values=bag)
    return SequenceSchema(
        sizes,
        max_len=max(max_len, 1),
        candidates=candidates,
        time_vocab_size=None if time is None else max(2, largest(time) + 1),
        cluster_sizes=history_key(CLUSTER_SIZE) in x,
        features=features,
        item_features=item_features,
        actions=_action_kinds(x.get(history_key(ACTION))),
    )


def _action_kinds(actions: np.ndarray | None) -> int | None:
    """The fewest action kinds whose bitmasks hold every value of `actions` (at least 1, at most
    `MAX_ACTIONS`: a larger value is left for `validate` to name)."""
    if actions is None:
        return None
    largest = int(actions.max()) if actions.size and np.issubdtype(actions.dtype, np.integer) else 0
    return min(max(largest.bit_length(), 1), MAX_ACTIONS)


def schema_covers(wanted: SequenceSchema, checked: SequenceSchema) -> str | None:
    """`None` when every batch that `checked` accepts, `wanted` accepts too (the same keys, the same
    forms, every vocabulary of `checked` no larger, its `max_len` no longer); otherwise the first
    difference, in words."""
    shapes, given = wanted.input_shapes(), checked.input_shapes()
    if shapes.keys() != given.keys():
        lacking, extra = sorted(shapes.keys() - given.keys()), sorted(given.keys() - shapes.keys())
        return "; ".join(
            ([f"it lacks the model's keys {lacking}"] if lacking else [])
            + ([f"it has keys the model does not take, {extra}"] if extra else [])
        )
    if checked.max_len > wanted.max_len:
        return f"its max_len={checked.max_len} > the model's {wanted.max_len}"
    for key, shape in shapes.items():
        other = given[key]
        if len(shape) != len(other) or any(
            w is not None and w != g for w, g in zip(shape, other, strict=True)
        ):
            return f"its `{key}` has shape {other} per row, the model's {shape}"
        if key == history_key(CLUSTER_SIZE):
            continue
        if wanted.is_dense(key) or checked.is_dense(key):
            if wanted.feature(key) != checked.feature(key):
                return f"its `{key}` is {checked.feature(key)!r}, the model's {wanted.feature(key)!r}"
            continue
        if checked.vocab_size(key) > wanted.vocab_size(key):
            return (
                f"its vocabulary of `{key.removeprefix(HISTORY_PREFIX).removeprefix(TARGET_PREFIX)}` is "
                f"{checked.vocab_size(key)} > the model's {wanted.vocab_size(key)}"
            )
    return None


def _array(values: Any) -> np.ndarray:
    return values if isinstance(values, np.ndarray) else np.asarray(values)


def _maps_file(values: Any, path: str) -> bool:
    """Whether `values` is the whole array of the `.npy` file at `path`, memory-mapped
    (a loaded dataset saved again): a C-contiguous map of that file with its shape
    can only be all of it, in order."""
    if not (isinstance(values, np.memmap) and values.filename and values.flags.c_contiguous):
        return False
    stored = np.load(path, mmap_mode="r")
    same = values.shape == stored.shape and values.dtype == stored.dtype
    return same and os.path.samefile(values.filename, path)
