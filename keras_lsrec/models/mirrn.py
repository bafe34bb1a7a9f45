"""MIRRN: SimHash retrieval for three queries, Fourier refinement, target attention over the interests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.layers.fourier_filter import FourierFilter
from keras_lsrec.layers.sim_hash import SimHash
from keras_lsrec.layers.target_attention import TargetAttention
from keras_lsrec.layers.top_k_retrieval import TopKRetrieval
from keras_lsrec.models.base import CANDIDATES, ROW, SequenceModel
from keras_lsrec.models.wiring import (
    hamming_scores,
    item_embedding,
    make_tower,
    most_recent,
    predict_clicks,
    recency,
    search_inputs,
    short_term_interest,
    split_inputs,
    tower_input,
)
from keras_lsrec.validation import check_positive

# The granularities of the queries, in the order of their interests.
QUERIES = ("target", "local", "global")


@keras_lsrec_export
class MIRRN(SequenceModel):
    """Multi-granularity interest retrieval and refinement.

    Retrieval: three queries search the whole history, each for its own
    `k` events: the target (target-aware interest), the masked mean of the
    `query_window` most recent events (local-aware interest) and the masked
    mean of the whole history (global-aware interest). As in `ETA`, the
    queries and the events are hashed to `num_bits`-bit SimHash codes (one
    set of fixed projections) and the `k` valid events at the smallest
    Hamming distance from each query are kept, the most recent among equal
    distances; the events' codes are computed once per row, and the local
    and global searches once per row whatever the candidates.
    Refinement: each retrieved subsequence, in its chronological order, goes
    through its own `FourierFilter` (`filter_heads` heads: a learned complex
    matrix per head on the subsequence's spectrum, residual and layer norm;
    MIRRN's multi-head Fourier transformer), padded slots left out.
    Interests: a scaled dot-product target attention of the target over each
    refined subsequence gives one interest per granularity, and a second one
    over the three interests combines them (the paper's multi-head target
    attention). With `short_window=N`, a dot target attention over the N
    most recent events adds the short-term interest (as `TWIN`'s
    `short_window`; FuxiCTR's MIRRN has it over the last 50), and the tower
    scores `[e_t, h, e_t * h, h_short, e_t * h_short]`.

    Positions: the retrieved events carry the schema's `time` block
    (reverse position or time gap) in their embeddings, which is how this
    library encodes where an event sits; the paper's target-aware position
    encoding (a table of the retrieved events' reverse positions, FuxiCTR:
    added at a scale of 0.02) is that block here. The searches hash the
    item's content only (`item_content`) unless `hash_position`.

    Args:
        schema: the `SequenceSchema` of the data.
        embedding_dim: size of each field's embedding.
        k: events retrieved per query.
        num_bits: bits of the SimHash code.
        query_window: the most recent events whose mean is the local query
            (FuxiCTR: 16).
        filter_heads: heads of each `FourierFilter` (FuxiCTR: 4); must
            divide the embedding's width.
        num_heads: heads of the target attentions.
        short_window: the recent events of the short-term attention, or
            `None` for none.
        seed: seed of the hash projections.
        hash_position: whether the SimHash reads the whole event embedding,
            its `time` block included, instead of the item's content.
        mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower: the tower
            (see `DIN`).

    Reference:
        Xu et al., "Multi-granularity Interest Retrieval and Refinement
        Network for Long-Term User Behavior Modeling in CTR Prediction",
        KDD 2025 (arXiv 2411.15005).
    """

    # One target per row, or a candidate set per row (the request form: `request_form`).
    INPUT_FORMS = (ROW, CANDIDATES)

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "embedding_dim": ("choice", [8, 16, 32]),
        "k": ("choice", [20, 50, 100]),
        "num_bits": ("choice", [16, 32, 64]),
        "query_window": ("choice", [8, 16, 32]),
        "filter_heads": ("choice", [1, 2, 4]),
        "num_heads": ("choice", [1, 2]),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        embedding_dim: int = 16,
        k: int = 50,
        num_bits: int = 32,
        query_window: int = 16,
        filter_heads: int = 4,
        num_heads: int = 1,
        short_window: int | None = 50,
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
        check_positive(
            embedding_dim=embedding_dim,
            k=k,
            num_bits=num_bits,
            query_window=query_window,
            filter_heads=filter_heads,
            num_heads=num_heads,
        )
        check_positive(allow_none=True, short_window=short_window)
        inputs = schema.inputs()
        target_ids, history_ids, mask = split_inputs(inputs, schema)
        embedding = item_embedding(schema, embedding_dim)
        target = embedding(target_ids)
        history = embedding(history_ids)
        if history.shape[-1] % filter_heads:
            raise ValueError(
                f"`filter_heads` must divide the embedding's width {history.shape[-1]} (its blocks times "
                f"`embedding_dim={embedding_dim}`). Received: `filter_heads={filter_heads}`"
            )
        query, keys = search_inputs(target, history, schema, embedding_dim, hash_position)
        queries = {
            "target": query,  # (B, [C,] D)
            "local": masked_mean(keys, most_recent(mask, query_window)),  # (B, D): once per row
            "global": masked_mean(keys, mask),
        }
        simhash = SimHash(num_bits, seed=seed, name="hash")
        history_codes = ops.squeeze(simhash(keys), -2)  # (B, L, bits): once per event
        interests = []
        for name in QUERIES:
            scores = hamming_scores(ops.squeeze(simhash(queries[name]), -2), history_codes, mask)
            (events, ranks), events_mask = TopKRetrieval(k, name=f"{name}_search")(
                scores, (history, recency(mask, "int32")), mask=mask
            )
            events, events_mask = chronological(events, ranks, events_mask)
            refined = FourierFilter(filter_heads, name=f"{name}_filter")(events, mask=events_mask)
            interests.append(
                TargetAttention(scorer="dot", num_heads=num_heads, name=f"{name}_attention")(
                    target, refined, mask=events_mask
                )
            )
        interest = TargetAttention(scorer="dot", num_heads=num_heads, name="interest_attention")(
            target, ops.stack(interests, axis=-2)
        )
        features = tower_input(target, interest, True)
        if short_window is not None:
            short = short_term_interest(target, history, mask, short_window)
            features = ops.concatenate([features, short], axis=-1)
        tower_args = (mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower)
        outputs = predict_clicks(make_tower(*tower_args), features, inputs, schema)
        super().__init__(schema=schema, inputs=inputs, outputs=outputs, **kwargs)


def masked_mean(values, mask):
    """`(B, D)`: the mean of `values` `(B, L, D)` over the events `mask` keeps (0 for none)."""
    weights = ops.cast(mask, values.dtype)
    total = ops.einsum("bl,bld->bd", weights, values)
    return total / ops.maximum(ops.sum(weights, axis=-1, keepdims=True), 1.0)


def chronological(events, ranks, mask):
    """Retrieved `events` `(..., k, D)` reordered oldest first by their `ranks`
    (`wiring.recency`), the slots without a valid event last."""
    indices = ops.argsort(ops.where(mask, ranks, 2**30), axis=-1)
    wide = ops.repeat(ops.expand_dims(indices, -1), events.shape[-1], axis=-1)
    return ops.take_along_axis(events, wide, axis=-2), ops.take_along_axis(mask, indices, axis=-1)
