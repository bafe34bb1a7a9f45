"""Argument checks shared by layers and models (internal).

Every constructor argument is checked through these functions, so every
refusal reads the same way: ``ValueError("`name` must be ... Received: `name=value`")``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def _refuse(name: str, requirement: str, value: Any) -> ValueError:
    return ValueError(f"`{name}` must be {requirement}. Received: `{name}={value!r}`")


def _is_int(value: Any) -> bool:
    """A Python int (not a bool). numpy integers are refused: Keras layers
    (e.g. `Embedding`) refuse them later with a less clear message."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive(allow_none: bool = False, **values: Any) -> None:
    """Every value is a positive int (or `None` with `allow_none=True`)."""
    for name, value in values.items():
        if allow_none and value is None:
            continue
        if not _is_int(value) or value < 1:
            raise _refuse(name, "None or a positive integer" if allow_none else "a positive integer", value)


def check_non_negative(**values: Any) -> None:
    """Every value is an int >= 0."""
    for name, value in values.items():
        if not _is_int(value) or value < 0:
            raise _refuse(name, "a non-negative integer", value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """`value` is one of `choices`."""
    choices = tuple(choices)
    if value not in choices:
        raise _refuse(name, f"one of {choices}", value)


def check_range(name: str, value: Any, low: float, high: float, high_inclusive: bool = True) -> None:
    """`low <= value <= high` (`< high` with `high_inclusive=False`) for a real number."""
    inside = False
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
        inside = low <= number and (number <= high if high_inclusive else number < high)
    if not inside:
        bracket = "]" if high_inclusive else ")"
        raise _refuse(name, f"a number in [{low}, {high}{bracket}", value)


def check_units(name: str, units: Any, allow_empty: bool = True) -> tuple[int, ...]:
    """A sequence (or 1-D array) of positive integral layer sizes, returned as a tuple of ints."""
    if isinstance(units, (str, bytes)) or not isinstance(units, (Sequence, np.ndarray)):
        raise _refuse(name, "a sequence of positive integers", units)
    integral = all(isinstance(u, numbers.Integral) and not isinstance(u, bool) and int(u) >= 1 for u in units)
    if not integral or (len(units) == 0 and not allow_empty):
        requirement = "a sequence of positive integers" + ("" if allow_empty else ", not empty")
        raise _refuse(name, requirement, units)
    return tuple(int(u) for u in units)


def check_integer(name: str, value: Any, low: int, high: int | None = None, requirement: str = "") -> int:
    """`value` as a Python int, or a `ValueError` naming `name` unless it is an
    integer in `[low, high]`: numpy integers are accepted (they come out of
    arrays and configs), bools refused. For the data side and the entry
    points; layer and model sizes go through `check_positive`."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or value < low
        or (high is not None and value > high)
    ):
        default = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise _refuse(name, requirement or default, value)
    return int(value)


def check_flag(name: str, value: Any) -> bool:
    """`value` as a bool, or a `ValueError` naming `name` unless it is a bool
    (Python's or numpy's): a string such as `"no"` is not read as `True`."""
    if not isinstance(value, (bool, np.bool_)):
        raise _refuse(name, "True or False", value)
    return bool(value)


def check_finite(name: str, value: Any) -> float:
    """`value` as a float, or a `ValueError` naming `name` unless it is a
    finite real number (not a bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise _refuse(name, "a finite number", value)
    return float(value)
