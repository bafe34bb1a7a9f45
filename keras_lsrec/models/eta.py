"""ETA: SimHash codes, top-k by Hamming distance, then target attention (end to end)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.layers.sim_hash import SimHash
from keras_lsrec.layers.target_attention import TargetAttention
from keras_lsrec.layers.top_k_retrieval import TopKRetrieval
from keras_lsrec.models.base import CANDIDATES, ROW, SequenceModel
from keras_lsrec.models.wiring import (
    hamming_scores,
    item_embedding,
    make_tower,
    predict_clicks,
    search_inputs,
    split_inputs,
    tower_input,
)
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class ETA(SequenceModel):
    """End-to-end target attention with a locality-sensitive-hashing search.

    Search: the embeddings of the target and of every behaviour are hashed
    to `num_bits`-bit SimHash codes (fixed random projections, not trained;
    `SimHash`), and the `k` valid behaviours at the smallest Hamming
    distance from the target are kept (`<code_t, code_i> = num_bits -
    2 Hamming`; among equal distances the most recent). The behaviours'
    codes do not depend on the target, so they are computed once per row
    (once per request for a candidate set).
    Attention: scaled dot-product target attention over the `k` on the same
    embeddings, trained end to end (the search has no gradient, the
    embeddings learn through the attention), and the tower scores
    `[e_t, h, e_t * h]`.

    Args:
        schema: the `SequenceSchema` of the data.
        embedding_dim: size of each field's embedding.
        k: behaviours kept by the search.
        num_bits: bits of the SimHash code.
        num_heads: heads of the target attention.
        seed: seed of the hash projections.
        hash_position: whether the SimHash reads the whole event embedding,
            its `time` block (reverse position / time gap) included; `False`
            (default) hashes the item's content only (`item_content`: its
            ids and item features); the attention over the retrieved events
            reads the whole embeddings. A `.keras` file saved before this
            argument existed loads with `True`, as it was trained.
        mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower: the tower
            (see `DIN`).

    Reference:
        Chen et al., "End-to-End User Behavior Retrieval in Click-Through
        Rate Prediction Model", 2021 (arXiv 2108.04468).
    """

    # One target per row, or a candidate set per row (the request form: `request_form`).
    INPUT_FORMS = (ROW, CANDIDATES)
    # Saved before `hash_position` existed: the hashes read the whole embedding.
    SAVED_BEFORE = {"hash_position": True}

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "embedding_dim": ("choice", [8, 16, 32]),
        "k": ("choice", [20, 50, 100]),
        "num_bits": ("choice", [16, 32, 64]),
        "num_heads": ("choice", [1, 2]),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        embedding_dim: int = 16,
        k: int = 50,
        num_bits: int = 32,
        num_heads: int = 1,
        seed: int = 0,
        hash_position: bool = False,
        mlp_units: Sequence[int] = (200, 80),
        mlp_activation: str = "prelu",
        input_batch_norm: bool = False,
        dropout: float = 0.0,
        l2: float = 0.0,
        tower: str = "mlp",
        **kwargs: Any,
    ) -> None:
        check_positive(embedding_dim=embedding_dim, k=k, num_bits=num_bits, num_heads=num_heads)
        inputs = schema.inputs()
        target_ids, history_ids, mask = split_inputs(inputs, schema)
        embedding = item_embedding(schema, embedding_dim)
        target = embedding(target_ids)
        history = embedding(history_ids)
        simhash = SimHash(num_bits, seed=seed, name="hash")
        query, keys = search_inputs(target, history, schema, embedding_dim, hash_position)
        target_codes = ops.squeeze(simhash(query), -2)  # (B, [C,] bits)
        history_codes = ops.squeeze(simhash(keys), -2)  # (B, L, bits): once per event
        scores = hamming_scores(target_codes, history_codes, mask)
        retrieved, retrieved_mask = TopKRetrieval(k, name="search")(scores, history, mask=mask)
        interest = TargetAttention(scorer="dot", num_heads=num_heads, name="attention")(
            target, retrieved, mask=retrieved_mask
        )
        tower_args = (mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower)
        outputs = predict_clicks(make_tower(*tower_args), tower_input(target, interest, True), inputs, schema)
        super().__init__(schema=schema, inputs=inputs, outputs=outputs, **kwargs)
