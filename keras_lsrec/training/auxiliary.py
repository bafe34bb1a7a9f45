"""Auxiliary click heads: a second prediction trained by its own loss term."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


class AuxiliaryHead:
    """A click head beside a model's main output, trained by
    `weight * BCE(y, p_aux)` added to the compiled loss.

    The head is a second output of the model's graph (it shares the model's
    layers, e.g. DARE's embeddings and attention keys, so nothing is computed
    twice). In training the model returns `(prediction, p_aux)` and its
    `compute_loss` / `compute_metrics` take the pair apart: the auxiliary
    prediction travels with the main one through Keras' own train step, and
    nothing is kept between `call` and `compute_loss`. Prediction, evaluation
    and export see the main output only. The object sits outside Keras'
    tracking; the model tracks the head's own layers.
    """

    def __init__(self, inputs: Any, prediction: Any, probability: Any, weight: float) -> None:
        self.graph = keras.Model(inputs=inputs, outputs=[prediction, probability])
        self.weight = float(weight)

    def own_layers(self, model_layers: list[keras.layers.Layer]) -> list[keras.layers.Layer]:
        """The head's layers that are not among `model_layers` (its tower...)."""
        shared = {id(layer) for layer in model_layers}
        return [layer for layer in self.graph.layers if id(layer) not in shared]

    def __call__(self, x: Any) -> tuple[Any, Any]:
        """`(prediction, p_aux)` in training mode."""
        prediction, probability = self.graph(x, training=True)
        return prediction, probability

    def loss(self, y: Any, probability: Any, dtype: Any) -> Any:
        """`weight * mean BCE(y, p_aux)` for one training batch, in `dtype`,
        over the labelled examples (a candidate set's missing candidates,
        label -1, are left out)."""
        y_true = ops.reshape(ops.cast(y, "float32"), (-1, 1))
        present = ops.cast(ops.greater_equal(y_true[:, 0], 0.0), "float32")
        bce = keras.losses.binary_crossentropy(ops.maximum(y_true, 0.0), ops.reshape(probability, (-1, 1)))
        mean = ops.sum(bce * present) / ops.maximum(ops.sum(present), 1.0)
        return ops.cast(self.weight, dtype) * ops.cast(mean, dtype)
