"""DARE's decoupled attention and representation embeddings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import keras

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.field_embedding import FieldEmbedding


@keras_lsrec_export
class DecoupledEmbedding(keras.layers.Layer):
    """Two embedding tables per id field: one for attention, one for representation.

    DARE observes that with a single table the gradients of the attention
    logits and of the pooled representation conflict (most pairs have a
    negative cosine and the representation gradients are about 5x larger), so
    attention, and the top-k search built on it, learns poorly. The remedy is
    two independent tables: `E_att` feeds only the search and the attention
    logits, `E_rep` only the values and the target vector given to the MLP.
    Since the two outputs come from disjoint variables, a gradient that flows
    through the attention scores never reaches `E_rep`, and the representation
    gradient never reaches `E_att`. `attention_dim` may be smaller than
    `representation_dim`, making the O(L) search cheaper.

    Each output concatenates the fields in the order of `vocab_sizes`, then
    the item features (`F * attention_dim` and `F * representation_dim`, F
    the fields and item features).
    Id 0 is padding; the layer does not mask, the attention does.

    Args:
        vocab_sizes: mapping field -> vocabulary size (e.g. item, category, time).
        attention_dim: per-field size of the attention table.
        representation_dim: per-field size of the representation table.
        embeddings_initializer: initializer of both tables.
        embeddings_regularizer: optional regularizer of both tables.
        item_features: optional item features (`FieldEmbedding`): each
            encoded twice, once per table, so the attention and the
            representation stay decoupled for them too.

    Call arguments:
        inputs: dict field -> integer ids of one shape `S`.

    Returns:
        `(attention, representation)` of shapes `S + (F * attention_dim,)` and
        `S + (F * representation_dim,)`.

    Example:

    >>> emb = DecoupledEmbedding({"item": 100, "category": 10}, 4, 16)
    >>> att, rep = emb({"item": np.array([[1, 2]]), "category": np.array([[3, 3]])})
    >>> att.shape, rep.shape
    ((1, 2, 8), (1, 2, 32))

    Reference:
        Feng et al., "Long-Sequence Recommendation Models Need Decoupled
        Embeddings", ICLR 2025 (arXiv 2410.02604).
    """

    def __init__(
        self,
        vocab_sizes: Mapping[str, int],
        attention_dim: int,
        representation_dim: int,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        item_features: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.vocab_sizes = dict(vocab_sizes)
        self.attention_dim = attention_dim
        self.representation_dim = representation_dim
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)
        common = dict(
            vocab_sizes=self.vocab_sizes,
            embeddings_initializer=self.embeddings_initializer,
            embeddings_regularizer=self.embeddings_regularizer,
            item_features=item_features,
            dtype=self.dtype_policy,
        )
        self.attention = FieldEmbedding(output_dim=attention_dim, name="attention", **common)
        self.representation = FieldEmbedding(output_dim=representation_dim, name="representation", **common)

    def build(self, input_shape: Mapping[str, tuple]) -> None:
        self.attention.build(input_shape)
        self.representation.build(input_shape)
        self.built = True

    def call(self, inputs: Mapping[str, Any]):
        return self.attention(inputs), self.representation(inputs)

    def compute_output_shape(self, input_shape: Mapping[str, tuple]) -> tuple:
        return (
            self.attention.compute_output_shape(input_shape),
            self.representation.compute_output_shape(input_shape),
        )

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "vocab_sizes": dict(self.vocab_sizes),
                "attention_dim": self.attention_dim,
                "representation_dim": self.representation_dim,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": keras.regularizers.serialize(self.embeddings_regularizer),
            }
        )
        config["item_features"] = self.attention.get_config()["item_features"]
        return config
