"""reczoo LongCTR's published parquet layout (MicroVideo1.7M_x2, KuaiVideo_x2, Ebnerd_small_x1).

`load_longctr` returns the three splits as `SequenceDataset`s, not an events
table: the files are already split and integer-encoded (FuxiCTR's
`rebuild_dataset: False`), and their histories are defined per impression by
a length into the user's sequence, so the readers' contract (one events table,
ids remapped to 1..N) does not apply. That is why this module sits beside the
readers and not among them.

The layout, as reczoo/LongCTR's `longctr_dataloader.py` reads it:

- `train.parquet`, `valid.parquet`, `test.parquet`: one impression per row,
  `user_index`, `item_index`, `seq_len`, the label (`is_click` or `click`) and
  any per-impression columns (EBNeRD's context: ids and fixed-width lists);
- `user_info.parquet`: `full_item_seq`, a list of item indices per user,
  row u = user u;
- `item_info.parquet`: one row per item, row i = item i (LongCTR selects rows
  by position; its `item_index` column is not consulted), row 0 = padding.

The history of an impression is `full_item_seq[:seq_len]` of its user, its
most recent `max_len` items kept and left-padded with 0.

`write_longctr_files` writes generated data with a planted long-range signal
in the same layout (tests, `bench/longctr.py --generate`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from keras_lsrec.data.dataset import SequenceDataset
from keras_lsrec.data.features import Categorical, Dense
from keras_lsrec.validation import check_choice, check_finite, check_flag, check_integer

SPLITS = (("train", "train.parquet"), ("validation", "valid.parquet"), ("test", "test.parquet"))
META = ("user_index", "item_index", "seq_len")
LABELS = ("is_click", "click", "label")
# item_info columns that are the item's own id (embedded as the `item` field when it equals the row).
ITEM_ID_COLUMNS = ("item_id", "article_id")
# item_info columns that are the item's category (the `category` id field).
CATEGORY_COLUMNS = ("cate_id", "category", "cat_id")


def load_longctr(
    directory: str | os.PathLike[str],
    max_len: int,
    *,
    config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    vocab_sizes: Mapping[str, int] | None = None,
    features: Sequence[str] | None = None,
    item_columns: Sequence[str] | None = None,
    label: str | None = None,
    batch_size: int = 1024,
    shuffle: bool = True,
    seed: int = 20242025,
    time: bool = False,
) -> dict[str, SequenceDataset]:
    """The splits of a reczoo LongCTR dataset directory as `SequenceDataset`s.

    Mapping onto the batch format (every name by column, every split on one
    schema; the user sequences and item tables are stored once and shared by
    the three datasets):

    - `item`: the item index (`item_index`, `full_item_seq`), the row of
      `item_info.parquet`; 0 is padding, as in LongCTR's mask. When the item's
      own id column (`item_id`, EBNeRD's `article_id`) equals that row, it is
      this field; otherwise it becomes an id field of its own name.
    - `category`: `cate_id` (MicroVideo) or `category` (EBNeRD) of `item_info`.
    - every other integer column of `item_info` holding one id per item: an id
      field of that name (gathered per event, `target_<c>`, `history_<c>`);
      a list of ids (EBNeRD's `subcategory`): an item feature
      `Categorical(V, max_values=M)`; a list of floats (`image_emb_dim64`): an
      item feature `Dense(D)`.
    - every column of the impressions besides `user_index`, `item_index`,
      `seq_len` and the label: a per-row feature, `Categorical(V)` for an id,
      `Categorical(V, max_values=M)` for a list of ids (EBNeRD's `topics`,
      `ner_clusters`), `Dense(D)` for floats.
    - the label: float 0/1; the user (`dataset.users`) is `user_index`, the
      group of gAUC, as LongCTR's `group_id`.

    Vocabulary sizes are the largest id + 1 over all files, raised to the
    YAML's `vocab_size` (FuxiCTR's table size) or `vocab_sizes[column]` when
    given; an id at or beyond a given size is refused.

    Args:
        directory: the folder with the five parquet files.
        max_len: the history window (LongCTR: 50, 100, 200, 500, 1000).
        config: LongCTR's dataset YAML (a path, or the parsed mapping: the
            `dataset_config.yaml` of a benchmark run, a tuner config with
            `dataset_config:`, or one dataset's entry). Its active
            `feature_cols` select the columns; its `vocab_size`s, `max_len`s of
            list columns and `label_col` are used. Needs PyYAML for a path.
        vocab_sizes: `{column: size}`, raising the sizes read from the data.
        features: the impression columns to use as per-row features (default:
            the config's, else all of them).
        item_columns: the `item_info` columns to use (default: the config's,
            else all but `item_index`).
        label: the label column (default: the config's, else the first of
            `is_click`, `click`, `label` present).
        batch_size: rows per batch (LongCTR: 1024).
        shuffle: reshuffle the training split every epoch (seeded); the
            validation and test splits keep the file order.
        seed: the shuffling seed (LongCTR's 20242025).
        time: add `history_time` (LongCTR's models have no such input).

    Returns:
        `{"train": ..., "validation": ..., "test": ...}`; `dataset.schema` is
        the schema to build a model on.

    Raises:
        ValueError: naming the file, the column, the row and the value, for
            a missing file or column, a `seq_len` longer than the user's
            sequence, a user or item index outside `user_info` / `item_info`,
            a non-finite embedding or label, a list wider than the config's
            `max_len`, an id beyond a given vocabulary size.

    Example:

    ```python
    splits = keras_lsrec.data.load_longctr("data/MicroVideo1.7M_x2", max_len=100)
    model = keras_lsrec.models.DIN(splits["train"].schema)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.fit(splits["train"], validation_data=splits["validation"], shuffle=False)
    ```
    """
    pq = _pyarrow_parquet()
    directory = os.fspath(directory)
    if isinstance(max_len, bool) or not isinstance(max_len, (int, np.integer)) or max_len < 1:
        raise ValueError(f"`max_len` must be a positive integer. Received: max_len={max_len!r}")
    # The arguments the datasets take, checked before any file is read.
    check_integer("batch_size", batch_size, 1, requirement="a positive integer")
    check_integer("seed", seed, 0)
    check_flag("shuffle", shuffle)
    check_flag("time", time)
    for name, columns in (("features", features), ("item_columns", item_columns)):
        if columns is not None and (isinstance(columns, str) or not all(isinstance(c, str) for c in columns)):
            raise ValueError(f"`{name}` must be a list of column names. Received: {name}={columns!r}")
    spec = _read_config(config)
    sizes: dict[str, int] = {c: int(v) for c, v in spec["vocab"].items()}
    for column, size in (vocab_sizes or {}).items():
        sizes[str(column)] = check_integer(f"vocab_sizes[{column!r}]", size, 1)
    widths: dict[str, int] = spec["widths"]

    def path(name: str) -> str:
        full = os.path.join(directory, name)
        if not os.path.isfile(full):
            raise ValueError(f"LongCTR file {full} is missing (a LongCTR directory holds {_files()}).")
        return full

    # -- items: one row per item by position, row 0 = padding --------------------------------------
    item_path = path("item_info.parquet")
    item_table = pq.read_table(item_path)
    num_items = item_table.num_rows
    if num_items < 2:
        raise ValueError(f"{item_path} has {num_items} row(s): it needs row 0 (padding) and an item.")
    if spec.get("item_or_rows"):  # a config without `source: item`: columns belong where the files hold them
        spec["item"] = [c for c in spec["rows"] if c in item_table.column_names]
        spec["rows"] = [c for c in spec["rows"] if c not in item_table.column_names]
    wanted_items = item_columns if item_columns is not None else spec["item"]
    if wanted_items is None:
        wanted_items = [c for c in item_table.column_names if c != "item_index"]
    id_columns: dict[str, np.ndarray] = {}  # field -> (items,) ids
    field_of: dict[str, str] = {}  # field -> column
    tables: dict[str, tuple[Categorical | Dense, np.ndarray]] = {}
    for column in wanted_items:
        values, is_list = _column(item_table, column, item_path, widths.get(column))
        if values.dtype.kind == "f":
            _check_finite(values, item_path, column)
            if not is_list:
                values = values[:, None]
            tables[column] = (Dense(values.shape[1]), values.astype("float32"))
            continue
        _check_ids(values, item_path, column, sizes.get(column))
        if is_list:
            vocab = max(2, int(values.max(initial=0)) + 1, sizes.get(column, 0))
            tables[column] = (Categorical(vocab, max_values=values.shape[1]), values.astype("int32"))
            continue
        if column in ITEM_ID_COLUMNS and np.array_equal(values, np.arange(num_items)):
            field = "item"
        elif column in CATEGORY_COLUMNS and "category" not in field_of:
            field = "category"
        else:
            field = column
        if field in field_of:
            raise ValueError(
                f"{item_path}: columns {field_of[field]!r} and {column!r} would both be the id field "
                f"{field!r}; pass `item_columns=` without one of them."
            )
        field_of[field] = column
        id_columns[field] = values.astype("int32")

    # -- users: full_item_seq, row u = user u ------------------------------------------------------
    user_path = path("user_info.parquet")
    flat, offsets = _list_column(
        pq.read_table(user_path, columns=_present(pq, user_path, ["full_item_seq"])),
        "full_item_seq",
        user_path,
    )
    outside = (flat < 0) | (flat >= num_items)
    if outside.any():
        event = int(np.argmax(outside))
        user = int(np.searchsorted(offsets, event, side="right") - 1)
        raise ValueError(
            f"{user_path}: `full_item_seq` of user {user} (row {user}) holds item {flat[event]} at "
            f"position {event - offsets[user]}, outside {item_path}'s {num_items} rows [0, {num_items})."
        )
    flat = flat.astype("int32")
    num_users = len(offsets) - 1

    # -- impressions ---------------------------------------------------------------------------------
    splits: dict[str, dict[str, np.ndarray]] = {}
    row_columns: dict[str, dict[str, np.ndarray]] = {}
    label_name = label or spec["label"]
    wanted_rows = features if features is not None else spec["rows"]
    for split, filename in SPLITS:
        file = path(filename)
        names = pq.read_schema(file).names
        if label_name is None:
            found = [c for c in LABELS if c in names]
            if not found:
                raise ValueError(
                    f"{file} has no label column: expected one of {list(LABELS)}; columns {names}."
                )
            label_name = found[0]
        used = wanted_rows if wanted_rows is not None else [c for c in names if c not in (*META, label_name)]
        table = pq.read_table(file, columns=_present(pq, file, [*META, label_name, *used]))
        meta = {}
        for column in META:
            values, is_list = _column(table, column, file, None)
            if is_list or values.dtype.kind not in "iu":
                raise ValueError(
                    f"{file}: column {column!r} must hold one integer per row. Received {values.dtype}."
                )
            meta[column] = values.astype("int64")
        users, items, lengths = meta["user_index"], meta["item_index"], meta["seq_len"]
        _check_range(
            users, 0, num_users, file, "user_index", f"a user of {user_path} (rows 0..{num_users - 1})"
        )
        _check_range(
            items,
            1,
            num_items,
            file,
            "item_index",
            f"an item of {item_path} (rows 1..{num_items - 1}; 0 is padding)",
        )
        available = np.diff(offsets)[users]
        bad = (lengths < 0) | (lengths > available)
        if bad.any():
            row = int(np.argmax(bad))
            raise ValueError(
                f"{file}: `seq_len` = {lengths[row]} at row {row} (user {users[row]}), but that user's "
                f"`full_item_seq` in {user_path} holds {available[row]} items: the history is its first "
                "`seq_len` items."
            )
        labels, is_list = _column(table, label_name, file, None)
        labels = labels.astype("float64")
        bad = is_list or ~np.isin(labels, (0.0, 1.0))
        if np.any(bad):
            row = int(np.argmax(bad))
            raise ValueError(f"{file}: label {label_name!r} must be 0 or 1; row {row} holds {labels[row]!r}.")
        splits[split] = {
            "user": users.astype("int32"),
            "end": offsets[users] + lengths,
            "label": labels.astype("float32"),
            "target_item": items.astype("int32"),
            **{f"target_{field}": ids[items] for field, ids in id_columns.items() if field != "item"},
        }
        row_columns[split] = {}
        for column in used:
            if column in id_columns or column in tables:
                raise ValueError(
                    f"{file}: the per-row column {column!r} has the name of an item column of {item_path}; "
                    "pass `features=` without it."
                )
            values, is_list = _column(table, column, file, widths.get(column))
            if values.dtype.kind == "f":
                _check_finite(values, file, column)
                values = (values if is_list else values[:, None]).astype("float32")
            else:
                _check_ids(values, file, column, sizes.get(column))
                values = values.astype("int32")
            row_columns[split][column] = values

    # -- one schema for the three splits ---------------------------------------------------------
    row_features: dict[str, Categorical | Dense] = {}
    for column, first in row_columns["train"].items():
        if first.dtype.kind == "f":
            row_features[column] = Dense(first.shape[1])
            continue
        largest = max(int(row_columns[s][column].max(initial=0)) for s in row_columns)
        vocab = max(2, largest + 1, sizes.get(column, 0))
        row_features[column] = Categorical(vocab, max_values=first.shape[1] if first.ndim == 2 else None)
        widths_seen = {row_columns[s][column].shape[1:] for s in row_columns}
        if len(widths_seen) > 1:
            raise ValueError(
                f"Column {column!r} has different list widths across the splits ({sorted(widths_seen)}); "
                f"pass `config=` (its `max_len`) to pad them to one width."
            )
    field_sizes = {}
    for field, ids in id_columns.items():
        field_sizes[field] = max(2, int(ids.max(initial=0)) + 1, sizes.get(field_of[field], 0))
    field_sizes["item"] = max(num_items, sizes.get("item", 0), field_sizes.get("item", 0))
    sequences = {"item": flat}
    for field, ids in id_columns.items():
        if field != "item":
            sequences[field] = ids[flat]
    items_vocab = field_sizes["item"]
    item_features = {}
    for name, (feature, values) in tables.items():
        if len(values) < items_vocab:  # rows beyond item_info (a larger vocabulary): padding
            values = np.concatenate(
                [values, np.zeros((items_vocab - len(values), *values.shape[1:]), values.dtype)]
            )
        item_features[name] = (feature, values)
    return {
        split: SequenceDataset(
            sequences,
            offsets,
            {**splits[split], **row_columns[split]},
            max_len=int(max_len),
            vocab_sizes=field_sizes,
            batch_size=batch_size,
            shuffle=shuffle and split == "train",
            seed=seed,
            time=time,
            features=row_features,
            item_features=item_features,
        )
        for split, _ in SPLITS
    }


# -- helpers -----------------------------------------------------------------------------------------


def _files() -> str:
    return ", ".join([f for _, f in SPLITS] + ["user_info.parquet", "item_info.parquet"])


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as error:  # pragma: no cover - pyarrow is a core dependency
        raise ImportError("`load_longctr` reads parquet with pyarrow: `pip install pyarrow`.") from error
    return pq


def _present(pq: Any, file: str, columns: Sequence[str]) -> list[str]:
    """`columns` (deduplicated), or a `ValueError` naming the first one `file` lacks."""
    names = pq.read_schema(file).names
    for column in columns:
        if column not in names:
            raise ValueError(f"{file} has no column {column!r}. Its columns: {names}.")
    return list(dict.fromkeys(columns))


def _column(table: Any, column: str, file: str, width: int | None) -> tuple[np.ndarray, bool]:
    """A column as numpy: `(values (N,), False)` for scalars, `(values (N, M), True)` for lists
    (shorter lists padded with 0 on the right to M = `width` or the longest; a longer one refused)."""
    import pyarrow as pa

    if column not in table.column_names:
        raise ValueError(f"{file} has no column {column!r}. Its columns: {table.column_names}.")
    data = table.column(column).combine_chunks()
    kind = data.type
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        flat, offsets = _list_column(table, column, file)
        lengths = np.diff(offsets)
        m = int(lengths.max(initial=0)) if width is None else int(width)
        if len(lengths) and lengths.max() > m:
            row = int(np.argmax(lengths > m))
            raise ValueError(
                f"{file}: column {column!r} holds a list of {lengths[row]} values at row {row}, wider than "
                f"its max_len {m} (the config's)."
            )
        out = np.zeros((len(lengths), max(m, 1)), dtype=flat.dtype)
        rows = np.repeat(np.arange(len(lengths)), lengths)
        out[rows, np.arange(len(flat)) - offsets[:-1][rows]] = flat
        return out, True
    if data.null_count:
        row = int(np.flatnonzero(data.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{file}: column {column!r} is empty (null) at row {row}.")
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        raise ValueError(
            f"{file}: column {column!r} holds {kind}; LongCTR's files are integer-encoded (ids) or float."
        )
    return data.to_numpy(zero_copy_only=False), False


def _list_column(table: Any, column: str, file: str) -> tuple[np.ndarray, np.ndarray]:
    """A list column as `(flat values, offsets (rows + 1,) int64)`; a null list or value refused."""
    import pyarrow as pa

    data = table.column(column).combine_chunks()
    if not (
        pa.types.is_list(data.type)
        or pa.types.is_large_list(data.type)
        or pa.types.is_fixed_size_list(data.type)
    ):
        raise ValueError(f"{file}: column {column!r} must hold lists. Received {data.type}.")
    if data.null_count:
        row = int(np.flatnonzero(data.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{file}: column {column!r} is empty (null) at row {row}.")
    if pa.types.is_fixed_size_list(data.type):
        data = data.cast(pa.list_(data.type.value_type))
    offsets = data.offsets.to_numpy().astype("int64")
    values = data.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    offsets = offsets - offsets[0]
    if values.null_count:
        event = int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
        row = int(np.searchsorted(offsets, event, side="right") - 1)
        raise ValueError(
            f"{file}: column {column!r} holds a null at row {row}, position {event - offsets[row]}."
        )
    kind = values.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        raise ValueError(f"{file}: column {column!r} must hold lists of numbers. Received {data.type}.")
    return values.to_numpy(zero_copy_only=False), offsets


def _check_finite(values: np.ndarray, file: str, column: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        at = f"row {where[0]}" + (f", position {where[1]}" if len(where) > 1 else "")
        raise ValueError(f"{file}: column {column!r} holds {values[where]!r} at {at}; values must be finite.")


def _check_ids(values: np.ndarray, file: str, column: str, size: int | None) -> None:
    if values.dtype.kind not in "iub":
        raise ValueError(f"{file}: column {column!r} must hold integer ids. Received {values.dtype}.")
    limit = 2**31 - 1 if size is None else int(size) - 1
    bad = (values < 0) | (values > limit)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        at = f"row {where[0]}" + (f", position {where[1]}" if len(where) > 1 else "")
        bound = "int32" if size is None else f"its vocabulary [0, {size}) (vocab_size {size})"
        raise ValueError(f"{file}: column {column!r} holds id {values[where]} at {at}, outside {bound}.")


def _check_range(values: np.ndarray, low: int, high: int, file: str, column: str, what: str) -> None:
    bad = (values < low) | (values >= high)
    if bad.any():
        row = int(np.argmax(bad))
        raise ValueError(f"{file}: column {column!r} holds {values[row]} at row {row}, which is not {what}.")


def _keys(entry: Any) -> str:
    return f"keys {list(entry)}" if isinstance(entry, Mapping) else repr(entry)


def _read_config(config: str | os.PathLike[str] | Mapping[str, Any] | None) -> dict[str, Any]:
    """From LongCTR's dataset YAML: vocabulary sizes and list widths by column, the impression and
    item columns (active ones; an item column has `source: item`), and the label."""
    spec: dict[str, Any] = {"vocab": {}, "widths": {}, "rows": None, "item": None, "label": None}
    if config is None:
        return spec
    if not isinstance(config, Mapping):
        import yaml

        with open(config) as f:
            config = yaml.safe_load(f)
    entry: Any = config
    if isinstance(entry, Mapping) and "dataset_config" in entry:
        entry = entry["dataset_config"]
    if isinstance(entry, Mapping) and "feature_cols" not in entry and len(entry) == 1:
        entry = next(iter(entry.values()))
    if not isinstance(entry, Mapping) or "feature_cols" not in entry:
        raise ValueError(
            "`config` must be LongCTR's dataset YAML (`{dataset_id: {feature_cols: [...], label_col: ...}}`, "
            f"or a tuner config with `dataset_config:`). Received: {_keys(entry)}"
        )
    rows: list[str] = []
    items: list[str] = []
    for col in entry["feature_cols"]:
        names = col["name"] if isinstance(col["name"], list) else [col["name"]]
        for name in names:
            if not col.get("active", True) or col.get("type") == "meta" or name in META:
                continue
            if "vocab_size" in col:
                spec["vocab"][name] = int(col["vocab_size"])
            if "max_len" in col:
                spec["widths"][name] = int(col["max_len"])
            (items if col.get("source") == "item" else rows).append(name)
    labels = entry.get("label_col")
    if isinstance(labels, Mapping):
        spec["label"] = labels["name"]
    if items:  # configs that mark item columns with `source: item`
        spec["item"], spec["rows"] = items, rows
    else:  # older configs (`item_info_fields: N`) do not: a column belongs where the files hold it
        spec["rows"] = rows
        spec["item_or_rows"] = True
    return spec


# -- a generator of files in the same layout -------------------------------------------------------

COLUMN_SETS = ("microvideo", "kuaivideo", "ebnerd")
# EBNeRD's per-impression context ids (LongCTR's Ebnerd_small_x1 dataset_config) and their sizes here.
EBNERD_CONTEXT = {
    "user_id": 0,  # the user's own id, written as user_index + 1
    "trigger_id": 12,
    "device_type": 5,
    "is_sso_user": 4,
    "gender": 4,
    "postcode": 7,
    "age": 11,
    "is_subscriber": 4,
    "premium": 4,
    "article_type": 12,
    "sentiment_label": 5,
    "publish_days": 33,
    "publish_hours": 27,
    "impression_hour": 26,
    "impression_weekday": 9,
}
EBNERD_LISTS = {"topics": 80, "ner_clusters": 50}  # fixed-width lists of 5 ids per impression
EBNERD_SUBCATEGORIES = 91
LIST_WIDTH = 5


def write_longctr_files(
    directory: str | os.PathLike[str],
    num_impressions: int = 20_000,
    *,
    columns: str = "microvideo",
    impressions_per_user: int = 10,
    num_items: int = 2_000,
    num_categories: int = 40,
    max_history: int = 300,
    recent_window: int = 50,
    spread: int = 10,
    long_interests: int = 2,
    recent_interests: int = 2,
    signal: float = 0.6,
    bias: float = -1.5,
    long_weight: float = 3.0,
    recent_weight: float = 2.5,
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Writes a LongCTR dataset directory of generated data with a planted long-range signal.

    The five files have LongCTR's names, columns and types (`load_longctr`
    and LongCTR's own data loader read them as they read the published ones):

    - `train.parquet`, `valid.parquet`, `test.parquet`: `user_index`,
      `item_index`, `seq_len` (int64) and the label, `is_click` (int64 0/1;
      `click` for `columns="ebnerd"`, with EBNeRD's context columns: the ids
      of `EBNERD_CONTEXT` and the lists of `LIST_WIDTH` ids of
      `EBNERD_LISTS`, as parquet lists);
    - `user_info.parquet`: `user_index` and `full_item_seq` (a parquet list
      of int64 item indices), row u = user u;
    - `item_info.parquet`: row i = item i, row 0 = padding (all zeros):
      `item_index`, then by column set: `"microvideo"` `item_id`, `cate_id`
      and `image_emb_dim64` (a list of 64 float32); `"kuaivideo"` `item_id`
      and `image_emb_dim64` (no category column); `"ebnerd"` `article_id`,
      `category` and `subcategory` (a list of `LIST_WIDTH` ids).

    Ground truth: item i (1..`num_items`) has category
    `1 + (i - 1) % num_categories`; its `image_emb_dim64` is its category's
    random unit vector plus N(0, 0.5^2) noise, so the embedding carries the
    category where no category column is written. Each user has
    `long_interests` categories A and `recent_interests` categories R
    (disjoint) and a sequence of `n` items, `n` uniform in
    `[recent_window + spread + 30, max_history]`. The user's impressions have
    `seq_len` uniform in `[n - spread, n]`; an event older than the last
    `recent_window + spread` of the sequence is of a category in A with
    probability `signal` (else another category), a later one of a category in
    R with probability `signal`. So A shows only beyond the last
    `recent_window` events of every impression's history: a model reading 50
    events at `recent_window=50` cannot see it. The target's category is drawn
    from A, R or the rest with equal probability and the click from
    `P = sigmoid(bias + long_weight [c in A] + recent_weight [c in R])`.
    Impressions are assigned to the splits at random (`splits`), so a user
    has impressions in every split, as in LongCTR's files.

    Args:
        directory: where to write (created if missing; files replaced).
        num_impressions: rows over the three splits.
        columns: `"microvideo"` (MicroVideo1.7M_x2's columns), `"kuaivideo"`
            (KuaiVideo_x2's) or `"ebnerd"` (Ebnerd_small_x1's).
        impressions_per_user: rows per user (the last user may have fewer).
        num_items, num_categories: the item and category vocabularies.
        max_history: the longest user sequence.
        recent_window, spread, long_interests, recent_interests, signal, bias,
            long_weight, recent_weight: the planted signal (above).
        splits: fractions of the impressions in train, valid, test.
        seed: the random seed (the files are a function of the arguments).

    Returns:
        `{"train": p, "valid": p, "test": p}`: the true click probability of
        every row of each file, in file order (for the Bayes AUC).
    """
    pa, pq = _pyarrow()
    num_impressions = check_integer("num_impressions", num_impressions, 1)
    check_choice("columns", columns, COLUMN_SETS)
    per_user = check_integer("impressions_per_user", impressions_per_user, 1)
    num_categories = check_integer("num_categories", num_categories, 2)
    num_items = check_integer("num_items", num_items, num_categories)
    recent_window = check_integer("recent_window", recent_window, 1)
    spread = check_integer("spread", spread, 0)
    long_interests = check_integer("long_interests", long_interests, 0)
    recent_interests = check_integer("recent_interests", recent_interests, 0)
    seed = check_integer("seed", seed, 0)
    shortest = recent_window + spread + 30
    max_history = check_integer(
        "max_history",
        max_history,
        shortest,
        requirement=f"an integer >= recent_window + spread + 30 = {shortest}",
    )
    chosen_count = long_interests + recent_interests
    if chosen_count >= num_categories:
        raise ValueError(
            "`long_interests + recent_interests` must leave other categories. "
            f"Received: {long_interests} + {recent_interests} >= num_categories={num_categories}"
        )
    for name, value in [("signal", signal), ("bias", bias), ("long_weight", long_weight)]:
        check_finite(name, value)
    check_finite("recent_weight", recent_weight)
    if len(splits) != 3 or abs(sum(splits) - 1.0) > 1e-6 or min(splits) < 0:
        raise ValueError(f"`splits` must be 3 fractions summing to 1. Received: `splits={splits!r}`")
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)

    # -- items: category, image embedding (row 0 = padding) -----------------------------------------
    items = np.arange(num_items + 1)
    category = np.where(items > 0, 1 + (items - 1) % num_categories, 0)
    per_category = (num_items - np.arange(1, num_categories + 1)) // num_categories + 1

    def draw_items(cats: np.ndarray) -> np.ndarray:
        """A uniform item of each category in `cats`."""
        return cats + num_categories * (rng.random(cats.shape) * per_category[cats - 1]).astype("int64")

    # -- users: interests, sequences ----------------------------------------------------------------
    num_users = -(-num_impressions // per_user)
    chosen = np.argsort(rng.random((num_users, num_categories)), axis=1)[:, :chosen_count] + 1
    long_set, recent_set = chosen[:, :long_interests], chosen[:, long_interests:]
    ordered = np.sort(chosen, axis=1)

    def others(owner: np.ndarray) -> np.ndarray:
        """A uniform category outside the owner's A and R, per entry."""
        out = rng.integers(1, num_categories - chosen_count + 1, owner.shape)
        for j in range(chosen_count):  # skip the owner's chosen categories in increasing order
            out = out + (out >= ordered[owner, j])
        return out

    def pick(sets: np.ndarray, owner: np.ndarray) -> np.ndarray:
        if sets.shape[1] == 0:
            return others(owner)
        return sets[owner, rng.integers(0, sets.shape[1], owner.shape)]

    lengths = rng.integers(shortest, max_history + 1, num_users)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    owner = np.repeat(np.arange(num_users), lengths)
    position = np.arange(offsets[-1]) - offsets[owner]
    far = position < (lengths[owner] - recent_window - spread)
    planted = rng.random(len(owner)) < signal
    event_category = np.where(
        planted,
        np.where(far, pick(long_set, owner), pick(recent_set, owner)),
        others(owner),
    )
    sequence = draw_items(event_category)

    # -- impressions --------------------------------------------------------------------------------
    user = np.minimum(np.arange(num_impressions) // per_user, num_users - 1)
    seq_len = lengths[user] - rng.integers(0, spread + 1, num_impressions)
    kind = rng.integers(0, 3, num_impressions)
    target_category = np.where(
        kind == 0, pick(long_set, user), np.where(kind == 1, pick(recent_set, user), others(user))
    )
    if long_interests == 0:
        kind = np.where(kind == 0, 2, kind)
    if recent_interests == 0:
        kind = np.where(kind == 1, 2, kind)
    target = draw_items(target_category)
    logit = bias + long_weight * (kind == 0) + recent_weight * (kind == 1)
    probability = 1.0 / (1.0 + np.exp(-logit))
    label = (rng.random(num_impressions) < probability).astype("int64")
    part = rng.choice(3, num_impressions, p=np.asarray(splits, "float64") / sum(splits))

    # -- the five files -----------------------------------------------------------------------------
    def write(name: str, table: dict[str, Any]) -> None:
        path = os.path.join(directory, name)
        pq.write_table(pa.table(table), path + ".tmp")
        os.replace(path + ".tmp", path)

    def int_list(values: np.ndarray, offsets: np.ndarray) -> Any:
        return pa.ListArray.from_arrays(pa.array(offsets.astype("int32")), pa.array(values.astype("int64")))

    def fixed_lists(values: np.ndarray) -> Any:
        rows, width = values.shape
        return int_list(values.reshape(-1), np.arange(rows + 1) * width)

    item_table: dict[str, Any] = {"item_index": pa.array(items.astype("int64"))}
    if columns == "ebnerd":
        item_table["article_id"] = pa.array(items.astype("int64"))
        item_table["category"] = pa.array(category.astype("int64"))
        sub = rng.integers(1, EBNERD_SUBCATEGORIES, (num_items + 1, LIST_WIDTH))
        sub[np.arange(LIST_WIDTH)[None, :] >= rng.integers(1, LIST_WIDTH + 1, (num_items + 1, 1))] = 0
        sub[0] = 0
        item_table["subcategory"] = fixed_lists(sub)
    else:
        item_table["item_id"] = pa.array(items.astype("int64"))
        if columns == "microvideo":
            item_table["cate_id"] = pa.array(category.astype("int64"))
        centroids = rng.normal(size=(num_categories + 1, 64))
        centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
        emb = (centroids[category] + rng.normal(0.0, 0.5, (num_items + 1, 64))).astype("float32")
        emb[0] = 0.0
        values = pa.array(emb.reshape(-1), pa.float32())
        item_table["image_emb_dim64"] = pa.ListArray.from_arrays(
            pa.array((np.arange(num_items + 2) * 64).astype("int32")), values
        )
    write("item_info.parquet", item_table)
    write(
        "user_info.parquet",
        {
            "user_index": pa.array(np.arange(num_users, dtype="int64")),
            "full_item_seq": int_list(sequence, offsets),
        },
    )
    label_name = "click" if columns == "ebnerd" else "is_click"
    truth = {}
    for index, (_, filename) in enumerate(SPLITS):
        rows = np.flatnonzero(part == index)
        table: dict[str, Any] = {
            "user_index": pa.array(user[rows].astype("int64")),
            "item_index": pa.array(target[rows].astype("int64")),
            "seq_len": pa.array(seq_len[rows].astype("int64")),
            label_name: pa.array(label[rows]),
        }
        if columns == "ebnerd":
            context = np.random.default_rng([seed, index, 1])
            for name, size in EBNERD_CONTEXT.items():
                ids = user[rows] + 1 if name == "user_id" else context.integers(1, size, len(rows))
                table[name] = pa.array(ids.astype("int64"))
            for name, size in EBNERD_LISTS.items():
                table[name] = fixed_lists(context.integers(0, size, (len(rows), LIST_WIDTH)))
        write(filename, table)
        truth[filename.split(".")[0]] = probability[rows]
    return truth


def _pyarrow() -> tuple[Any, Any]:
    import pyarrow as pa

    return pa, _pyarrow_parquet()
