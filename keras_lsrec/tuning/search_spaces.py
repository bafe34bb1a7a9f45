"""Search spaces: each model's knobs (`Model.SEARCH_SPACE`) and the training knobs every model shares.

A space maps a knob to its kind: `("choice", values)`, `("int", low, high)`,
`("log", low, high)` or `("bool",)`. The model knobs are declared as data on
each model class, next to its constructor; the training knobs (learning
rate, batch size) once, here.
"""

from __future__ import annotations

import inspect
import math
import numbers
import re
from collections.abc import Mapping
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
        return _decode(hp.Choice(knob, [encode_choice(v) for v in spec[1]]), spec[1])
    if kind == "int":
        return hp.Int(knob, spec[1], spec[2])
    if kind == "log":
        return hp.Float(knob, spec[1], spec[2], sampling="log")
    if kind == "bool":
        return hp.Boolean(knob)
    raise ValueError(f"Unknown search-space kind {kind!r} for `{knob}`")


def encode_choice(value: Any) -> Any:
    """keras-tuner's hyper-parameters hold int/float/str/bool: a sequence becomes '200-80', anything
    else that is none of those its `str`."""
    if isinstance(value, (tuple, list)):
        return "-".join(str(v) for v in value)
    return value if isinstance(value, (bool, int, float, str)) else str(value)


# A number written as YAML 1.1 (PyYAML) reads a string: `1e-3`, `5E-4`, `1e3` (it wants `1.0e-3`).
_NUMBER = re.compile(r"[-+]?(\d[\d_]*\.?\d*|\.\d+)([eE][-+]?\d+)?")


def is_float_knob(spec: tuple | None, default: Any = None) -> bool:
    """Whether a knob of search-space `spec` (None: outside the space, with constructor default
    `default`) takes a real number: a `("log", ...)` knob, a choice among floats, a float default."""
    if spec is not None:
        return spec[0] == "log" or (
            spec[0] == "choice" and all(isinstance(v, float) for v in spec[1]) and bool(spec[1])
        )
    return isinstance(default, float)


def check_fixed(fixed: Mapping[str, Any], space: Mapping[str, tuple], model_class: Any) -> dict[str, Any]:
    """`fixed` with its values read by rule, or `ValueError` naming the knob and the value.

    - a float knob (`is_float_knob`) given a numeric string takes the number
      (YAML reads `1e-3` as a string) and an int becomes a float;
    - `learning_rate` must be a positive finite number, `batch_size` a
      positive integer (keras-tuner and Keras would otherwise train with
      another value, or fail inside `fit`);
    - every other pinned value is passed to the model's constructor, which
      checks it when the model is built (`SequenceHyperModel.check_knobs`
      builds one before any trial).
    """
    parameters = inspect.signature(model_class).parameters
    checked: dict[str, Any] = {}
    for knob, value in fixed.items():
        spec = space.get(knob)
        default = parameters[knob].default if knob in parameters else None
        if is_float_knob(spec, default):
            if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
                value = float(value.strip().replace("_", ""))
            elif isinstance(value, numbers.Real) and not isinstance(value, bool):
                value = float(value)
        if knob == "learning_rate" and not (isinstance(value, float) and math.isfinite(value) and value > 0):
            raise ValueError(
                f"`learning_rate` must be a positive finite number. Received: `learning_rate={value!r}`"
            )
        if knob == "batch_size" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"`batch_size` must be a positive integer. Received: `batch_size={value!r}`")
        checked[knob] = value
    return checked


def _decode(value: Any, values: list) -> Any:
    for candidate in values:
        if encode_choice(candidate) == value:
            return candidate
    return value
