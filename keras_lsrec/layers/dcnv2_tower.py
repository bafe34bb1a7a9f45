"""DCNv2 as a prediction tower: a cross network and a deep MLP, then one logit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.cross_network import CrossNetwork
from keras_lsrec.layers.mlp import MLP
from keras_lsrec.layers.sublayers import owned_dense
from keras_lsrec.validation import check_choice, check_range, check_units

STRUCTURES = ("parallel", "stacked")


@keras_lsrec_export
class DCNv2Tower(keras.layers.Layer):
    """DCNv2's head on a feature vector: cross network + deep MLP -> one logit.

    `[BN] -> CrossNetwork` and the deep `MLP` (`hidden_units`, `activation`,
    `dropout`) are combined as `structure` says: `"parallel"` (both read the
    input; their outputs are concatenated) or `"stacked"` (the MLP reads the
    cross network's output); a final linear layer gives the logit. With no
    `hidden_units` the cross network alone feeds the logit. A drop-in for the
    `MLP` tower (`tower="dcnv2"` on every model, `keras_lsrec.models.wiring.make_tower`).

    Args:
        num_cross_layers: cross layers of the `CrossNetwork`.
        low_rank: rank of the cross kernels, or `None` for full rank.
        structure: `"parallel"` or `"stacked"`.
        hidden_units: sizes of the deep MLP's hidden layers.
        activation: their activation (any Keras activation, `"prelu"`, `"dice"`).
        input_batch_norm: batch-normalise the input first.
        dropout: dropout after each hidden layer of the MLP.
        kernel_initializer, kernel_regularizer: of every kernel.

    Call arguments:
        inputs: `(..., D)`.
        training: whether batch norm and dropout run in training mode.
        mask: optional boolean `inputs.shape[:-1]` marking the valid rows (the
            present candidates of a set): batch statistics use them only.

    Example:

    >>> tower = DCNv2Tower(num_cross_layers=2, hidden_units=(8,))
    >>> tower(np.ones((2, 6), "float32")).shape
    (2, 1)

    Reference:
        Wang et al., "DCN V2: Improved Deep & Cross Network and Practical
        Lessons for Web-scale Learning to Rank Systems", WWW 2021.
    """

    def __init__(
        self,
        num_cross_layers: int = 3,
        low_rank: int | None = None,
        structure: str = "parallel",
        hidden_units: Sequence[int] = (200, 80),
        activation: Any = "prelu",
        input_batch_norm: bool = False,
        dropout: float = 0.0,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_choice("structure", structure, STRUCTURES)
        hidden_units = check_units("hidden_units", hidden_units)
        check_range("dropout", dropout, 0.0, 1.0, high_inclusive=False)
        self.num_cross_layers = num_cross_layers
        self.low_rank = low_rank
        self.structure = structure
        self.hidden_units = hidden_units
        self.activation = activation
        self.input_batch_norm = input_batch_norm
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        self.norm = None
        if input_batch_norm:
            self.norm = keras.layers.BatchNormalization(dtype=self.dtype_policy, name="input_norm")
        self.cross = CrossNetwork(
            num_cross_layers,
            low_rank,
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
            name="cross",
        )
        self.deep = None
        if hidden_units:
            self.deep = MLP(
                hidden_units,
                activation,
                dropout=dropout,
                kernel_initializer=self.kernel_initializer,
                kernel_regularizer=self.kernel_regularizer,
                dtype=self.dtype_policy,
                name="deep",
            )
        self.output_dense = owned_dense(self, 1, "output")

    def build(self, input_shape) -> None:
        shape = tuple(input_shape)
        if self.norm is not None:
            self.norm.build(shape)
        self.cross.build(shape)
        width = shape[-1]
        if self.deep is not None:
            self.deep.build(shape)
            width = self.hidden_units[-1] + (shape[-1] if self.structure == "parallel" else 0)
        self.output_dense.build(shape[:-1] + (width,))
        self.built = True

    def call(self, inputs, training=None, mask=None):
        x = ops.cast(inputs, self.compute_dtype)
        if self.norm is not None:
            x = self.norm(x, training=training, mask=mask)
        crossed = self.cross(x)
        if self.deep is None:
            features = crossed
        elif self.structure == "stacked":
            features = self.deep(crossed, training=training, mask=mask)
        else:
            features = ops.concatenate([crossed, self.deep(x, training=training, mask=mask)], axis=-1)
        return self.output_dense(features)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (1,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        activation = self.activation
        if activation not in ("prelu", "dice"):
            activation = keras.activations.serialize(keras.activations.get(activation))
        config.update(
            {
                "num_cross_layers": self.num_cross_layers,
                "low_rank": self.low_rank,
                "structure": self.structure,
                "hidden_units": list(self.hidden_units),
                "activation": activation,
                "input_batch_norm": self.input_batch_norm,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
