"""keras-tuner HyperModels for every model of the zoo (needs the `tuning` extra).

Each model class declares its own knobs as data (`Model.SEARCH_SPACE`, next
to its constructor); the training knobs every model shares (learning rate,
batch size) are declared here, once. `hypermodel(name, schema, **fixed)`
turns both into a `keras_tuner.HyperModel`; `fixed` pins any knob.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras

from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.losses import CandidateSetLoss
from keras_lsrec.metrics import CandidateSetAUC
from keras_lsrec.models import get as get_model

if TYPE_CHECKING:
    import keras_tuner

TRAINING_SPACE: dict[str, tuple] = {
    "learning_rate": ("log", 1e-4, 1e-2),
    "batch_size": ("choice", [256, 512, 1024, 2048]),
}


def _encode(value: Any) -> Any:
    """keras-tuner choices hold int/float/str/bool: tuples become '200-80'."""
    return "-".join(str(v) for v in value) if isinstance(value, (tuple, list)) else value


def _decode(value: Any, values: list) -> Any:
    for candidate in values:
        if _encode(candidate) == value:
            return candidate
    return value


def search_space(name: str) -> dict[str, tuple]:
    """The model's knobs followed by the training knobs."""
    return {**get_model(name).SEARCH_SPACE, **TRAINING_SPACE}


def _sample(hp: Any, knob: str, spec: tuple) -> Any:
    kind = spec[0]
    if kind == "choice":
        return _decode(hp.Choice(knob, [_encode(v) for v in spec[1]]), spec[1])
    if kind == "int":
        return hp.Int(knob, spec[1], spec[2])
    if kind == "log":
        return hp.Float(knob, spec[1], spec[2], sampling="log")
    if kind == "bool":
        return hp.Boolean(knob)
    raise ValueError(f"Unknown search-space kind {kind!r} for `{knob}`")


def hypermodel(
    name: str, schema: SequenceSchema, objective_metric: str = "auc", **fixed: Any
) -> keras_tuner.HyperModel:
    """A `keras_tuner.HyperModel` over model `name`'s knobs.

    `build(hp)` samples every knob of `search_space(name)` not in `fixed`,
    builds the model and compiles it with Adam(learning_rate), binary
    cross-entropy and `keras.metrics.AUC(name="auc")` (for a schema with
    candidates: `CandidateSetLoss()` and `CandidateSetAUC`), so the tuner objective
    is `"val_auc"` (direction max). `fit` trains with the sampled (or fixed)
    `batch_size`. Pinned knobs are not searched and show in each trial as
    fixed values.

    The hypermodel knows what its trials report before any runs:
    `metric_names` is `("loss", objective_metric)`, and
    `objective_names(hypermodel)` / `check_objective(hypermodel, objective)`
    turn that into the names a tuner objective may take (a typo such as
    `"val_acu"` is refused before the first trial). After trials ran,
    `reported_metrics` holds the names their `fit` histories did report.

    Example:

    >>> import keras_tuner
    >>> tuner = keras_tuner.RandomSearch(
    ...     hypermodel("dare", schema, k=20), objective=keras_tuner.Objective("val_auc", "max"),
    ...     max_trials=20, directory="sweeps", project_name="dare")
    >>> tuner.search(x, y, validation_data=(vx, vy), epochs=2)
    """
    import keras_tuner

    cls = get_model(name)
    space = search_space(name)
    unknown = sorted(set(fixed) - set(space) - set(_constructor_args(cls)))
    if unknown:
        raise ValueError(f"Unknown knobs for {cls.__name__}: {unknown}. Searchable: {sorted(space)}")

    class SequenceHyperModel(keras_tuner.HyperModel):
        # What `build` compiles (the loss and the AUC): the names every trial reports.
        metric_names = ("loss", objective_metric)

        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.reported_metrics: set[str] = set()  # what the trials' `fit` logs did hold

        def build(self, hp: Any) -> keras.Model:
            values: dict[str, Any] = {}
            for knob, spec in space.items():
                if knob in fixed:
                    value = fixed[knob]
                    if isinstance(value, (bool, int, float, str)):
                        hp.Fixed(knob, value)
                    values[knob] = value
                else:
                    values[knob] = _sample(hp, knob, spec)
            model_args = {k: v for k, v in values.items() if k not in TRAINING_SPACE}
            extra = {k: v for k, v in fixed.items() if k not in space}
            model = cls(schema, **model_args, **extra)
            loss: str | keras.losses.Loss
            if schema.has_candidates:  # list-wise: missing candidates (-1) skipped
                loss, auc = CandidateSetLoss(), CandidateSetAUC(name=objective_metric)
            else:
                loss, auc = "binary_crossentropy", keras.metrics.AUC(name=objective_metric)
            model.compile(optimizer=keras.optimizers.Adam(values["learning_rate"]), loss=loss, metrics=[auc])
            return model

        def fit(self, hp: Any, model: keras.Model, *args: Any, **kwargs: Any) -> Any:
            batch_size = fixed.get("batch_size") or hp.get("batch_size")
            kwargs.setdefault("batch_size", batch_size)
            history = model.fit(*args, **kwargs)
            self.reported_metrics.update(getattr(history, "history", None) or {})
            return history

    return SequenceHyperModel(name=cls.__name__.lower())


def objective_names(hypermodel: Any, validation: bool = True) -> list[str] | None:
    """The metric names the trials of `hypermodel` report, so a tuner objective may take.

    The compiled metrics (`hypermodel.metric_names`, set by `hypermodel()`)
    and, with `validation=True` (trials fitted with `validation_data`), each
    with the `"val_"` prefix. `None` when the hypermodel does not declare its
    metrics (one not made by `hypermodel()`): then they cannot be known
    before a trial runs.
    """
    names = getattr(hypermodel, "metric_names", None)
    if names is None:
        return None
    return sorted({*names, *(f"val_{name}" for name in names if validation)})


def check_objective(hypermodel: Any, objective: Any, validation: bool = True) -> None:
    """Refuses an objective that no trial of `hypermodel` would report, before any trial runs.

    `objective` is a name, a `keras_tuner.Objective` or a list of either.
    Raises `ValueError` naming the objective, the metrics the trials report
    and the closest of them (`"val_acu"`: did you mean `"val_auc"`?). Does
    nothing when the hypermodel's metrics cannot be known in advance
    (`objective_names` is `None`).
    """
    names = objective_names(hypermodel, validation)
    if names is None:
        return
    several = isinstance(objective, Sequence) and not isinstance(objective, str)
    objectives = objective if several else [objective]
    for item in objectives:
        name = getattr(item, "name", item)
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            where = "" if validation else " (without validation data: no 'val_' metrics)"
            raise ValueError(
                f"Objective {name!r} is not a metric the trials report{where}: they report {names}.{hint}"
            )


def _constructor_args(cls: type[keras.Model]) -> list[str]:
    import inspect

    return [p for p in inspect.signature(cls.__init__).parameters if p not in ("self", "schema", "kwargs")]


__all__ = ["TRAINING_SPACE", "check_objective", "hypermodel", "objective_names", "search_space"]
