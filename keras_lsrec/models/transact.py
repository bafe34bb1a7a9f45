"""TransAct: early fusion with the target, a transformer over the sequence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.layers.transact_encoder import TransActEncoder
from keras_lsrec.models.base import CANDIDATES, ROW, SequenceModel
from keras_lsrec.models.wiring import (
    item_embedding,
    kernel_regularizer,
    make_tower,
    predict_clicks,
    split_inputs,
)
from keras_lsrec.validation import check_positive


def early_fusion(target, history):
    """`[e_i, e_target]` for every event: `(B, L, 2D)` for a target `(B, D)`,
    `(B, C, L, 2D)` for a candidate set `(B, C, D)` (one sequence per candidate)."""
    if len(target.shape) == 3:
        history = ops.expand_dims(history, 1)  # (B, 1, L, D)
    target = ops.expand_dims(target, -2)  # (B, [C,] 1, D)
    history, target = history + ops.zeros_like(target[..., :1]), target + ops.zeros_like(history[..., :1])
    return ops.concatenate([history, target], axis=-1)


@keras_lsrec_export
class TransAct(SequenceModel):
    """TransAct: a transformer over the behaviour sequence fused with the target.

    Every event's embedding `e_i` (one table per field, as `DIN`) is
    concatenated with the target's, `[e_i, e_t]` (early fusion: attention
    between events already knows the candidate). A transformer encoder with
    a key-padding mask runs over the fused sequence (`TransActEncoder`,
    post-norm blocks as in PyTorch's `TransformerEncoderLayer`, no
    positional encoding: the schema's `time` field, when present, is part of
    each event's embedding). Its outputs at the `recent_k` most recent
    events, flattened, and a projected max-pool over all valid events are
    the user representation; the tower scores `[target, representation]`.

    Cost O(L^2 d) per row (per candidate of a request, since the sequence
    is fused with each candidate): meant for the recent, real-time part of a
    history (Pinterest feeds it the last 100 actions), as the quadratic
    attention of any transformer. Padding on either side gives the same
    prediction; an all-padding or empty history a finite one.

    Args:
        schema: the `SequenceSchema` of the data.
        embedding_dim: size of each field's embedding.
        num_layers: transformer blocks.
        num_heads: attention heads (must divide twice an event's width).
        feedforward_dim: hidden size of each block's feed-forward network.
        recent_k: how many of the most recent outputs enter the tower.
        max_pool: also feed the tower the projected max-pool of the outputs.
        transformer_dropout: dropout in the transformer blocks.
        mlp_units: hidden sizes of the tower.
        mlp_activation: `"prelu"`, `"dice"` or any Keras activation.
        input_batch_norm: batch-normalise the tower input (True here, unlike
            the other models: the encoder's layer-normalised outputs are two
            orders of magnitude larger than the target's embedding).
        dropout: dropout in the tower.
        l2: L2 penalty on every non-embedding kernel.
        tower: `"mlp"`, `"dcnv2"` (the paper's tower) or `"finalmlp"` (see `DIN`).

    Example:

    >>> schema = keras_lsrec.data.SequenceSchema({"item": 100, "category": 10}, 50)
    >>> model = TransAct(schema, embedding_dim=8)
    >>> model.compile(optimizer="adam", loss="binary_crossentropy")

    Reference:
        Xia et al., "TransAct: Transformer-based Realtime User Action Model
        for Recommendation at Pinterest", KDD 2023.
    """

    INPUT_FORMS = (ROW, CANDIDATES)
    # The encoder's layer-normalised outputs are ~100x the embeddings in scale (row norms ~19
    # against ~0.2 at initialisation) and drown the target in the tower: batch-normalising the
    # tower input lifted the test AUC from 0.556 to 0.654 on ml-llo and from 0.495 to 0.520
    # on synthetic200 (quick budget, 1 seed; docs/benchmarks.md).
    OWN_TOWER_DEFAULTS = {"input_batch_norm": True}

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "embedding_dim": ("choice", [8, 16, 32]),
        "num_layers": ("choice", [1, 2]),
        "num_heads": ("choice", [1, 2]),
        "feedforward_dim": ("choice", [64, 128, 256]),
        "recent_k": ("choice", [1, 5, 10]),
        "transformer_dropout": ("choice", [0.0, 0.1]),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        embedding_dim: int = 16,
        num_layers: int = 1,
        num_heads: int = 1,
        feedforward_dim: int = 128,
        recent_k: int = 1,
        max_pool: bool = True,
        transformer_dropout: float = 0.0,
        mlp_units: Sequence[int] = (200, 80),
        mlp_activation: str = "prelu",
        input_batch_norm: bool = True,
        dropout: float = 0.0,
        l2: float = 0.0,
        tower: str = "mlp",
        **kwargs: Any,
    ) -> None:
        check_positive(embedding_dim=embedding_dim)
        inputs = schema.inputs()
        target_ids, history_ids, mask = split_inputs(inputs, schema)
        embedding = item_embedding(schema, embedding_dim)
        target = embedding(target_ids)
        history = embedding(history_ids)
        encoded = TransActEncoder(
            num_layers=num_layers,
            num_heads=num_heads,
            feedforward_dim=feedforward_dim,
            recent_k=recent_k,
            max_pool=max_pool,
            dropout=transformer_dropout,
            kernel_regularizer=kernel_regularizer(l2),
            name="transformer",
        )(early_fusion(target, history), mask=mask)
        tower_args = (mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower)
        features = ops.concatenate([target, ops.cast(encoded, target.dtype)], axis=-1)
        outputs = predict_clicks(make_tower(*tower_args), features, inputs, schema)
        super().__init__(schema=schema, inputs=inputs, outputs=outputs, **kwargs)
