"""`EmbeddingTable`: one id field's table, whose training may read a block of its rows."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.mesh_padding import PaddedRowsStore, sharded_rows


class _RowBlock:
    """The rows a table reads during one row-sparse step (a plain holder, so
    that Keras tracks nothing of it)."""

    position: Any = None
    rows: Any = None


@keras_lsrec_export
class EmbeddingTable(keras.layers.Embedding):
    """A `keras.layers.Embedding` of one id field whose training may read a
    block of its rows instead of the whole table.

    Outside training it is `keras.layers.Embedding`. Row-sparse training
    (`keras_lsrec.training.tables`) calls `read_rows(position, rows)` for
    one step, and `read_table()` after it: `rows` (N, output_dim) holds the
    table's rows of the batch's ids of `field` (the `history_<field>` and
    `target_<field>` inputs, and the padding id 0), and `position`
    (input_dim,) maps each of those ids to one of its rows in `rows`. A
    lookup then reads `rows[position[x]]`, so the step's gradient is a
    gradient of `rows`, not of the table. Every lookup during the step must
    be an id of the batch (models look up their batch's ids; `position` of
    other ids is stale).

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
        self._block = _RowBlock()  # what `call` reads; set by `read_rows`

    def build(self, input_shape=None) -> None:
        vocabulary: int = self.input_dim  # type: ignore[has-type]
        self.storage_rows = sharded_rows(vocabulary, f"{self.path}/embeddings")
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

    def read_rows(self, position: Any, rows: Any) -> None:
        """Until `read_table()`, looks id `x` up as `rows[position[x]]`.

        Args:
            position: (input_dim,) int32: each id of the step's batch to its
                row in `rows` (other ids are never looked up).
            rows: (N, output_dim): the rows of the batch's ids.
        """
        self._block.position, self._block.rows = position, rows

    def read_table(self) -> None:
        """Looks ids up in the table again (ends `read_rows`)."""
        self._block.position = self._block.rows = None

    @property
    def reads_rows(self) -> bool:
        """Whether lookups read a block of rows (`read_rows`) instead of the table."""
        return self._block.rows is not None

    def call(self, inputs):
        if not self.reads_rows:
            return super().call(inputs)
        position, rows = self._block.position, self._block.rows
        looked_up = ops.take(rows, ops.take(position, ops.cast(inputs, "int32"), axis=0), axis=0)
        return ops.cast(looked_up, self.compute_dtype)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "field": self.field}
