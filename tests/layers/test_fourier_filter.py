"""FourierFilter (MIRRN's Fourier transformer block) against a numpy FFT reference."""

import keras
import numpy as np
import pytest
from references import make_mask
from test_case import TestCase, to_numpy

from keras_lsrec.layers import FourierFilter

B, L, D, HEADS = 4, 7, 6, 2


def np_fourier_filter(layer, x, mask):
    """One row at a time: the valid events in order, zeros after them (length L),
    rfft, a complex matrix per head at every frequency, irfft, residual, layer
    norm; zeros at padding, outputs back at the events' own slots."""
    weight = to_numpy(layer.real_kernel) + 1j * to_numpy(layer.imag_kernel)  # (H, d, d)
    gamma, beta = to_numpy(layer.norm.gamma), to_numpy(layer.norm.beta)
    out = np.zeros_like(x)
    for row in range(x.shape[0]):
        valid = x[row][mask[row]]
        packed = np.concatenate([valid, np.zeros((L - len(valid), D), x.dtype)])
        spectrum = np.fft.rfft(packed, axis=0).reshape(-1, HEADS, D // HEADS)
        filtered = np.fft.irfft(np.einsum("fhd,hde->fhe", spectrum, weight).reshape(-1, D), n=L, axis=0)
        z = packed + filtered
        z = (z - z.mean(-1, keepdims=True)) / np.sqrt(z.var(-1, keepdims=True) + layer.epsilon)
        out[row][mask[row]] = (z * gamma + beta)[: len(valid)]
    return out


def data(seed):
    rng = np.random.default_rng(seed)
    return dict(inputs=rng.normal(size=(B, L, D)).astype("float32"), mask=make_mask(rng, B, L))


class TestFourierFilter(TestCase):
    def test_matches_numpy(self):
        x, mask = data(1).values()
        mask[1] = [True, False, True, True, False, True, False]  # gaps
        layer = FourierFilter(HEADS, kernel_initializer="glorot_uniform")
        layer.build(x.shape)
        rng = np.random.default_rng(1)
        layer.norm.gamma.assign(rng.uniform(0.5, 1.5, D).astype("float32"))
        layer.norm.beta.assign(rng.normal(size=D).astype("float32"))
        got = to_numpy(layer(x, mask=mask))
        np.testing.assert_allclose(got, np_fourier_filter(layer, x, mask), atol=1e-5)
        np.testing.assert_array_equal(got[~mask], 0.0)  # padding (row 0: all of it) stays zero
        # Leading axes (e.g. a candidate's own retrieved events) are rows of their own.
        nested = to_numpy(layer(x.reshape(2, 2, L, D), mask=mask.reshape(2, 2, L)))
        np.testing.assert_allclose(nested.reshape(B, L, D), got, atol=1e-6)

    def test_layer_contract(self):
        self.run_layer_test(
            FourierFilter,
            {"num_heads": HEADS},
            data(2),
            (B, L, D),
            expected_num_trainable_weights=4,
            sequence_args=("inputs",),
            output_sequence=True,
        )

    @pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="backend-independent")
    def test_rejects_bad_heads(self):
        with pytest.raises(ValueError, match="num_heads"):
            FourierFilter(0)
        with pytest.raises(ValueError, match="divisible"):
            FourierFilter(4)(np.zeros((1, 3, D), "float32"))
