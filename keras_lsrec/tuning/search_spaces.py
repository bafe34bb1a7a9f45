"""Search spaces: each model's knobs (`Model.SEARCH_SPACE`) and the training knobs every model shares.

A space maps a knob to its kind: `("choice", values)`, `("int", low, high)`,
`("log", low, high)` or `("bool",)`. The model knobs are declared as data on
each model class, next to its constructor; the training knobs (learning
rate, batch size) once, here.
"""

from __future__ import annotations

import inspect
from typing import Any

from keras_lsrec.models import ModelClass
from keras_lsrec.models import get as get_model

TRAINING_SPACE: dict[str, tuple] = {
    "learning_rate": ("log", 1e-4, 1e-2),
    "batch_size": ("choice", [256, 512, 1024, 2048]),
}


def search_space(name: str) -> dict[str, tuple]:
    """The model's knobs followed by the training knobs."""
    return {**get_model(name).SEARCH_SPACE, **TRAINING_SPACE}


def constructor_args(cls: ModelClass) -> list[str]:
    """The hyper-parameters a model class's constructor takes (not the schema)."""
    return [p for p in inspect.signature(cls).parameters if p not in ("self", "schema", "kwargs")]


def sample(hp: Any, knob: str, spec: tuple) -> Any:
    """The value of `knob` that `hp` (a `keras_tuner.HyperParameters`) draws from `spec`.

    keras-tuner choices hold int, float, str or bool: a tuple choice such as
    `(200, 80)` is offered as `"200-80"` and returned as the tuple.
    """
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


def _encode(value: Any) -> Any:
    """keras-tuner choices hold int/float/str/bool: tuples become '200-80'."""
    return "-".join(str(v) for v in value) if isinstance(value, (tuple, list)) else value


def _decode(value: Any, values: list) -> Any:
    for candidate in values:
        if _encode(candidate) == value:
            return candidate
    return value
