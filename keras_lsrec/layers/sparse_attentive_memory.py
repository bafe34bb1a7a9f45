"""SAM: an iterative memory read of the whole behaviour sequence, O(L)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.initializers import clone_initializer
from keras_lsrec.layers.masking import NORMALIZERS, normalize
from keras_lsrec.layers.sublayers import owned_dense
from keras_lsrec.validation import check_choice, check_non_negative, check_positive, check_units


@keras_lsrec_export
class SparseAttentiveMemory(keras.layers.Layer):
    """Refines a memory of the target over a few passes through the whole sequence.

    The target embedding `q` `(B, d)` is the query and the behaviours
    `k_i` `(B, L, d)` are a knowledge base. The memory starts as `m_0 = q`.
    Pass `t = 1..T` (`num_passes`):

    - point-wise dual-query attention: a per-pass MLP scores every behaviour
      from `[q - k_i, q * k_i, m - k_i, m * k_i]` (`hidden_units`,
      `activation`, then one linear unit), `w_ti = sigmoid(a_ti)` (the paper:
      point-wise, not summing to 1) or a softmax over the valid events;
      padding weighs exactly 0;
    - read: `r_t = sum_i w_ti k_i`;
    - write: `m_t = GRU(input=r_t, state=m_{t-1})`, one GRU cell shared by
      all passes.

    With `feed_memory=True` (the paper's iterative mode) pass `t + 1` queries
    with `m_t`; with `False` every pass queries with `m = m_0 = q`, which is
    what the released code's default mode computes.

    Memory enhancement (`enhance_steps > 0`): a second GRU cell runs
    `enhance_steps` steps from the state `m_T`, each step's input being
    `[Dense_s(state), q]` (one Dense per step, as in the released code).

    Output: `concat(m_1, ..., m_T[, enhanced])`, shape
    `(B, (T + [enhance_steps > 0]) * d)`. Every pass costs O(L d h) (`h` the
    first hidden size) and there are only `T + enhance_steps` sequential
    steps, whatever L is. The first scorer layer is evaluated with one
    per-row kernel, `k_i (diag(q) W_qk + diag(m) W_mk - W_q - W_m)` plus a
    per-row bias, the same function as the concatenation form without
    materialising `(B, L, 4d)`.

    Both GRU cells are Keras `GRUCell(reset_after=False)`: `z, r =
    sigmoid(x W + h U + b)`, `h~ = tanh(x W_h + (r * h) U_h + b_h)`,
    `h' = z * h + (1 - z) * h~`, the formulation of the released code.

    The released code also projects each pass's raw weight vector (length L)
    with a Dense layer; that ties the layer to one L, so it is not offered.

    Masking: `mask` (B, L) marks valid events. An all-padding history reads
    `r_t = 0` on every pass and gives a finite memory.

    Args:
        num_passes: T, the number of memory passes (paper: 2-3).
        normalizer: `"sigmoid"` (paper) or `"softmax"`.
        hidden_units: hidden sizes of each pass's scorer (released: `(8,)`).
        activation: their activation (released: sigmoid).
        feed_memory: query each pass with the memory written by the previous one.
        enhance_steps: steps of the memory enhancement GRU; 0 turns it off.
        kernel_initializer: initializer of the scorer and projection kernels.
        kernel_regularizer: regularizer of those kernels.

    Candidate sets: a query `(B, C, d)` (C candidates of one user) keeps one
    memory per candidate over the same behaviours and gives `(B, C, out)`;
    the keys' per-event terms are computed once per row.

    Call arguments:
        query: `(B, d)`, the target, or `(B, C, d)`, a candidate set.
        keys: `(B, L, d)`, the behaviours (also the values).
        mask: boolean `(B, L)`, or `None` when every event is valid.
        return_weights: also return the weights of every pass, `(B, T, L)`
            (`(B, C, T, L)` for a candidate set).

    Example:

    >>> memory = SparseAttentiveMemory(num_passes=2, enhance_steps=0)
    >>> q, k = np.ones((2, 8), "float32"), np.ones((2, 30, 8), "float32")
    >>> memory(q, k).shape
    (2, 16)

    Reference:
        Lin et al., "Sparse Attentive Memory Network for Click-through Rate
        Prediction with Long Sequences", CIKM 2022.
    """

    def __init__(
        self,
        num_passes: int = 3,
        normalizer: str = "sigmoid",
        hidden_units: Sequence[int] = (8,),
        activation: Any = "sigmoid",
        feed_memory: bool = True,
        enhance_steps: int = 3,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive(num_passes=num_passes)
        check_choice("normalizer", normalizer, NORMALIZERS[:2])  # raw weights would compound over hops
        check_non_negative(enhance_steps=enhance_steps)
        hidden_units = check_units("hidden_units", hidden_units, allow_empty=False)
        self.num_passes = num_passes
        self.normalizer = normalizer
        self.hidden_units = hidden_units
        self.activation = keras.activations.get(activation)
        self.feed_memory = bool(feed_memory)
        self.enhance_steps = enhance_steps
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.supports_masking = True

    def build(self, query_shape, keys_shape) -> None:
        dim = keys_shape[-1]
        if query_shape[-1] != dim:
            raise ValueError(
                "SparseAttentiveMemory needs query and keys of one size. "
                f"Received: query dim {query_shape[-1]}, key dim {dim}"
            )
        self.dim = dim
        units = self.hidden_units + (1,)
        self.score_kernels: list[keras.Variable] = []
        self.score_biases: list[keras.Variable] = []
        self.score_layers: list[keras.layers.Dense] = []
        for t in range(self.num_passes):
            self.score_kernels.append(
                self.add_weight(
                    name=f"pass_{t}_score_kernel",
                    shape=(4 * dim, units[0]),
                    initializer=clone_initializer(self.kernel_initializer),
                    regularizer=self.kernel_regularizer,
                )
            )
            self.score_biases.append(
                self.add_weight(name=f"pass_{t}_score_bias", shape=(units[0],), initializer="zeros")
            )
            # Flat list: pass t owns score_layers[t * depth : (t + 1) * depth].
            self.score_layers.extend(
                owned_dense(self, size, f"pass_{t}_score_dense_{i + 1}", units[i])
                for i, size in enumerate(units[1:])
            )
        self.memory_cell = keras.layers.GRUCell(
            dim, reset_after=False, dtype=self.dtype_policy, name="memory_cell"
        )
        self.memory_cell.build((None, dim))
        if self.enhance_steps:
            self.enhance_projections = [
                owned_dense(self, dim, f"enhance_dense_{s}", dim) for s in range(self.enhance_steps)
            ]
            self.enhance_cell = keras.layers.GRUCell(
                dim, reset_after=False, dtype=self.dtype_policy, name="enhance_cell"
            )
            self.enhance_cell.build((None, 2 * dim))
        self.built = True

    def _logits(self, t: int, query, memory, keys):
        """Scorer of pass `t` over `[q - k, q * k, m - k, m * k]`: `(B, C, L)`
        for queries and memories `(B, C, d)` over shared keys `(B, L, d)`."""
        w_q, w_qk, w_m, w_mk = ops.split(ops.cast(self.score_kernels[t], keys.dtype), 4, axis=0)
        # (B, C, d, h): the kernel applied to k_i, different for every query.
        kernel = ops.expand_dims(query, -1) * w_qk + ops.expand_dims(memory, -1) * w_mk
        per_query = (
            ops.matmul(query, w_q) + ops.matmul(memory, w_m) + ops.cast(self.score_biases[t], keys.dtype)
        )
        per_event = ops.matmul(keys, -(w_q + w_m))  # once per event, whatever C is
        hidden = (
            ops.einsum("bld,bcdh->bclh", keys, kernel)
            + ops.expand_dims(per_event, 1)
            + ops.expand_dims(per_query, 2)
        )
        depth = len(self.hidden_units)
        for layer in self.score_layers[t * depth : (t + 1) * depth]:
            hidden = layer(self.activation(hidden))
        return ops.squeeze(hidden, -1)

    def call(self, query, keys, mask=None, return_weights: bool = False):
        query = ops.cast(query, self.compute_dtype)
        keys = ops.cast(keys, self.compute_dtype)
        shared_mask = None if mask is None else ops.expand_dims(ops.cast(mask, "bool"), 1)
        # One code path: a single target is a set of one candidate.
        single = len(query.shape) == 2
        query = ops.expand_dims(query, 1) if single else query  # (B, C, d)
        dim = query.shape[-1]

        def cell(gru, inputs, state):  # a GRU step for every (row, candidate)
            new, _ = gru(ops.reshape(inputs, (-1, inputs.shape[-1])), [ops.reshape(state, (-1, dim))])
            return ops.reshape(new, ops.shape(state))

        memory, memories, all_weights = query, [], []
        for t in range(self.num_passes):
            attention_memory = memory if self.feed_memory else query
            weights = normalize(self._logits(t, query, attention_memory, keys), shared_mask, self.normalizer)
            read = ops.einsum("bcl,bld->bcd", weights, keys)
            memory = cell(self.memory_cell, read, memory)
            memories.append(memory)
            all_weights.append(weights)
        if self.enhance_steps:
            state = memory
            for projection in self.enhance_projections:
                state = cell(self.enhance_cell, ops.concatenate([projection(state), query], -1), state)
            memories.append(state)
        output = ops.concatenate(memories, axis=-1)
        weights = ops.stack(all_weights, axis=-2)  # (B, C, T, L)
        if single:
            output, weights = ops.squeeze(output, 1), ops.squeeze(weights, 1)
        return (output, weights) if return_weights else output

    def _output_dim(self, dim):
        return None if dim is None else dim * (self.num_passes + (1 if self.enhance_steps else 0))

    def compute_output_shape(self, query_shape, keys_shape):
        return tuple(query_shape[:-1]) + (self._output_dim(keys_shape[-1]),)

    def compute_output_spec(self, query, keys, mask=None, return_weights=False):
        output = keras.KerasTensor(self.compute_output_shape(query.shape, keys.shape), self.compute_dtype)
        if not return_weights:
            return output
        shape = tuple(query.shape[:-1]) + (self.num_passes, keys.shape[1])
        return output, keras.KerasTensor(shape, self.compute_dtype)

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_passes": self.num_passes,
                "normalizer": self.normalizer,
                "hidden_units": list(self.hidden_units),
                "activation": keras.activations.serialize(self.activation),
                "feed_memory": self.feed_memory,
                "enhance_steps": self.enhance_steps,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
