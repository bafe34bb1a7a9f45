"""Item-feature tables that a SavedModel holds (internal): checked once, carried to the export subprocess.

`serving.export(model, ..., item_tables={name: table})` puts one table per
item feature into the SavedModel; its signatures then take the item ids only
for those features and gather the values in the graph. This module has no
tensorflow import: `export` checks the tables before any work, in any backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from keras_lsrec.data.features import Dense
from keras_lsrec.data.schema import history_key, target_key


def check_item_tables(schema: Any, tables: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """`tables` as `{name: array}` ready to hold (float32 vectors, int64 bags), or a
    `ValueError` naming the table (`item_tables['topics']`) and the bad value.

    Each name must be an item feature of `schema`; each table has one row per
    item id, at least `schema.vocab_sizes["item"]` rows (a row past the
    vocabulary is never read; nor is row 0, since id 0 gets zeros), and the
    feature's width: finite numbers for a `Dense` feature, ids in the
    feature's vocabulary for a `Categorical` bag (`schema.validate_ids`).
    """
    if tables is None:
        return {}
    if not isinstance(tables, Mapping):
        raise ValueError(
            "`item_tables` must be a dict {item feature name: table of one row per item id}. "
            f"Received: {type(tables).__name__}"
        )
    rows = schema.vocab_sizes["item"]
    checked: dict[str, np.ndarray] = {}
    for name, table in tables.items():
        where = f"item_tables[{name!r}]"
        if name not in schema.item_features:
            raise ValueError(
                f"`{where}`: {name!r} is not an item feature of the model's schema; its item features "
                f"are {sorted(schema.item_features)}."
            )
        feature = schema.item_features[name]
        try:
            value = np.asarray(table)
        except (TypeError, ValueError) as error:
            raise ValueError(f"`{where}` is not an array ({error}).") from None
        expected = ("rows", *feature.shape)
        if value.ndim != len(expected) or value.shape[1:] != feature.shape:
            raise ValueError(
                f"`{where}` must have shape ({', '.join(map(str, expected))}): one row per item id, "
                f"the feature's {feature.shape[0]} values. Received shape {value.shape}."
            )
        if value.shape[0] < rows:
            raise ValueError(
                f"`{where}` has {value.shape[0]} rows; it needs one per item id, [0, {rows}) "
                "(`vocab_sizes['item']`; row 0 is never read: id 0 gets zeros)."
            )
        if isinstance(feature, Dense):
            if value.dtype.kind not in "biuf":
                raise ValueError(f"`{where}` must hold numbers (float32). Received dtype {value.dtype}.")
            with np.errstate(over="ignore"):  # a float64 beyond float32's range: inf, refused below
                held = value.astype("float32", copy=False)
            finite = np.isfinite(held)
            if not finite.all():
                bad = tuple(int(i) for i in np.argwhere(~finite)[0])
                raise ValueError(
                    f"`{where}` must be finite (float32). Received {where}[{bad[0]}, {bad[1]}] = "
                    f"{value[bad].item()!r}."
                )
            checked[name] = held
        else:
            schema.validate_ids(history_key(name), value, name=where)
            # int64: TensorFlow has no GPU kernel gathering from an int32 variable.
            checked[name] = value.astype("int64", copy=False)
    return checked


def held_keys(names: Any) -> set[str]:
    """The batch keys that held item features `names` take off a request."""
    return {key for name in names for key in (target_key(name), history_key(name))}


def save(path: str, tables: Mapping[str, np.ndarray]) -> None:
    """Writes `tables` to the `.npz` file `path` (for the export subprocess)."""
    arrays: dict[str, Any] = {name: np.asarray(table) for name, table in tables.items()}
    np.savez(path, **arrays)


def load(path: str) -> dict[str, np.ndarray]:
    """The tables `save` wrote to `path`."""
    with np.load(path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}
