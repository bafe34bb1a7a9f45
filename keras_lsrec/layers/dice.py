"""Dice, DIN's data-adaptive activation."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export


@keras_lsrec_export
class Dice(keras.layers.Layer):
    """Dice activation: `p(x) * x + (1 - p(x)) * alpha * x`.

    `p(x) = sigmoid((x - E[x]) / sqrt(Var[x] + epsilon))`, with batch
    statistics in training and moving averages in inference (a
    `BatchNormalization` without scale and offset), and `alpha` a learned
    per-unit slope initialised to 0. It generalises PReLU, whose switch point
    is fixed at 0, to a switch point that follows the data. An optional
    boolean `mask` (the input's shape without the last axis) restricts the
    batch statistics to the valid rows.

    Args:
        epsilon: added to the variance.
        momentum: momentum of the moving statistics.

    Reference:
        Zhou et al., "Deep Interest Network for Click-Through Rate
        Prediction", KDD 2018.
    """

    def __init__(self, epsilon: float = 1e-8, momentum: float = 0.99, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.momentum = momentum
        self.norm = keras.layers.BatchNormalization(
            center=False,
            scale=False,
            epsilon=epsilon,
            momentum=momentum,
            dtype=self.dtype_policy,
            name="norm",
        )

    def build(self, input_shape) -> None:
        self.norm.build(input_shape)
        self.alpha = self.add_weight(name="alpha", shape=(input_shape[-1],), initializer="zeros")
        self.built = True

    def call(self, inputs, training=None, mask=None):
        p = ops.sigmoid(self.norm(inputs, training=training, mask=mask))
        alpha = ops.cast(self.alpha, inputs.dtype)
        return p * inputs + (1.0 - p) * alpha * inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"epsilon": self.epsilon, "momentum": self.momentum})
        return config
