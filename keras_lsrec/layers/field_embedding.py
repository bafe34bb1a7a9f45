"""Embedding of several id fields (and item features), concatenated."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.embedding_table import EmbeddingTable
from keras_lsrec.layers.initializers import clone_initializer
from keras_lsrec.layers.row_features import RowFeatures
from keras_lsrec.validation import check_positive

# Var(x W) = Var(an id row under Keras' default "uniform" embedding initializer,
# U(-0.05, 0.05)) for unit-variance inputs: the vector block starts on the id blocks' scale.
ITEM_PROJECTION_INITIALIZER = {
    "class_name": "VarianceScaling",
    "config": {"scale": 0.05**2 / 3, "mode": "fan_in", "distribution": "uniform"},
}


@keras_lsrec_export
class FieldEmbedding(keras.layers.Layer):
    """Looks up one embedding table per id field and concatenates the results.

    For ids `{f: x_f}` with the same shape `S`, returns
    `concat_f(E_f[x_f])` of shape `S + (len(fields) * output_dim,)`, fields in
    the order of `vocab_sizes`, in the compute dtype (tables are looked up in
    the variable dtype, so mixed precision keeps float32 gradient sums). Id 0
    is padding; masking is left to the attention layers (the mask is
    `ids["item"] != 0`).

    With `item_features` (a schema's `item_features`: bags of ids `S + (M,)`
    or vectors `S + (D,)` per item), each feature adds one more block of
    `output_dim` after the id fields, encoded as `RowFeatures` encodes
    (a bag: the mean of its non-zero ids' embeddings; a vector: a learned
    projection), so that attention and search read the whole item. A
    projection starts at the scale of an id row (`ITEM_PROJECTION_INITIALIZER`):
    with Keras' default initializer a unit-variance 8-float vector came out
    about 28x larger than an id embedding, and dot-product searches (TWIN)
    first ranked events by that random projection alone.

    Args:
        vocab_sizes: mapping field -> vocabulary size.
        output_dim: embedding size of every field.
        embeddings_initializer: initializer of the tables.
        embeddings_regularizer: optional regularizer of the tables.
        item_features: optional mapping name -> `Categorical(V, max_values=M)`
            or `Dense(D)` (or their configs).

    Call arguments:
        inputs: dict field -> integer ids; every field of `vocab_sizes`, and
            every item feature by name.

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
        item_features: Mapping[str, Any] | None = None,
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
        self.item_features = None
        if item_features:
            self.item_features = RowFeatures(
                item_features,
                embeddings_initializer=self.embeddings_initializer,
                default_dim=output_dim,
                projection_initializer=ITEM_PROJECTION_INITIALIZER,
                dtype=self.dtype_policy,
                name="item_features",
            )

    def build(self, input_shape: Mapping[str, tuple]) -> None:
        for field, table in self.tables.items():
            table.build(input_shape.get(field, (None,)))
        if self.item_features is not None:
            self.item_features.build(input_shape)
        self.built = True

    def call(self, inputs: Mapping[str, Any]):
        missing = [f for f in self.vocab_sizes if f not in inputs]
        if missing:
            raise ValueError(f"Missing id field(s) {missing}. Received: {sorted(inputs)}")
        parts = [self.tables[f](inputs[f]) for f in self.vocab_sizes]
        output = parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)
        output = ops.cast(output, self.compute_dtype)
        if self.item_features is None:
            return output
        return ops.concatenate([output, ops.cast(self.item_features(inputs), self.compute_dtype)], axis=-1)

    @property
    def blocks(self) -> int:
        """How many `output_dim` blocks the output has: the fields, then the item features."""
        return len(self.vocab_sizes) + (0 if self.item_features is None else len(self.item_features.features))

    def compute_output_shape(self, input_shape: Mapping[str, tuple]) -> tuple:
        field = "item" if "item" in input_shape else next(iter(self.vocab_sizes))
        return tuple(input_shape[field]) + (self.blocks * self.output_dim,)

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
        features = None if self.item_features is None else self.item_features.features
        config["item_features"] = (
            None if features is None else {n: f.get_config() for n, f in features.items()}
        )
        return config
