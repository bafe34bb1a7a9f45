"""`RowFeatures`: a schema's features (user, context; or an item's) as one vector."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.features import DEFAULT_DIM, Categorical, Dense, feature_from_config
from keras_lsrec.layers.bag_pooling import BagPooling
from keras_lsrec.layers.embedding_table import EmbeddingTable
from keras_lsrec.layers.initializers import clone_initializer
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class RowFeatures(keras.layers.Layer):
    """Encodes a schema's per-row features and concatenates them.

    Each value may carry any leading shape `S` (`(B,)` for per-row features;
    `(B, L)` or `(B, C)` for item features, which `FieldEmbedding` encodes
    with this layer). For each feature, in the order of `features`:

    - `Categorical(V)`: the id's embedding, `dim` values (id 0, unknown, has
      its own learned row);
    - `Categorical(V, max_values=M)`: the mean of the embeddings of the bag's
      ids that are not 0 (`BagPooling`), zeros for an empty bag;
    - `Dense(D)`: a learned linear projection `x W + b` to `output_dim`.

    Returns `S + (sum of the features' sizes,)` in the compute dtype. The
    embedding tables are `EmbeddingTable`s whose `field` is the feature's
    name, so large ones (a user id) train row-sparsely like the item tables.

    Args:
        features: `{name: Categorical | Dense | its get_config()}`, as
            `SequenceSchema(features=...)`.
        embeddings_initializer: initializer of the tables.
        default_dim: the size of a feature whose spec leaves it unset.
        projection_initializer: initializer of the dense features' projection
            kernels.

    Call arguments:
        inputs: dict name -> values, every feature of `features` (other keys
            are ignored).

    Example:

    >>> layer = RowFeatures({"age": Categorical(10, dim=4), "emb": Dense(8, output_dim=4)})
    >>> layer({"age": np.array([3, 0]), "emb": np.zeros((2, 8), "float32")}).shape
    (2, 8)
    """

    def __init__(
        self,
        features: Mapping[str, Any],
        embeddings_initializer: Any = "uniform",
        default_dim: int = DEFAULT_DIM,
        projection_initializer: Any = "glorot_uniform",
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        if not features:
            raise ValueError("`features` must name at least one feature.")
        check_positive(default_dim=default_dim)
        self.features = {name: feature_from_config(spec) for name, spec in features.items()}
        self.default_dim = int(default_dim)
        self.projection_initializer = keras.initializers.get(projection_initializer)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.encoders: dict[str, keras.layers.Layer] = {}
        for name, feature in self.features.items():
            if isinstance(feature, Dense):
                self.encoders[name] = keras.layers.Dense(
                    feature.encoded_dim(self.default_dim),
                    kernel_initializer=clone_initializer(self.projection_initializer),
                    dtype=self.dtype_policy,
                    name=f"{name}_projection",
                )
            else:
                self.encoders[name] = EmbeddingTable(
                    feature.vocab_size,
                    feature.encoded_dim(self.default_dim),
                    field=name,
                    embeddings_initializer=clone_initializer(self.embeddings_initializer),
                    # Looked up in the variable dtype, as `FieldEmbedding` does.
                    dtype=self.dtype_policy.variable_dtype,
                    name=f"{name}_embedding",
                )
        self.pooling = BagPooling(dtype=self.dtype_policy, name="bag_pooling")

    @property
    def output_dim(self) -> int:
        return sum(f.encoded_dim(self.default_dim) for f in self.features.values())

    def build(self, input_shape: Mapping[str, tuple]) -> None:
        for name, feature in self.features.items():
            shape = (None,) + feature.shape
            self.encoders[name].build(shape)
        self.built = True

    def call(self, inputs: Mapping[str, Any]):
        missing = [name for name in self.features if name not in inputs]
        if missing:
            raise ValueError(f"Missing feature(s) {missing}. Received: {sorted(inputs)}")
        parts = []
        for name, feature in self.features.items():
            value = inputs[name]
            if isinstance(feature, Dense):
                parts.append(self.encoders[name](ops.cast(value, self.compute_dtype)))
                continue
            embedded = ops.cast(self.encoders[name](value), self.compute_dtype)
            if isinstance(feature, Categorical) and feature.max_values is not None:
                embedded = self.pooling(embedded, mask=ops.not_equal(value, 0))
            parts.append(embedded)
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape: Mapping[str, tuple]) -> tuple:
        name, feature = next(iter(self.features.items()))
        shape = tuple(input_shape[name])
        return shape[: len(shape) - len(feature.shape)] + (self.output_dim,)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "features": {name: f.get_config() for name, f in self.features.items()},
            "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
            "default_dim": self.default_dim,
            "projection_initializer": keras.initializers.serialize(self.projection_initializer),
        }
