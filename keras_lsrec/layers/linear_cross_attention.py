"""IFA: linear (kernelised) cross attention from a candidate set to the full sequence."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.initializers import clone_initializer
from keras_lsrec.validation import check_positive

# Non-negative feature maps phi: phi(q) . phi(k) replaces exp(q . k).
FEATURE_MAPS = {
    "elu_plus_one": lambda x: ops.elu(x) + 1.0,
    "relu": ops.relu,
    "softplus": ops.softplus,
}
FAVOR = "favor"  # positive random features: phi(q) . phi(k) ~ exp(q . k / sqrt(d_k)), i.e. softmax attention


@keras_lsrec_export
class LinearCrossAttention(keras.layers.Layer):
    """Multi-head linear attention from C candidates to a whole sequence of L events.

    For each head `h` (Katharopoulos et al. 2020, applied as cross attention):

    - `Q = phi(X W_q)` `(B, C, d_k)` from the candidates `X`;
    - `K = phi(S W_k)` `(B, L, d_k)` and `V = S W_v` `(B, L, d_v)` from the
      sequence `S`; padded events have their rows of `K` and `V` set to 0;
    - the per-user summaries `KV = K^T V` `(d_k, d_v)` and `z = K^T 1`
      `(d_k,)`, computed ONCE per user and shared by every candidate;
    - candidate `j` reads `o_j = (Q_j KV) / (Q_j z + epsilon)`.

    The heads are concatenated and projected by `W_o` to `output_dim`. Cost:
    O(L d_k d_v) for the summaries plus O(C d_k d_v) for the reads, instead of
    O(L C d) for softmax attention of every candidate over the sequence. With
    no valid event, `KV = 0` and `z = 0`, so the read is exactly 0 (finite).

    The summaries are sums over events, so they can be cached per user and
    updated as events arrive: `summaries(old) + summaries(new)` (added field by
    field) equals `summaries(old + new)`, and `attend(query, summaries)` reads
    them. No position enters the formula, so the result does not depend on
    where the padding is.

    Numerics: the summaries and reads are computed in float32 even under a
    float16/bfloat16 policy (sums over thousands of events overflow float16);
    the output is cast back to the compute dtype.

    Design note: IFA's code is not public; this is our design (see
    docs/ifa.md). No bias on `W_q`, `W_k`, `W_v` (as in linear transformers);
    `W_o` has one.

    Args:
        num_heads: number of heads.
        key_dim: size `d_k` of each head's queries and keys.
        value_dim: size `d_v` of each head's values (default `key_dim`).
        output_dim: size of the output (default: the candidates' last dim).
        feature_map: `"elu_plus_one"` (default, `elu(x) + 1`), `"relu"`,
            `"softplus"`, `"favor"`, or a serializable callable returning
            non-negative values (applied to each head's `(..., d_k)` vectors).
            `"favor"` (Performer's FAVOR+, Choromanski et al. 2021) maps
            `x' = x / d_k^(1/4)` to `exp(W x' - |x'|^2 / 2) / sqrt(m)` with `m`
            fixed Gaussian random features per head (`W` `(m, d_k)`, drawn once
            from `seed`, not trained), so `phi(q) . phi(k)` is an unbiased
            estimate of `exp(q . k / sqrt(d_k))`: linear-cost softmax attention,
            sharper than the element-wise maps. The exponent is at most
            `|w|^2 / 2`, so float32 never overflows.
        random_features: `m` for `"favor"`.
        seed: seed of the `"favor"` random features.
        epsilon: added to the denominator.
        kernel_initializer, kernel_regularizer: of the four projections.

    Call arguments:
        query: `(B, C, d_q)`, the candidates.
        sequence: `(B, L, d_s)`, the behaviours (keys and values).
        mask: boolean `(B, L)` marking valid events, or `None`.

    Example:

    >>> attention = LinearCrossAttention(num_heads=2, key_dim=4)
    >>> candidates = np.ones((3, 10, 8), "float32")
    >>> sequence = np.ones((3, 500, 8), "float32")
    >>> attention(candidates, sequence).shape
    (3, 10, 8)
    """

    def __init__(
        self,
        num_heads: int = 2,
        key_dim: int = 16,
        value_dim: int | None = None,
        output_dim: int | None = None,
        feature_map: Any = "elu_plus_one",
        random_features: int = 64,
        seed: int = 0,
        epsilon: float = 1e-6,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive(num_heads=num_heads, key_dim=key_dim, random_features=random_features)
        check_positive(allow_none=True, value_dim=value_dim, output_dim=output_dim)
        if isinstance(feature_map, str) and feature_map not in FEATURE_MAPS and feature_map != FAVOR:
            raise ValueError(
                f"`feature_map` must be one of {sorted(FEATURE_MAPS) + [FAVOR]} or a callable. "
                f"Received: `feature_map={feature_map!r}`"
            )
        if not isinstance(feature_map, str) and not callable(feature_map):
            raise ValueError(
                f"`feature_map` must be a string or a callable. Received: `feature_map={feature_map!r}`"
            )
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be positive. Received: `epsilon={epsilon!r}`")
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim or key_dim
        self.output_dim = output_dim
        self.feature_map = feature_map
        self.random_features = random_features
        self.seed = seed
        if feature_map == FAVOR:
            self._phi = self._favor
        else:
            self._phi = FEATURE_MAPS[feature_map] if isinstance(feature_map, str) else feature_map
        self.epsilon = float(epsilon)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.supports_masking = True

    def _projection(self, name: str, shape: tuple[int, ...]):
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=clone_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
        )

    def build(self, query_shape, sequence_shape) -> None:
        heads, dk, dv = self.num_heads, self.key_dim, self.value_dim
        self._output_dim = self.output_dim or query_shape[-1]
        self.query_kernel = self._projection("query_kernel", (query_shape[-1], heads, dk))
        self.key_kernel = self._projection("key_kernel", (sequence_shape[-1], heads, dk))
        self.value_kernel = self._projection("value_kernel", (sequence_shape[-1], heads, dv))
        self.output_kernel = self._projection("output_kernel", (heads, dv, self._output_dim))
        self.output_bias = self.add_weight(name="output_bias", shape=(self._output_dim,), initializer="zeros")
        if self.feature_map == FAVOR:
            self.random_projection = self.add_weight(
                name="random_projection",
                shape=(heads, dk, self.random_features),
                initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed),
                trainable=False,
            )
        self.built = True

    def _favor(self, x):
        """FAVOR+ positive random features of `x` `(..., H, d_k)`: `(..., H, m)`."""
        x = x * (self.key_dim**-0.25)
        projected = ops.einsum("...hk,hkm->...hm", x, ops.cast(self.random_projection, "float32"))
        norm = 0.5 * ops.sum(ops.square(x), axis=-1, keepdims=True)
        return ops.exp(projected - norm) * (self.random_features**-0.5)

    # -- the two halves, usable on their own (a server caches the summaries) --
    def summaries(self, sequence, mask=None):
        """Per-user summaries `(KV, z)`: `(B, H, F, d_v)` and `(B, H, F)`, float32
        (`F` = `d_k`, or `random_features` for `"favor"`).

        Additive over events: the summaries of a history split in two parts
        are the sums of the parts' summaries.
        """
        sequence = ops.cast(sequence, "float32")
        keys = self._phi(ops.einsum("bld,dhk->blhk", sequence, ops.cast(self.key_kernel, "float32")))
        values = ops.einsum("bld,dhv->blhv", sequence, ops.cast(self.value_kernel, "float32"))
        if mask is not None:
            keep = ops.cast(ops.expand_dims(ops.expand_dims(mask, -1), -1), "float32")
            keys, values = keys * keep, values * keep
        return ops.einsum("blhf,blhv->bhfv", keys, values), ops.sum(keys, axis=1)

    def attend(self, query, summaries):
        """Reads `summaries` (from `summaries(...)`) for every candidate: `(B, C, output_dim)`."""
        kv, z = summaries
        queries = self._phi(
            ops.einsum("bcd,dhk->bchk", ops.cast(query, "float32"), ops.cast(self.query_kernel, "float32"))
        )
        numerator = ops.einsum("bchf,bhfv->bchv", queries, kv)
        denominator = ops.einsum("bchf,bhf->bch", queries, z) + self.epsilon
        heads = numerator / ops.expand_dims(denominator, -1)
        output = ops.einsum("bchv,hvo->bco", heads, ops.cast(self.output_kernel, "float32"))
        return ops.cast(output + ops.cast(self.output_bias, "float32"), self.compute_dtype)

    def call(self, query, sequence, mask=None):
        if mask is not None:
            mask = ops.cast(mask, "bool")
        return self.attend(query, self.summaries(sequence, mask))

    def compute_output_shape(self, query_shape, sequence_shape):
        return tuple(query_shape[:-1]) + (self.output_dim or query_shape[-1],)

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        feature_map = self.feature_map
        if not isinstance(feature_map, str):
            feature_map = keras.saving.serialize_keras_object(feature_map)
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "value_dim": self.value_dim,
                "output_dim": self.output_dim,
                "feature_map": feature_map,
                "random_features": self.random_features,
                "seed": self.seed,
                "epsilon": self.epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]):
        config = dict(config)
        if isinstance(config.get("feature_map"), dict):
            config["feature_map"] = keras.saving.deserialize_keras_object(config["feature_map"])
        return cls(**config)
