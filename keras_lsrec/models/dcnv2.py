"""DCNv2: a cross network over the target, the user's features and the pooled history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.layers.dcnv2_tower import STRUCTURES
from keras_lsrec.models.base import CANDIDATES, ROW, SequenceModel
from keras_lsrec.models.wiring import pooled_history_model
from keras_lsrec.validation import check_choice, check_positive


@keras_lsrec_export
class DCNv2(SequenceModel):
    """Deep & Cross Network V2 over a pooled history: the feature-interaction
    baseline the long-sequence models are ranked against.

    No attention: the history enters as the masked mean of its events'
    embeddings (0 for an empty history). The tower input is
    `[target, pooled history]` plus the schema's per-row (user, context)
    features, and the tower is DCNv2's (`DCNv2Tower`): `num_cross_layers`
    cross layers `x_{l+1} = x_0 * (x_l W_l + b_l) + x_l` (full rank, or
    `low_rank`), `"parallel"` to or `"stacked"` under the `mlp_units` MLP,
    then the logit. Cost O(L d) per row for the pooling, O(D^2) per target
    for the cross layers (D the tower input's size), whatever L.

    Args:
        schema: the `SequenceSchema` of the data.
        embedding_dim: size of each field's embedding.
        num_cross_layers: cross layers.
        low_rank: rank of the cross kernels (`None`: full rank).
        structure: `"parallel"` (FuxiCTR's default) or `"stacked"`.
        mlp_units, mlp_activation, input_batch_norm, dropout, l2: the deep
            MLP and the tower (see `DIN`).
        tower: `"dcnv2"`; another tower (`"mlp"`, `"finalmlp"`) on the same
            pooled input ignores the three cross arguments.

    Example:

    >>> schema = keras_lsrec.data.SequenceSchema({"item": 100, "category": 10}, 50)
    >>> model = DCNv2(schema, embedding_dim=8, num_cross_layers=2)
    >>> model.compile(optimizer="adam", loss="binary_crossentropy")

    Reference:
        Wang et al., "DCN V2: Improved Deep & Cross Network and Practical
        Lessons for Web-scale Learning to Rank Systems", WWW 2021.
    """

    INPUT_FORMS = (ROW, CANDIDATES)
    OWN_TOWER_DEFAULTS = {"tower": "dcnv2"}

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "embedding_dim": ("choice", [8, 16, 32]),
        "num_cross_layers": ("choice", [1, 2, 3, 4]),
        "structure": ("choice", list(STRUCTURES)),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        embedding_dim: int = 16,
        num_cross_layers: int = 3,
        low_rank: int | None = None,
        structure: str = "parallel",
        mlp_units: Sequence[int] = (200, 80),
        mlp_activation: str = "prelu",
        input_batch_norm: bool = False,
        dropout: float = 0.0,
        l2: float = 0.0,
        tower: str = "dcnv2",
        **kwargs: Any,
    ) -> None:
        check_positive(embedding_dim=embedding_dim, num_cross_layers=num_cross_layers)
        check_positive(allow_none=True, low_rank=low_rank)
        check_choice("structure", structure, STRUCTURES)
        options = {"num_cross_layers": num_cross_layers, "low_rank": low_rank, "structure": structure}
        tower_args = (mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower)
        inputs, outputs = pooled_history_model(
            schema, embedding_dim, tower_args, options if tower == "dcnv2" else None
        )
        super().__init__(schema=schema, inputs=inputs, outputs=outputs, **kwargs)
