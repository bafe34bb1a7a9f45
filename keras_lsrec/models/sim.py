"""SIM: a general search unit (hard: the target's category; soft: inner product), then target attention."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import SequenceSchema, history_key, target_key
from keras_lsrec.layers.masking import NORMALIZERS
from keras_lsrec.layers.target_attention import TargetAttention
from keras_lsrec.layers.top_k_retrieval import TopKRetrieval
from keras_lsrec.models.base import CANDIDATES, ROW, SequenceModel
from keras_lsrec.models.wiring import (
    dot_scores,
    item_embedding,
    make_tower,
    predict_clicks,
    recency,
    search_inputs,
    split_inputs,
    tower_input,
)
from keras_lsrec.validation import check_choice, check_positive

SEARCHES = ("hard", "soft")


@keras_lsrec_export
class SIM(SequenceModel):
    """Search-based interest model: a cheap search over the whole sequence, then attention over k.

    General search unit (GSU), one of:

    - `"hard"`: the behaviours whose `search_field` (default `category`)
      equals the target's, the most recent `k` of them (the form SIM deployed);
    - `"soft"`: the `k` valid behaviours with the largest inner product
      `<e_i, e_t>` of their embeddings.

    Exact search unit (ESU): scaled dot-product target attention over the `k`
    retrieved behaviours (`num_heads` heads) on the same embeddings, whose
    `time` field (reverse position) plays the paper's time-gap embedding; the
    tower scores `[e_t, h, e_t * h]`. A row with no behaviour of the target's
    category attends over nothing (a zero interest vector).

    Weights: `normalizer="sigmoid"` (point-wise, not summing to 1, as DIN
    proposed, so the interest grows with how many retrieved behaviours
    match) is the default, chosen by measurement: after a hard search the
    retrieved events all share the target's category, and a softmax mean
    then says only "some", not "how many". On the synthetic long-range data
    (quickstart budget, 2 seeds) hard search scored AUC 0.777 with sigmoid
    weights and 0.526 with the paper's softmax (docs/benchmarks.md).

    The paper's soft search trains separate search embeddings with an
    auxiliary loss; here it shares the table (as TWIN does), so
    `search="soft"` differs from TWIN only in keeping the search's order
    through the attention (both are offered; the hard search is SIM's own).

    Args:
        schema: the `SequenceSchema` of the data.
        embedding_dim: size of each field's embedding.
        k: behaviours kept by the search.
        search: `"hard"` or `"soft"`.
        search_field: the id field of the hard search.
        search_position: the soft search's scores read the whole event
            embeddings (the `time` block included), or the item's content
            only (see `TWIN`). The hard search ignores it.
        num_heads: heads of the target attention.
        normalizer: `"sigmoid"` or `"softmax"` (the paper's) attention weights.
        mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower: the tower
            (see `DIN`).

    Reference:
        Pi et al., "Search-based User Interest Modeling with Lifelong
        Sequential Behavior Data for Click-Through Rate Prediction", CIKM 2020.
    """

    # One target per row, or a candidate set per row (the request form: `request_form`).
    INPUT_FORMS = (ROW, CANDIDATES)

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "embedding_dim": ("choice", [8, 16, 32]),
        "k": ("choice", [20, 50, 100]),
        "search": ("choice", ["hard", "soft"]),
        "num_heads": ("choice", [1, 2]),
        "normalizer": ("choice", ["sigmoid", "softmax"]),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        embedding_dim: int = 16,
        k: int = 50,
        search: str = "hard",
        search_field: str = "category",
        search_position: bool = True,
        num_heads: int = 1,
        normalizer: str = "sigmoid",
        mlp_units: Sequence[int] = (200, 80),
        mlp_activation: str = "prelu",
        input_batch_norm: bool = False,
        dropout: float = 0.0,
        l2: float = 0.0,
        tower: str = "mlp",
        **kwargs: Any,
    ) -> None:
        check_positive(embedding_dim=embedding_dim, k=k, num_heads=num_heads)
        check_choice("search", search, SEARCHES)
        check_choice("normalizer", normalizer, NORMALIZERS[:2])  # raw dot products: DIN's "none" only
        if search == "hard":
            check_choice("search_field", search_field, tuple(schema.fields))
        inputs = schema.inputs()
        target_ids, history_ids, mask = split_inputs(inputs, schema)
        embedding = item_embedding(schema, embedding_dim)
        target = embedding(target_ids)
        history = embedding(history_ids)
        if search == "hard":
            # Recency scores; the search mask keeps the events of the target's category.
            newest = recency(mask, target.dtype)
            target_field = inputs[target_key(search_field)]
            same = ops.equal(
                ops.expand_dims(inputs[history_key(search_field)], 1)
                if schema.has_candidates
                else inputs[history_key(search_field)],
                ops.expand_dims(target_field, -1),
            )
            if schema.has_candidates:
                scores = ops.expand_dims(newest, 1) + ops.zeros_like(ops.cast(same, newest.dtype))
                search_mask = ops.logical_and(same, ops.expand_dims(mask, 1))
            else:
                scores, search_mask = newest, ops.logical_and(same, mask)
        else:
            query, keys = search_inputs(target, history, schema, embedding_dim, search_position)
            scores, search_mask = dot_scores(query, keys), mask
        retrieved, retrieved_mask = TopKRetrieval(k, name="search")(scores, history, mask=search_mask)
        attention = TargetAttention(
            scorer="dot", normalizer=normalizer, num_heads=num_heads, name="attention"
        )
        interest = attention(target, retrieved, mask=retrieved_mask)
        tower_args = (mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower)
        outputs = predict_clicks(make_tower(*tower_args), tower_input(target, interest, True), inputs, schema)
        super().__init__(schema=schema, inputs=inputs, outputs=outputs, **kwargs)
