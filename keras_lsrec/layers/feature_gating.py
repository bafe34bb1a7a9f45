"""FinalMLP: stream-specific feature selection by a context-driven gate."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.mlp import MLP
from keras_lsrec.validation import check_positive, check_units


@keras_lsrec_export
class FeatureGating(keras.layers.Layer):
    """FinalMLP's feature selection: `2 * sigmoid(MLP(context)) * inputs`.

    A gate MLP (hidden layers `hidden_units` with `activation`, then a linear
    layer to the input's size `D`) reads the gate's input `context` and
    turns it into one weight in `(0, 2)` per input feature; the output is the
    input scaled feature by feature (a gate logit of 0 keeps a feature as
    it is). Each stream of a FinalMLP has its own gate, so the two streams can
    select different features.

    The paper conditions the gate on chosen features (the user, the item);
    without a `context` the gate reads a learned vector of size
    `context_dim` instead (FuxiCTR's default, `fs_context=[]`): one learned
    weight per feature, the same for every row. (FuxiCTR starts that vector
    at 0, where a ReLU gate passes no gradient to its hidden layers; here it
    starts random, so every weight of the gate learns.) Each row is gated on
    its own: there is no mask to honour.

    Args:
        hidden_units: sizes of the gate's hidden layers.
        activation: their activation (any Keras activation, `"prelu"`, `"dice"`).
        context_dim: size of the learned context vector read when the call
            passes no `context`.
        kernel_initializer, kernel_regularizer: of the gate's kernels.

    Call arguments:
        inputs: `(..., D)`, the features to gate.
        context: optional `(..., D_c)` (the same leading axes as `inputs`,
            or broadcastable to them), the gate's input.

    Example:

    >>> gate = FeatureGating(hidden_units=(8,))
    >>> gate(np.ones((2, 6), "float32")).shape
    (2, 6)
    >>> gate = FeatureGating(hidden_units=(8,))
    >>> gate(np.ones((2, 6), "float32"), context=np.ones((2, 3), "float32")).shape
    (2, 6)

    Reference:
        Mao et al., "FinalMLP: An Enhanced Two-Stream MLP Model for CTR
        Prediction", AAAI 2023.
    """

    def __init__(
        self,
        hidden_units: Sequence[int] = (64,),
        activation: Any = "relu",
        context_dim: int = 16,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        hidden_units = check_units("hidden_units", hidden_units)
        check_positive(context_dim=context_dim)
        self.hidden_units = hidden_units
        self.activation = activation
        self.context_dim = context_dim
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.supports_masking = True  # row by row: a mask passes through
        self.context = None

    def build(self, inputs_shape, context_shape=None) -> None:
        dim = int(inputs_shape[-1])
        self.gate = MLP(
            hidden_units=self.hidden_units,
            activation=self.activation,
            output_units=dim,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="gate",
        )
        if context_shape is None:
            self.context = self.add_weight(
                name="context", shape=(self.context_dim,), initializer="random_normal"
            )
            self.gate.build((1, self.context_dim))
        else:
            self.gate.build(tuple(context_shape))
        self.built = True

    def call(self, inputs, context=None):
        x = ops.cast(inputs, self.compute_dtype)
        if context is None:
            if self.context is None:
                raise ValueError("FeatureGating was built with a `context`; call it with one.")
            context = ops.expand_dims(self.context, 0)
        logits = self.gate(ops.cast(context, self.compute_dtype))
        return x * (2.0 * ops.sigmoid(logits))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        activation = self.activation
        if activation not in ("prelu", "dice"):
            activation = keras.activations.serialize(keras.activations.get(activation))
        config.update(
            {
                "hidden_units": list(self.hidden_units),
                "activation": activation,
                "context_dim": self.context_dim,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
