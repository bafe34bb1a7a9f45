"""Tables padded to a device mesh, and files that do not depend on the mesh.

Under a `keras.distribution` whose layout shards a table's rows over mesh
axes of n devices (`keras_lsrec.distribution.layout_map`), the table's
variable holds its vocabulary rounded up to a multiple of n rows
(`sharded_rows`), so a vocabulary n does not divide still shards evenly. The
extra rows are never looked up. Checkpoints hold the real rows only
(`PaddedRowsStore`), so a sharded model's file loads on one device and the
reverse. `EmbeddingTable` uses both; the row-sparse trainer uses the store
for the tables' optimizer slots.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
from keras import ops


def sharded_rows(rows: int, path: str) -> int:
    """`rows` rounded up to a multiple of the devices the active
    distribution's layout for the variable at `path` splits dimension 0 over."""
    distribution = keras.distribution.distribution()
    if distribution is None:
        return rows
    layout = distribution.get_variable_layout(SimpleNamespace(path=path, shape=(rows, 1), _layout=None))
    axes = layout.axes[0] if layout is not None and layout.axes else None
    if axes is None:
        return rows
    mesh = layout.device_mesh or distribution.device_mesh
    names = (axes,) if isinstance(axes, str) else tuple(axes)
    shards = math.prod(mesh.shape[list(mesh.axis_names).index(name)] for name in names)
    return -(-rows // shards) * shards


class PaddedRowsStore(Mapping):
    """A variable store seen through variables with padding rows.

    `rows[key] = (n, stored)`: entry `key` is a variable of `stored` rows
    whose first `n` are real (a row-sharded `EmbeddingTable`, or an optimizer
    slot of one). Such an entry is written as its first `n` rows and read
    back padded with zero rows, so files do not depend on the mesh.
    """

    def __init__(self, store: Any, rows: Mapping[str, tuple[int, int]]) -> None:
        self.store = store
        self.rows = {key: shape for key, shape in rows.items() if shape[0] != shape[1]}

    def __getitem__(self, key: str) -> Any:
        value = self.store[key]
        if key not in self.rows:
            return value
        rows, stored = self.rows[key]
        value = np.asarray(value)
        if len(value) != rows:
            return value  # not this layout: let the variable's assign name the mismatch
        return np.concatenate([value, np.zeros((stored - rows,) + value.shape[1:], value.dtype)])

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self.rows:
            value = ops.convert_to_numpy(value)[: self.rows[key][0]]
        self.store[key] = value

    def __iter__(self) -> Iterator[str]:
        return iter(self.store.keys())

    def __len__(self) -> int:
        return len(self.store.keys())
