"""TransAct's sequence encoder: a masked transformer, then recent outputs and a max-pool."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.masking import mask_value, masked_logits
from keras_lsrec.layers.sublayers import owned_dense
from keras_lsrec.validation import check_positive, check_range


@keras_lsrec_export
class TransActEncoder(keras.layers.Layer):
    """Encodes a (target-fused) sequence with a transformer; returns its most
    recent outputs and a max-pool of all of them.

    The sequence `x` `(B, L, d)` runs through `num_layers` post-norm
    transformer encoder blocks (as PyTorch's `TransformerEncoderLayer`):

        x = LayerNorm(x + Dropout(MultiHeadSelfAttention(x)))
        x = LayerNorm(x + Dropout(W_2 relu(W_1 x + b_1) + b_2))

    where self-attention is scaled dot-product attention with `num_heads`
    heads whose keys are the valid events only (a key-padding mask) and no
    positional encoding (order enters through the events' features, e.g.
    the schema's `time` field, and through the choice of recent outputs).
    The layer returns `[o_1, ..., o_k, P max_i o_i]`, flattened
    `(B, (recent_k + max_pool) * d)`: the outputs of the `recent_k` most
    recent valid events (newest first; zeros where a row has fewer events)
    and, with `max_pool`, the element-wise maximum of the outputs over the
    valid events through a linear projection `P`.

    Masking: padded events are never attended to, never selected and never
    pooled, so the output does not depend on where the padding is; an
    all-padding row (or a sequence of length 0) gives zero outputs (the
    projection's bias for the pool), never NaN.

    Args:
        num_layers: transformer blocks.
        num_heads: attention heads (must divide `d`).
        feedforward_dim: hidden size of each block's feed-forward network.
        recent_k: how many of the most recent outputs to return.
        max_pool: also return the projected max-pool of the outputs.
        dropout: dropout on the attention and feed-forward outputs in training.
        kernel_initializer: initializer of the kernels.
        kernel_regularizer: regularizer of the kernels (not of the biases).

    Call arguments:
        inputs: `(B, L, d)`, or `(B, C, L, d)` (one sequence per candidate of
            a set: the output is then `(B, C, ...)`).
        mask: boolean `(B, L)` (shared by the candidates) or `(B, C, L)`, or
            `None` when every event is valid.
        training: whether dropout runs.

    Example:

    >>> encoder = TransActEncoder(num_heads=2, feedforward_dim=16, recent_k=2)
    >>> x = np.ones((3, 5, 8), "float32")
    >>> encoder(x, mask=np.array([[0, 0, 1, 1, 1]] * 3, bool)).shape
    (3, 24)

    In a functional model:

    >>> events = keras.Input((None, 8))
    >>> encoded = TransActEncoder(feedforward_dim=16)(events)

    Reference:
        Xia et al., "TransAct: Transformer-based Realtime User Action Model
        for Recommendation at Pinterest", KDD 2023.
    """

    def __init__(
        self,
        num_layers: int = 1,
        num_heads: int = 1,
        feedforward_dim: int = 128,
        recent_k: int = 1,
        max_pool: bool = True,
        dropout: float = 0.0,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive(
            num_layers=num_layers, num_heads=num_heads, feedforward_dim=feedforward_dim, recent_k=recent_k
        )
        check_range("dropout", dropout, 0.0, 1.0, high_inclusive=False)
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.feedforward_dim = feedforward_dim
        self.recent_k = recent_k
        self.max_pool = bool(max_pool)
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.supports_masking = True

    def build(self, input_shape) -> None:
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(f"The input size {dim} is not divisible by `num_heads={self.num_heads}`.")
        self.projections, self.attention_outputs, self.hidden, self.feedforward, self.norms = (
            [],
            [],
            [],
            [],
            [],
        )
        for i in range(self.num_layers):
            self.projections.append(owned_dense(self, 3 * dim, f"attention_qkv_{i}", dim))
            self.attention_outputs.append(owned_dense(self, dim, f"attention_output_{i}", dim))
            self.hidden.append(owned_dense(self, self.feedforward_dim, f"feedforward_hidden_{i}", dim))
            self.feedforward.append(owned_dense(self, dim, f"feedforward_output_{i}", self.feedforward_dim))
            for name in ("attention", "feedforward"):
                norm = keras.layers.LayerNormalization(
                    epsilon=1e-5, dtype=self.dtype_policy, name=f"{name}_norm_{i}"
                )
                norm.build((None, dim))
                self.norms.append(norm)
        self.pool_projection = owned_dense(self, dim, "pool_projection", dim) if self.max_pool else None
        self.dropout_layer = (
            keras.layers.Dropout(self.dropout, dtype=self.dtype_policy) if self.dropout else None
        )
        self.built = True

    def _drop(self, x, training):
        return x if self.dropout_layer is None else self.dropout_layer(x, training=training)

    def _attend(self, i, x, mask, training):
        batch, length, dim = ops.shape(x)[0], ops.shape(x)[1], x.shape[-1]
        heads = self.num_heads
        head_dim = dim // heads
        query, key, value = ops.split(self.projections[i](x), 3, axis=-1)
        query, key, value = (ops.reshape(t, (batch, length, heads, head_dim)) for t in (query, key, value))
        logits = ops.einsum("bqhd,bkhd->bhqk", query, key) * ops.cast(1.0 / math.sqrt(head_dim), x.dtype)
        weights = ops.softmax(masked_logits(logits, mask[:, None, None, :]), axis=-1)
        attended = ops.reshape(ops.einsum("bhqk,bkhd->bqhd", weights, value), (batch, length, dim))
        return self._drop(self.attention_outputs[i](attended), training)

    def call(self, inputs, mask=None, training=None):
        x = ops.cast(inputs, self.compute_dtype)
        if mask is None:
            mask = ops.ones(ops.shape(x)[:-1], "bool")
        mask = ops.cast(mask, "bool")
        per_candidate = len(x.shape) == 4
        if per_candidate:  # the candidates folded into the batch
            lead = ops.shape(x)[:2]
            if len(mask.shape) == 2:
                mask = ops.logical_and(ops.expand_dims(mask, 1), ops.ones(lead, "bool")[..., None])
            x = ops.reshape(x, (-1,) + tuple(ops.shape(x)[2:]))
            mask = ops.reshape(mask, (-1, ops.shape(mask)[-1]))
        for i in range(self.num_layers):
            x = self.norms[2 * i](x + self._attend(i, x, mask, training))
            hidden = ops.relu(self.hidden[i](x))
            x = self.norms[2 * i + 1](x + self._drop(self.feedforward[i](hidden), training))
        valid = ops.cast(mask, x.dtype)
        x = x * ops.expand_dims(valid, -1)
        # The k most recent valid events: age 0 is the newest.
        count = ops.cast(mask, "int32")
        age = ops.sum(count, axis=-1, keepdims=True) - ops.cumsum(count, axis=-1)  # exact in any dtype
        ages = ops.arange(self.recent_k, dtype="int32")
        pick = ops.cast(ops.equal(age[:, None, :], ages[None, :, None]), x.dtype) * valid[:, None, :]
        parts = [ops.reshape(ops.einsum("bkl,bld->bkd", pick, x), (-1, self.recent_k * x.shape[-1]))]
        if self.pool_projection is not None:
            # One padded position in front: no empty reduction when L = 0.
            filled = ops.where(ops.expand_dims(mask, -1), x, ops.cast(mask_value(x.dtype), x.dtype))
            filled = ops.pad(filled, ((0, 0), (1, 0), (0, 0)), constant_values=mask_value(x.dtype))
            any_valid = ops.any(mask, axis=-1, keepdims=True)
            pooled = ops.where(any_valid, ops.max(filled, axis=1), ops.zeros_like(filled[:, 0]))
            parts.append(self.pool_projection(pooled))
        output = ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
        if per_candidate:
            output = ops.reshape(output, tuple(lead) + (output.shape[-1],))
        return output

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-2]) + ((self.recent_k + int(self.max_pool)) * input_shape[-1],)

    def compute_output_spec(self, inputs, mask=None, training=None):
        return keras.KerasTensor(self.compute_output_shape(inputs.shape), dtype=self.compute_dtype)

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "num_heads": self.num_heads,
                "feedforward_dim": self.feedforward_dim,
                "recent_k": self.recent_k,
                "max_pool": self.max_pool,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
