"""Every private Keras member keras_lsrec uses, in one place, with the reason.

Nothing else in the package reads an underscore member of a Keras object.
Each function here names the member it reads and why no public one does the
job; `tests/training/test_keras_private.py` checks each against the
installed Keras, and CI runs the contract of two models on the next Keras
(`keras-nightly`), so a release that renames one fails there first.
Tested with the Keras versions pyproject.toml declares (>= 3.15).

The one run-time change to a Keras object that remains is not here but in
`keras_lsrec.training.tables.save_slots_unpadded`: under a mesh that pads a
table's rows (`keras_lsrec.layers.mesh_padding`), the optimizer's
`save_own_variables` / `load_own_variables` see its table slots without the
padding rows. Keras has no hook for an optimizer's checkpoint entries, and
the optimizer is the user's instance; it applies only to such a mesh.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import keras


def loss_tracker(model: keras.Model) -> keras.metrics.Metric:
    """The `Mean` metric behind the `loss` entry of `fit`'s logs.

    `model._loss_tracker`: a train step must update it with the batch's
    loss for `compute_metrics` to report it; Keras creates it in `compile`
    and exposes it only inside `model.metrics` (unnamed as such)."""
    return model._loss_tracker


def all_layers(model: keras.Model) -> Iterator[keras.layers.Layer]:
    """Every layer inside `model`, nested ones included (`model.layers` lists
    the top level only).

    `model._flatten_layers(include_self=False)`: Keras walks a layer's
    sub-layers (in dicts and lists of attributes too) with it; there is no
    public recursive walk."""
    return iter(model._flatten_layers(include_self=False))


def optimizer_variables_built_for(optimizer: keras.optimizers.Optimizer) -> list[Any]:
    """The model variables a built optimizer was built for.

    `optimizer._trainable_variables`: row-sparse training builds the
    optimizer on the dense variables only, and must refuse an optimizer
    already built for others (another model's). The public
    `optimizer.variables` holds its slots, not what they are slots of."""
    return list(optimizer._trainable_variables)
