"""TWIN-V2: TWIN over a life-cycle history compressed into clusters, with cluster-aware attention."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import CLUSTER_SIZE, HISTORY, SequenceSchema
from keras_lsrec.layers.field_embedding import FieldEmbedding
from keras_lsrec.layers.target_attention import TargetAttention
from keras_lsrec.layers.top_k_retrieval import TopKRetrieval
from keras_lsrec.models.base import CANDIDATES, ROW, SequenceModel
from keras_lsrec.models.wiring import (
    dot_scores,
    field_vocab_sizes,
    make_tower,
    predict_clicks,
    split_inputs,
    tower_input,
)
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class TWINV2(SequenceModel):
    """TWIN over clusters of behaviours: hierarchical clustering offline, cluster-aware attention online.

    Offline, in the data path (`keras_lsrec.data.cluster_histories`), each
    user's life-cycle history (10^5 events and more) is compressed by
    hierarchical k-means into clusters of at most `max_cluster_size` similar
    behaviours, each represented by its behaviour closest to the cluster
    mean, with its size `n_j` stored beside it (`history_cluster_size`,
    `SequenceSchema(cluster_sizes=True)`). Online the model reads only the
    clusters:

    - search (GSU): `s_j = <e_j, e_t> + log n_j` over every cluster, keep the
      top `k`;
    - cluster-aware target attention (ESU): scaled dot-product attention over
      the `k` (`num_heads` heads) with `log n_j` added to every logit, so that
      under the softmax a cluster weighs as its `n_j` behaviours would if they
      all were its representative;
    - the tower scores `[e_t, h, e_t * h]`, as TWIN's.

    On a schema without cluster sizes every event is a cluster of one
    (`log 1 = 0`) and the model is TWIN over the raw history.

    Args:
        schema: the `SequenceSchema` of the data (`cluster_sizes=True` for
            clustered histories).
        embedding_dim: size of each field's embedding.
        k: clusters kept by the search. The paper keeps 100 of its
            10^4-cluster histories; 20 (TWIN's default) was measured here on
            the synthetic long-range data (L=200, about 35 clusters a row, 2
            seeds): AUC 0.62 with k=20, 0.61 with k=50, 0.66 with k=5 (a k
            that small would starve longer histories).
        num_heads: heads of the target attention.
        mlp_units, mlp_activation, input_batch_norm, dropout, l2: the tower
            (see `DIN`).

    Reference:
        Si et al., "TWIN V2: Scaling Ultra-Long User Behavior Sequence
        Modeling for Enhanced CTR Prediction at Kuaishou", CIKM 2024.
    """

    # One target per row, or a candidate set per row (the request form: `request_form`).
    INPUT_FORMS = (ROW, CANDIDATES)

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "embedding_dim": ("choice", [8, 16, 32]),
        "k": ("choice", [20, 50, 100]),
        "num_heads": ("choice", [1, 2, 4]),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        embedding_dim: int = 16,
        k: int = 20,
        num_heads: int = 1,
        mlp_units: Sequence[int] = (200, 80),
        mlp_activation: str = "prelu",
        input_batch_norm: bool = False,
        dropout: float = 0.0,
        l2: float = 0.0,
        **kwargs: Any,
    ) -> None:
        check_positive(embedding_dim=embedding_dim, k=k, num_heads=num_heads)
        inputs = schema.inputs()
        target_ids, history_ids, mask = split_inputs(inputs, schema)
        embedding = FieldEmbedding(field_vocab_sizes(schema), embedding_dim, name="embedding")
        target = embedding(target_ids)
        history = embedding(history_ids)
        log_size = cluster_log_sizes(inputs, schema, history.dtype)
        scores = dot_scores(target, history)
        scores = scores + (ops.expand_dims(log_size, 1) if schema.has_candidates else log_size)
        (retrieved, retrieved_log_size), retrieved_mask = TopKRetrieval(k, name="search")(
            scores, (history, log_size), mask=mask
        )
        interest = TargetAttention(scorer="dot", num_heads=num_heads, name="attention")(
            target, retrieved, mask=retrieved_mask, logit_bias=retrieved_log_size
        )
        tower = (mlp_units, mlp_activation, input_batch_norm, dropout, l2)
        outputs = predict_clicks(make_tower(*tower), tower_input(target, interest, True), inputs, schema)
        super().__init__(schema=schema, inputs=inputs, outputs=outputs, **kwargs)


def cluster_log_sizes(inputs, schema: SequenceSchema, dtype: str):
    """`log n_j` `(B, L)` of each event's cluster size (0 at padding, and
    everywhere when the schema has no cluster sizes: clusters of one)."""
    if not schema.cluster_sizes:
        return ops.zeros_like(ops.cast(inputs[HISTORY + "item"], dtype))
    return ops.log(ops.maximum(ops.cast(inputs[HISTORY + CLUSTER_SIZE], dtype), 1.0))
