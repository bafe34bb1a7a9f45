"""Datasets whose shuffling is seeded in numpy, so every backend sees the same batches.

`SequenceDataset`: examples that point into per-user sequences, histories
gathered per batch. `ArrayDataset`: batches of in-memory arrays.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import keras
import numpy as np

from keras_lsrec.data.schema import HISTORY, TARGET, TIME, SequenceSchema


class ShuffledBatches(keras.utils.PyDataset):
    """Batches `rows(indices)` of `num_examples` examples, in order or in a
    seeded order re-drawn after every epoch (`numpy`'s generator seeded with
    `(seed, epoch)`). Keras' own `fit(shuffle=True)` draws from the backend's
    random stream, which differs between backends; this order does not, so
    the same seed trains on the same batches everywhere. Pass
    `fit(dataset, shuffle=False)`: with the default `shuffle=True` Keras also
    reorders the batches of any `PyDataset`, with Python's `random`, whose
    state differs between backends. Subclasses define `num_examples` and
    `rows`."""

    def __init__(self, batch_size: int, shuffle: bool, seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size!r}")
        self.batch_size = batch_size
        self.shuffle = bool(shuffle)
        self.seed = seed
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


class ArrayDataset(ShuffledBatches):
    """Batches of in-memory arrays in the batch format, shuffled by a seed.

    `fit(ArrayDataset(x, y, 256, shuffle=True, seed=0), shuffle=False)`
    trains on the same batches on tensorflow, jax and torch (with
    `fit(x, y, shuffle=True)` the order comes from each backend's own random
    stream).

    Args:
        x: `{name: array}`, every array with the same first dimension.
        y: labels, the same first dimension.
        batch_size: rows per batch (the last batch may be smaller).
        shuffle: reshuffle the rows every epoch.
        seed: the shuffling seed.
        **kwargs: `keras.utils.PyDataset` options.
    """

    def __init__(
        self,
        x: Mapping[str, np.ndarray],
        y: np.ndarray,
        batch_size: int = 256,
        shuffle: bool = False,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        self.x = {k: np.asarray(v) for k, v in x.items()}
        self.y = np.asarray(y)
        sizes = {k: len(v) for k, v in self.x.items()}
        if any(n != len(self.y) for n in sizes.values()):
            raise ValueError(f"Every array of `x` needs {len(self.y)} rows, as `y`. Received: {sizes}")
        super().__init__(batch_size, shuffle, seed, **kwargs)

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

    `__getitem__(i)` gathers batch `i`'s histories, left-padded to `max_len`
    (most recent last), plus `history_time` (reverse position: most recent =
    1) when `time=True`, and returns `(batch_dict, labels)`. With
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
        **kwargs: Any,
    ) -> None:
        if "item" not in sequences:
            raise ValueError(f"`sequences` must contain 'item'. Received fields: {sorted(sequences)}")
        fields = list(sequences)
        needed = ["user", "end", "label"] + [TARGET + f for f in fields]
        missing = [k for k in needed if k not in examples]
        if missing:
            raise ValueError(f"`examples` lacks {missing}. Expected keys: {needed}")
        # Arrays are kept as given (memory-mapped ones stay on disk).
        self.sequences = {f: _array(v) for f, v in sequences.items()}
        self.offsets = _array(offsets)
        self.examples = {k: _array(examples[k]) for k in needed}
        self.max_len = int(max_len)
        self.vocab_sizes = {f: int(vocab_sizes[f]) for f in fields}
        self.time = bool(time)
        super().__init__(batch_size, shuffle, seed, **kwargs)

    # -- the batch format -----------------------------------------------------
    @property
    def schema(self) -> SequenceSchema:
        return SequenceSchema(
            self.vocab_sizes, max_len=self.max_len, time_vocab_size=self.max_len + 1 if self.time else None
        )

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
        batch = {TARGET + f: self.examples[TARGET + f][rows].astype("int32") for f in self.sequences}
        for field, flat in self.sequences.items():
            batch[HISTORY + field] = np.where(valid, flat[index], 0).astype("int32")
        if self.time:
            reverse = np.arange(self.max_len, 0, -1, dtype="int32")[None, :]
            batch[HISTORY + TIME] = np.where(valid, reverse, 0).astype("int32")
        return batch, self.examples["label"][rows].astype("float32")

    @property
    def users(self) -> np.ndarray:
        """The user (index) of every example, in order: GAUC groups."""
        return self.examples["user"]

    # -- storage ----------------------------------------------------------------
    def save(self, directory: str, sequences_dir: str | None = None) -> None:
        """Writes the arrays (`.npy`, memory-mappable) and a `dataset.json`.

        `sequences_dir` (default: `directory`) is where the sequences and
        offsets go; datasets over the same users (the splits of a protocol)
        can share one copy. If it already holds them, they are not rewritten.
        """
        os.makedirs(directory, exist_ok=True)
        sequences_dir = sequences_dir or directory
        os.makedirs(sequences_dir, exist_ok=True)
        if not os.path.isfile(os.path.join(sequences_dir, "offsets.npy")):
            for field, flat in self.sequences.items():
                np.save(os.path.join(sequences_dir, f"sequence_{field}.npy"), flat)
            np.save(os.path.join(sequences_dir, "offsets.npy"), self.offsets)
        for key, values in self.examples.items():
            np.save(os.path.join(directory, f"example_{key}.npy"), values)
        config = dict(
            sequences=os.path.relpath(sequences_dir, directory),
            fields=list(self.sequences), examples=list(self.examples), max_len=self.max_len,
            vocab_sizes=self.vocab_sizes, batch_size=self.batch_size, shuffle=self.shuffle,
            seed=self.seed, time=self.time,
        )
        with open(os.path.join(directory, "dataset.json"), "w") as f:
            json.dump(config, f, indent=1)

    @classmethod
    def load(cls, directory: str, mmap: bool = True, **overrides: Any) -> SequenceDataset:
        """Reads a dataset written by `save`; arrays are memory-mapped by default."""
        with open(os.path.join(directory, "dataset.json")) as f:
            config = json.load(f)
        mode: Literal["r"] | None = "r" if mmap else None

        def read(name: str, folder: str = directory) -> np.ndarray:
            return np.load(os.path.join(folder, name + ".npy"), mmap_mode=mode)

        shared = os.path.join(directory, config.pop("sequences"))
        sequences = {f: read(f"sequence_{f}", shared) for f in config.pop("fields")}
        examples = {k: read(f"example_{k}") for k in config.pop("examples")}
        config.update(overrides)
        return cls(sequences, read("offsets", shared), examples, **config)

    def __repr__(self) -> str:
        return (
            f"SequenceDataset({self.num_examples:,} examples of {len(self.offsets) - 1:,} users, "
            f"max_len={self.max_len}, batch_size={self.batch_size}, shuffle={self.shuffle})"
        )


def concatenate_users(
    events: Any, fields: Sequence[str]
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """`(sequences, offsets, user_ids)` from an events table sorted by (user, time)."""
    users = events["user"].to_numpy()
    if len(users) and np.any(np.diff(users) < 0):
        raise ValueError("`events` must be sorted by user then time (as the loaders return them).")
    boundaries = np.flatnonzero(np.diff(users)) + 1
    offsets = np.concatenate([[0], boundaries, [len(users)]] if len(users) else [[0]]).astype("int64")
    sequences = {f: events[f].to_numpy().astype("int32") for f in fields}
    return sequences, offsets, users[offsets[:-1]] if len(users) else users[:0]


def _array(values: Any) -> np.ndarray:
    return values if isinstance(values, np.ndarray) else np.asarray(values)
