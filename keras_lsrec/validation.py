"""Argument checks shared by layers and models (internal)."""

from __future__ import annotations

from typing import Any


def check_positive(allow_none: bool = False, **values: Any) -> None:
    """Raise `ValueError("... Received: `name=value`")` unless every value is a
    positive int (or `None` with `allow_none=True`)."""
    for name, value in values.items():
        if allow_none and value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            kind = "None or a positive integer" if allow_none else "a positive integer"
            raise ValueError(f"`{name}` must be {kind}. Received: `{name}={value!r}`")
