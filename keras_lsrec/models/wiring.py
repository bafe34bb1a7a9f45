"""Wiring shared by every model: inputs per field, masks, the tower, scores."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import keras
from keras import ops

from keras_lsrec.data.schema import TIME, SequenceSchema, history_key, target_key
from keras_lsrec.layers.bag_pooling import BagPooling
from keras_lsrec.layers.dcnv2_tower import DCNv2Tower
from keras_lsrec.layers.field_embedding import FieldEmbedding
from keras_lsrec.layers.final_mlp_tower import FinalMLPTower
from keras_lsrec.layers.mlp import MLP
from keras_lsrec.layers.row_features import RowFeatures
from keras_lsrec.layers.target_attention import TargetAttention
from keras_lsrec.validation import check_choice, check_range, check_units


def field_vocab_sizes(schema: SequenceSchema) -> dict[str, int]:
    """Vocabulary per embedded field: the id fields, then `time` if present."""
    sizes = {f: schema.vocab_sizes[f] for f in schema.fields}
    if schema.time_vocab_size is not None:
        sizes[TIME] = schema.time_vocab_size
    return sizes


def item_embedding(schema: SequenceSchema, embedding_dim: int, name: str = "embedding") -> FieldEmbedding:
    """The layer every model embeds its target and history with: one table per
    id field of the schema (and `time`), then one encoder per item feature,
    each block `embedding_dim` wide, applied to what `split_inputs` returns."""
    return FieldEmbedding(
        field_vocab_sizes(schema), embedding_dim, item_features=schema.item_features or None, name=name
    )


def item_content(embedded, schema: SequenceSchema, embedding_dim: int):
    """The item's content in an embedding from `item_embedding`: its id fields
    and item features, without the `time` block (the event's position or time
    gap, which says where the item sits, not what it is). What a hash-based
    search (SDIM, ETA) should hash: the same item collides with itself at any
    position."""
    if not schema.has_time:
        return embedded
    start = len(schema.fields) * embedding_dim  # blocks: id fields, time, item features
    parts = [embedded[..., :start]]
    if schema.item_features:
        parts.append(embedded[..., start + embedding_dim :])
    return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)


def search_inputs(target, history, schema: SequenceSchema, embedding_dim: int, position: bool):
    """`(query, keys)` a search reads: the item's content (`item_content`),
    or with `position` the whole embeddings, whose `time` blocks then add a
    learned term per position to a dot-product score (TWIN, SIM's soft search,
    DARE) or move a hash code (SDIM, ETA)."""
    if position:
        return target, history
    return item_content(target, schema, embedding_dim), item_content(history, schema, embedding_dim)


def split_inputs(inputs: Mapping[str, Any], schema: SequenceSchema, window: int | None = None):
    """Returns `(target_ids, history_ids, mask)` keyed by field (and by item
    feature name: the item features of the target and of the events).

    The target's `time` id is 0 (the target happens now). With `window`, keeps
    the last `window` events of the (left-padded) history.
    """
    target = {f: inputs[target_key(f)] for f in (*schema.fields, *schema.item_features)}
    history = {f: inputs[history_key(f)] for f in (*schema.fields, *schema.item_features)}
    if schema.has_time:
        target[TIME] = ops.zeros_like(inputs[target_key("item")])
        history[TIME] = inputs[history_key(TIME)]
    if window is not None:
        history = {f: ids[:, -window:] for f, ids in history.items()}
    mask = ops.not_equal(history["item"], 0)
    return target, history, mask


# The tower arguments every model takes, with the defaults every model
# shares (the contract tests hold each model's signature to them; a model
# named after a tower, `dcnv2` or `finalmlp`, defaults to its own tower). No
# input BatchNorm by default: measured with bench/quality.py on the synthetic
# data and MovieLens (leave-last-out, DARE protocol), 3 seeds, it lowered the
# test AUC of 8 of the 9 models, by up to 0.10 (docs/benchmarks.md, "Tower").
TOWER_DEFAULTS: dict[str, Any] = {
    "mlp_units": (200, 80),
    "mlp_activation": "prelu",
    "input_batch_norm": False,
    "dropout": 0.0,
    "l2": 0.0,
    "tower": "mlp",
}

# The towers `make_tower` builds (`tower=`): the MLP, DCNv2's cross network
# beside the MLP, FinalMLP's two gated MLP streams with bilinear fusion.
TOWERS = ("mlp", "dcnv2", "finalmlp")


def kernel_regularizer(l2: float) -> keras.regularizers.Regularizer | None:
    """The L2 penalty every model puts on its non-embedding kernels (`None` for 0)."""
    return keras.regularizers.L2(l2) if l2 else None


def make_tower(
    mlp_units: Sequence[int],
    mlp_activation: str,
    input_batch_norm: bool,
    dropout: float,
    l2: float,
    tower: str = "mlp",
    name: str = "tower",
    options: Mapping[str, Any] | None = None,
) -> keras.layers.Layer:
    """The prediction tower from the tower arguments every model takes; it
    ends in one logit and takes `(features, mask=...)`. Refuses bad values
    under the models' argument names.

    `tower` picks it: `"mlp"` (an `MLP`: `mlp_units`, then the logit),
    `"dcnv2"` (a `DCNv2Tower`: a 3-layer full-rank `CrossNetwork` in
    parallel with the `mlp_units` MLP) or `"finalmlp"` (a `FinalMLPTower`:
    two streams of `mlp_units`, each behind its own feature gate, fused by a
    one-head bilinear `InteractionAggregation`). `options` overrides the
    chosen tower's own arguments (`num_cross_layers`, `low_rank`,
    `structure`; `stream2_units`, `gate_units`, `num_heads`): the `DCNv2`
    and `FinalMLP` models pass theirs."""
    mlp_units = check_units("mlp_units", mlp_units)
    check_range("dropout", dropout, 0.0, 1.0, high_inclusive=False)
    check_range("l2", l2, 0.0, math.inf, high_inclusive=False)
    check_choice("tower", tower, TOWERS)
    shared: dict[str, Any] = dict(
        activation=mlp_activation,
        input_batch_norm=input_batch_norm,
        dropout=dropout,
        kernel_regularizer=kernel_regularizer(l2),
        name=name,
    )
    if tower == "dcnv2":
        return DCNv2Tower(hidden_units=mlp_units, **shared, **(options or {}))
    if tower == "finalmlp":
        return FinalMLPTower(stream1_units=mlp_units, **shared, **(options or {}))
    return MLP(hidden_units=mlp_units, output_units=1, **shared)


def tower_input(target, interest, target_representation: bool):
    """`[target, interest]`, plus `target * interest` (TR) when asked."""
    parts = [target, interest]
    if target_representation:
        parts.append(target * interest)
    return ops.concatenate(parts, axis=-1)


def pooled_history(schema: SequenceSchema, target, history, mask):
    """The masked mean of the history's embeddings (0 for an empty history),
    shaped as `target`: `(B, D)`, or broadcast over a candidate set
    `(B, C, D)` (computed once per row)."""
    pooled = ops.cast(BagPooling(name="history_pooling")(history, mask=mask), target.dtype)
    if schema.has_candidates:
        pooled = ops.expand_dims(pooled, 1) + ops.zeros_like(target[..., :1])
    return pooled


def pooled_history_model(
    schema: SequenceSchema, embedding_dim: int, tower_args: tuple[Any, Any, Any, Any, Any, Any], options
):
    """`(inputs, outputs)` of a feature-interaction baseline (`DCNv2`,
    `FinalMLP`): the tower (`make_tower(*tower_args, options=options)`) over
    `[target, pooled_history]`, plus the row features as for every model."""
    inputs = schema.inputs()
    target_ids, history_ids, mask = split_inputs(inputs, schema)
    embedding = item_embedding(schema, embedding_dim)
    target = embedding(target_ids)
    history = embedding(history_ids)
    features = ops.concatenate([target, pooled_history(schema, target, history, mask)], axis=-1)
    return inputs, predict_clicks(make_tower(*tower_args, options=options), features, inputs, schema)


def click_probability(tower: keras.layers.Layer, features, mask=None):
    """Applies a tower ending in one logit; returns P(click) as float32 `(B,)`
    (`(B, C)` for candidate sets, whose `mask` of present candidates keeps the
    missing ones out of the tower's batch statistics)."""
    logit = ops.cast(tower(features, mask=mask), "float32")
    return ops.sigmoid(ops.squeeze(logit, -1))


def predict_clicks(tower: keras.layers.Layer, features, inputs: Mapping[str, Any], schema: SequenceSchema):
    """The model's output: P(click) `(B,)` for rows; for candidate sets
    `(B, C)`, exactly 0 at a missing candidate (`target_item` 0), which is
    also kept out of the tower's batch statistics.

    The schema's per-row features (user, context: `SequenceSchema(features=...)`)
    join the tower's input here, for every model: `RowFeatures` of the
    batch, the same for every candidate of a request. Without features the
    tower reads `features` alone, as before."""
    if schema.features:
        row = RowFeatures(schema.features, name=f"{tower.name}_row_features")(
            {name: inputs[name] for name in schema.features}
        )
        row = ops.cast(row, features.dtype)
        if schema.has_candidates:  # one per request: broadcast over its candidates
            row = ops.expand_dims(row, 1) + ops.zeros_like(features[..., :1])
        features = ops.concatenate([features, row], axis=-1)
    if not schema.has_candidates:
        return click_probability(tower, features)
    present = ops.not_equal(inputs[target_key("item")], 0)
    return click_probability(tower, features, mask=present) * ops.cast(present, "float32")


def dot_scores(query, keys):
    """`<query, keys_i>` for `query` (B, D) or a candidate set (B, C, D) and
    `keys` (B, L, D): (B, L), or (B, C, L)."""
    if len(query.shape) == 3:
        return ops.einsum("bcd,bld->bcl", query, keys)
    return ops.einsum("bd,bld->bl", query, keys)


def recency(mask, dtype: str = "float32"):
    """`(B, L)`: each valid event's rank from the oldest (1, 2, ...), whatever
    the padding: a search's tie-breaker or recency score that does not move
    with left or right padding."""
    return ops.cumsum(ops.cast(mask, dtype), axis=-1)


def hamming_scores(query_codes, history_codes, mask):
    """A SimHash search's scores: the agreement `<c_q, c_i>` of `query_codes`
    `(B, bits)` or a candidate set's `(B, C, bits)` with each event's
    `history_codes` `(B, L, bits)` (bits in {-1, 1}: `bits - 2 * Hamming`),
    plus a fraction < 1 that grows with recency, so that among events at the
    same distance (integer agreements tie often) the most recent wins.
    `(B, L)`, or `(B, C, L)`."""
    order = recency(mask, history_codes.dtype)
    tie_break = order / (ops.max(order, axis=-1, keepdims=True, initial=0.0) + 1.0)
    if len(query_codes.shape) == 3:
        return ops.einsum("bcn,bln->bcl", query_codes, history_codes) + ops.expand_dims(tie_break, 1)
    return ops.einsum("bn,bln->bl", query_codes, history_codes) + tie_break


def short_term_interest(target, history, mask, window: int, logit_bias=None):
    """The short-term part of a two-stage model (`TWIN`, `MIRRN`): a dot
    target attention of `target` over the `window` most recent valid events,
    `[h_short, e_t * h_short]`, to append to the tower's input."""
    short = TargetAttention(scorer="dot", name="short_attention")(
        target, history, mask=most_recent(mask, window), logit_bias=logit_bias
    )
    return ops.concatenate([short, target * short], axis=-1)


def most_recent(mask, count: int):
    """`(B, L)`: the `count` most recent valid events of each row, whatever the padding."""
    rank = recency(mask, "int32")  # 1 = the oldest valid event
    total = ops.sum(ops.cast(mask, "int32"), axis=-1, keepdims=True)
    return ops.logical_and(mask, rank > total - count)
