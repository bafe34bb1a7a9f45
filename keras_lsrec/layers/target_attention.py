"""Attention of one target over a behaviour sequence (DIN / TWIN / DARE)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.initializers import clone_initializer
from keras_lsrec.layers.masking import NORMALIZERS, normalize
from keras_lsrec.layers.sublayers import owned_dense
from keras_lsrec.validation import check_choice, check_positive, check_units

SCORERS = ("mlp", "dot")


@keras_lsrec_export
class TargetAttention(keras.layers.Layer):
    """Pools a behaviour sequence with weights given by its relevance to a target.

    For a query `q` (the target, shape `(B, Dq)`), keys `k_i` and values `v_i`
    (`(B, L, Dk)`, `(B, L, Dv)`; values default to the keys) the layer returns
    `sum_i w_i v_i`, with logits `a_i` from one of two scorers:

    - `"mlp"`: DIN's activation unit, an MLP over `[q, k_i, q - k_i, q * k_i]`
      (`hidden_units`, `activation`, then one linear unit). Requires
      `Dq == Dk`. The first layer is computed as
      `q (W_q + W_d) + k_i (W_k - W_d) + (q * k_i) W_p`, the same function
      with the query part evaluated once per row instead of once per event.
    - `"dot"`: `a_i = scale * <q, k_i>`, `scale = 1 / sqrt(Dk / num_heads)` by
      default. With `num_heads > 1`, q, k and v are split into heads that
      attend independently, and the head outputs are concatenated.

    and weights from the normaliser: `"softmax"` over the valid events,
    `"sigmoid"`, `w_i = sigmoid(a_i)`, point-wise and not summing to 1, or
    `"none"`, `w_i = a_i` (the DIN paper's unnormalised weights, which keep
    the intensity of the user's interest in the pooled vector).

    Candidate sets: a query `(B, C, Dq)` (C candidates of one user) attends
    over the same keys `(B, L, Dk)`, giving `(B, C, Dv)`: the per-event work
    (the keys' part of the `"mlp"` scorer's first layer) is done once per
    row, and per candidate only what involves the candidate. Keys of each
    candidate's own, `(B, C, L, Dk)` with a mask `(B, C, L)` (e.g. each
    candidate's top-k), are attended per candidate.

    Masking: `mask` (B, L) marks valid events; padded events weigh exactly 0
    (their logit is the dtype's most negative finite value before a softmax),
    so the result does not depend on where the padding is, and an all-padding
    history gives a zero vector, not NaN.

    Args:
        scorer: `"mlp"` or `"dot"`.
        normalizer: `"softmax"`, `"sigmoid"` or `"none"`.
        hidden_units: hidden sizes of the `"mlp"` scorer.
        activation: activation of the `"mlp"` scorer's hidden layers.
        num_heads: heads of the `"dot"` scorer (must divide `Dk` and `Dv`).
        scale: logit scale of the `"dot"` scorer; `None` = `1/sqrt(head dim)`.
        kernel_initializer: initializer of the scorer's kernels.
        kernel_regularizer: regularizer of the scorer's kernels.

    Call arguments:
        query: `(B, Dq)`, or `(B, C, Dq)` for a candidate set.
        keys: `(B, L, Dk)`, or `(B, C, L, Dk)` per candidate.
        values: `(B, L, Dv)` (`(B, C, L, Dv)`), or `None` to use `keys`.
        mask: boolean `(B, L)` (`(B, C, L)`), or `None` when every event is valid.
        logit_bias: `(B, L)` (`(B, C, L)`) added to every event's logit (each
            head's) before the normaliser, e.g. TWIN-V2's `log(cluster size)`,
            which weighs a cluster of `n` behaviours as `n` copies of its
            representative under a softmax; `None` for none.
        return_weights: also return the weights, `(B, L)` (`(B, H, L)` with
            heads; `(B, C, ...)` for a candidate set).

    Example:

    >>> attention = TargetAttention(scorer="dot")
    >>> q, k = np.ones((2, 8), "float32"), np.ones((2, 5, 8), "float32")
    >>> attention(q, k, mask=np.array([[1, 1, 1, 0, 0]] * 2, bool)).shape
    (2, 8)

    In a functional model:

    >>> query = keras.Input((8,))
    >>> keys = keras.Input((None, 8))
    >>> pooled = TargetAttention(scorer="mlp", hidden_units=(16,))(query, keys)

    Reference:
        Zhou et al., "Deep Interest Network for Click-Through Rate
        Prediction", KDD 2018.
    """

    def __init__(
        self,
        scorer: str = "mlp",
        normalizer: str = "softmax",
        hidden_units: Sequence[int] = (80, 40),
        activation: Any = "sigmoid",
        num_heads: int = 1,
        scale: float | None = None,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_choice("scorer", scorer, SCORERS)
        check_choice("normalizer", normalizer, NORMALIZERS)
        check_positive(num_heads=num_heads)
        if scorer == "mlp" and num_heads != 1:
            raise ValueError(f"The 'mlp' scorer has one head. Received: `num_heads={num_heads}`")
        hidden_units = check_units("hidden_units", hidden_units)
        self.scorer = scorer
        self.normalizer = normalizer
        self.hidden_units = hidden_units
        self.activation = keras.activations.get(activation)
        self.num_heads = num_heads
        self.scale = scale
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        # `mask` is an explicit call argument; outputs carry no Keras mask.
        self.supports_masking = True

    def build(self, query_shape, keys_shape, values_shape=None) -> None:
        query_dim, key_dim = query_shape[-1], keys_shape[-1]
        value_dim = key_dim if values_shape is None else values_shape[-1]
        if self.scorer == "mlp":
            if query_dim != key_dim:
                raise ValueError(
                    "The 'mlp' scorer needs query and keys of one size. "
                    f"Received: query dim {query_dim}, key dim {key_dim}"
                )
            units = self.hidden_units + (1,)
            self.score_kernel = self.add_weight(
                name="score_kernel",
                shape=(4 * key_dim, units[0]),
                initializer=clone_initializer(self.kernel_initializer),
                regularizer=self.kernel_regularizer,
            )
            self.score_bias = self.add_weight(name="score_bias", shape=(units[0],), initializer="zeros")
            self.score_layers = []
            for i, size in enumerate(units[1:]):
                self.score_layers.append(owned_dense(self, size, f"score_dense_{i + 1}", units[i]))
        else:
            if query_dim != key_dim:
                raise ValueError(
                    "The 'dot' scorer needs query and keys of one size. "
                    f"Received: query dim {query_dim}, key dim {key_dim}"
                )
            for name, dim in (("key", key_dim), ("value", value_dim)):
                if dim % self.num_heads:
                    raise ValueError(
                        f"The {name} size {dim} is not divisible by `num_heads={self.num_heads}`."
                    )
        self.built = True

    def _mlp_logits(self, query, keys):
        """Logits `(B, C, L)` of queries `(B, C, D)` over shared keys `(B, L, D)`."""
        w_q, w_k, w_d, w_p = ops.split(ops.cast(self.score_kernel, keys.dtype), 4, axis=0)
        per_query = ops.matmul(query, w_q + w_d) + ops.cast(self.score_bias, keys.dtype)
        per_event = ops.matmul(keys, w_k - w_d)  # once per event, whatever C is
        hidden = (
            ops.expand_dims(per_event, 1)
            + ops.matmul(ops.expand_dims(query, 2) * ops.expand_dims(keys, 1), w_p)
            + ops.expand_dims(per_query, 2)
        )
        if self.score_layers:
            hidden = self.activation(hidden)
        for i, layer in enumerate(self.score_layers):
            hidden = layer(hidden)
            if i < len(self.score_layers) - 1:
                hidden = self.activation(hidden)
        return ops.squeeze(hidden, -1)

    def call(self, query, keys, values=None, mask=None, logit_bias=None, return_weights: bool = False):
        if len(query.shape) == 3 and len(keys.shape) == 4:
            return self._per_candidate_keys(query, keys, values, mask, logit_bias, return_weights)
        query = ops.cast(query, self.compute_dtype)
        keys = ops.cast(keys, self.compute_dtype)
        values = keys if values is None else ops.cast(values, self.compute_dtype)
        if mask is not None:
            mask = ops.cast(mask, "bool")
        bias = None if logit_bias is None else ops.expand_dims(ops.cast(logit_bias, self.compute_dtype), 1)
        # One code path: a single target is a set of one candidate.
        single = len(query.shape) == 2
        query = ops.expand_dims(query, 1) if single else query  # (B, C, Dq)
        if self.scorer == "mlp":
            shared_mask = None if mask is None else ops.expand_dims(mask, 1)
            logits = self._mlp_logits(query, keys)
            logits = logits if bias is None else logits + bias
            weights = normalize(logits, shared_mask, self.normalizer)
            output = ops.einsum("bcl,bld->bcd", weights, values)
        else:
            heads = self.num_heads
            batch, length = ops.shape(keys)[0], ops.shape(keys)[1]
            head_dim = keys.shape[-1] // heads
            scale = self.scale if self.scale is not None else 1.0 / math.sqrt(head_dim)
            candidates = query.shape[1] if query.shape[1] is not None else -1  # static when known
            q = ops.reshape(query, (batch, candidates, heads, head_dim))
            k = ops.reshape(keys, (batch, length, heads, head_dim))
            v = ops.reshape(values, (batch, length, heads, values.shape[-1] // heads))
            logits = ops.einsum("bchd,blhd->bchl", q, k) * ops.cast(scale, q.dtype)
            logits = logits if bias is None else logits + ops.expand_dims(bias, 2)
            head_mask = None if mask is None else mask[:, None, None, :]
            weights = normalize(logits, head_mask, self.normalizer)
            output = ops.einsum("bchl,blhd->bchd", weights, v)
            output = ops.reshape(output, (batch, candidates, values.shape[-1]))
            if heads == 1:
                weights = ops.squeeze(weights, 2)
        if single:
            output, weights = ops.squeeze(output, 1), ops.squeeze(weights, 1)
        return (output, weights) if return_weights else output

    def _per_candidate_keys(self, query, keys, values, mask, logit_bias, return_weights):
        """Queries `(B, C, D)` over keys of their own `(B, C, L, D)` (e.g. each
        candidate's top-k): the candidates folded into the batch."""
        candidates = ops.shape(query)[1]

        def fold(x):
            return None if x is None else ops.reshape(x, (-1,) + tuple(x.shape[2:]))

        def unfold(x):
            return ops.reshape(x, (-1, candidates) + tuple(x.shape[1:]))

        result = self.call(
            fold(query), fold(keys), fold(values), fold(mask), fold(logit_bias), return_weights
        )
        if return_weights:
            return unfold(result[0]), unfold(result[1])
        return unfold(result)

    def compute_output_shape(self, query_shape, keys_shape, values_shape=None):
        value_dim = (keys_shape if values_shape is None else values_shape)[-1]
        return tuple(query_shape[:-1]) + (value_dim,)

    def compute_output_spec(self, query, keys, values=None, mask=None, logit_bias=None, return_weights=False):
        shape = self.compute_output_shape(query.shape, keys.shape, None if values is None else values.shape)
        output = keras.KerasTensor(shape, dtype=self.compute_dtype)
        if not return_weights:
            return output
        heads = () if self.num_heads == 1 else (self.num_heads,)
        weights = keras.KerasTensor(tuple(query.shape[:-1]) + heads + (keys.shape[-2],), self.compute_dtype)
        return output, weights

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "scorer": self.scorer,
                "normalizer": self.normalizer,
                "hidden_units": list(self.hidden_units),
                "activation": keras.activations.serialize(self.activation),
                "num_heads": self.num_heads,
                "scale": self.scale,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
