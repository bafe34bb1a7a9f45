"""A learned filter in the frequency domain of a masked sequence (MIRRN's Fourier transformer block)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.initializers import clone_initializer
from keras_lsrec.layers.masking import batch_gather
from keras_lsrec.validation import check_positive, check_range


@keras_lsrec_export
class FourierFilter(keras.layers.Layer):
    """Mixes a sequence through a learned complex filter on its Fourier spectrum.

    For a sequence `x` `(L, D)` the layer takes the real FFT along the
    sequence axis, `X = rfft(x)` `(L // 2 + 1, D)`, splits the channels into
    `num_heads` heads of `d = D / num_heads` and multiplies every frequency
    of head `h` by a learned complex `d x d` matrix `W_h = W_h^re + i W_h^im`
    (the same at every frequency), then returns to the sequence with the
    inverse FFT of length `L`, and adds the input back under a layer norm:

        y = LayerNorm(x + dropout(irfft(X W, n=L)))

    This is the block of MIRRN's multi-head Fourier transformer (FuxiCTR's
    `FilterLayer2`): the real part of `W_h` mixes the channels of a head at
    each event, the imaginary part mixes them after a 90-degree phase shift
    of the sequence (the circular Hilbert transform, up to sign), which
    spreads each event over the whole sequence in O(L log L). FuxiCTR's
    `einsum("blnd,ndd->blnd")` repeats an index and so reads only the
    diagonal of each `W_h`; this layer applies the whole matrix (the mixing
    of a head's channels that the weight's `(d, d)` shape and the paper's
    "interactive information" call for), and a `W_h` with zero off-diagonal
    entries gives FuxiCTR's block exactly. The FFT runs in float32 whatever
    the compute dtype.

    Masking: the valid events of each row are first gathered to the front
    in their order and padded slots set to zero, so the spectrum sees the
    valid events as one contiguous sequence followed by zeros: the result
    at every valid event is the same wherever the padding is (left, right,
    or in gaps), padded slots contribute nothing and come out as zeros, and
    an all-padding row gives zeros.

    Args:
        num_heads: channel groups, each with its own complex matrix (must
            divide `D`).
        dropout: dropout rate on the filtered sequence (training only).
        epsilon: the layer norm's epsilon (FuxiCTR: 1e-12; a larger default
            keeps float16 finite).
        kernel_initializer: initializer of the real and imaginary matrices
            (FuxiCTR: normal, standard deviation 0.02).

    Call arguments:
        inputs: `(..., L, D)`.
        mask: boolean `(..., L)` of valid events, or `None` when every event
            is valid.

    Returns:
        `(..., L, D)`, zero at padded events.

    Example:

    >>> layer = FourierFilter(num_heads=2)
    >>> x = np.ones((2, 5, 4), "float32")
    >>> layer(x, mask=np.array([[0, 0, 1, 1, 1]] * 2, bool)).shape
    (2, 5, 4)

    In a functional model:

    >>> events = keras.Input((6, 8))
    >>> refined = FourierFilter(num_heads=4)(events)

    Reference:
        Xu et al., "Multi-granularity Interest Retrieval and Refinement
        Network for Long-Term User Behavior Modeling in CTR Prediction",
        KDD 2025 (arXiv 2411.15005).
    """

    def __init__(
        self,
        num_heads: int = 1,
        dropout: float = 0.0,
        epsilon: float = 1e-6,
        kernel_initializer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive(num_heads=num_heads)
        check_range("dropout", dropout, 0.0, 1.0, high_inclusive=False)
        check_range("epsilon", epsilon, 0.0, 1.0)
        self.num_heads = num_heads
        self.dropout = dropout
        self.epsilon = epsilon
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.RandomNormal(stddev=0.02)
        )
        self.supports_masking = True

    def build(self, input_shape) -> None:
        channels = input_shape[-1]
        if channels % self.num_heads:
            raise ValueError(f"The input size {channels} is not divisible by `num_heads={self.num_heads}`.")
        head = channels // self.num_heads
        shape = (self.num_heads, head, head)
        self.real_kernel = self.add_weight(
            name="real_kernel", shape=shape, initializer=clone_initializer(self.kernel_initializer)
        )
        self.imag_kernel = self.add_weight(
            name="imag_kernel", shape=shape, initializer=clone_initializer(self.kernel_initializer)
        )
        self.norm = keras.layers.LayerNormalization(
            epsilon=self.epsilon, dtype=self.dtype_policy, name="norm"
        )
        self.norm.build(tuple(input_shape))
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="dropout")
        self.built = True

    def call(self, inputs, mask=None, training=None):
        x = ops.cast(inputs, self.compute_dtype)
        shape = ops.shape(x)
        length, channels = x.shape[-2], x.shape[-1]
        length = shape[-2] if length is None else length
        x = ops.reshape(x, (-1, length, channels))  # leading axes folded: (N, L, D)
        if mask is None:
            mask = ops.ones(ops.shape(x)[:2], "bool")
        mask = ops.reshape(ops.cast(mask, "bool"), (-1, length))
        # The valid events to the front, in their order: `order` (N, L) and its inverse.
        positions = ops.expand_dims(ops.arange(length, dtype="int32"), 0)
        order = ops.cast(ops.argsort(ops.where(mask, positions, positions + length), axis=-1), "int32")
        inverse = ops.cast(ops.argsort(order, axis=-1), "int32")
        valid = ops.expand_dims(batch_gather(mask, order), -1)  # (N, L, 1)
        packed = ops.where(valid, batch_gather(x, order), ops.zeros_like(x))

        spectrum = ops.rfft(ops.transpose(ops.cast(packed, "float32"), (0, 2, 1)), fft_length=length)
        real, imag = (
            ops.reshape(s, (-1, self.num_heads, channels // self.num_heads, s.shape[-1])) for s in spectrum
        )
        w_re, w_im = ops.cast(self.real_kernel, "float32"), ops.cast(self.imag_kernel, "float32")

        def mix(part, weight):
            return ops.einsum("nhdf,hde->nhef", part, weight)

        out_re = ops.reshape(mix(real, w_re) - mix(imag, w_im), (-1, channels, real.shape[-1]))
        out_im = ops.reshape(mix(real, w_im) + mix(imag, w_re), (-1, channels, real.shape[-1]))
        filtered = ops.transpose(ops.irfft((out_re, out_im), fft_length=length), (0, 2, 1))
        filtered = self.dropout_layer(ops.cast(filtered, self.compute_dtype), training=training)
        refined = ops.where(valid, self.norm(packed + filtered), ops.zeros_like(packed))
        return ops.reshape(batch_gather(refined, inverse), shape)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "dropout": self.dropout,
                "epsilon": self.epsilon,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            }
        )
        return config
