"""The one decorator that makes a class part of the public, serializable API."""

from typing import TypeVar

import keras

T = TypeVar("T")

PACKAGE = "keras_lsrec"


def keras_lsrec_export(cls: T) -> T:
    """Register `cls` for Keras serialization under the `keras_lsrec` package.

    Every public layer and model goes through this, so `.keras` files load
    with plain `keras.saving.load_model(path)` and no `custom_objects`.
    """
    return keras.saving.register_keras_serializable(package=PACKAGE)(cls)
