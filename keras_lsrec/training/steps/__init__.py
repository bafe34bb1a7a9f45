"""The train step of each backend, chosen once: one file per backend.

The only place in the package that knows how a backend differentiates,
writes rows in place or counts processes (Keras keeps one `Trainer` per
backend file the same way). Each of `tensorflow.py`, `jax.py` and
`torch.py` defines the same functions:

- `train_step(model, tables, keras_step, *args)`: one step of `fit`, with
  the model's row-sparse tables (`keras_lsrec.training.tables.TableTraining`)
  when `tables.active`, else Keras' own `keras_step` (on tensorflow the
  step is always its own: it sums the sparse gradients of embedding lookups
  into dense ones before the optimizer sees them, see `tensorflow.py`);
- `write_rows(variable, ids, values)` and `write_positions(variable, ids)`:
  in-place row writes of the row-sparse update;
- `unsupported()`: why row-sparse training cannot run now, or `None`.

`jax.py` also counts the processes of a multi-process run (`process_place`):
`keras.distribution` runs on jax only.

The module is imported once, on first use, for `keras.backend.backend()`.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

import keras

BACKENDS = ("tensorflow", "jax", "torch")
LARGEST = 2**31 - 1  # int32's largest: `write_positions`' "no position yet"


@functools.cache
def backend_steps(backend: str | None = None) -> ModuleType:
    """The step module of `backend` (default: the running one)."""
    backend = backend or keras.backend.backend()
    if backend not in BACKENDS:
        raise NotImplementedError(
            f"keras_lsrec trains on the {', '.join(BACKENDS)} backends; the active backend is {backend!r}."
        )
    return importlib.import_module(f"keras_lsrec.training.steps.{backend}")


def train_step(model: keras.Model, tables: Any, keras_step: Any, *args: Any) -> Any:
    """One training step of `model` on the running backend (see the module docstring)."""
    return backend_steps().train_step(model, tables, keras_step, *args)


def write_rows(variable: keras.Variable, ids: Any, values: Any) -> None:
    """`variable[ids] = values`, in place: the cost is the rows written, not
    the table. Repeated ids must carry equal values."""
    backend_steps().write_rows(variable, ids, keras.ops.cast(values, variable.dtype))


def write_positions(variable: keras.Variable, ids: Any) -> None:
    """`variable[ids[j]] = j` for the FIRST `j` of each repeated id, in place.

    Deterministic however the scatter is split: under a `keras.distribution`
    XLA partitions the batch's ids over devices, and a plain set of repeated
    ids could keep a different occurrence on each device (the replicas of
    the map would then disagree, and part of an id's gradient be lost).
    A set to the largest int32 followed by a scatter-min is the same on every
    device."""
    backend_steps().write_positions(variable, ids, keras.ops.arange(keras.ops.shape(ids)[0], dtype="int32"))


def unsupported() -> str | None:
    """Why row-sparse table training cannot run here, or `None` when it can:
    a backend without a train step, or a `tf.distribute` strategy. Under a
    `keras.distribution` (jax) the step is the same program: XLA partitions
    its gathers and scatters over the row-sharded tables and slots
    (`keras_lsrec.distribution`)."""
    backend = keras.backend.backend()
    if backend not in BACKENDS:
        return f"row-sparse training has no train step on the {backend} backend"
    reason: str | None = backend_steps().unsupported()
    return reason


def check_distribution_backend() -> None:
    """Refuses a `keras.distribution` on a backend where Keras does not
    distribute (in Keras 3.15 only jax places variables and batches on a
    mesh; elsewhere training would silently run on one device)."""
    backend = keras.backend.backend()
    if backend != "jax":
        raise ValueError(
            f"keras.distribution places variables and batches only on the jax backend in Keras "
            f"{keras.__version__}; the active backend is {backend!r}, where training would run on one "
            "device. Set KERAS_BACKEND=jax to train on several devices (docs/distributed.md), or "
            "`keras.distribution.set_distribution(None)`."
        )


def process_place() -> tuple[int, int]:
    """`(index, count)` of this process among those of
    `keras.distribution.initialize` (jax only, see `check_distribution_backend`)."""
    check_distribution_backend()
    place: tuple[int, int] = backend_steps("jax").process_place()
    return place


def batch_size(x: Any) -> Any:
    """The number of rows of batch `x` (its first non-None array's)."""
    first = next(v for v in keras.tree.flatten(x) if v is not None)
    return keras.ops.shape(first)[0]
