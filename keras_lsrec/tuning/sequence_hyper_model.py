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
from keras_lsrec.tuning.search_spaces import TRAINING_SPACE, constructor_args, sample, search_space


class SequenceHyperModel(keras_tuner.HyperModel):
    """A `keras_tuner.HyperModel` over the knobs of model `model_name`.

    `build(hp)` samples every knob of `search_space(model_name)` not in
    `fixed`, builds the model on `schema` and compiles it with
    Adam(learning_rate), binary cross-entropy and
    `keras.metrics.AUC(name=objective_metric)` (for a schema with candidates:
    `CandidateSetLoss()` and `CandidateSetAUC`). `fit` trains with the
    sampled (or fixed) `batch_size`. Pinned knobs are not searched and show in
    each trial as fixed values; a pinned constructor argument outside the
    search space is passed on as is.

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
        model_class = get_model(model_name)
        space = search_space(model_name)
        fixed = dict(fixed or {})
        unknown = sorted(set(fixed) - set(space) - set(constructor_args(model_class)))
        if unknown:
            raise ValueError(f"Unknown knobs for {model_name!r}: {unknown}. Searchable: {sorted(space)}")
        super().__init__(**kwargs)
        self.model_class = model_class
        self.schema = schema
        self.space = space
        self.fixed = fixed
        # What `build` compiles (the loss and the AUC): the names every trial reports.
        self.metric_names = ("loss", objective_metric)
        self.reported_metrics: set[str] = set()

    def build(self, hp: Any) -> keras.Model:
        values: dict[str, Any] = {}
        for knob, spec in self.space.items():
            if knob in self.fixed:
                value = self.fixed[knob]
                if isinstance(value, (bool, int, float, str)):
                    hp.Fixed(knob, value)
                values[knob] = value
            else:
                values[knob] = sample(hp, knob, spec)
        model_args = {k: v for k, v in values.items() if k not in TRAINING_SPACE}
        extra = {k: v for k, v in self.fixed.items() if k not in self.space}
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

    def fit(self, hp: Any, model: keras.Model, *args: Any, **kwargs: Any) -> Any:
        batch_size = self.fixed.get("batch_size") or hp.get("batch_size")
        kwargs.setdefault("batch_size", batch_size)
        history = model.fit(*args, **kwargs)
        self.reported_metrics.update(getattr(history, "history", None) or {})
        return history
