"""KuaiRand interaction logs (`log_standard_*.csv`, `log_random_*.csv`, with header), as in dlrm_v3."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from keras_lsrec.data.readers import ids as exact
from keras_lsrec.data.readers.table import (
    LINE,
    Columns,
    LoadReport,
    check_bool,
    check_errors,
    check_int,
    check_path,
    detect_header,
    finish,
    raise_malformed,
    read_table,
)

# The log files' columns, as published (KuaiRand-Pure, -1K and -27K share them).
HEADER = (
    "user_id",
    "video_id",
    "date",
    "hourmin",
    "time_ms",
    "is_click",
    "is_like",
    "is_follow",
    "is_comment",
    "is_forward",
    "is_hate",
    "long_view",
    "play_time_ms",
    "duration_ms",
    "profile_stay_time",
    "comment_stay_time",
    "is_profile_enter",
    "is_rand",
    "tab",
)
# dlrm_v3's action bitmask (`action_weights`): one bit per feedback flag.
ACTION_BITS = {
    "is_click": 1,
    "is_like": 2,
    "is_follow": 4,
    "is_comment": 8,
    "is_forward": 16,
    "is_hate": 32,
    "long_view": 64,
    "is_profile_enter": 128,
}
RENAMED = {"user_id": "user", "video_id": "item", "time_ms": "timestamp"}
NAMES = tuple(RENAMED.get(name, name) for name in HEADER)
IDS = ("user", "item")
# Read and checked; `tab` (the last column) also catches a row cut short.
NUMERIC = ("user", "item", "timestamp", *ACTION_BITS, "play_time_ms", "duration_ms", "tab")
KEPT = ("play_time_ms", "duration_ms")


def load_kuairand(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    chunk_rows: int = 1_000_000,
    errors: str = "raise",
    progress: bool = True,
) -> pd.DataFrame:
    """KuaiRand interaction logs (`log_standard_4_08_to_4_21_1k.csv`, ...): user, video, time and feedback.

    Reads one log file, or a list of them read as one table (dlrm_v3 joins
    the two standard logs of a release: `[".../log_standard_4_08_to_4_21_1k.csv",
    ".../log_standard_4_22_to_5_08_1k.csv"]`), each with KuaiRand's header
    `user_id,video_id,date,hourmin,time_ms,is_click,is_like,is_follow,
    is_comment,is_forward,is_hate,long_view,play_time_ms,duration_ms,
    profile_stay_time,comment_stay_time,is_profile_enter,is_rand,tab`
    (recognised by content: a file without it loses no event; a header with
    other names is refused). A gzip file is read as it is.

    `action` is dlrm_v3's bitmask of the eight feedback flags (its
    `action_weights`): is_click 1, is_like 2, is_follow 4, is_comment 8,
    is_forward 16, is_hate 32, long_view 64, is_profile_enter 128
    (`ACTION_BITS`); a flag other than 0 or 1 is a malformed row.
    `timestamp` is `time_ms`: milliseconds since the epoch (KuaiRand's own
    resolution; the other loaders' timestamps are seconds). `user` and
    `item` (`video_id`) are remapped to `1..N` over all the files together.
    The other columns (`date`, `hourmin`, the stay times, `is_rand`, `tab`)
    are not returned. Duplicate events are equal on user, item, timestamp,
    action and play time. With several files, a rejected row's reason is
    prefixed with its file's name; line numbers are those of each file.

    Returns user, item, action (int16), timestamp, play_time_ms, duration_ms.
    """
    paths = _check_paths(path)
    check_errors(errors)
    check_int("chunk_rows", chunk_rows, 1)  # before `detect_header` reads a line
    check_bool("progress", progress)
    report = LoadReport()
    parts: list[Columns] = []
    for file in paths:
        own = LoadReport()
        columns = read_table(
            file,
            NAMES,
            sep=",",
            header=detect_header(file, ",", HEADER),
            numeric=NUMERIC,
            ids=IDS,
            chunk_rows=chunk_rows,
            report=own,
            errors=errors,
            progress=progress,
        )
        parts.append(_with_actions(columns, own, file, errors))
        prefix = f"{os.path.basename(file)}: " if len(paths) > 1 else ""
        for reason, lines in own.rejected.items():
            report.rejected[prefix + reason] = lines
        report.rejected_count += own.rejected_count
        report.blank_lines += own.blank_lines
    columns = {name: exact.concatenate([p[name] for p in parts]) for name in parts[0]}
    key = ("user", "item", "timestamp", "action", "play_time_ms")  # equal on these: a duplicate event
    frame = finish(columns, IDS, report, paths[0] if len(paths) == 1 else " + ".join(paths), key)
    frame.attrs["source"] = (
        os.path.abspath(paths[0]) if len(paths) == 1 else [os.path.abspath(p) for p in paths]
    )
    return frame


def _check_paths(path: object) -> list[str]:
    """One path or a non-empty list of them, each a file."""
    if isinstance(path, (str, os.PathLike)):
        return [check_path(path)]
    if isinstance(path, Sequence) and not isinstance(path, bytes) and len(path):
        if all(isinstance(p, (str, os.PathLike)) for p in path):
            return [check_path(p) for p in path]
    raise ValueError(
        f"`path` must be a KuaiRand log file or a non-empty list of them. Received: `path={path!r}`"
    )


def _with_actions(columns: Columns, report: LoadReport, path: str, errors: str) -> Columns:
    """The flags folded into `action` (dlrm_v3's bitmask); a row with a flag other than 0/1 is
    rejected (the `errors` policy). Only the returned columns (and the line numbers) are kept."""
    invalid = np.zeros(len(columns[LINE]), bool)
    for flag in ACTION_BITS:
        wrong = ~np.isin(columns[flag], (0, 1)) & ~invalid
        report.reject(f"{flag}: not 0 or 1", columns[LINE][wrong])
        invalid |= wrong
    if invalid.any() and errors == "raise":
        raise_malformed(path, report)
    action = np.zeros(len(invalid), "int16")
    for flag, bit in ACTION_BITS.items():
        action |= (columns[flag] == 1).astype("int16") * np.int16(bit)
    kept = {name: columns[name][~invalid] for name in (*IDS, "timestamp", *KEPT, LINE)}
    kept["action"] = action[~invalid]
    for name in ("timestamp", *KEPT):  # numbers (not ids): int64 whatever the file holds
        kept[name] = np.asarray(kept[name], "int64")
    return kept
