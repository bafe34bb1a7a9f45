"""What a tuner objective may name: the metrics a hypermodel's trials report, known before any trial."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any


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
