"""keras-tuner HyperModels for every model of the zoo (needs the `tuning` extra).

Each model class declares its own knobs as data (`Model.SEARCH_SPACE`, next
to its constructor); the training knobs every model shares (learning rate,
batch size) are declared once (`TRAINING_SPACE`, keras_lsrec/tuning/search_spaces.py).
`hypermodel(name, schema, **fixed)` turns both into a `keras_tuner.HyperModel`
(keras_lsrec/tuning/sequence_hyper_model.py); `fixed` pins any knob.
`objective_names` / `check_objective` say which objectives its trials can
report (keras_lsrec/tuning/objectives.py). Importing this package does not
import keras_tuner; `hypermodel` does. The same hypermodels run on Optuna
with `keras_lsrec.tuning.optuna_engine.OptunaTuner` (journal file or
database, re-run of a dead worker's trial, per-epoch pruning).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keras_lsrec.data.schema import SequenceSchema
from keras_lsrec.tuning.objectives import check_objective, objective_names
from keras_lsrec.tuning.search_spaces import TRAINING_SPACE, search_space

if TYPE_CHECKING:
    from keras_lsrec.tuning.sequence_hyper_model import SequenceHyperModel


def hypermodel(
    name: str, schema: SequenceSchema, objective_metric: str = "auc", **fixed: Any
) -> SequenceHyperModel:
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
    from keras_lsrec.tuning.sequence_hyper_model import SequenceHyperModel

    return SequenceHyperModel(name, schema, objective_metric, fixed, name=str(name).lower())


__all__ = ["TRAINING_SPACE", "check_objective", "hypermodel", "objective_names", "search_space"]
