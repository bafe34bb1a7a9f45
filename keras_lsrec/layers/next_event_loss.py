"""DIEN's auxiliary loss: each interest state predicts the next behaviour."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.masking import batch_gather
from keras_lsrec.validation import check_range


@keras_lsrec_export
class NextEventLoss(keras.layers.Layer):
    """Adds DIEN's next-behaviour loss in training; passes the states through.

    For the interest states `h_t` of a sequence (the outputs of a GRU over
    its events `e_t`), the loss asks every state to score the event that
    follows it above a negative event:

        loss = -(1 / N) sum_t [log sigmoid(<h_t, e_{t+1}>)
                               + log(1 - sigmoid(<h_t, e'_{t+1}>))]

    over the N pairs of consecutive valid events `(t, t+1)` of the batch.
    The negative `e'_{t+1}` comes from the batch: the event of another row
    (the previous row of the batch, cyclically) that is as recent as
    `e_{t+1}` (the same rank counted from the newest event), so that it does
    not depend on the side of the padding; a pair whose other row has no
    event that old has no negative term. (In a batch of one row the negative
    is the positive itself and the loss has no gradient.) In training
    (`training=True`) the layer adds `weight * loss` to the model's losses
    with `add_loss`; in inference it adds nothing. Either way it returns
    `states` unchanged, so that it sits on the path of the model's output.

    Masking: the valid events of a row must be contiguous (left or right
    padding, the batch format); padded events make no pair and are never
    negatives. An all-padding batch gives a loss of 0.

    Args:
        weight: the loss weight (`alpha` in the paper); 0 adds nothing.

    Call arguments:
        states: the interest states `(B, L, D)`.
        events: the events' embeddings `(B, L, D)`.
        mask: boolean `(B, L)`, or `None` when every event is valid.
        training: add the loss only when true.

    Example:

    >>> states = np.ones((2, 5, 4), "float32")
    >>> NextEventLoss(1.0)(states, states, training=False).shape
    (2, 5, 4)

    In a functional model:

    >>> events = keras.Input((None, 4))
    >>> states = AUGRU(4, return_sequences=True)(events)
    >>> states = NextEventLoss(1.0)(states, events)

    Reference:
        Zhou et al., "Deep Interest Evolution Network for Click-Through Rate
        Prediction", AAAI 2019 (section 4.2, the auxiliary loss).
    """

    def __init__(self, weight: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_range("weight", weight, 0.0, math.inf, high_inclusive=False)
        self.weight = float(weight)
        self.supports_masking = True

    def call(self, states, events, mask=None, training=None):
        if training and self.weight:
            self.add_loss(ops.cast(self.weight, "float32") * self.loss(states, events, mask))
        return ops.cast(states, self.compute_dtype)

    def loss(self, states, events, mask=None):
        """The unweighted loss, a float32 scalar (computed in float32)."""
        states = ops.cast(states, "float32")
        events = ops.cast(events, "float32")
        if mask is None:
            mask = ops.ones(ops.shape(events)[:2], "bool")
        mask = ops.cast(mask, "bool")
        length = ops.shape(events)[1]
        rank = ops.cumsum(ops.cast(mask, "int32"), axis=1)  # 1 = the oldest valid event
        count = ops.sum(ops.cast(mask, "int32"), axis=1, keepdims=True)
        age = count - rank  # 0 = the newest valid event
        positions = ops.arange(length, dtype="int32")
        # A column of -1 in front: no empty reduction when L = 0 (torch refuses one).
        newest = ops.max(
            ops.pad(ops.where(mask, positions[None, :], -1), ((0, 0), (1, 0)), constant_values=-1),
            axis=1,
            keepdims=True,
        )
        # The other row's event of the same age, and whether it has one.
        other_newest, other_count = ops.roll(newest, 1, axis=0), ops.roll(count, 1, axis=0)
        index = ops.clip(other_newest - age, 0, ops.maximum(length - 1, 0))
        negatives = batch_gather(ops.roll(events, 1, axis=0), index)
        has_negative = ops.logical_and(mask, age < other_count)

        current = states[:, :-1]
        pair = ops.logical_and(mask[:, :-1], mask[:, 1:])
        positive = ops.sum(current * events[:, 1:], axis=-1)
        negative = ops.sum(current * negatives[:, 1:], axis=-1)
        with_negative = ops.cast(ops.logical_and(pair, has_negative[:, 1:]), "float32")
        total = ops.sum(ops.softplus(-positive) * ops.cast(pair, "float32")) + ops.sum(
            ops.softplus(negative) * with_negative
        )
        return total / ops.maximum(ops.sum(ops.cast(pair, "float32")), 1.0)

    def compute_output_shape(self, states_shape, events_shape=None):
        return tuple(states_shape)

    def compute_output_spec(self, states, events, mask=None, training=None):
        return keras.KerasTensor(states.shape, dtype=self.compute_dtype)

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"weight": self.weight})
        return config
