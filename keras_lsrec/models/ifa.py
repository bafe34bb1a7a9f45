"""IFA: a whole candidate set scored against the full sequence with linear cross attention."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import SequenceSchema, history_key, target_key
from keras_lsrec.layers.candidate_set_attention import CandidateSetAttention
from keras_lsrec.layers.id_match_attention import IdMatchAttention
from keras_lsrec.layers.linear_cross_attention import LinearCrossAttention
from keras_lsrec.models.base import CANDIDATES, SequenceModel
from keras_lsrec.models.wiring import (
    item_embedding,
    kernel_regularizer,
    make_tower,
    predict_clicks,
    split_inputs,
    tower_input,
)
from keras_lsrec.validation import check_choice, check_positive


@keras_lsrec_export
class IFA(SequenceModel):
    """Interaction Fidelity Attention: every candidate of a request reads every behaviour.

    Needs a schema with `candidates` (`C` or `"variable"`): a row is one
    request, `target_<f>` `(B, C)`, id 0 marking a missing candidate. One
    embedding table per field (item, category, ..., time) embeds candidates
    and behaviours alike. `LinearCrossAttention` computes each user's
    summaries `K^T V`, `K^T 1` once over the WHOLE sequence and every candidate
    reads them (O((L + C) d^2), nothing searched away); the candidate feature
    is `[e_j, o_j, e_j * o_j]` (target, interest, and the target-aware product
    with `target_representation=True`), then for every field `f` of
    `match_fields` the read of an `IdMatchAttention`: the mean embedding of
    the behaviours whose id in `f` equals the candidate's, and the log of
    their number (linear attention with an exact-match kernel, O(L + C)).
    With `candidate_attention=True`, a
    `CandidateSetAttention` block relates the candidates of the request to
    each other before the tower, so a candidate's score can depend on what it
    is shown with. The tower scores every candidate; the output is P(click)
    `(B, C)`, exactly 0 for a missing candidate.

    Train it with `keras_lsrec.losses.CandidateSetLoss` (point-wise BCE plus a
    list-wise softmax cross-entropy over each request), labels `(B, C)` with
    -1 for missing candidates.

    With `candidate_attention=False` a candidate's score does not depend on the
    other candidates: scoring C at once equals scoring each alone.

    Design note: only IFA's abstract is public; this architecture is ours
    (docs/ifa.md).

    Args:
        schema: a `SequenceSchema` with `candidates`.
        embedding_dim: size of each field's embedding.
        num_heads, key_dim, value_dim, feature_map, random_features: the
            `LinearCrossAttention` (`feature_map="favor"`: softmax attention
            through random features).
        candidate_attention: relate the candidates with `CandidateSetAttention`.
        candidate_heads, candidate_key_dim: its heads and head size.
        mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower: the tower
            (see `DIN`), applied to every candidate.
        target_representation: add `e_j * o_j` to the candidate feature.
        match_fields: the id fields read by an `IdMatchAttention` each
            (`()`: none). The default, `("category",)`, was chosen by
            measurement (docs/benchmarks.md, "IFA on candidate sets"): the
            learned kernel alone cannot match ids sharply, and scored
            0.56-0.74 AUC where the two-stage models score 0.78.
        match_buckets: at most this many hash buckets per match field
            (`id mod buckets`); a field with a smaller vocabulary is matched
            exactly. The per-user summaries hold `buckets x d` floats.

    Example:

    >>> schema = keras_lsrec.data.SequenceSchema({"item": 100, "category": 10}, 1000, candidates=50)
    >>> model = IFA(schema, embedding_dim=8)
    >>> model.compile(optimizer="adam", loss=keras_lsrec.losses.CandidateSetLoss())

    Reference:
        Yu et al., "IFA: Interaction Fidelity Attention for Entire Lifelong
        Behaviour Sequence Modeling", arXiv 2406.09742, 2024.
    """

    SEARCH_SPACE = {
        **SequenceModel.SEARCH_SPACE,
        "embedding_dim": ("choice", [8, 16, 32]),
        "num_heads": ("choice", [1, 2, 4]),
        "key_dim": ("choice", [8, 16, 32]),
        "feature_map": ("choice", ["elu_plus_one", "relu", "favor"]),
        "candidate_attention": ("bool",),
    }
    INPUT_FORMS = (CANDIDATES,)
    # Saved before the match reads existed: no `match_fields`.
    SAVED_BEFORE = {"match_fields": ()}

    def __init__(
        self,
        schema: SequenceSchema,
        embedding_dim: int = 16,
        num_heads: int = 2,
        key_dim: int = 16,
        value_dim: int | None = None,
        feature_map: str = "elu_plus_one",
        random_features: int = 64,
        candidate_attention: bool = True,
        candidate_heads: int = 2,
        candidate_key_dim: int = 16,
        mlp_units: Sequence[int] = (200, 80),
        mlp_activation: str = "prelu",
        input_batch_norm: bool = False,
        dropout: float = 0.0,
        l2: float = 0.0,
        target_representation: bool = True,
        match_fields: Sequence[str] = ("category",),
        match_buckets: int = 4096,
        tower: str = "mlp",
        **kwargs: Any,
    ) -> None:
        check_positive(embedding_dim=embedding_dim, match_buckets=match_buckets)
        match_fields = (match_fields,) if isinstance(match_fields, str) else tuple(match_fields)
        for field in match_fields:
            check_choice("match_fields", field, tuple(schema.fields))
        if len(set(match_fields)) < len(match_fields):
            raise ValueError(f"`match_fields` names a field twice. Received: match_fields={match_fields!r}")
        regularizer = kernel_regularizer(l2)
        inputs = schema.inputs()
        target_ids, history_ids, mask = split_inputs(inputs, schema)
        candidate_mask = ops.not_equal(inputs[target_key("item")], 0)
        embedding = item_embedding(schema, embedding_dim)
        candidates, history = embedding(target_ids), embedding(history_ids)
        interest = LinearCrossAttention(
            num_heads=num_heads,
            key_dim=key_dim,
            value_dim=value_dim,
            feature_map=feature_map,
            random_features=random_features,
            kernel_regularizer=regularizer,
            name="cross_attention",
        )(candidates, history, mask=mask)
        features = tower_input(candidates, interest, target_representation)
        matches = [
            IdMatchAttention(min(schema.vocab_sizes[field], match_buckets), name=f"match_{field}")(
                inputs[target_key(field)], inputs[history_key(field)], history, mask=mask
            )
            for field in match_fields
        ]
        if matches:
            features = ops.concatenate([features, *matches], axis=-1)
        if candidate_attention:
            features = CandidateSetAttention(
                num_heads=candidate_heads,
                key_dim=candidate_key_dim,
                kernel_regularizer=regularizer,
                name="candidate_attention",
            )(features, mask=candidate_mask)
        tower_args = (mlp_units, mlp_activation, input_batch_norm, dropout, l2, tower)
        outputs = predict_clicks(make_tower(*tower_args), features, inputs, schema)
        super().__init__(schema=schema, inputs=inputs, outputs=outputs, **kwargs)
