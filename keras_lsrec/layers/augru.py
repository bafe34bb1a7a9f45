"""A masked GRU whose update gate an attention score scales (DIEN's AUGRU)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.initializers import clone_initializer
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class AUGRU(keras.layers.Layer):
    """A GRU over a masked sequence, with DIEN's attentional update gate.

    For inputs `x_t` and the previous state `h_{t-1}` (`h_0 = 0`), one step is

        u_t = sigmoid(x_t W_u + b_u + h_{t-1} U_u + c_u)    (update gate)
        r_t = sigmoid(x_t W_r + b_r + h_{t-1} U_r + c_r)    (reset gate)
        n_t = tanh(x_t W_n + b_n + r_t * (h_{t-1} U_n + c_n))
        u'_t = a_t * u_t
        h_t = (1 - u'_t) * h_{t-1} + u'_t * n_t

    where `a_t` is the attention score of step `t` (AUGRU: an event that
    matters little to the target barely moves the state). Without
    `attention` (`a_t = 1`) it is a plain GRU (the reset gate applied after
    the recurrent matrix, as in Keras' `GRU(reset_after=True)`, cuDNN and
    PyTorch): DIEN's interest extractor. The input projections `x W + b` of
    all steps are computed in one product before the recurrence, once per
    row even when a candidate set brings one attention sequence per
    candidate.

    Masking: a padded step (`mask` False) leaves the state unchanged, so the
    final state is the state after the last valid event wherever the padding
    is (left, right, or in between), and an all-padding row (or a sequence of
    length 0) ends in the zero state. With `return_sequences`, the state of
    every step is returned, zero at padded steps.

    Args:
        units: size of the state.
        return_sequences: return the states of every step `(B, L, units)`
            instead of the final one `(B, units)`.
        kernel_initializer: initializer of the input kernel.
        recurrent_initializer: initializer of the recurrent kernel.
        kernel_regularizer: regularizer of both kernels.

    Call arguments:
        inputs: `(B, L, D)`.
        attention: `None` (a plain GRU), scores `(B, L)`, or `(B, C, L)`
            (one score sequence per candidate of a set: the states and
            output then carry the candidate axis, `(B, C, units)`).
        mask: boolean `(B, L)`, or `None` when every step is valid.

    Example:

    >>> gru = AUGRU(4)
    >>> x = np.ones((2, 5, 3), "float32")
    >>> gru(x, attention=np.full((2, 5), 0.5, "float32"), mask=np.array([[0, 0, 1, 1, 1]] * 2, bool)).shape
    (2, 4)

    In a functional model:

    >>> events = keras.Input((None, 3))
    >>> states = AUGRU(4, return_sequences=True)(events)

    Reference:
        Zhou et al., "Deep Interest Evolution Network for Click-Through Rate
        Prediction", AAAI 2019.
    """

    def __init__(
        self,
        units: int,
        return_sequences: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        recurrent_initializer: Any = "orthogonal",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive(units=units)
        self.units = units
        self.return_sequences = bool(return_sequences)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.supports_masking = True

    def build(self, inputs_shape, attention_shape=None) -> None:
        units = self.units
        self.kernel = self.add_weight(
            name="kernel",
            shape=(inputs_shape[-1], 3 * units),
            initializer=clone_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
        )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=(units, 3 * units),
            initializer=clone_initializer(self.recurrent_initializer),
            regularizer=self.kernel_regularizer,
        )
        self.bias = self.add_weight(name="bias", shape=(3 * units,), initializer="zeros")
        self.recurrent_bias = self.add_weight(name="recurrent_bias", shape=(3 * units,), initializer="zeros")
        self.built = True

    def call(self, inputs, attention=None, mask=None):
        dtype = self.compute_dtype
        inputs = ops.cast(inputs, dtype)
        batch = ops.shape(inputs)[0]
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:2], "bool")
        mask = ops.cast(mask, "bool")
        candidates = attention is not None and len(attention.shape) == 3
        projected = ops.matmul(inputs, ops.cast(self.kernel, dtype)) + ops.cast(self.bias, dtype)
        # Everything a step reads in ONE time-major tensor (Keras' tensorflow
        # `scan` cannot take several inputs of unknown length):
        # `[x W + b (3 units), valid (1), scores (C, or 1 without a set)]`.
        parts = [projected, ops.expand_dims(ops.cast(mask, dtype), -1)]
        if attention is not None:
            attention = ops.cast(attention, dtype)
            parts.append(ops.moveaxis(attention, 1, -1) if candidates else ops.expand_dims(attention, -1))
        # One padded step in front: the scan then runs at least once on every
        # backend (a sequence of length 0 ends in the zero state) and changes nothing.
        steps = ops.transpose(ops.pad(ops.concatenate(parts, -1), ((0, 0), (1, 0), (0, 0))), (1, 0, 2))
        state_shape = (batch, ops.shape(attention)[1], self.units) if candidates else (batch, self.units)
        initial = ops.zeros(state_shape, dtype)
        recurrent_kernel = ops.cast(self.recurrent_kernel, dtype)
        recurrent_bias = ops.cast(self.recurrent_bias, dtype)
        units = self.units
        attend = attention is not None

        def step(state, inputs):
            x, valid = inputs[:, : 3 * units], inputs[:, 3 * units : 3 * units + 1] > 0.5  # (B, 1)
            if candidates:  # one input per row, one state per candidate
                x, valid = ops.expand_dims(x, 1), ops.expand_dims(valid, 1)
            h = ops.matmul(state, recurrent_kernel) + recurrent_bias
            update = ops.sigmoid(x[..., :units] + h[..., :units])
            reset = ops.sigmoid(x[..., units : 2 * units] + h[..., units : 2 * units])
            new = ops.tanh(x[..., 2 * units :] + reset * h[..., 2 * units :])
            if attend:  # (B, 1), or (B, C) -> (B, C, 1)
                scores = inputs[:, 3 * units + 1 :]
                update = update * (ops.expand_dims(scores, -1) if candidates else scores)
            state = ops.where(valid, state + update * (new - state), state)
            return state, state

        final, states = ops.scan(step, initial, steps)
        if not self.return_sequences:
            return final
        states = ops.moveaxis(states[1:], 0, -2)  # (B, [C,] L, units)
        valid = ops.expand_dims(mask, 1) if candidates else mask
        return states * ops.cast(ops.expand_dims(valid, -1), dtype)

    def compute_output_shape(self, input_shape, attention_shape=None):
        prefix = tuple(input_shape[:1])
        if attention_shape is not None and len(attention_shape) == 3:
            prefix += (attention_shape[1],)
        if self.return_sequences:
            prefix += (input_shape[1],)
        return prefix + (self.units,)

    def compute_output_spec(self, inputs, attention=None, mask=None):
        shape = self.compute_output_shape(inputs.shape, None if attention is None else attention.shape)
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "return_sequences": self.return_sequences,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
