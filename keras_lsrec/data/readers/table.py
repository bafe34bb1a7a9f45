"""What every reader shares: the chunked table reader, id remapping and the load report.

The policy these implement (ids, malformed rows, memory) is described in
`keras_lsrec.data.readers`. A reader calls `read_table` (a file -> one numpy
array per column, bad rows rejected by the policy), then `finish` (ids
remapped, rows sorted by user and time, duplicates removed -> a DataFrame).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import itertools
import os
import re
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
import pandas as pd
from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

from keras_lsrec.data.readers import ids as exact
from keras_lsrec.data.readers.ids import encode_ids as encode_ids  # re-exported

FIELDS = ("user", "item", "category")
COLUMN_ORDER = ["user", "item", "category", "seller", "brand", "behavior", "action", "rating", "timestamp"]
MAX_LISTED = 20  # line numbers kept per problem in the report
ERRORS = ("raise", "skip")
LINE = "_line"  # the column of 1-based line numbers that `read_table` adds
GZIP_MAGIC = b"\x1f\x8b"
BOM = b"\xef\xbb\xbf"
BLANK_LINE = re.compile(rb"\n[ \t\r\f\v]*\n")  # a line of white space only after another line

Columns = dict[str, np.ndarray]
Problems = list[tuple[str, np.ndarray]]  # (reason, rows of a chunk with that problem)


@dataclass
class LoadReport:
    """What the loader rejected or repaired, by 1-based line number of the source file."""

    rows: int = 0
    rejected: dict[str, list[int]] = field(default_factory=dict)  # reason -> line numbers (first MAX_LISTED)
    rejected_count: int = 0
    unsorted: int = 0
    duplicates: list[int] = field(default_factory=list)
    duplicate_count: int = 0
    blank_lines: int = 0  # lines holding only white space: no event, skipped

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
        if self.blank_lines:
            parts.append(f"{self.blank_lines:,} blank lines skipped")
        return "; ".join(parts)


def check_path(path: str | os.PathLike[str]) -> str:
    """`path` as a string; a `ValueError` when it is not a file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"No such file: path={path!r}")
    return path


def check_errors(errors: str) -> None:
    if not isinstance(errors, str) or errors not in ERRORS:
        raise ValueError(f"`errors` must be 'raise' or 'skip'. Received: `errors={errors!r}`")


def check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    """`value` as an int, or a `ValueError` naming it unless it is an integer in `[low, high]`
    (numpy integers accepted, bools refused)."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, np.integer))
        or value < low
        or (high is not None and value > high)
    ):
        requirement = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
        raise ValueError(f"`{name}` must be {requirement}. Received: `{name}={value!r}`")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """`value` as a bool, or a `ValueError` naming it unless it is True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"`{name}` must be True or False. Received: `{name}={value!r}`")
    return bool(value)


def check_selection(name: str, values: Any, accepted: Mapping[Any, str]) -> list[Any] | None:
    """The values of a selection argument (`behaviors=`, `actions=`): `None` (keep every row) or a
    non-empty list of keys of `accepted` (`{value: what it means}`), each of the keys' type (an
    integer code: numpy integers accepted, bools refused; a name: a str). Anything else, an empty
    selection (it would keep no event) or a value not accepted is a `ValueError` naming the value
    and the accepted ones."""
    if values is None:
        return None
    choices = ", ".join(repr(k) if k == v else f"{k!r} ({v})" for k, v in accepted.items())
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise ValueError(
            f"`{name}` must be None (every event) or a list of values among {choices}. "
            f"Received: `{name}={values!r}`"
        )
    values = list(values)
    if not values:
        raise ValueError(
            f"`{name}` must name at least one value among {choices} (an empty selection keeps no "
            f"event); pass None to keep every event. Received: `{name}={values!r}`"
        )
    integers = all(isinstance(k, int) for k in accepted)
    for value in values:
        if integers:
            ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        else:
            ok = isinstance(value, str)
        if not ok or value not in accepted:
            named = [k for k, v in accepted.items() if v == value]
            hint = f" ({value!r} is written {named[0]!r})" if named else ""
            raise ValueError(
                f"`{name}` must list values among {choices}. Received {value!r} in `{name}={values!r}`{hint}."
            )
    return [int(v) if integers else v for v in values]


def is_gzip(path: str) -> bool:
    """Whether the file is gzip-compressed (by its first bytes, whatever its name)."""
    with open(path, "rb") as handle:
        return handle.read(2) == GZIP_MAGIC


@contextlib.contextmanager
def open_binary(path: str) -> Iterator[tuple[IO[bytes], IO[bytes]]]:
    """`(file, stream)`: the file on disk (its position measures progress) and its content,
    decompressed when it is gzip (`.gz`, detected by its first bytes)."""
    with open(path, "rb") as raw:
        compressed = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        if not compressed:
            yield raw, raw
            return
        with gzip.GzipFile(fileobj=raw, mode="rb") as stream:
            yield raw, stream  # type: ignore[misc]


def open_text(path: str, encoding: str = "utf-8") -> IO[str]:
    """The file as text, decompressed when it is gzip."""
    if is_gzip(path):
        return gzip.open(path, "rt", encoding=encoding)
    return open(path, encoding=encoding)


def first_content(path: str) -> tuple[int, bytes]:
    """`(number, line)`: the file's first line that is not blank (white space only), without a
    byte-order mark, and its 1-based line number; `(0, b"")` for a file of blank lines only."""
    with open_binary(path) as (_, stream):
        for number, line in enumerate(stream, 1):
            line = line.removeprefix(BOM) if number == 1 else line
            if line.strip():
                return number, line
    return 0, b""


def detect_header(path: str, sep: str, expected: Sequence[str]) -> bool:
    """Whether the file's first line that is not blank is its header, decided by content.

    A first line with an integer field is an event (no header). A line
    without one must be the `expected` header (names compared without case);
    another is refused, since columns in another order would be read wrongly.
    Blank lines before it are skipped (`read_table` skips them too).
    """
    number, first = first_content(path)
    text = first.decode("utf-8", errors="replace").strip()
    fields = [value.strip().strip('"') for value in text.split(sep)]
    if not text or any(re.fullmatch(exact.DIGITS, value) for value in fields):
        return False
    if [value.lower() for value in fields] == [name.lower() for name in expected]:
        return True
    raise ValueError(
        f"{path}: line {number} ({text[:200]!r}) has no integer id, so it is a header, but not the expected "
        f"{sep.join(expected)!r}. The columns must come in that order (the file as distributed); "
        "reorder or rename them."
    )


def raise_malformed(path: str, report: LoadReport) -> None:
    """The `errors="raise"` answer to rejected rows: a `ValueError` listing them."""
    raise ValueError(
        f"{path}: malformed rows. {report.summary()}. "
        "Pass errors='skip' to leave them out (they stay listed in the report)."
    )


# ----------------------------------------------------------------- reading
def read_table(
    path: str,
    names: Sequence[str],
    *,
    sep: str,
    header: bool,
    numeric: Sequence[str],
    ids: Sequence[str] = (),
    strings: Sequence[str] = (),
    optional: Sequence[str] = (),
    codes: Mapping[str, Sequence[str]] | None = None,
    chunk_rows: int,
    report: LoadReport,
    errors: str,
    progress: bool,
    convert: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> Columns:
    """Streams a delimited file in chunks of lines; returns one numpy array per
    kept column (and `_line`, the 1-based line number of each kept row).

    `numeric` columns become exact integers (never through a float: see
    `ids.parse_integers`; empty or missing: rejected, or 0 for an `optional`
    column; not an integer: rejected); those in `ids` may take any size
    (int64, uint64 or Python ints, see `keras_lsrec.data.readers.ids`), the
    others must fit int64. `strings` stay text (empty: rejected), `codes`
    become the int8 index of the value in an allowed list (another value:
    rejected), so no Python object per row outlives its chunk. A chunk is
    first parsed with numeric types (fast); if a column does not come out as
    exact integers it is re-parsed as text. `convert` maps a text chunk to
    the named columns first (JSON lines). A gzip file is read decompressed.
    Blank lines are skipped and counted (`report.blank_lines`); line numbers
    still count them. `chunk_rows` (an integer >= 1) and `progress` (a bool)
    are checked before anything is read.
    """
    check_errors(errors)
    chunk_rows = check_int("chunk_rows", chunk_rows, 1)
    progress = check_bool("progress", progress)
    codes = dict(codes or {})
    keep = [*numeric, *strings, *codes]
    parts: dict[str, list[np.ndarray]] = {name: [] for name in [*keep, LINE]}
    options = _csv_options(names, sep)
    # The typed parse: text columns as str, coded ones as categories (numeric ones inferred).
    typed = {**{name: "str" for name in strings}, **{name: "category" for name in codes}}
    bar = _progress_bar(progress)
    size = os.path.getsize(path)
    last_line = 0
    with bar, open_binary(path) as (raw, stream):
        task = bar.add_task(os.path.basename(path), total=size)
        try:
            for lines, buffer in _chunks(stream, chunk_rows, header, report):
                chunk = _parse_chunk(buffer, options, typed, numeric, convert, path, int(lines[0]))
                values, bad = _validate_chunk(chunk, lines, numeric, ids, strings, optional, codes, report)
                if bad.any() and errors == "raise":
                    raise_malformed(path, report)
                for name in keep:
                    parts[name].append(values[name][~bad])
                parts[LINE].append(lines[~bad].astype("int32") if lines[-1] < 2**31 else lines[~bad])
                last_line = int(lines[-1])
                bar.update(task, completed=raw.tell())
        except (EOFError, gzip.BadGzipFile, zlib.error) as error:
            raise ValueError(
                f"{path}: the gzip data is truncated or corrupt after line {last_line} ({error}). "
                "Download or decompress the file again."
            ) from None
    return {
        name: exact.concatenate(chunks) if name in numeric else _join(chunks, name in strings)
        for name, chunks in parts.items()
    }


def _join(chunks: list[np.ndarray], text: bool) -> np.ndarray:
    return np.concatenate(chunks) if chunks else np.zeros(0, object if text else "int64")


def _progress_bar(enabled: bool) -> Progress:
    """A transient rich progress bar over the bytes read (a no-op when disabled)."""
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=True,
    )


def _csv_options(names: Sequence[str], sep: str) -> dict[str, Any]:
    """`pandas.read_csv` options for one chunk of lines (the header, if any, is already skipped).

    A separator of several characters needs the python engine; `"\\x01"` (a
    whole JSON line read as one field) turns quoting off.
    """
    return dict(
        sep=sep,
        header=None,
        names=list(names),
        engine="python" if len(sep) > 1 else "c",
        index_col=False,
        skip_blank_lines=False,
        quoting=csv.QUOTE_NONE if sep == "\x01" else csv.QUOTE_MINIMAL,
        encoding="utf-8",
    )


def _chunks(
    handle: IO[bytes], chunk_rows: int, header: bool, report: LoadReport
) -> Iterator[tuple[np.ndarray, io.BytesIO]]:
    """The file after its header in chunks of up to `chunk_rows` lines: their 1-based line numbers
    and bytes.

    A UTF-8 byte-order mark at the start of the file is not part of the first line. Blank lines
    (white space only) hold no event: they are skipped, wherever they are, and counted in
    `report.blank_lines`; the header, when there is one, is the first line that is not blank.
    """
    lead = handle.readline().removeprefix(BOM)
    first = 1
    if header:
        while lead and not lead.strip():
            report.blank_lines += 1
            first += 1
            lead = handle.readline()
        first += 1  # the header
    pending = [lead] if lead and not header else []
    while True:
        raw = pending + list(itertools.islice(handle, chunk_rows - len(pending)))
        pending = []
        if not raw:
            return
        lines = first + np.arange(len(raw), dtype="int64")
        first += len(raw)
        data = b"".join(raw)
        if not raw[0].strip() or not raw[-1].strip() or BLANK_LINE.search(data):
            # rare: find the blank lines one by one
            kept = np.array([bool(line.strip()) for line in raw])
            report.blank_lines += int((~kept).sum())
            lines = lines[kept]
            data = b"".join(line for line, keep in zip(raw, kept, strict=True) if keep)
        del raw  # one copy of the chunk's bytes, not two, while it is parsed
        if len(lines):
            yield lines, io.BytesIO(data)


def _parse_chunk(
    buffer: io.BytesIO,
    options: dict[str, Any],
    typed: Mapping[str, str],
    numeric: Sequence[str],
    convert: Callable[[pd.DataFrame], pd.DataFrame] | None,
    path: str,
    first_line: int,
) -> pd.DataFrame:
    """One chunk as a DataFrame: typed when the C parser can (fast), otherwise as text.

    A line with too many fields, or one that is not UTF-8 text, is a
    `ValueError` naming its line in the file.
    """
    try:
        if convert is None:
            chunk = _parse_typed(buffer, options, typed, numeric)
            if chunk is not None:
                return chunk
        chunk = pd.read_csv(buffer, dtype=str, keep_default_na=False, **options)
        return chunk if convert is None else convert(chunk)
    except UnicodeDecodeError as error:
        line = _undecodable_line(buffer, first_line)
        raise ValueError(
            f"{path}: line {line} is not UTF-8 text ({error.reason}). Convert the file to UTF-8 "
            "(e.g. `iconv -f latin1 -t utf-8`) or check that it is the right file."
        ) from None
    except pd.errors.ParserError as error:
        message = re.sub(r"line (\d+)", lambda m: f"line {int(m.group(1)) + first_line - 1}", str(error))
        raise ValueError(f"{path}: malformed file ({message.strip()})") from None


def _undecodable_line(buffer: io.BytesIO, first_line: int) -> int:
    """The file's line number of the chunk's first line that is not UTF-8."""
    for number, line in enumerate(buffer.getvalue().split(b"\n"), first_line):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return number
    return first_line


def _parse_typed(
    buffer: io.BytesIO, options: dict[str, Any], dtypes: Mapping[str, str], numeric: Sequence[str]
) -> pd.DataFrame | None:
    """The chunk with `numeric` columns typed by the parser and the others as `dtypes` says
    (text, categories), or None (buffer rewound) when that is not exact: the chunk is then read as text.

    The parser types a column of integers written in digits as int64 (uint64 above 2^63), exactly;
    a column with a decimal or an empty field becomes float64, exact only while every magnitude is
    below 2^53; anything else (text, larger numbers) is re-read as text, whose rule is the same
    (`ids.parse_integers`). Only an empty field is missing (NaN), as in the text parse: "NA" or
    "null" is a value (an id such as "0007" stays text), so a row gets the same verdict whichever
    parse its chunk took.
    """
    try:
        chunk = pd.read_csv(buffer, dtype=dict(dtypes), keep_default_na=False, na_values=[""], **options)
    except (ValueError, TypeError):
        buffer.seek(0)
        return None
    for name in numeric:
        kind = chunk[name].dtype.kind
        if kind in "iu" or (kind == "f" and not (np.abs(chunk[name].to_numpy()) >= exact.FLOAT_EXACT).any()):
            continue
        buffer.seek(0)
        return None
    return chunk


def _validate_chunk(
    chunk: pd.DataFrame,
    lines: np.ndarray,
    numeric: Sequence[str],
    ids: Sequence[str],
    strings: Sequence[str],
    optional: Sequence[str],
    codes: Mapping[str, Sequence[str]],
    report: LoadReport,
) -> tuple[Columns, np.ndarray]:
    """The typed columns of a chunk and the mask of its rejected rows.

    Every rejected row is reported once, under its first problem (columns in
    the order numeric, strings, codes).
    """
    bad = np.zeros(len(chunk), bool)
    values: Columns = {}

    def note(problems: Problems) -> None:
        for reason, rows in problems:
            report.reject(reason, lines[rows & ~bad])
            bad[rows] = True

    for name in numeric:
        values[name], problems = _integers(chunk[name], name, optional=name in optional, wide=name in ids)
        note(problems)
    for name in strings:
        values[name], problems = _text(chunk[name], name)
        note(problems)
    for name, allowed in codes.items():
        values[name], problems = _codes(chunk[name], name, allowed)
        note(problems)
    return values, bad


def _integers(column: pd.Series, name: str, optional: bool, wide: bool) -> tuple[np.ndarray, Problems]:
    """Exact integers (the narrowest exact dtype; 0 where empty) and the rows that are not.

    An empty value is a problem unless the column is `optional`; a value
    beyond int64 is one unless the column is `wide` (an id column).
    """
    kind = column.dtype.kind
    if kind in "iu":
        values = exact.narrow(column.to_numpy())
        empty = invalid = np.zeros(len(column), bool)
    elif kind == "f":  # the typed parse checked that every magnitude is below 2^53
        values, empty, invalid = exact.from_floats(column.to_numpy(dtype="float64"))
    else:
        values, empty, invalid = exact.parse_integers(column)
    problems: Problems = [] if optional else [(f"{name}: missing or empty", empty)]
    problems.append((f"{name}: not an integer", invalid))
    if not wide and values.dtype.kind in "uO":
        low, high = exact.INT64
        beyond = np.array([not low <= int(v) <= high for v in values], bool)
        problems.append((f"{name}: beyond the int64 range", beyond))
        values = np.array([0 if b else int(v) for v, b in zip(values, beyond, strict=True)], "int64")
    return values, problems


def _text(column: pd.Series, name: str) -> tuple[np.ndarray, Problems]:
    """Stripped text (an object array) and the rows where it is empty."""
    text = column.fillna("").astype(str).str.strip()
    return text.to_numpy(dtype=object), [(f"{name}: missing or empty", (text == "").to_numpy())]


def _codes(column: pd.Series, name: str, allowed: Sequence[str]) -> tuple[np.ndarray, Problems]:
    """The int8 position of each (stripped) value in `allowed`, and the rows whose value is not there."""
    index = pd.Index(list(allowed))
    if isinstance(column.dtype, pd.CategoricalDtype):  # typed parse: look up each category once
        positions = np.append(index.get_indexer(column.cat.categories.astype(str).str.strip()), -1)
        code = positions[column.cat.codes.to_numpy()]  # a missing value (code -1) takes the last: -1
    else:
        code = index.get_indexer(column.astype(str).str.strip())
    return code.astype("int8"), [(f"{name}: not one of {tuple(allowed)}", code < 0)]


def select_rows(columns: Columns, column: str, codes: Sequence[int] | None) -> Columns:
    """The rows whose `column` is one of `codes` (before ids are remapped); all rows when `codes` is None."""
    if codes is None:
        return columns
    rows = np.isin(columns[column], list(codes))
    return {name: values[rows] for name, values in columns.items()}


def floats(text: np.ndarray) -> np.ndarray:
    """Text (ratings) as float32; NaN where it is not a number."""
    return pd.to_numeric(pd.Series(text), errors="coerce").to_numpy("float32")


# ----------------------------------------------------------------- ids
def vocab_sizes(frame: pd.DataFrame) -> dict[str, int]:
    """`{field: N + 2}` (padding, ids, OOV) for every remapped id column of `frame`."""
    return {name: len(values) + 2 for name, values in frame.attrs["vocabularies"].items()}


_remap = exact.remap


def _remap_columns(
    columns: Columns, id_columns: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, np.ndarray]:
    """Replaces each id column by new ids 1..N; returns the vocabularies (the original ids, exact).

    In an `optional` side-id column 0 means unknown (an empty field) and stays 0; in any other
    column 0 is an id like the others.
    """
    vocabularies = {}
    for name in id_columns:
        values = columns[name]
        zero = values == 0 if name in optional else np.zeros(len(values), bool)
        if zero.any():
            ids = np.zeros(len(values), "int32")
            ids[~zero], vocabularies[name] = _remap(values[~zero])
        else:
            ids, vocabularies[name] = _remap(values)
        columns[name] = ids
    return vocabularies


# ----------------------------------------------------------------- the events table
def finish(
    columns: Columns,
    id_columns: Sequence[str],
    report: LoadReport,
    path: str,
    duplicate_key: Sequence[str],
    stacklevel: int = 3,
    optional: Sequence[str] = (),
) -> pd.DataFrame:
    """Remaps ids, sorts by (user, time), removes duplicates, attaches the report (numpy, then one DataFrame).

    `stacklevel` points the warning about repairs at the reader's caller; `optional` id columns
    keep 0 (unknown) as 0.
    """
    lines = columns.pop(LINE)
    vocabularies = _remap_columns(columns, id_columns, optional)
    users, times = columns["user"], columns["timestamp"]
    report.unsorted = _count_unsorted(users, times)
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
        warnings.warn(f"{path}: {report.summary()}", stacklevel=stacklevel)
    return frame


def finish_with_text_categories(
    columns: Columns, report: LoadReport, path: str, stacklevel: int = 4
) -> pd.DataFrame:
    """`finish` with a text `category` column where "" means unknown (-> 0)."""
    columns["_category_text"] = columns.pop("category")
    key = ("user", "item", "timestamp")
    frame = finish(columns, ("user", "item"), report, path, key, stacklevel=stacklevel)
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


def _count_unsorted(users: np.ndarray, times: np.ndarray) -> int:
    """Events earlier than the previous event of the same user, in file order."""
    by_user = np.argsort(users, kind="stable")
    u, t = users[by_user], times[by_user]
    return int(((u[1:] == u[:-1]) & (t[1:] < t[:-1])).sum())


def _duplicates(columns: Columns, lines: np.ndarray, key: Sequence[str]) -> np.ndarray:
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
