"""HSTU: one sequential transduction unit (pointwise SiLU attention, gated by U)."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.mfalcon_mask import visible_keys
from keras_lsrec.layers.relative_attention_bias import RelativeAttentionBias
from keras_lsrec.layers.sublayers import owned_dense
from keras_lsrec.validation import check_positive, check_range


@keras_lsrec_export
class HSTUBlock(keras.layers.Layer):
    """One HSTU layer (sequential transduction unit) over a token sequence.

    For tokens `X` `(B, N, d)` with integer positions (and optionally times):

    - `U, V, Q, K = split(SiLU(LayerNorm(X) W_1 + b_1))`, per head `h`
      `Q_h, K_h` of size `key_dim` and `U_h, V_h` of size `value_dim`;
    - pointwise attention, NOT a softmax:
      `A_h(i, j) = SiLU(Q_h[i] . K_h[j] / sqrt(key_dim) + rab_h(i, j)) / N`
      for the keys `j` that query `i` sees, 0 for the others, where `rab` is
      the `RelativeAttentionBias` of the positions (and times) and `N` is
      `normalizer_length` (a fixed length, independent of padding and of the
      number of candidates), or, with `normalizer_length=None`, the number of
      keys query `i` sees;
    - `Y = X + Dropout((U * LayerNorm(A V)) W_2 + b_2)`, the heads of `A V`
      concatenated before the layer norm.

    Which keys a query sees is `visible_keys`: valid keys at an earlier
    position, at position 0 (contextual tokens), and the query itself. With
    `mfalcon_positions` that is the M-FALCON pattern (causal history,
    candidates that see the history and themselves only); with positions
    `1..N` it is causal self-attention. Only the positions order events, so
    left, right or scattered padding gives the same outputs at the valid
    tokens; padded tokens keep their input (`Y = X`) and are seen by nobody.
    A token that sees nothing (an all-padding row) reads `A V = 0`: finite.

    Cost and memory: O(N^2 (key_dim + value_dim)) per head. With
    `query_block_size`, the queries are processed in blocks of that many (when
    the sequence length is known at call time, as it is under jax and torch
    and in a traced tensorflow function of fixed shape), so the score matrix
    held at once is `(B, H, block, N)` instead of `(B, H, N, N)`; the numbers
    are the same. The attention is computed in float32 under any dtype policy
    (a sum over thousands of keys); the output is in the compute dtype.

    Args:
        num_heads: number of heads.
        key_dim: size of each head's queries and keys.
        value_dim: size of each head's values and gates `U` (default `key_dim`).
        max_distance: relative positions beyond `+-max_distance` share one
            bias; `None` for no position bias.
        time_buckets: log buckets of the time differences; `None` for no time
            bias (the call's `times` are then ignored).
        normalizer_length: `N` of the attention, or `None` for the number of
            keys each query sees.
        dropout: dropout rate of the block's output before the residual sum.
        query_block_size: queries per block, or `None` for all at once.
        remat: in training, recompute each query block's scores in the
            backward pass instead of keeping them (`keras.remat`), so training
            memory is bounded by one block's `(B, H, block, N)` too, at the
            price of one more forward pass of the attention. Only with
            several query blocks.
        epsilon: of the two layer norms.
        kernel_initializer, kernel_regularizer: of the two projections.

    Call arguments:
        sequence: `(B, N, d)` tokens.
        positions: integer `(B, N)`, the order of the tokens (see above).
        mask: boolean `(B, N)`, True at valid tokens, or `None` (all valid).
        times: integer `(B, N)`, or `None`.
        training: whether dropout is active.

    Example:

    >>> block = HSTUBlock(num_heads=2, key_dim=4, max_distance=8, time_buckets=None)
    >>> x = np.ones((2, 5, 8), "float32")
    >>> block(x, np.arange(1, 6)[None].repeat(2, 0)).shape
    (2, 5, 8)

    Reference:
        Zhai et al., "Actions Speak Louder than Words: Trillion-Parameter
        Sequential Transducers for Generative Recommendations", ICML 2024.
    """

    def __init__(
        self,
        num_heads: int = 2,
        key_dim: int = 16,
        value_dim: int | None = None,
        max_distance: int | None = 128,
        time_buckets: int | None = 32,
        normalizer_length: int | None = None,
        dropout: float = 0.0,
        query_block_size: int | None = None,
        remat: bool = False,
        epsilon: float = 1e-6,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive(num_heads=num_heads, key_dim=key_dim)
        check_positive(
            allow_none=True,
            value_dim=value_dim,
            normalizer_length=normalizer_length,
            query_block_size=query_block_size,
        )
        check_range("dropout", dropout, 0.0, 1.0, high_inclusive=False)
        if not (isinstance(epsilon, (int, float)) and epsilon > 0):
            raise ValueError(f"`epsilon` must be a positive number. Received: `epsilon={epsilon!r}`")
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim or key_dim
        self.max_distance = max_distance
        self.time_buckets = time_buckets
        self.normalizer_length = normalizer_length
        self.dropout = float(dropout)
        self.query_block_size = query_block_size
        self.remat = bool(remat)
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.relative_bias = RelativeAttentionBias(
            num_heads=num_heads,
            max_distance=max_distance,
            time_buckets=time_buckets,
            dtype=self.dtype_policy,
            name="relative_bias",
        )
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="dropout")
        self.supports_masking = True

    def build(self, sequence_shape, positions_shape=None, *args: Any, **kwargs: Any) -> None:
        dim = sequence_shape[-1]
        heads, dk, dv = self.num_heads, self.key_dim, self.value_dim
        self.input_norm = keras.layers.LayerNormalization(
            epsilon=self.epsilon, dtype=self.dtype_policy, name="input_norm"
        )
        self.input_norm.build(sequence_shape)
        self.uvqk_dense = owned_dense(self, heads * (2 * dv + 2 * dk), "uvqk", dim)
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.epsilon, dtype=self.dtype_policy, name="attention_norm"
        )
        self.attention_norm.build((None, None, heads * dv))
        self.output_dense = owned_dense(self, dim, "output", heads * dv)
        self.relative_bias.build((None, None), (None, None))
        self.built = True

    def _attend(self, offset: Any, with_times: bool, *tensors: Any):
        """`A V` for one block of queries: `(B, Q, H, value_dim)`, float32.

        A function of tensors only (the bias tables come as arguments), so that
        `keras.remat` can recompute it in the backward pass."""
        q, k, v, query_positions, positions, valid, position_table, time_table, *times = tensors
        query_times, key_times = times if with_times else (None, None)
        logits = ops.einsum("bqhd,bkhd->bhqk", q, k) * (1.0 / math.sqrt(self.key_dim))
        bias = self.relative_bias.bias_from_tables(
            (position_table, time_table), query_positions, positions, query_times, key_times
        )
        logits = logits + ops.cast(bias, "float32")
        seen = ops.expand_dims(visible_keys(query_positions, positions, valid, offset), 1)  # (B, 1, Q, N)
        seen = ops.cast(seen, "float32")
        weights = ops.silu(logits) * seen
        if self.normalizer_length is None:
            weights = weights / ops.maximum(ops.sum(seen, axis=-1, keepdims=True), 1.0)
        else:
            weights = weights * (1.0 / self.normalizer_length)
        return ops.einsum("bhqk,bkhd->bqhd", weights, v)

    def _attend_in_blocks(self, q, k, v, positions, valid, tables, times, block: int, training):
        """`_attend` over blocks of `block` queries, one block after the other
        (`ops.map`: a loop, so one block's scores are alive at a time), each
        block rematerialised in training when `remat`."""
        length = q.shape[1]
        count = -(-length // block)
        pad = count * block - length

        def blocks(t):  # (B, N, ...) -> (count, B, block, ...)
            t = ops.pad(t, [(0, 0), (0, pad)] + [(0, 0)] * (len(t.shape) - 2))
            t = ops.reshape(t, (-1, count, block) + tuple(t.shape[2:]))
            return ops.moveaxis(t, 1, 0)

        with_times = times is not None

        def attend(offset, *arguments):
            return self._attend(offset, with_times, *arguments)

        if self.remat and training:
            attend = keras.remat(attend)

        def step(item):
            query, query_positions, query_times, offset = item
            arguments = [query, k, v, query_positions, positions, valid, *tables]
            if with_times:
                arguments += [query_times, times]
            return attend(offset, *arguments)

        offsets = ops.arange(count, dtype="int32") * block
        query_times = blocks(times) if with_times else offsets  # a placeholder without times
        mixed = ops.map(step, (blocks(q), blocks(positions), query_times, offsets))
        mixed = ops.moveaxis(mixed, 0, 1)
        mixed = ops.reshape(mixed, (-1, count * block) + tuple(mixed.shape[3:]))
        return mixed[:, :length]

    def call(self, sequence, positions, mask=None, times=None, training=None):
        x = ops.cast(sequence, self.compute_dtype)
        positions = ops.cast(positions, "int32")
        valid = ops.ones_like(positions, dtype="bool") if mask is None else ops.cast(mask, "bool")
        if self.time_buckets is None:
            times = None
        if times is not None:
            times = ops.cast(times, "int32")
        heads, dk, dv = self.num_heads, self.key_dim, self.value_dim
        uvqk = ops.silu(self.uvqk_dense(self.input_norm(x)))
        shape = ops.shape(x)
        batch, length = shape[0], shape[1]
        u = uvqk[..., : heads * dv]
        v = ops.reshape(
            ops.cast(uvqk[..., heads * dv : 2 * heads * dv], "float32"), (batch, length, heads, dv)
        )
        q = ops.reshape(
            ops.cast(uvqk[..., 2 * heads * dv : 2 * heads * dv + heads * dk], "float32"),
            (batch, length, heads, dk),
        )
        k = ops.reshape(
            ops.cast(uvqk[..., 2 * heads * dv + heads * dk :], "float32"), (batch, length, heads, dk)
        )
        position_table, time_table = self.relative_bias.tables()
        tables = [
            ops.zeros((1,)) if position_table is None else position_table,
            ops.zeros((1,)) if time_table is None else time_table,
        ]

        with_times = times is not None
        static_length = sequence.shape[1]
        block = self.query_block_size
        if block is None or static_length is None or static_length <= block:
            arguments = [q, k, v, positions, positions, valid, *tables]
            mixed = self._attend(0, with_times, *(arguments + ([times, times] if with_times else [])))
        else:
            # (`valid` as int32: tensorflow's `recompute_grad` refuses boolean arguments)
            valid_ids = ops.cast(valid, "int32")
            mixed = self._attend_in_blocks(q, k, v, positions, valid_ids, tables, times, block, training)
        mixed = ops.reshape(ops.cast(mixed, self.compute_dtype), (batch, length, heads * dv))
        update = self.output_dense(u * self.attention_norm(mixed))
        update = self.dropout_layer(update, training=training)
        return x + update * ops.cast(ops.expand_dims(valid, -1), update.dtype)

    def compute_output_shape(self, sequence_shape, *args: Any, **kwargs: Any):
        return tuple(sequence_shape)

    def compute_mask(self, inputs, previous_mask=None):
        return None  # the mask is an argument of every call, not carried by the tokens

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "max_distance": self.max_distance,
            "time_buckets": self.time_buckets,
            "normalizer_length": self.normalizer_length,
            "dropout": self.dropout,
            "query_block_size": self.query_block_size,
            "remat": self.remat,
            "epsilon": self.epsilon,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        }
