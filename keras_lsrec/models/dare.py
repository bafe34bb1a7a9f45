"""DARE: decoupled attention and representation embeddings, top-k, TR."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.layers.decoupled_embedding import DecoupledEmbedding
from keras_lsrec.layers.target_attention import TargetAttention
from keras_lsrec.layers.top_k_retrieval import TopKRetrieval
from keras_lsrec.models.base import CANDIDATES, ROW, SequenceModel
from keras_lsrec.models.wiring import (
    dot_scores,
    field_vocab_sizes,
    make_tower,
    predict_clicks,
    search_inputs,
    split_inputs,
    tower_input,
)
from keras_lsrec.validation import check_choice, check_positive, check_range

SCORE_SCALINGS = ("per_field", "joint")


def query_scale(schema: SequenceSchema, attention_dim: int, score_scaling: str) -> np.ndarray:
    """Per-coordinate scale of the attention query.

    `"joint"`: every coordinate by `1/sqrt(D)`, D the whole attention size.
    `"per_field"` (the released code): the id fields together by
    `1/sqrt(F_id * d)` and the time embedding by `1/sqrt(d)`, so the
    logit is `<q_id, k_id>/sqrt(F_id d) + <q_t, k_t>/sqrt(d)`. Item
    features are part of the item's content: they count with the id fields
    (the blocks come as ids, time, item features).
    """
    id_dim = len(schema.fields) * attention_dim
    feature_dim = len(schema.item_features) * attention_dim
    if score_scaling == "joint" or not schema.has_time:
        total = id_dim + feature_dim + (attention_dim if schema.has_time else 0)
        return np.full((total,), 1.0 / math.sqrt(total), "float32")
    content = 1.0 / math.sqrt(id_dim + feature_dim)
    return np.concatenate(
        [
            np.full((id_dim,), content, "float32"),
            np.full((attention_dim,), 1.0 / math.sqrt(attention_dim), "float32"),
            np.full((feature_dim,), content, "float32"),
        ]
    )


@keras_lsrec_export
class DARE(SequenceModel):
    """Two-stage model with decoupled attention and representation tables.

    `DecoupledEmbedding` gives every field an attention table `E_att` and a
    representation table `E_rep`. Search: `s_i = <q, e_i_att>` with the scaled
    target query `q` (`score_scaling`), keep the top `k` valid events.
    Attention: `w = softmax(s)` over the `k`; `h = sum_i w_i e_i_rep`. The tower
    scores `[v_t_rep, h, v_t_rep * h]` (target representation). Gradients from
    the logits reach only `E_att`, from the representation only `E_rep`.

    With `auxiliary_loss_weight > 0` (default 1, as in the released code) an
    auxiliary head pools `E_rep` with a softmax of the same logits over ALL
    valid events, has its own tower, and adds
    `auxiliary_loss_weight * BCE(y, p_aux)` to the training loss, which gives
    the attention table a dense gradient. It costs one extra O(L) attention in
    training and nothing at inference (predict and export ignore it); in
    training mode `model(x, training=True)` returns `(p, p_aux)`.

    Args:
        schema: the `SequenceSchema` of the data.
        attention_dim: per-field size of the attention table (may be smaller
            than `representation_dim`: the search costs O(L * attention_dim)).
        representation_dim: per-field size of the representation table.
        k: behaviours kept by the search (20 in the released scripts).
        score_scaling: `"per_field"` or `"joint"` (see `query_scale`).
        auxiliary_loss_weight: weight of the auxiliary loss; 0 disables it.
        search_position: whether the search scores read the whole attention
            embeddings (the `time` block included) or the item's content only
            (see `TWIN`); the attention reads the whole embeddings either way.
        mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower: the tower
            (see `DIN`); the auxiliary tower has the same shape.

    Example:

    >>> schema = keras_lsrec.data.SequenceSchema({"item": 100, "category": 10}, 50)
    >>> model = DARE(schema, attention_dim=8, representation_dim=16, k=10)
    >>> model.compile(optimizer="adam", loss="binary_crossentropy")

    Reference:
        Feng et al., "Long-Sequence Recommendation Models Need Decoupled
        Embeddings", ICLR 2025 (arXiv 2410.02604).
    """

    # One target per row, or a candidate set per row (the request form: `request_form`).
    INPUT_FORMS = (ROW, CANDIDATES)

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "attention_dim": ("choice", [8, 16, 32, 64]),
        "representation_dim": ("choice", [8, 16, 32, 64]),
        "k": ("choice", [10, 20, 50]),
        "auxiliary_loss_weight": ("choice", [0.0, 0.5, 1.0]),
        "score_scaling": ("choice", ["per_field", "joint"]),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        attention_dim: int = 16,
        representation_dim: int = 16,
        k: int = 20,
        score_scaling: str = "per_field",
        auxiliary_loss_weight: float = 1.0,
        search_position: bool = True,
        mlp_units: Sequence[int] = (200, 80),
        mlp_activation: str = "prelu",
        input_batch_norm: bool = False,
        dropout: float = 0.0,
        l2: float = 0.0,
        tower: str = "mlp",
        **kwargs: Any,
    ) -> None:
        check_positive(attention_dim=attention_dim, representation_dim=representation_dim, k=k)
        check_choice("score_scaling", score_scaling, SCORE_SCALINGS)
        check_range("auxiliary_loss_weight", auxiliary_loss_weight, 0.0, math.inf, high_inclusive=False)
        inputs = schema.inputs()
        target_ids, history_ids, mask = split_inputs(inputs, schema)
        embedding = DecoupledEmbedding(
            field_vocab_sizes(schema),
            attention_dim,
            representation_dim,
            item_features=schema.item_features or None,
            name="embedding",
        )
        target_att, target_rep = embedding(target_ids)
        history_att, history_rep = embedding(history_ids)
        scale = query_scale(schema, attention_dim, score_scaling)
        query = ops.multiply(target_att, ops.convert_to_tensor(scale, target_att.dtype))
        (retrieved_att, retrieved_rep), retrieved_mask = TopKRetrieval(k, name="search")(
            dot_scores(*search_inputs(query, history_att, schema, attention_dim, search_position)),
            (history_att, history_rep),
            mask=mask,
        )
        attention = TargetAttention(scorer="dot", scale=1.0, name="attention")
        interest = attention(query, retrieved_att, retrieved_rep, mask=retrieved_mask)
        tower_args = (mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower)
        outputs = predict_clicks(
            make_tower(*tower_args), tower_input(target_rep, interest, True), inputs, schema
        )

        auxiliary = None
        if auxiliary_loss_weight:
            pooled = TargetAttention(scorer="dot", scale=1.0, name="auxiliary_attention")(
                query, history_att, history_rep, mask=mask
            )
            aux_tower = make_tower(*tower_args, name="auxiliary_tower")
            auxiliary = (
                predict_clicks(aux_tower, tower_input(target_rep, pooled, True), inputs, schema),
                auxiliary_loss_weight,
            )
        super().__init__(
            schema=schema,
            inputs=inputs,
            outputs=outputs,
            auxiliary=auxiliary,
            **kwargs,
        )
