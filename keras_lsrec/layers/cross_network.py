"""DCNv2: a stack of cross layers, explicit bounded-degree feature crosses."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.initializers import clone_initializer
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class CrossNetwork(keras.layers.Layer):
    """DCNv2's cross network: `num_layers` cross layers on one input vector.

    With `x_0` the input `(..., D)`, cross layer `l` computes
    `x_{l+1} = x_0 * (x_l W_l + b_l) + x_l` (`*` element-wise, `W_l` `(D, D)`):
    after `l` layers every polynomial of `x_0` up to degree `l + 1` can be
    represented, and the residual `+ x_l` keeps the lower degrees. With
    `low_rank=r` each `W_l` is the product `U_l V_l` of a `(D, r)` and an
    `(r, D)` matrix (the paper's low-rank form, without the mixture of
    experts), `2 D r` weights instead of `D^2`. The output has the input's
    shape; each row (each candidate of a set) is crossed on its own, so there
    is no mask to honour.

    Args:
        num_layers: number of cross layers.
        low_rank: rank `r` of each `W_l`, or `None` for full-rank `(D, D)` kernels.
        kernel_initializer, kernel_regularizer: of the kernels (one draw per
            kernel; the biases start at 0 and are not regularised).

    Call arguments:
        inputs: `(..., D)`.

    Example:

    >>> cross = CrossNetwork(num_layers=2)
    >>> cross(np.ones((2, 6), "float32")).shape
    (2, 6)
    >>> inputs = keras.Input((6,))
    >>> model = keras.Model(inputs, keras.layers.Dense(1)(CrossNetwork(low_rank=2)(inputs)))

    Reference:
        Wang et al., "DCN V2: Improved Deep & Cross Network and Practical
        Lessons for Web-scale Learning to Rank Systems", WWW 2021.
    """

    def __init__(
        self,
        num_layers: int = 3,
        low_rank: int | None = None,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive(num_layers=num_layers)
        check_positive(allow_none=True, low_rank=low_rank)
        self.num_layers = num_layers
        self.low_rank = low_rank
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.supports_masking = True  # row by row: a mask passes through

    def _kernel(self, name: str, shape: tuple[int, int]) -> keras.Variable:
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=clone_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
        )

    def build(self, input_shape) -> None:
        dim = int(input_shape[-1])
        self.kernels: list[tuple[keras.Variable, ...]] = []
        self.biases: list[keras.Variable] = []
        for i in range(self.num_layers):
            if self.low_rank is None:
                self.kernels.append((self._kernel(f"cross_{i}_kernel", (dim, dim)),))
            else:
                self.kernels.append(
                    (
                        self._kernel(f"cross_{i}_down_kernel", (dim, self.low_rank)),
                        self._kernel(f"cross_{i}_up_kernel", (self.low_rank, dim)),
                    )
                )
            self.biases.append(self.add_weight(name=f"cross_{i}_bias", shape=(dim,), initializer="zeros"))
        self.built = True

    def call(self, inputs):
        x0 = ops.cast(inputs, self.compute_dtype)
        x = x0
        for kernels, bias in zip(self.kernels, self.biases, strict=True):
            h = x
            for kernel in kernels:
                h = ops.matmul(h, ops.cast(kernel, self.compute_dtype))
            x = x0 * (h + ops.cast(bias, self.compute_dtype)) + x
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "low_rank": self.low_rank,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
