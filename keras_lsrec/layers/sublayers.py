"""The one way a layer of this package creates a Dense sub-layer (internal)."""

from __future__ import annotations

import keras

from keras_lsrec.layers.initializers import clone_initializer


def owned_dense(
    owner: keras.layers.Layer, units: int, name: str, input_dim: int | None = None
) -> keras.layers.Dense:
    """A `Dense` sub-layer of `owner`: its own draw of the owner's
    `kernel_initializer` (`clone_initializer`), the owner's
    `kernel_regularizer` (kernels only, not biases) and dtype policy.

    With `input_dim` it is built at once, so its weights exist before a
    `.keras` file is loaded into the owner; without, the owner builds it.
    """
    layer = keras.layers.Dense(
        units,
        kernel_initializer=clone_initializer(owner.kernel_initializer),
        kernel_regularizer=owner.kernel_regularizer,
        dtype=owner.dtype_policy,
        name=name,
    )
    if input_dim is not None:
        layer.build((None, input_dim))
    return layer
