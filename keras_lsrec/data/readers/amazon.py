"""Amazon reviews: 5-core JSON lines or ratings-only CSV, with optional item metadata."""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from keras_lsrec.data.readers.table import (
    LoadReport,
    check_path,
    finish_with_text_categories,
    first_content,
    floats,
    open_text,
    read_table,
)


def load_amazon(
    path: str | os.PathLike[str],
    *,
    meta_path: str | os.PathLike[str] | None = None,
    chunk_rows: int = 500_000,
    errors: str = "raise",
    progress: bool = True,
) -> pd.DataFrame:
    """Amazon reviews: the 5-core JSON lines (`reviewerID`, `asin`, `overall`,
    `unixReviewTime`) or the ratings-only CSV (no header: user, item, rating,
    timestamp; the 2014 layout), chosen by the first character of the file's
    first line that is not blank (blank lines are skipped, as in every reader).

    Categories come from the metadata JSON lines at `meta_path` (`asin` and
    `categories` (2014: a list of lists; the LAST entry of the first list, the
    most specific, as in the DIN/DIEN preprocessing) or `category` (2018: a
    list; its last entry)); without metadata, or for an item it does not
    list, the category is 0. Ids are text, kept exactly as written. Files
    may be gzip-compressed (`.json.gz`, as distributed). Returns user, item,
    category, rating, timestamp.
    """
    path = check_path(path)
    meta = None if meta_path is None else check_path(meta_path)  # before the reviews are read
    report = LoadReport()
    names: tuple[str, ...]
    convert: Callable[[pd.DataFrame], pd.DataFrame] | None
    if _is_json_lines(path):  # each line read whole (no separator in it), then parsed as JSON
        names, sep, convert = ("line",), "\x01", _reviews
    else:
        names, sep, convert = ("user", "item", "rating", "timestamp"), ",", None
    columns = read_table(
        path,
        names,
        sep=sep,
        header=False,
        numeric=("timestamp",),
        strings=("user", "item", "rating"),
        chunk_rows=chunk_rows,
        report=report,
        errors=errors,
        progress=progress,
        convert=convert,
    )
    columns["rating"] = floats(columns["rating"])
    category_of = _item_categories(meta) if meta is not None else {}
    columns["category"] = np.array([category_of.get(item, "") for item in columns["item"]], dtype=object)
    return finish_with_text_categories(columns, report, path)


def _is_json_lines(path: str) -> bool:
    """Whether the file's first line that is not blank starts a JSON object (blank lines, which
    `read_table` skips, and leading spaces do not decide the format)."""
    return first_content(path)[1].lstrip()[:1] == b"{"


def _review(line: str) -> dict[str, Any]:
    """One JSON line as a dict; `{}` when it is not a JSON object (its fields are then
    missing, so the row is rejected with its line number)."""
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _reviews(chunk: pd.DataFrame) -> pd.DataFrame:
    """A chunk of JSON lines (column `line`) as the text columns user, item, rating, timestamp."""
    rows = [_review(line) for line in chunk["line"]]
    return pd.DataFrame(
        {
            "user": [_text_id(r.get("reviewerID", "")) for r in rows],
            "item": [_text_id(r.get("asin", "")) for r in rows],
            "rating": [str(r.get("overall", "")) for r in rows],
            "timestamp": [str(r.get("unixReviewTime", "")) for r in rows],
        }
    )


def _text_id(value: Any) -> str:
    """An id as text; a JSON number id keeps its digits (Python's json reads integers exactly)."""
    return value if isinstance(value, str) else "" if value is None else str(value)


def _item_categories(meta_path: str) -> dict[str, str]:
    """`{asin: category}` from the metadata (2014: Python literals, 2018: JSON), items with one only."""
    out = {}
    with open_text(meta_path) as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                try:
                    record = ast.literal_eval(line)  # the 2014 metadata is Python-literal, not JSON
                except (ValueError, SyntaxError):
                    raise ValueError(
                        f"{meta_path}: line {number} is neither JSON nor a Python literal"
                    ) from None
            categories = record.get("categories") or [record.get("category") or []]
            first = categories[0] if categories else []
            if first:
                out[record.get("asin", "")] = str(first[-1])
    return out
