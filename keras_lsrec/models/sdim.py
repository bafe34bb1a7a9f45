"""SDIM: behaviours whose SimHash collides with the target's, averaged over hashes; O(L), no top-k."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.layers.sim_hash import CollisionPooling
from keras_lsrec.models.base import CANDIDATES, ROW, SequenceModel
from keras_lsrec.models.wiring import (
    item_embedding,
    make_tower,
    predict_clicks,
    search_inputs,
    split_inputs,
    tower_input,
)
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class SDIM(SequenceModel):
    """Sampling-based deep interest modeling: attention replaced by hash collisions.

    The whole sequence is read through `CollisionPooling`: for each of
    `num_hashes` SimHash functions of `num_bits` bits, the valid behaviours
    whose code equals the target's are averaged, and the averages are
    averaged over the hashes, which approximates target attention under an
    angular kernel at O(L) with no top-k. The behaviours' codes do not depend
    on the target (computed once per row, once per request for a candidate
    set). The tower scores `[e_t, h, e_t * h]`.

    Args:
        schema: the `SequenceSchema` of the data.
        embedding_dim: size of each field's embedding.
        num_hashes: hash functions (the paper: 48).
        num_bits: bits per hash (the paper: 3).
        seed: seed of the hash projections.
        hash_position: whether the hashes read the whole event embedding,
            its `time` block (reverse position / time gap) included; `False`
            (default) hashes the item's content only (`item_content`: its
            ids and item features), as the paper hashes the behaviour's item,
            and averages the whole embeddings. A `.keras` file saved before
            this argument existed loads with `True`, as it was trained.
        mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower: the tower
            (see `DIN`).

    Reference:
        Cao et al., "Sampling Is All You Need on Modeling Long-Term User
        Behaviors for CTR Prediction", CIKM 2022.
    """

    # One target per row, or a candidate set per row (the request form: `request_form`).
    INPUT_FORMS = (ROW, CANDIDATES)
    # Saved before `hash_position` existed: the hashes read the whole embedding.
    SAVED_BEFORE = {"hash_position": True}

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "embedding_dim": ("choice", [8, 16, 32]),
        "num_hashes": ("choice", [16, 48, 96]),
        "num_bits": ("choice", [2, 3, 4]),
    }

    def __init__(
        self,
        schema: SequenceSchema,
        embedding_dim: int = 16,
        num_hashes: int = 48,
        num_bits: int = 3,
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
        check_positive(embedding_dim=embedding_dim, num_hashes=num_hashes, num_bits=num_bits)
        inputs = schema.inputs()
        target_ids, history_ids, mask = split_inputs(inputs, schema)
        embedding = item_embedding(schema, embedding_dim)
        target = embedding(target_ids)
        history = embedding(history_ids)
        query, keys = search_inputs(target, history, schema, embedding_dim, hash_position)
        interest = CollisionPooling(num_bits, num_hashes, seed, name="sampling")(
            query, keys, history, mask=mask
        )
        tower_args = (mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower)
        outputs = predict_clicks(make_tower(*tower_args), tower_input(target, interest, True), inputs, schema)
        super().__init__(schema=schema, inputs=inputs, outputs=outputs, **kwargs)
