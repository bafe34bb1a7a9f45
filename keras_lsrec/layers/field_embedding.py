"""Embedding of several id fields, concatenated."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.initializers import clone_initializer
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class EmbeddingTable(keras.layers.Embedding):
    """A `keras.layers.Embedding` of one id field whose training may read a
    block of its rows instead of the whole table.

    Outside training it is `keras.layers.Embedding`. Row-sparse training
    (`keras_lsrec.training.tables`) sets `row_block = (position, rows)` for
    one step: `rows` (N, output_dim) holds the table's rows of the batch's
    ids of `field` (the `history_<field>` and `target_<field>` inputs, and
    the padding id 0), and `position` (input_dim,) maps each of those ids to
    one of its rows in `rows`. A lookup then reads `rows[position[x]]`, so
    the step's gradient is a gradient of `rows`, not of the table. Every
    lookup during the step must be an id of the batch (models look up their
    batch's ids; `position` of other ids is stale).

    Under a `keras.distribution` whose layout shards the table's rows over
    mesh axes of n devices (`keras_lsrec.distribution.layout_map`), the
    variable holds `input_dim` rounded up to a multiple of n rows, so a
    vocabulary n does not divide still shards evenly; the extra rows are
    never looked up (ids are below `input_dim`). `.keras` files hold the
    `input_dim` rows only, so a sharded model's file loads on one device and
    the reverse; `get_weights()` shows the stored rows (`storage_rows`).

    Args:
        input_dim: vocabulary size.
        output_dim: embedding size.
        field: the id field of the batch this table embeds (e.g. `"item"`).
        embeddings_initializer, embeddings_regularizer, embeddings_constraint,
        mask_zero, activity_regularizer, quantization_config: as in
            `keras.layers.Embedding` (a table with a regularizer or a
            constraint trains densely: both read the whole table).
    """

    def __init__(
        self,
        input_dim: int,
        output_dim: int,
        field: str | None = None,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        embeddings_constraint: Any = None,
        mask_zero: bool = False,
        activity_regularizer: Any = None,
        quantization_config: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            input_dim,
            output_dim,
            embeddings_initializer=embeddings_initializer,
            embeddings_regularizer=embeddings_regularizer,
            embeddings_constraint=embeddings_constraint,
            mask_zero=mask_zero,
            activity_regularizer=activity_regularizer,
            quantization_config=quantization_config,
            **kwargs,
        )
        self.field = field
        self.storage_rows = input_dim
        object.__setattr__(self, "row_block", None)  # (not tracked by Keras)

    def build(self, input_shape=None) -> None:
        vocabulary: int = self.input_dim  # type: ignore[has-type]
        self.storage_rows = _sharded_rows(vocabulary, f"{self.path}/embeddings")
        if self.storage_rows != vocabulary and self.quantization_mode is not None:
            raise ValueError(
                f"Table {self.path!r} ({vocabulary} rows) is quantized ({self.quantization_mode}) "
                f"and row-sharded over a mesh that does not divide its rows; sharding pads only "
                "float tables. Use a vocabulary the model axis divides."
            )
        self.input_dim = self.storage_rows  # Keras' build sizes the variable by input_dim
        try:
            super().build(input_shape)
        finally:
            self.input_dim = vocabulary

    def save_own_variables(self, store) -> None:
        super().save_own_variables(PaddedRowsStore(store, {"0": (self.input_dim, self.storage_rows)}))

    def load_own_variables(self, store) -> None:
        super().load_own_variables(PaddedRowsStore(store, {"0": (self.input_dim, self.storage_rows)}))

    def call(self, inputs):
        if self.row_block is None:
            return super().call(inputs)
        position, rows = self.row_block
        looked_up = ops.take(rows, ops.take(position, ops.cast(inputs, "int32"), axis=0), axis=0)
        return ops.cast(looked_up, self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "field": self.field}


def _sharded_rows(rows: int, path: str) -> int:
    """`rows` rounded up to a multiple of the devices the active
    distribution's layout for the variable at `path` splits dimension 0 over."""
    distribution = keras.distribution.distribution()
    if distribution is None:
        return rows
    layout = distribution.get_variable_layout(SimpleNamespace(path=path, shape=(rows, 1), _layout=None))
    axes = layout.axes[0] if layout is not None and layout.axes else None
    if axes is None:
        return rows
    mesh = layout.device_mesh or distribution.device_mesh
    names = (axes,) if isinstance(axes, str) else tuple(axes)
    shards = math.prod(mesh.shape[list(mesh.axis_names).index(name)] for name in names)
    return -(-rows // shards) * shards


class PaddedRowsStore(Mapping):
    """A variable store seen through variables with padding rows.

    `rows[key] = (n, stored)`: entry `key` is a variable of `stored` rows
    whose first `n` are real (a row-sharded `EmbeddingTable`, or an optimizer
    slot of one). Such an entry is written as its first `n` rows and read
    back padded with zero rows, so files do not depend on the mesh.
    """

    def __init__(self, store: Any, rows: Mapping[str, tuple[int, int]]) -> None:
        self.store = store
        self.rows = {key: shape for key, shape in rows.items() if shape[0] != shape[1]}

    def __getitem__(self, key: str) -> Any:
        value = self.store[key]
        if key not in self.rows:
            return value
        rows, stored = self.rows[key]
        value = np.asarray(value)
        if len(value) != rows:
            return value  # not this layout: let the variable's assign name the mismatch
        return np.concatenate([value, np.zeros((stored - rows,) + value.shape[1:], value.dtype)])

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self.rows:
            value = ops.convert_to_numpy(value)[: self.rows[key][0]]
        self.store[key] = value

    def __iter__(self) -> Iterator[str]:
        return iter(self.store.keys())

    def __len__(self) -> int:
        return len(self.store.keys())


@keras_lsrec_export
class FieldEmbedding(keras.layers.Layer):
    """Looks up one embedding table per id field and concatenates the results.

    For ids `{f: x_f}` with the same shape `S`, returns
    `concat_f(E_f[x_f])` of shape `S + (len(fields) * output_dim,)`, fields in
    the order of `vocab_sizes`, in the compute dtype (tables are looked up in
    the variable dtype, so mixed precision keeps float32 gradient sums). Id 0
    is padding; masking is left to the attention layers (the mask is
    `ids["item"] != 0`).

    Args:
        vocab_sizes: mapping field -> vocabulary size.
        output_dim: embedding size of every field.
        embeddings_initializer: initializer of the tables.
        embeddings_regularizer: optional regularizer of the tables.

    Call arguments:
        inputs: dict field -> integer ids; every field of `vocab_sizes`.

    Example:

    >>> emb = FieldEmbedding({"item": 100, "category": 10}, output_dim=8)
    >>> emb({"item": np.array([[1, 2]]), "category": np.array([[3, 3]])}).shape
    (1, 2, 16)
    """

    def __init__(
        self,
        vocab_sizes: Mapping[str, int],
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not vocab_sizes:
            raise ValueError("`vocab_sizes` must name at least one field.")
        sizes: dict[str, Any] = {f"vocab_sizes[{f!r}]": n for f, n in vocab_sizes.items()}
        check_positive(output_dim=output_dim, **sizes)
        self.vocab_sizes = dict(vocab_sizes)
        self.output_dim = output_dim
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)
        self.tables = {
            field: EmbeddingTable(
                size,
                output_dim,
                field=field,
                embeddings_initializer=clone_initializer(self.embeddings_initializer),
                embeddings_regularizer=self.embeddings_regularizer,
                # Look up in the variable dtype and cast after: under mixed
                # precision the gradient rows are then summed per id in float32
                # (summing loss-scaled float16 rows overflows to inf/NaN).
                dtype=self.dtype_policy.variable_dtype,
                name=f"{field}_embedding",
            )
            for field, size in self.vocab_sizes.items()
        }

    def build(self, input_shape: Mapping[str, tuple]) -> None:
        for field, table in self.tables.items():
            table.build(input_shape.get(field, (None,)))
        self.built = True

    def call(self, inputs: Mapping[str, Any]):
        missing = [f for f in self.vocab_sizes if f not in inputs]
        if missing:
            raise ValueError(f"Missing id field(s) {missing}. Received: {sorted(inputs)}")
        parts = [self.tables[f](inputs[f]) for f in self.vocab_sizes]
        output = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)
        return ops.cast(output, self.compute_dtype)

    def compute_output_shape(self, input_shape: Mapping[str, tuple]) -> tuple:
        shape = tuple(input_shape["item"] if "item" in input_shape else next(iter(input_shape.values())))
        return shape + (len(self.vocab_sizes) * self.output_dim,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "vocab_sizes": dict(self.vocab_sizes),
                "output_dim": self.output_dim,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": keras.regularizers.serialize(self.embeddings_regularizer),
            }
        )
        return config
