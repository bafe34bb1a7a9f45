"""Training beyond one device and one process, on Keras' own engine.

keras_lsrec writes no distribution machinery: `keras.distribution` places
the variables and the batches (on the jax backend, the one where Keras 3.15
implements it), and this module says where the tables go and which users a
process reads.

- `layout_map(mesh)`: a `keras.distribution.LayoutMap` that shards every
  embedding table by rows over the mesh's model axis (their optimizer slots
  follow the tables) and replicates everything else, for
  `keras.distribution.ModelParallel(layout_map=layout_map(mesh), batch_dim_name="data")`.
  Ids stay global. `keras.distribution.DataParallel` needs nothing from here.
- `model_parallel("2,4")`: that `ModelParallel` on a (data, model) mesh of
  this shape over every device.
- `process_shard(data)`: the shard of users of this process, so N processes
  read disjoint data that together is all of it.

Example (one host; several hosts call `keras.distribution.initialize` first):

```python
mesh = keras.distribution.DeviceMesh((2, 4), ["data", "model"], keras.distribution.list_devices())
layouts = keras_lsrec.distribution.layout_map(mesh)
distribution = keras.distribution.ModelParallel(layout_map=layouts, batch_dim_name="data")
keras.distribution.set_distribution(distribution)  # or: set_distribution(model_parallel("2,4"))
model = keras_lsrec.models.DARE(schema)  # built under the distribution
```

docs/distributed.md has the recipes and the memory per device.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import keras

from keras_lsrec.data.dataset import SequenceDataset
from keras_lsrec.training.steps import check_distribution_backend, process_place

#: The variables `layout_map` shards: every Keras `Embedding`'s table (`EmbeddingTable` included).
TABLES = r"(.*/)?embeddings"


def layout_map(
    mesh: keras.distribution.DeviceMesh, model_axis: str = "model"
) -> keras.distribution.LayoutMap:
    """A `LayoutMap` that row-shards every embedding table over `model_axis`.

    Every variable named `embeddings` (the table of a `keras.layers.Embedding`,
    so of every `EmbeddingTable`: both DARE tables, the time table) gets the
    layout `(model_axis, None)`: device i of the axis holds rows
    `[i * R / n, (i + 1) * R / n)`, where R is the vocabulary rounded up to a
    multiple of the n devices (`EmbeddingTable` pads; ids are never remapped).
    Optimizer slots take their table's layout (Keras creates them from it).
    Everything else is replicated, and the batch is split over the mesh's
    other axes by `ModelParallel(batch_dim_name=...)`.

    Args:
        mesh: a `keras.distribution.DeviceMesh` with an axis named `model_axis`.
        model_axis: the mesh axis the table rows are split over.

    Returns:
        a `keras.distribution.LayoutMap`; add entries to it for more.

    Raises:
        ValueError: on a backend other than jax, or a mesh without `model_axis`.
    """
    check_distribution_backend()
    if model_axis not in mesh.axis_names:
        raise ValueError(
            f"`model_axis={model_axis!r}` is not an axis of the mesh; its axes are "
            f"{list(mesh.axis_names)} (shape {tuple(mesh.shape)})."
        )
    layouts = keras.distribution.LayoutMap(mesh)
    layouts[TABLES] = (model_axis, None)
    return layouts


def model_parallel(
    shape: Sequence[int] | str,
    devices: Sequence[Any] | None = None,
    model_axis: str = "model",
    auto_shard_dataset: bool = False,
) -> keras.distribution.ModelParallel:
    """`keras.distribution.ModelParallel` over a ("data", `model_axis`) mesh of
    `shape` (e.g. `(2, 4)` or `"2,4"`) with `layout_map(mesh)`: tables
    row-sharded over the second axis, the batch split over the first.

    `devices` default to every device of every process
    (`keras.distribution.list_devices()`). `auto_shard_dataset=False`: each
    process reads its own shard (`process_shard`), so Keras must not shard
    again (it would refuse a `PyDataset` across processes). Pass the result to
    `keras.distribution.set_distribution` before building the model.
    """
    check_distribution_backend()
    if isinstance(shape, str):
        try:
            shape = [int(n) for n in shape.split(",")]
        except ValueError:
            raise ValueError(
                f"`shape` must be 'data,model' integers, e.g. '2,4'. Received: {shape!r}"
            ) from None
    devices = list(keras.distribution.list_devices() if devices is None else devices)
    if len(shape) != 2 or min(shape) < 1 or math.prod(shape) != len(devices):
        raise ValueError(
            f"`shape` must be (data, model) with data * model = {len(devices)}, the number of devices. "
            f"Received: shape={tuple(shape)}"
        )
    mesh = keras.distribution.DeviceMesh(tuple(shape), ["data", model_axis], devices)
    return keras.distribution.ModelParallel(
        layout_map=layout_map(mesh, model_axis), batch_dim_name="data", auto_shard_dataset=auto_shard_dataset
    )


def process_shard(data: Any, index: int | None = None, count: int | None = None) -> Any:
    """This process's shard of users of `data`: `SequenceDataset.shard(index, count)`.

    `index` and `count` default to this process's place among the processes
    of `keras.distribution.initialize` (`jax.process_index()`,
    `jax.process_count()`; 0 and 1 in a single process). `data` is a
    `SequenceDataset` or a mapping of them (what `dare_protocol`,
    `leave_last_out` and `prepare` return); every split is sharded the same way.
    Each process builds the same protocol (it is seeded) and keeps its users.
    """
    if index is None or count is None:
        place = process_place()
        index = place[0] if index is None else index
        count = place[1] if count is None else count
    if isinstance(data, Mapping):
        return {name: process_shard(split, index, count) for name, split in data.items()}
    if not isinstance(data, SequenceDataset):
        raise TypeError(
            f"`data` must be a SequenceDataset or a mapping of them. Received: {type(data).__name__}"
        )
    return data.shard(index, count)


__all__ = ["TABLES", "layout_map", "model_parallel", "process_shard"]
