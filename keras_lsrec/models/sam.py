"""SAM: iterative memory over the whole behaviour sequence, O(L)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.layers.sparse_attentive_memory import SparseAttentiveMemory
from keras_lsrec.models.base import CANDIDATES, ROW, SequenceModel
from keras_lsrec.models.wiring import (
    item_embedding,
    kernel_regularizer,
    make_tower,
    predict_clicks,
    split_inputs,
)
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class SAM(SequenceModel):
    """Sparse Attentive Memory network: every behaviour read, a constant number of steps.

    One embedding table per field (item, category, ..., time); the target's
    embedding initialises a memory that `SparseAttentiveMemory` refines over
    `num_passes` point-wise dual-query passes through the WHOLE sequence
    (nothing is searched away), then optionally enhances. The tower scores
    `[target, memories]`. Cost O(num_passes * L) per row, with no top-k.

    Defaults chosen by measurement (bench/quality.py, 3 seeds, quickstart
    budget; docs/benchmarks.md "Model quality and the defaults"): the
    paper's settings (an `(8,)` sigmoid scorer, sigmoid weights) held SAM at
    AUC 0.53-0.57 on the synthetic long-range data, where DIN reaches 0.76;
    a DIN-sized ReLU scorer with softmax weights reaches 0.76 there, and is
    the best SAM without tower BatchNorm on MovieLens leave-last-out (0.676;
    DIN 0.710). The paper's form is `SAM(schema, attention_units=(8,),
    attention_activation="sigmoid", normalizer="sigmoid")`.

    Args:
        schema: the `SequenceSchema` of the data.
        embedding_dim: size of each field's embedding.
        num_passes: memory passes (paper and default: 3).
        normalizer: `"softmax"` (default) or `"sigmoid"` (the paper's)
            attention weights.
        attention_units: hidden sizes of each pass's scorer. Default
            `(80, 40)`, DIN's activation-unit size; the released code uses
            `(8,)`.
        attention_activation: their activation (default `"relu"`; the
            released code: `"sigmoid"`).
        feed_memory: query each pass with the previous pass's memory (the
            paper); `False` reproduces the released code's default mode.
        enhance_steps: steps of the memory enhancement; 0 turns it off.
        mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower: the tower
            (see `DIN`).

    Example:

    >>> schema = keras_lsrec.data.SequenceSchema({"item": 100, "category": 10}, 1000)
    >>> model = SAM(schema, embedding_dim=8, num_passes=2)
    >>> model.compile(optimizer="adam", loss="binary_crossentropy")

    Reference:
        Lin et al., "Sparse Attentive Memory Network for Click-through Rate
        Prediction with Long Sequences", CIKM 2022.
    """

    # One target per row, or a candidate set per row (the request form: `request_form`).
    INPUT_FORMS = (ROW, CANDIDATES)

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "embedding_dim": ("choice", [8, 16, 32]),
        "num_passes": ("int", 1, 4),
        "normalizer": ("choice", ["sigmoid", "softmax"]),
        "enhance_steps": ("choice", [0, 3]),
        "feed_memory": ("bool",),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        embedding_dim: int = 16,
        num_passes: int = 3,
        normalizer: str = "softmax",
        attention_units: Sequence[int] = (80, 40),
        attention_activation: str = "relu",
        feed_memory: bool = True,
        enhance_steps: int = 3,
        mlp_units: Sequence[int] = (200, 80),
        mlp_activation: str = "prelu",
        input_batch_norm: bool = False,
        dropout: float = 0.0,
        l2: float = 0.0,
        tower: str = "mlp",
        **kwargs: Any,
    ) -> None:
        check_positive(embedding_dim=embedding_dim, num_passes=num_passes)
        inputs = schema.inputs()
        target_ids, history_ids, mask = split_inputs(inputs, schema)
        embedding = item_embedding(schema, embedding_dim)
        target = embedding(target_ids)
        memories = SparseAttentiveMemory(
            num_passes=num_passes,
            normalizer=normalizer,
            hidden_units=attention_units,
            activation=attention_activation,
            feed_memory=feed_memory,
            enhance_steps=enhance_steps,
            kernel_regularizer=kernel_regularizer(l2),
            name="memory",
        )(target, embedding(history_ids), mask=mask)
        tower_args = (mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower)
        outputs = predict_clicks(
            make_tower(*tower_args), keras.ops.concatenate([target, memories], axis=-1), inputs, schema
        )
        super().__init__(schema=schema, inputs=inputs, outputs=outputs, **kwargs)
