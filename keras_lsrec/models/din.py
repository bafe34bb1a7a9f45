"""DIN: target attention over the whole (or the last N events of the) sequence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import SequenceSchema
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
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class DIN(SequenceModel):
    """Deep Interest Network over the full behaviour sequence.

    One embedding table per field (item, category, ..., and time when the
    schema has it); the target's embedding queries every behaviour with DIN's
    activation unit (an MLP over `[q, k, q-k, q*k]`), the weighted sum of the
    behaviours is the user interest, and the tower scores
    `[target, interest]` (plus `target * interest` with
    `target_representation=True`). Cost O(L) per row with the MLP applied to
    every event, which is what makes it slow at long L and the reference every
    claim is measured against at the SAME L.

    `history_window=N` keeps only the last N events: the short-window
    baseline (DIN@50) that long-sequence models must beat.

    Args:
        schema: the `SequenceSchema` of the data.
        embedding_dim: size of each field's embedding.
        history_window: use only the last N events, or `None` for all.
        attention_units: hidden sizes of the activation unit.
        attention_activation: their activation.
        scorer: `"mlp"` (DIN's activation unit, default) or `"dot"`
            (scaled dot product `<q, k_i> / sqrt(d)`: full-sequence softmax
            attention, the quadratic form that IFA's linear attention
            approximates, and TWIN's second stage without the search).
        normalizer: `"softmax"`, `"sigmoid"` or `"none"` (the paper's raw
            activation-unit outputs, FuxiCTR's `din_use_softmax=False`)
            attention weights.
        mlp_units: hidden sizes of the tower.
        mlp_activation: `"prelu"`, `"dice"` or any Keras activation.
        input_batch_norm: batch-normalise the tower input (off by default:
            measured, docs/benchmarks.md "Tower"; the DARE code's towers
            have it, `examples/reproduce_dare.py` turns it on).
        dropout: dropout in the tower.
        l2: L2 penalty on every non-embedding kernel.
        target_representation: add `target * interest` to the tower input.
        tower: `"mlp"` (default), `"dcnv2"` (DCNv2's cross network beside
            the MLP) or `"finalmlp"` (FinalMLP's two gated MLP streams with
            bilinear fusion); see `keras_lsrec.models.wiring.make_tower`.

    Example:

    >>> schema = keras_lsrec.data.SequenceSchema({"item": 100, "category": 10}, 50)
    >>> model = DIN(schema, embedding_dim=8)
    >>> model.compile(optimizer="adam", loss="binary_crossentropy")

    Reference:
        Zhou et al., "Deep Interest Network for Click-Through Rate
        Prediction", KDD 2018.
    """

    # One target per row, or a candidate set per row (the request form: `request_form`).
    INPUT_FORMS = (ROW, CANDIDATES)

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "embedding_dim": ("choice", [8, 16, 32]),
        "attention_units": ("choice", [(80, 40), (64,), (32, 16)]),
        "normalizer": ("choice", ["softmax", "sigmoid", "none"]),
        "mlp_activation": ("choice", ["prelu", "dice"]),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        embedding_dim: int = 16,
        history_window: int | None = None,
        attention_units: Sequence[int] = (80, 40),
        attention_activation: str = "sigmoid",
        normalizer: str = "softmax",
        scorer: str = "mlp",
        mlp_units: Sequence[int] = (200, 80),
        mlp_activation: str = "prelu",
        input_batch_norm: bool = False,
        dropout: float = 0.0,
        l2: float = 0.0,
        target_representation: bool = True,
        tower: str = "mlp",
        **kwargs: Any,
    ) -> None:
        check_positive(embedding_dim=embedding_dim)
        if history_window is not None:
            check_positive(history_window=history_window)
        inputs = schema.inputs()
        target_ids, history_ids, mask = split_inputs(inputs, schema, history_window)
        embedding = item_embedding(schema, embedding_dim)
        target = embedding(target_ids)
        history = embedding(history_ids)
        interest = TargetAttention(
            scorer=scorer,
            normalizer=normalizer,
            hidden_units=attention_units,
            activation=attention_activation,
            kernel_regularizer=kernel_regularizer(l2),
            name="attention",
        )(target, history, mask=mask)
        tower_args = (mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower)
        outputs = predict_clicks(
            make_tower(*tower_args), tower_input(target, interest, target_representation), inputs, schema
        )
        super().__init__(schema=schema, inputs=inputs, outputs=outputs, **kwargs)
