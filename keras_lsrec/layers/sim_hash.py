"""SimHash codes and the hash-collision pooling of SDIM (the search of ETA, the whole of SDIM)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class SimHash(keras.layers.Layer):
    """Signs of fixed random projections: `num_hashes` codes of `num_bits` bits.

    `code(x)[..., h, b] = sign(<x, r_hb>)` in {-1, +1} (0 maps to +1) for
    projections `r_hb` drawn once from a standard normal with `seed` and never
    trained (a non-trainable weight, so a saved model keeps its hashes). Two
    vectors at angle `theta` agree on a bit with probability `1 - theta / pi`,
    so `<code(q), code(k)>` over a hash's bits (`num_bits - 2 * Hamming`) ranks
    behaviours by angular similarity without a multiplication per dimension
    at search time (ETA), and equal codes mark a collision (SDIM). The codes
    carry no gradient.

    Args:
        num_bits: bits per code.
        num_hashes: independent codes.
        seed: seed of the projections.

    Call arguments:
        inputs: `(..., D)`.

    Returns:
        `(..., num_hashes, num_bits)` float codes in {-1, +1}.

    Reference:
        Charikar, "Similarity estimation techniques from rounding
        algorithms", STOC 2002.
    """

    def __init__(self, num_bits: int, num_hashes: int = 1, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_positive(num_bits=num_bits, num_hashes=num_hashes)
        self.num_bits = num_bits
        self.num_hashes = num_hashes
        self.seed = seed

    def build(self, input_shape) -> None:
        self.projections = self.add_weight(
            name="projections",
            shape=(input_shape[-1], self.num_hashes * self.num_bits),
            initializer=keras.initializers.RandomNormal(seed=self.seed),
            trainable=False,
        )

    def call(self, inputs):
        inputs = ops.stop_gradient(ops.cast(inputs, self.compute_dtype))
        projected = ops.matmul(inputs, ops.cast(self.projections, inputs.dtype))
        codes = ops.where(projected >= 0, 1.0, -1.0)
        return ops.cast(
            ops.reshape(codes, tuple(ops.shape(inputs)[:-1]) + (self.num_hashes, self.num_bits)),
            self.compute_dtype,
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.num_hashes, self.num_bits)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_bits": self.num_bits,
            "num_hashes": self.num_hashes,
            "seed": self.seed,
        }


@keras_lsrec_export
class CollisionPooling(keras.layers.Layer):
    """SDIM's attention by sampling: the behaviours whose hash collides with the target's, averaged.

    Codes come from a `SimHash(num_bits, num_hashes)`. For hash `h`, a
    valid behaviour `i` collides with the query when all `num_bits` bits of
    its code equal the query's; the hash's output is the mean of the values
    of the colliding behaviours (zero when none collides), and the layer
    returns the mean over the hashes:

        out = 1/H sum_h sum_i [code_h(k_i) = code_h(q)] v_i / max(1, n_h)

    Over many hashes this approximates attention with weights that grow
    with the angular similarity of q and k_i (`(1 - theta/pi)^num_bits`), at
    O(L H num_bits) with no top-k and no softmax. The behaviours' codes do
    not depend on the query, so a candidate set `(B, C, D)` hashes the history
    once.

    Args:
        num_bits: bits per code (a longer code collides only with closer
            behaviours).
        num_hashes: codes averaged.
        seed: seed of the hash projections.

    Call arguments:
        query: `(B, D)`, or `(B, C, D)` for a candidate set.
        keys: `(B, L, D)`, hashed.
        values: `(B, L, Dv)` averaged, or `None` to use `keys`.
        mask: boolean `(B, L)` of valid events, or `None`.

    Returns:
        `(B, Dv)` (`(B, C, Dv)`).

    Reference:
        Cao et al., "Sampling Is All You Need on Modeling Long-Term User
        Behaviors for CTR Prediction", CIKM 2022.
    """

    def __init__(self, num_bits: int = 3, num_hashes: int = 48, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.hash = SimHash(num_bits, num_hashes, seed, dtype=self.dtype_policy, name="hash")
        self.num_bits = num_bits
        self.num_hashes = num_hashes
        self.seed = seed
        self.supports_masking = True

    def build(self, query_shape, keys_shape, values_shape=None) -> None:
        if query_shape[-1] != keys_shape[-1]:
            raise ValueError(
                "CollisionPooling needs query and keys of one size. "
                f"Received: query dim {query_shape[-1]}, key dim {keys_shape[-1]}"
            )
        self.hash.build(keys_shape)

    def call(self, query, keys, values=None, mask=None):
        keys = ops.cast(keys, self.compute_dtype)
        values = keys if values is None else ops.cast(values, self.compute_dtype)
        single = len(query.shape) == 2
        query = ops.expand_dims(query, 1) if single else query  # (B, C, D)
        key_codes = self.hash(keys)  # (B, L, H, bits): once per event
        query_codes = self.hash(query)  # (B, C, H, bits)
        agreement = ops.einsum("bchn,blhn->bclh", query_codes, key_codes)
        collide = ops.cast(agreement >= self.num_bits - 0.5, values.dtype)  # every bit equal
        if mask is not None:
            collide = collide * ops.cast(mask, values.dtype)[:, None, :, None]
        counts = ops.sum(collide, axis=2)  # (B, C, H)
        pooled = ops.einsum("bclh,bld->bchd", collide, values) / ops.expand_dims(ops.maximum(counts, 1.0), -1)
        output = ops.mean(pooled, axis=2)
        return ops.squeeze(output, 1) if single else output

    def compute_output_shape(self, query_shape, keys_shape, values_shape=None):
        return tuple(query_shape[:-1]) + ((keys_shape if values_shape is None else values_shape)[-1],)

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_bits": self.num_bits,
            "num_hashes": self.num_hashes,
            "seed": self.seed,
        }
