"""One initializer per weight."""

from __future__ import annotations

from typing import Any

import keras


def clone_initializer(initializer: Any) -> Any:
    """A fresh copy of `initializer`, for ONE weight.

    A Keras 3 initializer draws from a seed fixed when it is created, so one
    instance called for several weights gives them the same numbers (with one
    shared instance, every embedding table of a `FieldEmbedding` began with
    the same rows, and the Dense kernels of an `MLP` with the same draws). A
    copy rebuilt from the config of an unseeded initializer takes a new seed;
    a seeded one keeps its seed (its weights then start alike, as asked).
    Strings and callables that are not `Initializer`s are returned as given.
    """
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    return initializer.__class__.from_config(initializer.get_config())
