"""IFA: relations among the candidates of one request (softmax self-attention, no positions)."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.masking import normalize
from keras_lsrec.layers.sublayers import owned_dense
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class CandidateSetAttention(keras.layers.Layer):
    """Multi-head softmax self-attention over the C candidates of a request.

    For candidates `X` `(B, C, d)` and a candidate mask `(B, C)` (False = no
    candidate), each head computes `Q = X W_q + b_q`, `K = X W_k + b_k`,
    `V = X W_v + b_v` (size `key_dim`), the weights
    `A = softmax(Q K^T / sqrt(key_dim))` over the VALID candidates only, and
    `A V`; the heads are concatenated, projected by `W_o + b_o` back to `d`,
    and added to the input: `Y = X + (A V) W_o + b_o`, then layer-normalised
    when `layer_norm=True` (post-norm, as in the original Transformer).

    No positional information enters, so the layer is permutation-equivariant:
    permuting the candidates permutes the outputs. Missing candidates are
    never attended to; their own output rows are 0. C is small (tens to
    hundreds), so the O(C^2 d) cost is paid once per request.

    Design note: IFA's code is not public; this block is our design (see
    docs/ifa.md).

    Args:
        num_heads: number of heads.
        key_dim: size of each head's queries, keys and values.
        layer_norm: apply `LayerNormalization` after the residual sum.
        kernel_initializer, kernel_regularizer: of the four projections.

    Call arguments:
        candidates: `(B, C, d)`.
        mask: boolean `(B, C)`, True for a real candidate, or `None`.

    Example:

    >>> relate = CandidateSetAttention(num_heads=2, key_dim=4)
    >>> relate(np.ones((3, 10, 8), "float32")).shape
    (3, 10, 8)
    """

    def __init__(
        self,
        num_heads: int = 2,
        key_dim: int = 16,
        layer_norm: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive(num_heads=num_heads, key_dim=key_dim)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.layer_norm = bool(layer_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.supports_masking = True

    def build(self, candidates_shape) -> None:
        dim = candidates_shape[-1]
        width = self.num_heads * self.key_dim
        self.query_dense = owned_dense(self, width, "query", dim)
        self.key_dense = owned_dense(self, width, "key", dim)
        self.value_dense = owned_dense(self, width, "value", dim)
        self.output_dense = owned_dense(self, dim, "output", width)
        if self.layer_norm:
            self.norm = keras.layers.LayerNormalization(epsilon=1e-6, dtype=self.dtype_policy, name="norm")
            self.norm.build(candidates_shape)
        self.built = True

    def _split_heads(self, x):
        shape = ops.shape(x)
        return ops.reshape(x, (shape[0], shape[1], self.num_heads, self.key_dim))

    def call(self, candidates, mask=None):
        x = ops.cast(candidates, self.compute_dtype)
        q = self._split_heads(self.query_dense(x))
        k = self._split_heads(self.key_dense(x))
        v = self._split_heads(self.value_dense(x))
        logits = ops.einsum("bihd,bjhd->bhij", q, k) * ops.cast(1.0 / math.sqrt(self.key_dim), x.dtype)
        key_mask = None
        if mask is not None:
            mask = ops.cast(mask, "bool")
            key_mask = ops.expand_dims(ops.expand_dims(mask, 1), 1)  # (B, 1, 1, C): keys
        weights = normalize(logits, key_mask, "softmax")
        heads = ops.einsum("bhij,bjhd->bihd", weights, v)
        shape = ops.shape(heads)
        mixed = self.output_dense(ops.reshape(heads, (shape[0], shape[1], self.num_heads * self.key_dim)))
        output = x + mixed
        if self.layer_norm:
            output = self.norm(output)
        if mask is not None:
            output = output * ops.cast(ops.expand_dims(mask, -1), output.dtype)
        return output

    def compute_output_shape(self, candidates_shape):
        return tuple(candidates_shape)

    def compute_mask(self, inputs, previous_mask=None):
        return None  # consumed: missing candidates' rows are already 0

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "layer_norm": self.layer_norm,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
