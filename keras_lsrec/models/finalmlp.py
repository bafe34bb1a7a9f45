"""FinalMLP: two gated MLP streams over the target, the user's features and the pooled history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.models.base import CANDIDATES, ROW, SequenceModel
from keras_lsrec.models.wiring import pooled_history_model
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class FinalMLP(SequenceModel):
    """FinalMLP over a pooled history: the two-stream MLP baseline the
    long-sequence models are ranked against.

    No attention: the history enters as the masked mean of its events'
    embeddings (0 for an empty history). The tower input is
    `[target, pooled history]` plus the schema's per-row (user, context)
    features, and the tower is FinalMLP's (`FinalMLPTower`): two MLP streams
    (`mlp_units` and `stream2_units`), each behind its own feature gate
    `2 * sigmoid(MLP(context)) * x` (`gate_units`, a learned context), fused
    by `num_heads`-head bilinear interaction aggregation
    `x w_1 + y w_2 + sum_h x_h^T W_h y_h` into the logit. Cost O(L d) per row
    for the pooling; the streams' cost per target, whatever L.

    Args:
        schema: the `SequenceSchema` of the data.
        embedding_dim: size of each field's embedding.
        stream2_units: hidden sizes of the second stream (`None`: `mlp_units`).
        gate_units: hidden sizes of each stream's gate.
        num_heads: heads of the bilinear fusion (it must divide the last size
            of both streams).
        mlp_units, mlp_activation, input_batch_norm, dropout, l2: the first
            stream (both streams' activation and dropout) and the tower (see `DIN`).
        tower: `"finalmlp"`; another tower (`"mlp"`, `"dcnv2"`) on the same
            pooled input ignores the three FinalMLP arguments.

    Example:

    >>> schema = keras_lsrec.data.SequenceSchema({"item": 100, "category": 10}, 50)
    >>> model = FinalMLP(schema, embedding_dim=8, num_heads=2)
    >>> model.compile(optimizer="adam", loss="binary_crossentropy")

    Reference:
        Mao et al., "FinalMLP: An Enhanced Two-Stream MLP Model for CTR
        Prediction", AAAI 2023.
    """

    INPUT_FORMS = (ROW, CANDIDATES)
    OWN_TOWER_DEFAULTS = {"tower": "finalmlp"}

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "embedding_dim": ("choice", [8, 16, 32]),
        "stream2_units": ("choice", [None, (400, 200), (128, 64)]),
        "gate_units": ("choice", [(64,), (128, 64)]),
        "num_heads": ("choice", [1, 2]),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        embedding_dim: int = 16,
        stream2_units: Sequence[int] | None = None,
        gate_units: Sequence[int] = (64,),
        num_heads: int = 1,
        mlp_units: Sequence[int] = (200, 80),
        mlp_activation: str = "prelu",
        input_batch_norm: bool = False,
        dropout: float = 0.0,
        l2: float = 0.0,
        tower: str = "finalmlp",
        **kwargs: Any,
    ) -> None:
        check_positive(embedding_dim=embedding_dim, num_heads=num_heads)
        options = {"stream2_units": stream2_units, "gate_units": gate_units, "num_heads": num_heads}
        tower_args = (mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower)
        inputs, outputs = pooled_history_model(
            schema, embedding_dim, tower_args, options if tower == "finalmlp" else None
        )
        super().__init__(schema=schema, inputs=inputs, outputs=outputs, **kwargs)
