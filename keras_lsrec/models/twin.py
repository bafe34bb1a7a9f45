"""TWIN: one shared table, dot-product top-k search, then target attention."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import CLUSTER_SIZE, SequenceSchema, history_key
from keras_lsrec.layers.target_attention import TargetAttention
from keras_lsrec.layers.top_k_retrieval import TopKRetrieval
from keras_lsrec.models.base import CANDIDATES, ROW, SequenceModel
from keras_lsrec.models.wiring import (
    dot_scores,
    item_embedding,
    make_tower,
    predict_clicks,
    search_inputs,
    short_term_interest,
    split_inputs,
    tower_input,
)
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class TWIN(SequenceModel):
    """Two-stage model whose search and attention share one embedding table.

    Search (GSU): `s_i = <e_i, e_t>` over the whole sequence, keep the top `k`
    valid events. Attention (ESU): scaled dot-product target attention over
    the `k` (`num_heads` heads), and the tower scores
    `[e_t, h, e_t * h]` (target representation, TR). Search and attention use
    the same embeddings, so their scores are consistent ("twins"), and the
    attention logits and the representation compete for one table, which is
    what DARE separates.

    With `short_window=N`, a second target attention (dot, softmax) reads the
    N most recent events whatever the search keeps, and the tower also gets
    `[h_short, e_t * h_short]`: the short-term interest that TWIN's deployed
    ranking model (and FuxiCTR's TWIN, over the last 50) has beside the
    lifelong search, which a top-k by similarity alone drops. The recent
    events are found by counting from the newest valid event, so left and
    right padding give the same result.

    On a schema with `cluster_sizes=True` (histories clustered in the data
    path, see `TWINV2`) every event is a cluster of `n_j` behaviours and
    `log n_j` is added to its search score and to its logit in both
    attentions, so a cluster weighs as `n_j` copies of its representative.

    Args:
        schema: the `SequenceSchema` of the data.
        embedding_dim: size of each field's embedding.
        k: behaviours kept by the search.
        num_heads: heads of the target attention.
        short_window: the recent events of the short-term attention, or
            `None` for the search alone (the TWIN paper's GSU/ESU block).
            Default 50, by measurement (bench/quality.py, 3 seeds, quickstart
            budget): on MovieLens leave-last-out it lifts TWIN from AUC 0.683
            to 0.708 (DIN over the last 50 events: 0.711), where the search
            alone fell under the short window as the issue reported on
            Taobao; on the synthetic long-range data it costs 0.005 (0.768
            against 0.773).
        search_position: whether the search scores read the whole event
            embeddings (with the schema's `time` block: a learned term per
            position added to each score) or the item's content only
            (`wiring.item_content`); the attention reads the whole embeddings
            either way.
        mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower: the tower
            (see `DIN`).

    Reference:
        Chang et al., "TWIN: TWo-stage Interest Network for Lifelong User
        Behavior Modeling in CTR Prediction at Kuaishou", KDD 2023.
    """

    # One target per row, or a candidate set per row (the request form: `request_form`).
    INPUT_FORMS = (ROW, CANDIDATES)
    # Saved before `short_window` existed: the search-only form.
    SAVED_BEFORE = {"short_window": None}

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "embedding_dim": ("choice", [8, 16, 32, 64]),
        "k": ("choice", [10, 20, 50]),
        "num_heads": ("choice", [1, 2, 4]),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        embedding_dim: int = 16,
        k: int = 20,
        num_heads: int = 1,
        short_window: int | None = 50,
        search_position: bool = True,
        mlp_units: Sequence[int] = (200, 80),
        mlp_activation: str = "prelu",
        input_batch_norm: bool = False,
        dropout: float = 0.0,
        l2: float = 0.0,
        tower: str = "mlp",
        **kwargs: Any,
    ) -> None:
        check_positive(embedding_dim=embedding_dim, k=k, num_heads=num_heads)
        check_positive(allow_none=True, short_window=short_window)
        inputs = schema.inputs()
        target_ids, history_ids, mask = split_inputs(inputs, schema)
        embedding = item_embedding(schema, embedding_dim)
        target = embedding(target_ids)
        history = embedding(history_ids)
        query, keys = search_inputs(target, history, schema, embedding_dim, search_position)
        scores, values, log_size = dot_scores(query, keys), history, None
        if schema.cluster_sizes:
            log_size = cluster_log_sizes(inputs, history.dtype)
            scores = scores + (ops.expand_dims(log_size, 1) if schema.has_candidates else log_size)
            values = (history, log_size)
        retrieved, retrieved_mask = TopKRetrieval(k, name="search")(scores, values, mask=mask)
        retrieved, retrieved_log_size = retrieved if schema.cluster_sizes else (retrieved, None)
        interest = TargetAttention(scorer="dot", num_heads=num_heads, name="attention")(
            target, retrieved, mask=retrieved_mask, logit_bias=retrieved_log_size
        )
        features = tower_input(target, interest, True)
        if short_window is not None:
            short = short_term_interest(target, history, mask, short_window, logit_bias=log_size)
            features = ops.concatenate([features, short], axis=-1)
        tower_args = (mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower)
        outputs = predict_clicks(make_tower(*tower_args), features, inputs, schema)
        super().__init__(schema=schema, inputs=inputs, outputs=outputs, **kwargs)


def cluster_log_sizes(inputs, dtype: str):
    """`log n_j` `(B, L)` of each event's cluster size (0 at padding)."""
    return ops.log(ops.maximum(ops.cast(inputs[history_key(CLUSTER_SIZE)], dtype), 1.0))
