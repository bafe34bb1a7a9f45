"""Readers for the public long-sequence datasets, in their original file formats.

One module per format (`taobao`, `tmall`, `amazon`, `movielens`, `kuairand`), all built on
one chunked reader (`table`). Every loader returns one `pandas.DataFrame` of
events, sorted by user then time, with integer ids remapped to `1..N` per
field (0 is padding), plus the columns the format has (`behavior`, `action`,
`rating`, `seller`, `brand`; KuaiRand: `action`, its feedback bitmask, and
`play_time_ms`, `duration_ms`, with `timestamp` in milliseconds).

Id policy: every id that occurs in the file gets a new id `1..N` in the
order of the original ids (numbers sorted numerically, strings
lexicographically). `frame.attrs["vocabularies"][field]` holds the original
ids exactly, entry `i - 1` for new id `i`, so `encode_ids` maps other raw ids (e.g.
at serving time) the same way; an id it has never seen becomes the
out-of-vocabulary id `N + 1`, and `vocab_sizes(frame)` counts it
(`N + 2` per field: padding, N ids, OOV). A missing optional side id (Tmall
`brand_id`, a movie without genre) becomes 0; elsewhere 0 is an id. Numeric
ids are never read through a float64 (`ids.py`: int32/int64, uint64 from
2^63, Python ints beyond), so 2^53 and 2^53 + 1 stay two ids.

Files may be gzip-compressed (detected by their first bytes); a header
(Tmall, MovieLens `ratings.csv`) is recognised by content.

Malformed rows are never dropped silently; `frame.attrs["report"]` (a
`LoadReport`) lists them by 1-based line number of the file:

- missing columns, an empty or non-numeric id or timestamp, an unknown
  behaviour: rejected. `errors="raise"` (default) raises a `ValueError` with
  the first line numbers; `errors="skip"` leaves the rows out, lists them in
  the report and warns.
- a row with too many columns: a `ValueError` naming the line (the file's
  layout is wrong).
- timestamps out of order within a user: repaired by a stable sort on
  (user, timestamp), so equal timestamps keep their file order; counted.
- duplicate events (same user, item, timestamp and behaviour): repaired by
  keeping the first; their line numbers are listed.
- blank lines (white space only, anywhere, also before a header): they hold
  no event, so they are skipped and counted (`LoadReport.blank_lines`); the
  format and the header are recognised from the first line that is not blank.

Arguments are checked before the file is read: a `behaviors=` / `actions=`
value the format does not have, or an empty selection, is a `ValueError`
naming it and the accepted values (never an empty table).

Files are read in chunks (`chunk_rows`), so memory is the numeric columns of
the events (a few bytes per row and column), never one Python object per row.
"""

from keras_lsrec.data.readers.amazon import load_amazon
from keras_lsrec.data.readers.kuairand import load_kuairand
from keras_lsrec.data.readers.movielens import load_movielens
from keras_lsrec.data.readers.table import LoadReport, encode_ids, vocab_sizes
from keras_lsrec.data.readers.taobao import load_taobao
from keras_lsrec.data.readers.tmall import load_tmall

__all__ = [
    "LoadReport",
    "encode_ids",
    "load_amazon",
    "load_kuairand",
    "load_movielens",
    "load_taobao",
    "load_tmall",
    "vocab_sizes",
]
