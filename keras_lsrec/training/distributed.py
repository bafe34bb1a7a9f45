"""Entry-point checks under a `keras.distribution` (jax): placement and batch sizes.

Two mistakes that jax otherwise reports from inside the first step, in its
own words:

- a model built before `keras.distribution.set_distribution`: its
  variables live on one device while the step runs over the mesh ("Received
  incompatible devices for jitted computation"; `predict` fails with a
  `TypeError`). `check_placement` refuses it, naming a variable and its devices.
- a batch whose rows the batch axis does not divide: Keras splits every
  batch over the places of the mesh's batch axis (`Distribution.get_data_layout`)
  and jax refuses an uneven split (`IndivisibleError`), often only at the
  short last batch of an epoch. `check_batches` refuses it at the call,
  for arrays and keras_lsrec datasets (whose batch sizes are known), naming
  `batch_size`, the rows and the last batch; `check_batch_rows` checks one
  batch of any other stream as it is drawn.

Without a distribution every check is a no-op that costs one lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from keras_lsrec.training import steps


def _distribution() -> Any:
    distribution = keras.distribution.distribution()
    if distribution is not None:
        steps.check_distribution_backend()
    return distribution


def _split(distribution: Any, divisor: int) -> str:
    return (
        f"Under {type(distribution).__name__}, every batch is split over the {divisor} places of the "
        f"mesh axis {distribution.batch_dim_name!r} that this process feeds, so its rows must be a "
        f"multiple of {divisor}"
    )


def check_placement(model: keras.Model) -> int:
    """Refuses a model whose weights are not on the current distribution's mesh
    (built before `set_distribution`, or under another mesh); returns how many
    parts each batch of this process is split into (1 without a distribution)."""
    distribution = _distribution()
    if distribution is None:
        return 1
    jax_steps = steps.backend_steps("jax")
    for variable in model.weights:
        elsewhere = jax_steps.placed_elsewhere(variable, distribution)
        if elsewhere is not None:
            raise ValueError(
                f"The model's variables are not on the mesh of the current keras.distribution "
                f"({type(distribution).__name__} over {distribution.device_mesh.devices.size} devices): "
                f"`{variable.path}` lives on {elsewhere}. The model was built "
                "before `keras.distribution.set_distribution(...)` (or under another one); variables are "
                "placed when they are created. Build the model after setting the distribution, or load "
                "it there (`keras.saving.load_model(path)` places the weights of a `.keras` file)."
            )
    divisor: int = jax_steps.local_batch_divisor(distribution)
    return divisor


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _fewer_or_more(rows: int, divisor: int) -> str:
    more = f"add {_rows(divisor - rows % divisor)}"
    if rows < divisor:
        return f"{more.capitalize()}."
    return f"Keep the first {rows - rows % divisor} rows or {more}."


def check_batch_rows(rows: int, divisor: int, where: str) -> None:
    """One batch of `rows` rows (`where` says which) under a split in `divisor` parts."""
    if divisor > 1 and rows % divisor:
        distribution = keras.distribution.distribution()
        name = type(distribution).__name__ if distribution is not None else "a keras.distribution"
        raise ValueError(
            f"{where} has {rows} rows, which the {divisor} places of the batch axis do not divide: under "
            f"{name} every batch is split evenly over them. Give every batch a multiple of {divisor} rows."
        )


def check_batches(x: Any, batch_size: Any, divisor: int, source: str = "`x`") -> None:
    """Every batch that `x` (a dict of arrays cut into `batch_size` rows, or a
    keras_lsrec dataset, which carries its own batch size) will give holds a
    multiple of `divisor` rows; other inputs are checked batch by batch
    (`check_batch_rows`)."""
    if divisor <= 1:
        return
    from keras_lsrec.data.dataset import ShuffledBatches

    if isinstance(x, ShuffledBatches):
        rows, batch_size, source = x.num_examples, x.batch_size, f"this {type(x).__name__}"
        setting = f"its `batch_size={batch_size}`"
    elif isinstance(x, Mapping) and "target_item" in x:
        rows = len(x["target_item"])
        batch_size = 32 if batch_size is None else batch_size  # Keras' default for arrays
        setting = f"`batch_size={batch_size}`"
    else:
        return
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        return  # Keras refuses it in its own words
    rows, batch_size = int(rows), int(batch_size)
    if rows == 0:
        return
    distribution = keras.distribution.distribution()
    if rows <= batch_size:
        if rows % divisor:
            raise ValueError(
                f"{_split(distribution, divisor)}. Received: {source} with {rows} rows, one batch "
                f"({setting}). {_fewer_or_more(rows, divisor)}"
            )
        return
    if batch_size % divisor:
        raise ValueError(f"{_split(distribution, divisor)}. Received: {setting} for {source} ({rows} rows).")
    last = rows % batch_size
    if last % divisor:
        raise ValueError(
            f"{_split(distribution, divisor)}. Received: {source} with {rows} rows in batches of "
            f"{setting}: the last batch has {last} rows. Keep the first {rows - last % divisor} rows, "
            f"add {_rows(divisor - last % divisor)}, or choose a `batch_size` (a multiple of {divisor}) "
            f"that leaves a multiple of {divisor}."
        )
