"""Auxiliary click heads: a second prediction trained by its own loss term."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


class AuxiliaryHead:
    """A click head beside a model's main output, trained by
    `weight * BCE(y, head(x))` added to the compiled loss.

    The head is a functional sub-graph of the model (it shares the model's
    layers, e.g. DARE's embeddings); `loss(x, y)` evaluates it from the
    batch itself, so nothing is carried from `call` to `compute_loss`.
    Prediction, evaluation and export never run it. The object sits outside
    Keras' tracking; the model tracks the head's own layers.
    """

    def __init__(self, inputs: Any, probability: Any, weight: float) -> None:
        self.graph = keras.Model(inputs=inputs, outputs=probability)
        self.weight = float(weight)

    def own_layers(self, model_layers: list[keras.layers.Layer]) -> list[keras.layers.Layer]:
        """The head's layers that are not among `model_layers` (its tower...)."""
        shared = {id(layer) for layer in model_layers}
        return [layer for layer in self.graph.layers if id(layer) not in shared]

    def loss(self, x: Any, y: Any, dtype: Any) -> Any:
        """`weight * mean BCE(y, p_aux)` for one training batch, in `dtype`."""
        probability = self.graph(x, training=True)
        y_true = ops.reshape(ops.cast(y, "float32"), (-1, 1))
        bce = keras.losses.binary_crossentropy(y_true, ops.reshape(probability, (-1, 1)))
        return ops.cast(self.weight, dtype) * ops.cast(ops.mean(bce), dtype)
