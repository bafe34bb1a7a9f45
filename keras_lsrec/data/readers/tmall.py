"""Tmall repeat buyers (`user_log_format1.csv`, with header)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from keras_lsrec.data.readers.table import (
    LINE,
    Columns,
    LoadReport,
    check_int,
    check_path,
    check_selection,
    detect_header,
    finish,
    raise_malformed,
    read_table,
    select_rows,
)

ACTIONS = {0: "click", 1: "cart", 2: "purchase", 3: "favourite"}
NAMES = ("user", "item", "category", "seller", "brand", "mmdd", "action")  # the file's columns, renamed
HEADER = ("user_id", "item_id", "cat_id", "seller_id", "brand_id", "time_stamp", "action_type")
IDS = ("user", "item", "category", "seller", "brand")
YEARS = (pd.Timestamp.min.year + 1, pd.Timestamp.max.year - 1)  # the years a timestamp can hold


def load_tmall(
    path: str | os.PathLike[str],
    *,
    actions: Sequence[int] | None = None,
    year: int = 2015,
    chunk_rows: int = 1_000_000,
    errors: str = "raise",
    progress: bool = True,
) -> pd.DataFrame:
    """Tmall repeat buyers (`user_log_format1.csv`): user_id, item_id, cat_id,
    seller_id, brand_id, time_stamp (`mmdd`), action_type.

    The file as distributed starts with that header; a file without it (its
    first line is an event) loses no event: the header is recognised by its
    content. A gzip file (`.gz`) is read as it is.

    `action_type` 0 click, 1 cart, 2 purchase, 3 favourite; `actions=(0,)`
    keeps clicks (the DARE protocol; the kept events alone define the
    vocabularies); a code not among 0..3 (`5`, `"click"`) or an empty list is
    refused (`ValueError` naming it), as `load_taobao` refuses an unknown
    behaviour. `year` must be an integer (1678..2261). `time_stamp` `mmdd` (day resolution,
    as distributed) becomes `timestamp` = seconds since the epoch of that day
    in `year`; events of one day keep their file order. A missing `brand_id`
    becomes 0. Returns user, item, category, seller, brand, action, timestamp.
    """
    path = check_path(path)
    selected = check_selection("actions", actions, ACTIONS)
    year = check_int("year", year, YEARS[0], YEARS[1])
    report = LoadReport()
    columns = read_table(
        path,
        NAMES,
        sep=",",
        header=detect_header(path, ",", HEADER),
        numeric=NAMES,
        ids=IDS,
        optional=("brand",),
        chunk_rows=chunk_rows,
        report=report,
        errors=errors,
        progress=progress,
    )
    columns = _with_timestamps(columns, year, report, path, errors)
    key = ("user", "item", "timestamp", "action")  # equal on these: a duplicate event
    return finish(select_rows(columns, "action", selected), IDS, report, path, key, optional=("brand",))


def _with_timestamps(columns: Columns, year: int, report: LoadReport, path: str, errors: str) -> Columns:
    """`mmdd` replaced by `timestamp` (midnight of that day in `year`, in seconds); a row with an
    invalid date or an unknown action_type is rejected (the `errors` policy)."""
    mmdd = columns.pop("mmdd")
    days = pd.to_datetime(
        {"year": np.full(len(mmdd), year), "month": mmdd // 100, "day": mmdd % 100}, errors="coerce"
    )
    invalid = days.isna().to_numpy() | ~np.isin(columns["action"], list(ACTIONS))
    if invalid.any():
        report.reject("time_stamp not a valid mmdd date or action_type not in 0..3", columns[LINE][invalid])
        if errors == "raise":
            raise_malformed(path, report)
    columns = {name: values[~invalid] for name, values in columns.items()}
    columns["timestamp"] = days[~invalid].to_numpy().astype("datetime64[s]").astype("int64")
    return columns
