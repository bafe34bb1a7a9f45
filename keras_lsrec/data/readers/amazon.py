"""Amazon reviews: 5-core JSON lines or ratings-only CSV, with optional item metadata."""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from keras_lsrec.data.features import Categorical, Dense
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

    With metadata, two item features are attached, one row per item id
    (padding and OOV rows empty), for the protocols to carry:
    `events.attrs["item_features"]`:

    - `category_path`: every entry of the item's first category path (most
      general first), a bag of ids (`Categorical(P + 1, max_values=M)`, names
      in `events.attrs["item_feature_values"]["category_path"]`);
    - `price`: `Dense(2)`: `[log1p(price), 1]` for a listed price (a number,
      or text such as `"$12.99"`), `[0, 0]` for none.
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
    metadata = _item_metadata(meta) if meta is not None else {}
    columns["category"] = np.array(
        [m[0][-1] if (m := metadata.get(item)) and m[0] else "" for item in columns["item"]], dtype=object
    )
    frame = finish_with_text_categories(columns, report, path)
    if metadata:
        items = frame.attrs["vocabularies"]["item"]
        path_names = sorted({c for categories, _ in metadata.values() for c in categories})
        index = {name: i + 1 for i, name in enumerate(path_names)}
        paths = [[index[c] for c in metadata.get(str(item), ([], None))[0]] for item in items]
        width = max(1, max(map(len, paths), default=1))
        bags = np.zeros((len(items) + 2, width), "int32")  # padding, the items, OOV
        price = np.zeros((len(items) + 2, 2), "float32")
        for row, (item, ids) in enumerate(zip(items, paths, strict=True), start=1):
            bags[row, : len(ids)] = ids
            value = metadata.get(str(item), ([], None))[1]
            if value is not None:
                price[row] = (np.log1p(value), 1.0)
        frame.attrs["item_features"] = {
            "category_path": (Categorical(len(path_names) + 1, max_values=width), bags),
            "price": (Dense(2), price),
        }
        frame.attrs["item_feature_values"] = {"category_path": np.array(path_names, dtype=object)}
    return frame


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


def _item_metadata(meta_path: str) -> dict[str, tuple[list[str], float | None]]:
    """`{asin: (first category path, price or None)}` from the metadata (2014: Python literals,
    2018: JSON)."""
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
            first = categories[0] if categories and isinstance(categories[0], list) else []
            out[str(record.get("asin", ""))] = ([str(c) for c in first], _price(record.get("price")))
    return out


def _price(value: Any) -> float | None:
    """A listed price: a number, or text such as "$12.99" or "$1,299.00"; None when absent or
    not a finite non-negative number (2018's ranges such as "$5.99 - $9.99" take the first)."""
    if isinstance(value, str):
        value = value.split("-")[0].strip().lstrip("$").replace(",", "")
    try:
        price = float(value)
    except (TypeError, ValueError):
        return None
    return price if np.isfinite(price) and price >= 0 else None
