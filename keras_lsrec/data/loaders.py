"""Readers for the public long-sequence datasets, in their original file formats.

Every loader returns one `pandas.DataFrame` of events, sorted by user then
time, with integer ids remapped to `1..N` per field (0 is padding), plus the
columns the format has (`behavior`, `rating`, `seller`, `brand`).

Id policy: every id that occurs in the file gets a new id `1..N` in the
order of the original ids (numbers sorted numerically, strings
lexicographically). `frame.attrs["vocabularies"][field]` holds the original
ids, entry `i - 1` for new id `i`, so `encode_ids` maps other raw ids (e.g.
at serving time) the same way; an id it has never seen becomes the
out-of-vocabulary id `N + 1`, and `vocab_sizes(frame)` counts it
(`N + 2` per field: padding, N ids, OOV). A missing optional side id (Tmall
`brand_id`, a movie without genre) becomes 0.

Malformed rows are never dropped silently; `frame.attrs["report"]` (a
`LoadReport`) lists them by 1-based line number of the file:

- missing columns, an empty or non-numeric id or timestamp, an unknown
  behaviour: rejected. `errors="raise"` (default) raises a `ValueError` with
  the first line numbers; `errors="skip"` leaves the rows out, lists them in
  the report and warns.
- timestamps out of order within a user: repaired by a stable sort on
  (user, timestamp), so equal timestamps keep their file order; counted.
- duplicate events (same user, item, timestamp and behaviour): repaired by
  keeping the first; their line numbers are listed.

Files are read in chunks (`chunk_rows`), so memory is the numeric columns of
the events (a few bytes per row and column), never one Python object per row.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FIELDS = ("user", "item", "category")
COLUMN_ORDER = ["user", "item", "category", "seller", "brand", "behavior", "action", "rating", "timestamp"]
MAX_LISTED = 20  # line numbers kept per problem in the report


@dataclass
class LoadReport:
    """What the loader rejected or repaired, by 1-based line number of the source file."""

    rows: int = 0
    rejected: dict[str, list[int]] = field(default_factory=dict)  # reason -> line numbers (first MAX_LISTED)
    rejected_count: int = 0
    unsorted: int = 0
    duplicates: list[int] = field(default_factory=list)
    duplicate_count: int = 0

    def reject(self, reason: str, lines: np.ndarray) -> None:
        if len(lines):
            listed = self.rejected.setdefault(reason, [])
            listed.extend(int(n) for n in lines[: MAX_LISTED - len(listed)])
            self.rejected_count += len(lines)

    def summary(self) -> str:
        parts = [f"{self.rows:,} events kept"] if self.rows else []
        for reason, lines in self.rejected.items():
            parts.append(f"rejected ({reason}) at lines {lines}")
        if self.unsorted:
            parts.append(f"{self.unsorted:,} events out of time order, re-sorted")
        if self.duplicate_count:
            parts.append(f"{self.duplicate_count:,} duplicate events removed (lines {self.duplicates})")
        return "; ".join(parts)


# ----------------------------------------------------------------- reading
def _progress(path: str, enabled: bool):
    """A rich progress bar over the bytes of `path` (a no-op when disabled)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    progress = Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TimeRemainingColumn(),
        disable=not enabled, transient=True,
    )
    return progress, os.path.getsize(path)


def _read_table(
    path: str,
    names: Sequence[str],
    *,
    sep: str,
    header: bool,
    numeric: Sequence[str],
    strings: Sequence[str] = (),
    optional: Sequence[str] = (),
    codes: dict[str, Sequence[str]] | None = None,
    chunk_rows: int,
    report: LoadReport,
    errors: str,
    progress: bool,
    convert: Callable[[Any], Any] | None = None,
) -> dict[str, np.ndarray]:
    """Streams a delimited file in chunks of lines; returns one numpy array per
    kept column (and `_line`, the 1-based line number of each kept row).

    `numeric` columns become integers (int32 when they fit; empty or missing:
    rejected, or 0 for an `optional` column; not an integer: rejected),
    `strings` stay text (empty: rejected), `codes` become the int8 index of the
    value in an allowed list (another value: rejected), so no Python object per
    row outlives its chunk. A chunk is first parsed with numeric types (fast);
    if that fails it is re-parsed as text to find the bad lines. `convert`
    maps a text chunk to the named columns first (JSON lines).
    """
    import pandas as pd

    if errors not in ("raise", "skip"):
        raise ValueError(f"`errors` must be 'raise' or 'skip'. Received: errors={errors!r}")
    codes = codes or {}
    keep = list(numeric) + list(strings) + list(codes)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in keep + ["_line"]}
    engine = "python" if len(sep) > 1 else "c"
    options = dict(sep=sep, header=None, names=list(names), engine=engine, index_col=False,
                   skip_blank_lines=False, quoting=3 if sep == "\x01" else 0, encoding="utf-8")
    bar, size = _progress(path, progress)
    with bar, open(path, "rb") as handle:
        task = bar.add_task(os.path.basename(path), total=size)
        first = 1
        if header:
            handle.readline()
            first = 2
        while True:
            raw = list(itertools.islice(handle, chunk_rows))
            if not raw:
                break
            lines = first + np.arange(len(raw), dtype="int64")
            buffer = io.BytesIO(b"".join(raw))
            first += len(raw)
            del raw
            try:
                chunk = None
                if convert is None:
                    try:  # fast path: numbers parsed by the C parser
                        chunk = pd.read_csv(buffer, dtype={**{n: "float64" for n in numeric}, **{n: "category" for n in codes}},
                                            **options)
                    except (ValueError, TypeError):
                        buffer.seek(0)
                if chunk is None:
                    chunk = pd.read_csv(buffer, dtype=str, keep_default_na=False, **options)
                    if convert is not None:
                        chunk = convert(chunk)
            except pd.errors.ParserError as error:
                message = re.sub(r"line (\d+)", lambda m: f"line {int(m.group(1)) + int(lines[0]) - 1}", str(error))
                raise ValueError(f"{path}: malformed file ({message.strip()})") from None
            bad = np.zeros(len(chunk), bool)
            values = {}
            for name in numeric:
                column = chunk[name]
                if column.dtype == object or str(column.dtype) in ("str", "string"):
                    text = column.fillna("").astype(str).str.strip()
                    empty = (text == "").to_numpy()
                    number = pd.to_numeric(text.mask(empty, "0"), errors="coerce").to_numpy(dtype="float64")
                else:
                    number = column.to_numpy(dtype="float64")
                    empty = np.isnan(number)
                    number = np.where(empty, 0.0, number)
                invalid = ~np.isfinite(number) | (number != np.floor(np.nan_to_num(number)))
                if name in optional:
                    number = np.where(empty, 0.0, number)
                else:
                    report.reject(f"{name}: missing or empty", lines[empty & ~bad])
                    bad |= empty
                report.reject(f"{name}: not an integer", lines[invalid & ~empty & ~bad])
                bad |= invalid & ~empty
                integers = np.nan_to_num(number).astype("int64")
                fits = integers.size == 0 or (integers.min() >= -(2**31) and integers.max() < 2**31)
                values[name] = integers.astype("int32") if fits else integers
            for name in strings:
                text = chunk[name].fillna("").astype(str).str.strip()
                empty = (text == "").to_numpy()
                report.reject(f"{name}: missing or empty", lines[empty & ~bad])
                bad |= empty
                values[name] = text.to_numpy(dtype=object)
            for name, allowed in codes.items():
                column = chunk[name].astype(str).str.strip() if str(chunk[name].dtype) != "category" else chunk[name]
                code = pd.Categorical(column, categories=list(allowed)).codes
                report.reject(f"{name}: not one of {tuple(allowed)}", lines[(code < 0) & ~bad])
                bad |= code < 0
                values[name] = code.astype("int8")
            if bad.any() and errors == "raise":
                raise ValueError(
                    f"{path}: malformed rows. {report.summary()}. "
                    "Pass errors='skip' to leave them out (they stay listed in the report)."
                )
            for name in keep:
                parts[name].append(values[name][~bad])
            parts["_line"].append(lines[~bad].astype("int32") if lines[-1] < 2**31 else lines[~bad])
            bar.update(task, completed=handle.tell())
    return {
        name: np.concatenate(chunks) if chunks else np.zeros(0, object if name in strings else "int64")
        for name, chunks in parts.items()
    }


def encode_ids(vocabulary: np.ndarray, raw: Any) -> np.ndarray:
    """Maps raw ids to new ids with a vocabulary from `frame.attrs["vocabularies"]`.

    Known ids get `1..N`; unknown ids get the OOV id `N + 1`.
    """
    raw = np.asarray(raw)
    position = np.searchsorted(vocabulary, raw)
    position = np.minimum(position, len(vocabulary) - 1)
    known = vocabulary[position] == raw if len(vocabulary) else np.zeros(raw.shape, bool)
    return np.where(known, position + 1, len(vocabulary) + 1).astype("int64")


def vocab_sizes(frame: Any) -> dict[str, int]:
    """`{field: N + 2}` (padding, ids, OOV) for every remapped id column of `frame`."""
    return {name: len(values) + 2 for name, values in frame.attrs["vocabularies"].items()}


def _remap(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New ids 1..N in the order of the sorted original ids, and that sorted vocabulary."""
    vocabulary, inverse = np.unique(values, return_inverse=True)
    return (inverse + 1).astype("int32"), vocabulary


def _finish(
    columns: dict[str, np.ndarray],
    id_columns: Sequence[str],
    report: LoadReport,
    path: str,
    duplicate_key: Sequence[str],
):
    """Remaps ids, sorts by (user, time), removes duplicates, attaches the report (numpy, then one DataFrame)."""
    import pandas as pd

    lines = columns.pop("_line")
    vocabularies = {}
    for name in id_columns:
        values = columns[name]
        zero = values == 0 if values.dtype != object else np.zeros(len(values), bool)
        if zero.any():  # optional side ids: 0 = unknown stays 0
            ids = np.zeros(len(values), "int32")
            ids[~zero], vocabularies[name] = _remap(values[~zero])
        else:
            ids, vocabularies[name] = _remap(values)
        columns[name] = ids
    users, times = columns["user"], columns["timestamp"]
    # Events earlier than the previous event of the same user in file order.
    by_user = np.argsort(users, kind="stable")
    u, t = users[by_user], times[by_user]
    report.unsorted = int(((u[1:] == u[:-1]) & (t[1:] < t[:-1])).sum())
    del by_user, u, t
    order = np.lexsort((times, users))  # stable: equal times keep file order
    columns = {name: values[order] for name, values in columns.items()}
    lines = lines[order]
    del order
    duplicated = _duplicates(columns, lines, duplicate_key)
    if duplicated.any():
        report.duplicate_count = int(duplicated.sum())
        report.duplicates = sorted(int(n) for n in lines[duplicated])[:MAX_LISTED]
        columns = {name: values[~duplicated] for name, values in columns.items()}
    report.rows = len(columns["user"])
    ordered = sorted(columns, key=lambda c: COLUMN_ORDER.index(c) if c in COLUMN_ORDER else len(COLUMN_ORDER))
    frame = pd.DataFrame({name: columns[name] for name in ordered}, copy=False)
    frame.attrs["vocabularies"] = vocabularies
    frame.attrs["report"] = report
    frame.attrs["source"] = os.path.abspath(path)
    if report.rejected_count or report.duplicate_count or report.unsorted:
        warnings.warn(f"{path}: {report.summary()}", stacklevel=3)
    return frame


def _duplicates(columns: dict[str, np.ndarray], lines: np.ndarray, key: Sequence[str]) -> np.ndarray:
    """Rows (sorted by user, time) equal on `key` to an earlier line: only rows
    sharing (user, timestamp) with a neighbour can be, so only those are sorted."""
    users, times = columns["user"], columns["timestamp"]
    same = (users[1:] == users[:-1]) & (times[1:] == times[:-1])
    candidates = np.zeros(len(users), bool)
    candidates[1:] |= same
    candidates[:-1] |= same
    rows = np.flatnonzero(candidates)
    duplicated = np.zeros(len(users), bool)
    if len(rows):
        keys = [columns[k][rows] for k in key]
        order = np.lexsort([lines[rows]] + keys[::-1])
        equal = np.ones(len(rows) - 1, bool)
        for values in keys:
            sorted_values = values[order]
            equal &= sorted_values[1:] == sorted_values[:-1]
        duplicated[rows[order][1:][equal]] = True
    return duplicated


def _check_path(path: str) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"No such file: path={path!r}")
    return path


def _keep(columns: dict[str, np.ndarray], column: str, codes: Sequence[int] | None) -> dict[str, np.ndarray]:
    """The rows whose `column` is one of `codes` (before ids are remapped)."""
    if codes is None:
        return columns
    rows = np.isin(columns[column], list(codes))
    return {name: values[rows] for name, values in columns.items()}


# ----------------------------------------------------------------- the datasets
TAOBAO_BEHAVIORS = ("pv", "buy", "cart", "fav")


def load_taobao(
    path: str, *, behaviors: Sequence[str] | None = None, chunk_rows: int = 1_000_000,
    errors: str = "raise", progress: bool = True,
):
    """Taobao UserBehavior (`UserBehavior.csv`, no header): user, item, category, behaviour, timestamp.

    `behavior` is one of `pv`, `buy`, `cart`, `fav` (another value is a
    malformed row); `behaviors=("pv",)` keeps page views only (the DARE
    protocol's events). The kept events alone define the vocabularies.
    Returns columns user, item, category, behavior, timestamp.
    """
    import pandas as pd

    path = _check_path(path)
    unknown = sorted(set(behaviors or ()) - set(TAOBAO_BEHAVIORS))
    if unknown:
        raise ValueError(f"`behaviors` must be among {TAOBAO_BEHAVIORS}. Received unknown: {unknown}")
    report = LoadReport()
    columns = _read_table(
        path, ("user", "item", "category", "behavior", "timestamp"), sep=",", header=False,
        numeric=("user", "item", "category", "timestamp"), codes={"behavior": TAOBAO_BEHAVIORS},
        chunk_rows=chunk_rows, report=report, errors=errors, progress=progress,
    )
    wanted = None if behaviors is None else [TAOBAO_BEHAVIORS.index(b) for b in behaviors]
    frame = _finish(_keep(columns, "behavior", wanted), FIELDS, report, path, ("user", "item", "timestamp", "behavior"))
    frame["behavior"] = pd.Categorical.from_codes(frame["behavior"].to_numpy(), categories=list(TAOBAO_BEHAVIORS))
    return frame


TMALL_ACTIONS = {0: "click", 1: "cart", 2: "purchase", 3: "favourite"}


def load_tmall(
    path: str, *, actions: Sequence[int] | None = None, year: int = 2015, chunk_rows: int = 1_000_000,
    errors: str = "raise", progress: bool = True,
):
    """Tmall repeat buyers (`user_log_format1.csv`, with header):
    user_id, item_id, cat_id, seller_id, brand_id, time_stamp (`mmdd`), action_type.

    `action_type` 0 click, 1 cart, 2 purchase, 3 favourite; `actions=(0,)`
    keeps clicks (the DARE protocol; the kept events alone define the
    vocabularies). `time_stamp` `mmdd` (day resolution,
    as distributed) becomes `timestamp` = seconds since the epoch of that day
    in `year`; events of one day keep their file order. A missing `brand_id`
    becomes 0. Returns user, item, category, seller, brand, action, timestamp.
    """
    import pandas as pd

    path = _check_path(path)
    report = LoadReport()
    names = ("user", "item", "category", "seller", "brand", "mmdd", "action")
    columns = _read_table(
        path, names, sep=",", header=True, numeric=names, optional=("brand",),
        chunk_rows=chunk_rows, report=report, errors=errors, progress=progress,
    )
    mmdd = columns.pop("mmdd")
    days = pd.to_datetime(
        {"year": np.full(len(mmdd), year), "month": mmdd // 100, "day": mmdd % 100}, errors="coerce"
    )
    invalid = days.isna().to_numpy() | ~np.isin(columns["action"], list(TMALL_ACTIONS))
    if invalid.any():
        report.reject("time_stamp not a valid mmdd date or action_type not in 0..3", columns["_line"][invalid])
        if errors == "raise":
            raise ValueError(f"{path}: malformed rows. {report.summary()}. Pass errors='skip' to leave them out.")
    columns = {k: v[~invalid] for k, v in columns.items()}
    columns["timestamp"] = days[~invalid].to_numpy().astype("datetime64[s]").astype("int64")
    return _finish(_keep(columns, "action", actions), ("user", "item", "category", "seller", "brand"), report, path,
                   ("user", "item", "timestamp", "action"))


def load_amazon(
    path: str, *, meta_path: str | None = None, chunk_rows: int = 500_000, errors: str = "raise", progress: bool = True,
):
    """Amazon reviews: the 5-core JSON lines (`reviewerID`, `asin`, `overall`,
    `unixReviewTime`) or the ratings-only CSV (no header: user, item, rating,
    timestamp; the 2014 layout), chosen by the file's first character.

    Categories come from the metadata JSON lines at `meta_path` (`asin` and
    `categories` (2014: a list of lists; the LAST entry of the first list, the
    most specific, as in the DIN/DIEN preprocessing) or `category` (2018: a
    list; its last entry)); without metadata, or for an item it does not
    list, the category is 0. Returns user, item, category, rating, timestamp.
    """
    import pandas as pd

    path = _check_path(path)
    report = LoadReport()
    with open(path, encoding="utf-8") as handle:
        first = handle.read(1)
    if first == "{":
        def record(line: str) -> dict:
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                return {}  # its fields are then missing: rejected with its line number
            return value if isinstance(value, dict) else {}

        def convert(chunk):
            rows = [record(line) for line in chunk["line"]]
            return pd.DataFrame(
                {
                    "user": [r.get("reviewerID", "") for r in rows],
                    "item": [r.get("asin", "") for r in rows],
                    "rating": [str(r.get("overall", "")) for r in rows],
                    "timestamp": [str(r.get("unixReviewTime", "")) for r in rows],
                }
            )

        columns = _read_table(
            path, ("line",), sep="\x01", header=False, numeric=("timestamp",), strings=("user", "item", "rating"),
            chunk_rows=chunk_rows, report=report, errors=errors, progress=progress, convert=convert,
        )
    else:
        columns = _read_table(
            path, ("user", "item", "rating", "timestamp"), sep=",", header=False, numeric=("timestamp",),
            strings=("user", "item", "rating"), chunk_rows=chunk_rows, report=report, errors=errors, progress=progress,
        )
    columns["rating"] = pd.to_numeric(pd.Series(columns["rating"]), errors="coerce").to_numpy("float32")
    category_of = _amazon_categories(_check_path(meta_path)) if meta_path is not None else {}
    columns["category"] = np.array([category_of.get(item, "") for item in columns["item"]], dtype=object)
    return _finish_with_categories(columns, report, path)


def _amazon_categories(meta_path: str) -> dict[str, str]:
    import ast

    out = {}
    with open(meta_path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                try:
                    record = ast.literal_eval(line)  # the 2014 metadata is Python-literal, not JSON
                except (ValueError, SyntaxError):
                    raise ValueError(f"{meta_path}: line {number} is neither JSON nor a Python literal") from None
            categories = record.get("categories") or [record.get("category") or []]
            first = categories[0] if categories else []
            if first:
                out[record.get("asin", "")] = str(first[-1])
    return out


def load_movielens(path: str, *, chunk_rows: int = 1_000_000, errors: str = "raise", progress: bool = True):
    """MovieLens ratings with genres as category, by file name:

    - `ratings.dat` (ML-1M/10M: `user::movie::rating::timestamp`) with `movies.dat` beside it;
    - `u.data` (ML-100K: tab-separated) with `u.item` beside it (19 genre flags);
    - `ratings.csv` (ML-latest, ML-20M/25M: header `userId,movieId,rating,timestamp`) with `movies.csv`.

    The category of a movie is its FIRST listed genre (`"(no genres listed)"`
    or a movie missing from the movie file: 0). Returns user, item, category,
    rating, timestamp.
    """
    import pandas as pd

    path = _check_path(path)
    report = LoadReport()
    name = os.path.basename(path)
    folder = os.path.dirname(path)
    names = ("user", "item", "rating", "timestamp")
    common = dict(numeric=("user", "item", "timestamp"), strings=("rating",), chunk_rows=chunk_rows,
                  report=report, errors=errors, progress=progress)
    if name.endswith(".dat"):
        columns = _read_table(path, names, sep="::", header=False, **common)
        movies = os.path.join(folder, "movies.dat")
        genres = _movie_genres(movies, lambda f: pd.read_csv(f, sep="::", engine="python", header=None,
                                                             names=["item", "title", "genres"], encoding="latin-1"))
    elif name == "u.data":
        columns = _read_table(path, names, sep="\t", header=False, **common)
        genres = _movie_genres(os.path.join(folder, "u.item"), _ml100k_genres)
    elif name.endswith(".csv"):
        columns = _read_table(path, names, sep=",", header=True, **common)
        genres = _movie_genres(os.path.join(folder, "movies.csv"), pd.read_csv)
    else:
        raise ValueError(f"Unknown MovieLens file {name!r}: expected ratings.dat, u.data or ratings.csv")
    columns["rating"] = pd.to_numeric(pd.Series(columns["rating"]), errors="coerce").to_numpy("float32")
    columns["category"] = np.array([genres.get(int(i), "") for i in columns["item"]], dtype=object)
    return _finish_with_categories(columns, report, path)


def _finish_with_categories(columns, report, path):
    """`_finish` with a text category column where "" means unknown (-> 0)."""
    category = columns.pop("category")
    columns["_category_text"] = category
    frame = _finish(columns, ("user", "item"), report, path, ("user", "item", "timestamp"))
    text = frame.pop("_category_text").to_numpy()
    known = text != ""
    ids = np.zeros(len(text), "int32")
    if known.any():
        ids[known], vocabulary = _remap(text[known].astype(str))
    else:
        vocabulary = np.zeros(0, dtype=str)
    frame.insert(2, "category", ids)
    frame.attrs["vocabularies"]["category"] = vocabulary
    return frame


def _movie_genres(path: str, read: Callable[[str], Any]) -> dict[int, str]:
    if not os.path.isfile(path):
        warnings.warn(f"{path} not found: every category is 0", stacklevel=3)
        return {}
    movies = read(path)
    out = {}
    for item, genres in zip(movies["item"] if "item" in movies else movies["movieId"], movies["genres"]):
        first = str(genres).split("|")[0]
        if first and first != "(no genres listed)":
            out[int(item)] = first
    return out


ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


def _ml100k_genres(path: str):
    import pandas as pd

    table = pd.read_csv(path, sep="|", header=None, encoding="latin-1")
    flags = table.iloc[:, 5:24].to_numpy()
    genres = ["|".join(g for g, f in zip(ML100K_GENRES[1:], row[1:]) if f) for row in flags]
    return pd.DataFrame({"item": table[0], "genres": genres})
