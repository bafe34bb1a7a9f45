"""The prediction tower."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.dice import Dice
from keras_lsrec.layers.sublayers import owned_dense
from keras_lsrec.validation import check_positive, check_range, check_units


@keras_lsrec_export
class MLP(keras.layers.Layer):
    """A stack of Dense layers: `[BN] -> (Dense -> [BN] -> act -> [dropout])* -> [Dense]`.

    Each hidden layer computes `act(BN(x W + b))`; `activation` is any Keras
    activation name or callable, or `"prelu"` (a learned slope per unit) or
    `"dice"` (DIN's `Dice`). `input_batch_norm` normalises the input first (the
    DARE tower: BatchNorm -> 200 -> PReLU -> 80 -> PReLU -> 1).
    `output_units` adds a final linear layer (with `output_activation`).

    Args:
        hidden_units: sizes of the hidden layers.
        activation: activation of the hidden layers.
        input_batch_norm: batch-normalise the input.
        batch_norm: batch-normalise each hidden layer before its activation.
        dropout: dropout rate after each hidden activation.
        output_units: size of a final linear layer, or `None` for none.
        output_activation: activation of that final layer.
        kernel_initializer: initializer of the kernels.
        kernel_regularizer: regularizer of the kernels (not of the biases).

    Call arguments:
        inputs: `(..., D)`.
        training: whether batch norm and dropout run in training mode.
        mask: optional boolean `inputs.shape[:-1]` marking the valid rows
            (e.g. the present candidates of a set): batch statistics are
            computed over them only, so padding never shifts the moving
            mean and variance. The output is computed for every row.

    Example:

    >>> tower = MLP(hidden_units=(8, 4), activation="prelu", output_units=1)
    >>> tower(np.ones((2, 6), "float32")).shape
    (2, 1)
    """

    def __init__(
        self,
        hidden_units: Sequence[int] = (200, 80),
        activation: Any = "prelu",
        input_batch_norm: bool = False,
        batch_norm: bool = False,
        dropout: float = 0.0,
        output_units: int | None = None,
        output_activation: Any = None,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        hidden_units = check_units("hidden_units", hidden_units)
        check_range("dropout", dropout, 0.0, 1.0, high_inclusive=False)
        check_positive(allow_none=True, output_units=output_units)
        self.hidden_units = hidden_units
        self.activation = activation
        self.input_batch_norm = input_batch_norm
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.output_units = output_units
        self.output_activation = keras.activations.get(output_activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        self.stack: list[keras.layers.Layer] = []
        if input_batch_norm:
            self.stack.append(keras.layers.BatchNormalization(dtype=self.dtype_policy, name="input_norm"))
        for i, units in enumerate(hidden_units):
            self.stack.append(owned_dense(self, units, f"dense_{i}"))
            if batch_norm:
                self.stack.append(keras.layers.BatchNormalization(dtype=self.dtype_policy, name=f"norm_{i}"))
            self.stack.append(self._make_activation(f"activation_{i}"))
            if dropout:
                self.stack.append(keras.layers.Dropout(dropout, dtype=self.dtype_policy, name=f"dropout_{i}"))
        if output_units is not None:
            self.stack.append(owned_dense(self, output_units, "output"))
            self.stack.append(
                keras.layers.Activation(
                    self.output_activation, dtype=self.dtype_policy, name="output_activation"
                )
            )

    def _make_activation(self, name: str) -> keras.layers.Layer:
        if self.activation == "prelu":
            return keras.layers.PReLU(dtype=self.dtype_policy, name=name)
        if self.activation == "dice":
            return Dice(dtype=self.dtype_policy, name=name)
        return keras.layers.Activation(self.activation, dtype=self.dtype_policy, name=name)

    def build(self, input_shape) -> None:
        shape = tuple(input_shape)
        for layer in self.stack:
            if isinstance(layer, keras.layers.PReLU):
                # One slope per feature, `(F,)`, whatever the rank: shared by
                # every position (every candidate of a set), so a tower built
                # on rows and one built on candidate sets hold the same weights.
                layer.build(shape[:1] + shape[-1:])
                layer.input_spec = None  # (the slopes broadcast over any leading axes)
            else:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.built = True

    def call(self, inputs, training=None, mask=None):
        x = inputs
        for layer in self.stack:
            if isinstance(layer, (keras.layers.BatchNormalization, Dice)):
                x = layer(x, training=training, mask=mask)
            else:
                x = layer(x, training=training)
        return x

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        last = self.output_units or (self.hidden_units[-1] if self.hidden_units else input_shape[-1])
        return tuple(input_shape[:-1]) + (last,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        activation = self.activation
        if activation not in ("prelu", "dice"):
            activation = keras.activations.serialize(keras.activations.get(activation))
        config.update(
            {
                "hidden_units": list(self.hidden_units),
                "activation": activation,
                "input_batch_norm": self.input_batch_norm,
                "batch_norm": self.batch_norm,
                "dropout": self.dropout,
                "output_units": self.output_units,
                "output_activation": keras.activations.serialize(self.output_activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
