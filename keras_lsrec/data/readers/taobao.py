"""Taobao UserBehavior (`UserBehavior.csv`, no header)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from keras_lsrec.data.readers.table import (
    FIELDS,
    LoadReport,
    check_path,
    check_selection,
    finish,
    read_table,
    select_rows,
)

BEHAVIORS = ("pv", "buy", "cart", "fav")


def load_taobao(
    path: str | os.PathLike[str],
    *,
    behaviors: Sequence[str] | None = None,
    chunk_rows: int = 1_000_000,
    errors: str = "raise",
    progress: bool = True,
) -> pd.DataFrame:
    """Taobao UserBehavior (`UserBehavior.csv`, no header): user, item, category, behaviour, timestamp.

    `behavior` is one of `pv`, `buy`, `cart`, `fav` (another value is a
    malformed row); `behaviors=("pv",)` keeps page views only (the DARE
    protocol's events); a value not among those four, or an empty list, is
    refused (`ValueError` naming it). The kept events alone define the vocabularies. A
    gzip file (`.gz`) is read as it is.
    Returns columns user, item, category, behavior, timestamp.
    """
    path = check_path(path)
    selected = check_selection("behaviors", behaviors, {b: b for b in BEHAVIORS})
    report = LoadReport()
    columns = read_table(
        path,
        ("user", "item", "category", "behavior", "timestamp"),
        sep=",",
        header=False,
        numeric=("user", "item", "category", "timestamp"),
        ids=FIELDS,
        codes={"behavior": BEHAVIORS},
        chunk_rows=chunk_rows,
        report=report,
        errors=errors,
        progress=progress,
    )
    wanted = None if selected is None else [BEHAVIORS.index(b) for b in selected]
    key = ("user", "item", "timestamp", "behavior")  # equal on these: a duplicate event
    frame = finish(select_rows(columns, "behavior", wanted), FIELDS, report, path, key)
    frame["behavior"] = pd.Categorical.from_codes(frame["behavior"].to_numpy(), categories=list(BEHAVIORS))
    return frame
