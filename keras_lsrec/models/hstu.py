"""HSTU: one transformer of pointwise attention over the history and the candidates (M-FALCON)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import ACTION, SequenceSchema, history_key, target_key
from keras_lsrec.layers.action_encoding import ActionEncoding
from keras_lsrec.layers.hstu_block import HSTUBlock
from keras_lsrec.layers.mfalcon_mask import mfalcon_positions
from keras_lsrec.layers.next_event_loss import NextEventLoss
from keras_lsrec.layers.row_features import RowFeatures
from keras_lsrec.models.base import CANDIDATES, ROW, SequenceModel
from keras_lsrec.models.wiring import (
    item_embedding,
    kernel_regularizer,
    make_tower,
    predict_clicks,
    split_inputs,
    tower_input,
)
from keras_lsrec.validation import check_positive, check_range


@keras_lsrec_export
class HSTU(SequenceModel):
    """A ranker of stacked HSTU layers over the history and the candidates together.

    Tokens: the item-side embeddings of the history events and of the C
    candidates (one table per field, as every model; the `time` embedding
    too when the schema has times), plus, when the schema has `actions`, an
    `ActionEncoding` of what the user did with each event (`history_action`,
    one vector per action kind summed over the set bits) and, on every
    candidate, one more learned vector, "action unknown" (a candidate's
    action is what is predicted: no input carries it); preceded, when the schema has per-row
    features, by one contextual token (the features' `RowFeatures`
    projected to the token width). `num_blocks` `HSTUBlock`s transform the
    sequence `[context | history | candidates]` under the M-FALCON pattern:
    the history is causal, every candidate sees the whole history and
    itself, and no candidate sees another, so the C candidates of a request
    are scored in one pass with exactly the numbers of C single-candidate
    passes (and the row form is the candidate form with C = 1: the two share
    their weights). Attention is pointwise, `SiLU(q . k / sqrt(d) + rab) / N`
    with `N` the schema's `max_len` + 1 (+ 1 with a contextual token): a
    constant, so neither padding nor C moves it; and
    `rab` the relative attention bias of positions (the order of the valid
    events; the candidates stand one step after the last) and, when the
    schema has `history_time`, of log buckets of the time differences (the
    candidates' time is 0, "now"); without times it runs on positions alone.

    In training, `auxiliary_loss_weight > 0` adds a next-event loss over the
    history (`NextEventLoss`, as DIEN's): each history token's output, which
    has seen the events up to its own (causal), scores the embedding of the
    event that follows above an in-batch negative. It is a share of the
    paper's generative training, which supervises every position of the
    sequence rather than the candidates' labels alone; scores and serving do
    not change.

    Each candidate's output token `h` goes to the tower as `[e_t, h, e_t * h]`
    with `e_t` the candidate's embedding (plus the per-row features, as for
    every model). Cost O((K + L + C)^2 d) per block, against O(L d) for DIN
    and O(L d + k d) for TWIN/DARE; `query_block_size` bounds the score
    matrix held at once to `(B, heads, block, K + L + C)`.

    Args:
        schema: the `SequenceSchema` of the data.
        embedding_dim: size of each field's embedding (the token width is
            the number of embedded fields times this).
        num_blocks: HSTU layers (1 by default: on the synthetic long-range
            data one layer learned faster than two at half the cost,
            docs/benchmarks.md "HSTU quality").
        num_heads: heads per layer.
        key_dim: size of each head's queries and keys.
        value_dim: size of each head's values and gates (default `key_dim`).
        max_distance: relative positions beyond this share one bias
            (`None`: the schema's `max_len` + 1).
        time_buckets: log buckets of the time differences, used when the
            schema has times; `None` for no time bias.
        position_bias: whether the relative position bias is used.
        block_dropout: dropout of each block's output.
        query_block_size: queries per attention block (memory), or `None`.
        remat: recompute each block's scores in the backward pass (training
            memory bounded by one query block, for one more attention forward).
        auxiliary_loss_weight: weight of the next-event loss over the
            history in training; 0 disables it. 1 by default: +0.13 AUC on
            MovieLens and a faster start on the synthetic data
            (docs/benchmarks.md, "HSTU quality at 3 seeds").
        mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower: the
            tower (see `DIN`); `l2` also applies to the blocks' kernels.

    Example:

    >>> schema = keras_lsrec.data.SequenceSchema({"item": 100, "category": 10}, 50)
    >>> model = HSTU(schema, embedding_dim=8)
    >>> model.compile(optimizer="adam", loss="binary_crossentropy")

    Reference:
        Zhai et al., "Actions Speak Louder than Words: Trillion-Parameter
        Sequential Transducers for Generative Recommendations", ICML 2024.
    """

    # One target per row (C = 1), or a candidate set per row (M-FALCON).
    INPUT_FORMS = (ROW, CANDIDATES)
    # Saved before `auxiliary_loss_weight` existed: trained without the next-event loss.
    SAVED_BEFORE = {"auxiliary_loss_weight": 0.0}

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "embedding_dim": ("choice", [8, 16, 32]),
        "num_blocks": ("choice", [1, 2, 3]),
        "num_heads": ("choice", [1, 2, 4]),
        "key_dim": ("choice", [8, 16, 32]),
        "block_dropout": ("choice", [0.0, 0.1, 0.2]),
        "auxiliary_loss_weight": ("choice", [0.0, 0.5, 1.0]),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        embedding_dim: int = 16,
        num_blocks: int = 1,
        num_heads: int = 2,
        key_dim: int = 16,
        value_dim: int | None = None,
        max_distance: int | None = None,
        time_buckets: int | None = 32,
        position_bias: bool = True,
        block_dropout: float = 0.0,
        query_block_size: int | None = 512,
        remat: bool = True,
        auxiliary_loss_weight: float = 1.0,
        mlp_units: Sequence[int] = (200, 80),
        mlp_activation: str = "prelu",
        input_batch_norm: bool = False,
        dropout: float = 0.0,
        l2: float = 0.0,
        tower: str = "mlp",
        **kwargs: Any,
    ) -> None:
        check_positive(embedding_dim=embedding_dim, num_blocks=num_blocks)
        check_positive(allow_none=True, max_distance=max_distance)
        check_range("block_dropout", block_dropout, 0.0, 1.0, high_inclusive=False)
        check_range("auxiliary_loss_weight", auxiliary_loss_weight, 0.0, math.inf, high_inclusive=False)
        inputs = schema.inputs()
        target_ids, history_ids, mask = split_inputs(inputs, schema)
        embedding = item_embedding(schema, embedding_dim)
        target = embedding(target_ids)
        history = embedding(history_ids)
        width = history.shape[-1]
        candidates = target if schema.has_candidates else ops.expand_dims(target, 1)
        present = ops.not_equal(inputs[target_key("item")], 0)
        present = present if schema.has_candidates else ops.expand_dims(present, 1)
        events = [history, candidates]  # what each token is (no action), for the next-event loss
        if schema.actions is not None:  # the extra kind `schema.actions`: a candidate's unknown action
            actions = ActionEncoding(schema.actions + 1, width, name="action_encoding")
            history = history + actions(inputs[history_key(ACTION)])
            unknown = ops.full_like(ops.cast(present, "int32"), 1 << schema.actions)
            candidates = candidates + actions(unknown)

        tokens, num_context = [history, candidates], 0
        if schema.features:
            row = RowFeatures(schema.features, name="context_features")(
                {name: inputs[name] for name in schema.features}
            )
            context = keras.layers.Dense(
                width, kernel_regularizer=kernel_regularizer(l2), name="context_projection"
            )(row)
            tokens.insert(0, ops.expand_dims(ops.cast(context, history.dtype), 1))
            events.insert(0, tokens[0])
            num_context = 1
        sequence = ops.concatenate(tokens, axis=1)
        positions, valid = mfalcon_positions(mask, present, num_context)
        times = None
        if schema.has_time:
            history_times = ops.cast(inputs[history_key("time")], "int32")
            parts = [history_times, ops.cast(ops.zeros_like(present), "int32")]
            if num_context:
                parts.insert(0, ops.cast(ops.zeros_like(present[:, :1]), "int32"))
            times = ops.concatenate(parts, axis=1)

        distance = (max_distance or schema.max_len + 1) if position_bias else None
        for index in range(num_blocks):
            sequence = HSTUBlock(
                num_heads=num_heads,
                key_dim=key_dim,
                value_dim=value_dim,
                max_distance=distance,
                time_buckets=time_buckets if schema.has_time else None,
                normalizer_length=schema.max_len + num_context + 1,
                dropout=block_dropout,
                query_block_size=query_block_size,
                remat=remat,
                kernel_regularizer=kernel_regularizer(l2),
                name=f"hstu_block_{index}",
            )(sequence, positions, mask=valid, times=times)
        output = keras.layers.LayerNormalization(epsilon=1e-6, name="output_norm")(sequence)
        if auxiliary_loss_weight:  # each history token's output scores the event after it
            nothing = ops.zeros_like(present)
            history_only = ops.concatenate([nothing[:, :num_context], mask, nothing], axis=1)
            output = NextEventLoss(auxiliary_loss_weight, name="auxiliary_loss")(
                output, ops.concatenate(events, axis=1), mask=history_only
            )
        interest = LastTokens(name="candidate_tokens")(output, candidates)
        if not schema.has_candidates:
            interest = ops.squeeze(interest, 1)
        tower_args = (mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower)
        outputs = predict_clicks(make_tower(*tower_args), tower_input(target, interest, True), inputs, schema)
        super().__init__(schema=schema, inputs=inputs, outputs=outputs, **kwargs)


@keras_lsrec_export
class LastTokens(keras.layers.Layer):
    """The last `C` tokens of `sequence` `(B, N, d)`, `C` read from `reference`
    `(B, C, ...)` at call time (the candidates of `HSTU`, whose number may
    change from batch to batch). Internal to `HSTU`."""

    def call(self, sequence, reference):
        count = reference.shape[1]
        if count is not None:  # a static count keeps a static shape (tensorflow graphs)
            return ops.reshape(sequence[:, -count:], (-1, count, sequence.shape[-1]))
        return sequence[:, ops.shape(sequence)[1] - ops.shape(reference)[1] :]

    def compute_output_shape(self, sequence_shape, reference_shape):
        return (sequence_shape[0], reference_shape[1], sequence_shape[-1])
