"""DIEN: a GRU interest extractor, then target-driven interest evolution (AUGRU)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.layers.augru import AUGRU
from keras_lsrec.layers.masking import NORMALIZERS
from keras_lsrec.layers.next_event_loss import NextEventLoss
from keras_lsrec.layers.target_attention import TargetAttention
from keras_lsrec.models.base import CANDIDATES, ROW, SequenceModel
from keras_lsrec.models.wiring import (
    item_embedding,
    kernel_regularizer,
    make_tower,
    predict_clicks,
    split_inputs,
    tower_input,
)
from keras_lsrec.validation import check_choice, check_positive, check_range


@keras_lsrec_export
class DIEN(SequenceModel):
    """Deep Interest Evolution Network.

    The events' embeddings `e_t` (one table per field, as `DIN`) run through
    a GRU, the interest extractor, whose state `h_t` after each event is the
    user's interest at that time. In training an auxiliary loss makes each
    `h_t` score the next event `e_{t+1}` above a negative drawn from the
    batch (`NextEventLoss`, weighted by `auxiliary_loss_weight`; the paper's
    alpha). The target then scores every interest state with DIN's
    activation unit (`TargetAttention`, weights normalised over the valid
    events), and a second GRU whose update gate each score scales (`AUGRU`),
    the interest evolution, runs over the states: events unrelated to the
    target barely move it. Its final state is the interest the tower scores
    with the target, `[target, interest]` (plus `target * interest` with
    `target_representation=True`).

    Cost: two recurrences of L sequential steps per row (the evolution one
    per candidate of a request), against DIN's one parallel pass: see
    docs/models.md for when that is worth paying. Padding on either side
    gives the same prediction; an all-padding or empty history ends in the
    zero interest.

    Args:
        schema: the `SequenceSchema` of the data.
        embedding_dim: size of each field's embedding (the GRU states are as
            wide as an event's embedding: the fields and item features together).
        attention_units: hidden sizes of the activation unit.
        attention_activation: their activation.
        normalizer: `"softmax"` (the paper) or `"sigmoid"` attention scores.
        auxiliary_loss_weight: weight of the next-behaviour loss; 0 disables it.
        mlp_units: hidden sizes of the tower.
        mlp_activation: `"prelu"`, `"dice"` or any Keras activation.
        input_batch_norm: batch-normalise the tower input.
        dropout: dropout in the tower.
        l2: L2 penalty on every non-embedding kernel.
        tower: `"mlp"`, `"dcnv2"` or `"finalmlp"` (see `DIN`).
        target_representation: add `target * interest` to the tower input.

    Example:

    >>> schema = keras_lsrec.data.SequenceSchema({"item": 100, "category": 10}, 50)
    >>> model = DIEN(schema, embedding_dim=8)
    >>> model.compile(optimizer="adam", loss="binary_crossentropy")

    Reference:
        Zhou et al., "Deep Interest Evolution Network for Click-Through Rate
        Prediction", AAAI 2019.
    """

    INPUT_FORMS = (ROW, CANDIDATES)

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "embedding_dim": ("choice", [8, 16, 32]),
        "attention_units": ("choice", [(80, 40), (64,), (32, 16)]),
        "normalizer": ("choice", ["softmax", "sigmoid"]),
        "auxiliary_loss_weight": ("choice", [0.0, 0.5, 1.0]),
        "mlp_activation": ("choice", ["prelu", "dice"]),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        embedding_dim: int = 16,
        attention_units: Sequence[int] = (80, 40),
        attention_activation: str = "sigmoid",
        normalizer: str = "softmax",
        auxiliary_loss_weight: float = 1.0,
        mlp_units: Sequence[int] = (200, 80),
        mlp_activation: str = "prelu",
        input_batch_norm: bool = False,
        dropout: float = 0.0,
        l2: float = 0.0,
        tower: str = "mlp",
        target_representation: bool = True,
        **kwargs: Any,
    ) -> None:
        check_positive(embedding_dim=embedding_dim)
        # Raw weights ("none") would scale AUGRU's update gate without bound, compounding over L steps.
        check_choice("normalizer", normalizer, NORMALIZERS[:2])
        check_range("auxiliary_loss_weight", auxiliary_loss_weight, 0.0, math.inf, high_inclusive=False)
        inputs = schema.inputs()
        target_ids, history_ids, mask = split_inputs(inputs, schema)
        embedding = item_embedding(schema, embedding_dim)
        target = embedding(target_ids)
        history = embedding(history_ids)
        width = history.shape[-1]
        regularizer = kernel_regularizer(l2)
        states = AUGRU(
            width, return_sequences=True, kernel_regularizer=regularizer, name="interest_extractor"
        )(history, mask=mask)
        if auxiliary_loss_weight:
            states = NextEventLoss(auxiliary_loss_weight, name="auxiliary_loss")(states, history, mask=mask)
        _, scores = TargetAttention(
            scorer="mlp",
            normalizer=normalizer,
            hidden_units=attention_units,
            activation=attention_activation,
            kernel_regularizer=regularizer,
            name="attention",
        )(target, states, mask=mask, return_weights=True)
        interest = AUGRU(width, kernel_regularizer=regularizer, name="interest_evolution")(
            states, attention=scores, mask=mask
        )
        tower_args = (mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower)
        outputs = predict_clicks(
            make_tower(*tower_args), tower_input(target, interest, target_representation), inputs, schema
        )
        super().__init__(schema=schema, inputs=inputs, outputs=outputs, **kwargs)
