"""Exact integer ids: parsing, joining and looking up ids of any size, never through floats.

A float64 holds every integer only up to 2^53, so ids are never converted
through one: 2^53 and 2^53 + 1 would become one id, and ids of 2^63 and
more (unsigned 64-bit hashes) would wrap. Integer columns are kept in the
narrowest exact type: int32 when every value fits, then int64, uint64 (ids
in [2^63, 2^64) and no negative one), or an object array of Python ints (a
field that mixes negative ids with ids >= 2^63, or ids >= 2^64).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

FLOAT_EXACT = 2**53  # every integer of smaller magnitude is exact in a float64
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
DIGITS = r"[+-]?[0-9]+"


def narrow(values: np.ndarray) -> np.ndarray:
    """The narrowest exact dtype of integer `values`: int32, int64, uint64 or object (Python ints)."""
    if values.size == 0:
        return values.astype("int64") if values.dtype == object else values
    if values.dtype == object:
        low, high = min(values), max(values)
        if low >= 0 and high < 2**64:
            values = values.astype("uint64")
        elif low >= INT64[0] and high <= INT64[1]:
            values = values.astype("int64")
        else:
            return values
    low, high = int(values.min()), int(values.max())
    if INT32[0] <= low and high <= INT32[1]:
        return values.astype("int32")
    if INT64[0] <= low and high <= INT64[1]:
        return values.astype("int64")
    return values  # uint64 with values >= 2^63


def concatenate(parts: Sequence[np.ndarray]) -> np.ndarray:
    """Integer arrays joined without loss (numpy would join int64 and uint64 into float64)."""
    parts = [p for p in parts if p.size] or list(parts[:1])
    if not parts:
        return np.zeros(0, "int64")
    kinds = {p.dtype.kind for p in parts}
    if kinds <= {"i"}:
        return np.concatenate(parts)
    if kinds <= {"i", "u"} and all(p.dtype.kind == "u" or int(p.min()) >= 0 for p in parts):
        return np.concatenate([p.astype("uint64") for p in parts])
    return narrow(np.concatenate([p.astype(object) for p in parts]))


def parse_integers(text: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stripped text -> `(values, empty, invalid)`, exact at any size.

    An integer written in digits (`12`, `-3`, `+7`, `0007`) is read exactly,
    whatever its size. Decimal or exponent notation (`5.0`, `1e3`) is read as
    a number and accepted when it is an integer of magnitude below 2^53 (the
    range where that reading is exact); anything else is invalid. Empty
    values are flagged (value 0).
    """
    text = text.fillna("").astype(str).str.strip()
    empty = (text == "").to_numpy()
    digits = text.str.fullmatch(DIGITS).fillna(False).to_numpy(dtype=bool)
    other = ~digits & ~empty
    number = pd.to_numeric(text[other], errors="coerce").to_numpy(dtype="float64")
    integral = np.isfinite(number) & (number == np.floor(np.nan_to_num(number)))
    integral &= np.abs(number) < FLOAT_EXACT
    invalid = np.zeros(len(text), bool)
    invalid[np.flatnonzero(other)[~integral]] = True
    decimal = np.flatnonzero(other)[integral]
    whole = np.flatnonzero(digits)
    rest = np.flatnonzero(~digits & ~(other & ~invalid))  # empty or invalid: 0
    parts = [
        _digits(text.to_numpy(dtype=object)[whole]),
        number[integral].astype("int64"),
        np.zeros(len(rest), "int64"),
    ]
    joined = concatenate(parts)
    values = np.empty(len(text), joined.dtype)
    values[np.concatenate([whole, decimal, rest])] = joined
    return narrow(values), empty, invalid


def _digits(text: np.ndarray) -> np.ndarray:
    """Strings of digits (with an optional sign) as exact integers."""
    if not len(text):
        return np.zeros(0, "int64")
    strings = text.astype(str)
    try:
        return strings.astype("int64")
    except OverflowError:
        pass
    try:
        return strings.astype("uint64")  # raises for a negative value or one >= 2^64
    except (OverflowError, ValueError):
        return np.array([int(s) for s in strings], dtype=object)


def from_floats(number: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A column the fast parse typed as float64 (decimals or empty fields in it, every magnitude
    below 2^53, so every value is exact) -> `(values, empty, invalid)` by the rule of `parse_integers`."""
    empty = np.isnan(number)
    filled = np.where(empty, 0.0, number)
    invalid = ~np.isfinite(filled) | (filled != np.floor(np.nan_to_num(filled)))
    return narrow(np.where(invalid, 0.0, filled).astype("int64")), empty, invalid & ~empty


# ----------------------------------------------------------------- remapping and lookup
def remap(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New ids 1..N in the order of the sorted original ids, and that sorted vocabulary (exact)."""
    vocabulary, inverse = np.unique(values, return_inverse=True)
    return (inverse.reshape(-1) + 1).astype("int32"), vocabulary


def encode_ids(vocabulary: ArrayLike, raw: ArrayLike) -> np.ndarray:
    """Maps raw ids to new ids with a vocabulary from `frame.attrs["vocabularies"]`.

    Known ids get `1..N`; unknown ids get the OOV id `N + 1`. The lookup is
    exact at any size (ids near 2^63 or 2^64 included): integer ids may be
    given as integers of any dtype, Python ints or strings of digits; float
    ids are refused (a float64 cannot tell 2^53 from 2^53 + 1). Text
    vocabularies (Amazon) compare the ids as text.
    """
    vocabulary = np.asarray(vocabulary)
    raw = _as_array(raw)
    oov = len(vocabulary) + 1
    if len(vocabulary) == 0:
        return np.full(raw.shape, oov, "int64")
    if _is_text(vocabulary):
        keys = raw.astype(str)
        if vocabulary.dtype == object:
            keys = keys.astype(object)
        fits = np.ones(raw.shape, bool)
    else:
        keys, fits = _as_integer_keys(vocabulary.dtype, raw)
    position = np.minimum(np.searchsorted(vocabulary, keys), len(vocabulary) - 1)
    known = fits & (vocabulary[position] == keys)
    return np.where(known, position + 1, oov).astype("int64")


def _as_array(raw: ArrayLike) -> np.ndarray:
    """`raw` as an array; a list of Python ints stays exact (numpy would make [2**63 - 1, 2**63] floats)."""
    if isinstance(raw, np.ndarray):
        return raw
    if isinstance(raw, (list, tuple)) and any(isinstance(v, int) and abs(v) >= FLOAT_EXACT for v in raw):
        return np.array(list(raw), dtype=object)
    if isinstance(raw, (pd.Series, pd.Index)):
        return raw.to_numpy()
    return np.asarray(raw)


def _is_text(vocabulary: np.ndarray) -> bool:
    if vocabulary.dtype.kind in "US":
        return True
    return vocabulary.dtype == object and isinstance(vocabulary.flat[0], str)


def _as_integer_keys(dtype: np.dtype, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`raw` in the vocabulary's dtype, exactly, and the mask of the ids that can be in it."""
    if raw.dtype.kind in "fcb":
        raise ValueError(
            f"Integer ids must be looked up as integers or strings, not {raw.dtype} "
            "(a float64 holds integers exactly only up to 2^53). Received dtype "
            f"{raw.dtype}: pass the ids as read (int64, uint64 or text)."
        )
    if raw.dtype.kind in "iu" and dtype.kind != "O":
        low, high = (int(v) for v in (np.iinfo(dtype).min, np.iinfo(dtype).max))
        fits = (raw >= low) & (raw <= high)  # comparisons with Python ints are exact
        return np.where(fits, raw, 0).astype(dtype), fits
    # Python ints, strings of digits, or an object vocabulary: element by element, exactly.
    flat = [_python_int(v) for v in raw.reshape(-1)]
    if dtype.kind == "O":
        fits = np.array([v is not None for v in flat], bool)
        keys = np.array([0 if v is None else v for v in flat], dtype=object)
    else:
        low, high = int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
        fits = np.array([v is not None and low <= v <= high for v in flat], bool)
        chosen = [v if ok else 0 for v, ok in zip(flat, fits, strict=True)]
        keys = np.array(chosen, dtype=object).astype(dtype)
    return keys.reshape(raw.shape), fits.reshape(raw.shape)


def _python_int(value: Any) -> int | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, str) and re.fullmatch(DIGITS, value.strip()):
        return int(value)
    return None
