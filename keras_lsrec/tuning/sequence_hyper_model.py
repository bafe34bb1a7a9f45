"""`SequenceHyperModel`: a keras-tuner HyperModel over one registered model (needs the `tuning` extra).

This module imports keras_tuner; `keras_lsrec.tuning.hypermodel(name, schema)`
is the entry point, and imports it only when called.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
import keras_tuner

from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.losses import CandidateSetLoss
from keras_lsrec.metrics import CandidateSetAUC
from keras_lsrec.models import get as get_model
from keras_lsrec.tuning.search_spaces import (
    TRAINING_SPACE,
    check_fixed,
    constructor_args,
    encode_choice,
    sample,
    search_space,
)


class SequenceHyperModel(keras_tuner.HyperModel):
    """A `keras_tuner.HyperModel` over the knobs of model `model_name`.

    `build(hp)` samples every knob of `search_space(model_name)` not in
    `fixed`, builds the model on `schema` and compiles it with
    Adam(learning_rate), binary cross-entropy and
    `keras.metrics.AUC(name=objective_metric)` (for a schema with candidates:
    `CandidateSetLoss()` and `CandidateSetAUC`). `fit` trains with the
    sampled (or fixed) `batch_size`. Pinned knobs are not searched and show in
    each trial as fixed values (a sequence as `"200-80"`); a pinned
    constructor argument outside the search space is passed on as is.

    Pinned values are read by rule when the hypermodel is made
    (`search_spaces.check_fixed`: a numeric string for a float knob is the
    number, as YAML reads `1e-3` as a string; `learning_rate` and
    `batch_size` must be positive), and `check_knobs()` builds one model to
    have the model's constructor check the rest before any trial. A model
    made for clustered histories (`READS_CLUSTERS`, TWIN-V2) is refused on a
    schema without `cluster_sizes`. The Keras distribution in effect when
    the hypermodel is made (`keras.distribution.set_distribution`) applies to
    every trial's model, although keras-tuner clears it before each build.

    Args:
        model_name: a `keras_lsrec.models.get` name.
        schema: the `SequenceSchema` every trial's model is built on.
        objective_metric: the name of the compiled AUC.
        fixed: knob -> value pinned in every trial.
        **kwargs: `keras_tuner.HyperModel`'s (`name`, `tunable`).

    Attributes:
        metric_names: `("loss", objective_metric)`: what every trial reports,
            known before any runs (`keras_lsrec.tuning.objective_names`).
        reported_metrics: the names the trials' `fit` histories did report.
    """

    def __init__(
        self,
        model_name: str,
        schema: SequenceSchema,
        objective_metric: str = "auc",
        fixed: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(schema, SequenceSchema):
            raise ValueError(
                f"`schema` must be a keras_lsrec.data.SequenceSchema (e.g. `data.schema`). "
                f"Received: `schema={schema!r}`"
            )
        model_class = get_model(model_name)
        space = search_space(model_name)
        fixed = dict(fixed or {})
        unknown = sorted(set(fixed) - set(space) - set(constructor_args(model_class)))
        if unknown:
            raise ValueError(f"Unknown knobs for {model_name!r}: {unknown}. Searchable: {sorted(space)}")
        if model_class.READS_CLUSTERS and not schema.cluster_sizes:
            raise ValueError(
                f"{model_name!r} is made for histories clustered in the data path (`READS_CLUSTERS`), but "
                "the schema has `cluster_sizes=False`: every trial would train it on the raw histories "
                "(each event a cluster of one). Cluster the data first (`keras_lsrec.data.cluster_histories`"
                ", or `SyntheticData.clustered()`; the schema then has `cluster_sizes=True`)."
            )
        fixed = check_fixed(fixed, space, model_class)
        super().__init__(**kwargs)
        self.model_class = model_class
        self.schema = schema
        self.space = space
        self.fixed = fixed
        # The distribution in effect now (`keras.distribution.set_distribution`, e.g. the sweep's
        # --mesh): keras-tuner's `clear_session()` before each trial's build drops it, so `build`
        # sets it again; otherwise every trial would run on one device, unsharded, without a word.
        self.distribution = keras.distribution.distribution()
        # What `build` compiles (the loss and the AUC): the names every trial reports.
        self.metric_names = ("loss", objective_metric)
        self.reported_metrics: set[str] = set()

    def build(self, hp: Any) -> keras.Model:
        if self.distribution is not None and keras.distribution.distribution() is None:
            keras.distribution.set_distribution(self.distribution)
        values: dict[str, Any] = {}
        for knob, spec in self.space.items():
            if knob in self.fixed:
                value = self.fixed[knob]
                # Recorded in the trial, so results tables show what ran: a sequence as
                # keras-tuner's choices hold it ("200-80").
                hp.Fixed(knob, encode_choice(value))
                values[knob] = value
            else:
                values[knob] = sample(hp, knob, spec)
        model_args = {k: v for k, v in values.items() if k not in TRAINING_SPACE}
        extra = {k: v for k, v in self.fixed.items() if k not in self.space}
        for knob, value in extra.items():
            hp.Fixed(knob, encode_choice(value))
        model = self.model_class(self.schema, **model_args, **extra)
        objective_metric = self.metric_names[1]
        loss: str | keras.losses.Loss
        auc: keras.metrics.Metric
        if self.schema.has_candidates:  # list-wise: missing candidates (-1) skipped
            loss, auc = CandidateSetLoss(), CandidateSetAUC(name=objective_metric)
        else:
            loss, auc = "binary_crossentropy", keras.metrics.AUC(name=objective_metric)
        model.compile(optimizer=keras.optimizers.Adam(values["learning_rate"]), loss=loss, metrics=[auc])
        return model

    def check_knobs(self) -> None:
        """Builds one model with the pinned knobs (every searched knob at its first value), so that a
        pinned value the model refuses is refused now, before any trial: `ValueError` naming it."""
        try:
            self.build(keras_tuner.HyperParameters())
        except (TypeError, ValueError) as error:
            name = getattr(self.model_class, "__name__", self.name)
            raise ValueError(f"a pinned knob is refused by {name}: {error}") from None
        finally:
            keras.backend.clear_session()  # as keras-tuner does before each trial's build

    def fit(self, hp: Any, model: keras.Model, *args: Any, **kwargs: Any) -> Any:
        batch_size = self.fixed["batch_size"] if "batch_size" in self.fixed else hp.get("batch_size")
        kwargs.setdefault("batch_size", batch_size)
        history = model.fit(*args, **kwargs)
        self.reported_metrics.update(getattr(history, "history", None) or {})
        return history
