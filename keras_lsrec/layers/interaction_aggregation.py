"""FinalMLP: multi-head bilinear fusion of two streams into the logit."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.initializers import clone_initializer
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class InteractionAggregation(keras.layers.Layer):
    """FinalMLP's fusion of two stream outputs `x` and `y`: linear terms plus
    a multi-head bilinear term.

    With `x` `(..., D_x)` and `y` `(..., D_y)` split into `num_heads` heads
    `x_h` `(D_x / H)` and `y_h` `(D_y / H)`, the output is
    `x w_x + y w_y + b + sum_h x_h^T W_h y_h` (`w_x` `(D_x, O)`, `w_y`
    `(D_y, O)`, `W_h` `(D_x / H, D_y / H, O)` per head, `O = output_units`).
    One head is the full bilinear form; more heads cut its `D_x D_y O`
    weights by `H` and only relate the features of the same head. With
    `output_units=1` this is FinalMLP's logit. Each row is fused on its own:
    there is no mask to honour.

    Args:
        num_heads: number of heads `H`; it must divide `D_x` and `D_y`.
        output_units: size `O` of the output.
        kernel_initializer, kernel_regularizer: of `w_x`, `w_y` and the `W_h`
            (one draw each; the bias starts at 0).

    Call arguments:
        x: `(..., D_x)`, the first stream's output.
        y: `(..., D_y)`, the second stream's output (the same leading axes).

    Example:

    >>> fuse = InteractionAggregation(num_heads=2)
    >>> fuse(np.ones((3, 8), "float32"), np.ones((3, 4), "float32")).shape
    (3, 1)

    Reference:
        Mao et al., "FinalMLP: An Enhanced Two-Stream MLP Model for CTR
        Prediction", AAAI 2023.
    """

    def __init__(
        self,
        num_heads: int = 1,
        output_units: int = 1,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive(num_heads=num_heads, output_units=output_units)
        self.num_heads = num_heads
        self.output_units = output_units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def _kernel(self, name: str, shape: tuple[int, ...]) -> keras.Variable:
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=clone_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
        )

    def build(self, x_shape, y_shape) -> None:
        x_dim, y_dim = int(x_shape[-1]), int(y_shape[-1])
        if x_dim % self.num_heads or y_dim % self.num_heads:
            raise ValueError(
                f"`num_heads` must divide both inputs' sizes ({x_dim} and {y_dim}). "
                f"Received: `num_heads={self.num_heads}`"
            )
        heads, units = self.num_heads, self.output_units
        self.x_kernel = self._kernel("x_kernel", (x_dim, units))
        self.y_kernel = self._kernel("y_kernel", (y_dim, units))
        self.bilinear_kernel = self._kernel("bilinear_kernel", (heads, x_dim // heads, y_dim // heads, units))
        self.bias = self.add_weight(name="bias", shape=(units,), initializer="zeros")
        self.built = True

    def call(self, x, y):
        dtype = self.compute_dtype
        x, y = ops.cast(x, dtype), ops.cast(y, dtype)
        heads = self.num_heads
        bilinear = ops.cast(self.bilinear_kernel, dtype)
        linear = ops.matmul(x, ops.cast(self.x_kernel, dtype)) + ops.matmul(y, ops.cast(self.y_kernel, dtype))
        # Every leading axis (rows, candidates) flattened into one, heads split.
        x_heads = ops.reshape(x, (-1, heads, bilinear.shape[1]))
        y_heads = ops.reshape(y, (-1, heads, bilinear.shape[2]))
        projected = ops.einsum("nhi,hijo->nhjo", x_heads, bilinear)
        pairs = ops.einsum("nhjo,nhj->no", projected, y_heads)
        pairs = ops.reshape(pairs, ops.shape(linear))
        return linear + pairs + ops.cast(self.bias, dtype)

    def compute_output_shape(self, x_shape, y_shape):
        return tuple(x_shape[:-1]) + (self.output_units,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "output_units": self.output_units,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
