"""FinalMLP as a prediction tower: two gated MLP streams fused into one logit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.feature_gating import FeatureGating
from keras_lsrec.layers.interaction_aggregation import InteractionAggregation
from keras_lsrec.layers.mlp import MLP
from keras_lsrec.validation import check_positive, check_range, check_units


@keras_lsrec_export
class FinalMLPTower(keras.layers.Layer):
    """FinalMLP's head on a feature vector: two gated MLP streams and their
    bilinear fusion -> one logit.

    `[BN]`, then for each stream `s` in 1, 2: `FeatureGating` (its own gate,
    `gate_units`, reading a learned context) and an `MLP` (`stream<s>_units`,
    `activation`, `dropout`); `InteractionAggregation(num_heads)` fuses the two
    stream outputs into the logit. A drop-in for the `MLP` tower
    (`tower="finalmlp"` on every model, `keras_lsrec.models.wiring.make_tower`).

    Args:
        stream1_units: hidden sizes of the first stream.
        stream2_units: hidden sizes of the second stream (`None`: as the first).
        activation: activation of both streams (any Keras activation,
            `"prelu"`, `"dice"`).
        gate_units: hidden sizes of each stream's gate (ReLU).
        num_heads: heads of the bilinear fusion; it must divide the last size
            of both streams.
        input_batch_norm: batch-normalise the input first.
        dropout: dropout after each hidden layer of the streams.
        kernel_initializer, kernel_regularizer: of every kernel.

    Call arguments:
        inputs: `(..., D)`.
        training: whether batch norm and dropout run in training mode.
        mask: optional boolean `inputs.shape[:-1]` marking the valid rows (the
            present candidates of a set): batch statistics use them only.

    Example:

    >>> tower = FinalMLPTower(stream1_units=(8,), stream2_units=(8, 4), num_heads=2)
    >>> tower(np.ones((2, 6), "float32")).shape
    (2, 1)

    Reference:
        Mao et al., "FinalMLP: An Enhanced Two-Stream MLP Model for CTR
        Prediction", AAAI 2023.
    """

    def __init__(
        self,
        stream1_units: Sequence[int] = (200, 80),
        stream2_units: Sequence[int] | None = None,
        activation: Any = "prelu",
        gate_units: Sequence[int] = (64,),
        num_heads: int = 1,
        input_batch_norm: bool = False,
        dropout: float = 0.0,
        kernel_initializer: Any = "glorot_uniform",
        kernel_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        stream1_units = check_units("stream1_units", stream1_units)
        if stream2_units is not None:
            stream2_units = check_units("stream2_units", stream2_units)
        gate_units = check_units("gate_units", gate_units)
        check_range("dropout", dropout, 0.0, 1.0, high_inclusive=False)
        check_positive(num_heads=num_heads)
        for units in (stream1_units, stream2_units):
            if units and units[-1] % num_heads:
                raise ValueError(
                    f"`num_heads` must divide the last size of both streams ({units[-1]}). "
                    f"Received: `num_heads={num_heads}`"
                )
        self.stream1_units = stream1_units
        self.stream2_units = stream2_units
        self.activation = activation
        self.gate_units = gate_units
        self.num_heads = num_heads
        self.input_batch_norm = input_batch_norm
        self.dropout = dropout
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

        self.norm = None
        if input_batch_norm:
            self.norm = keras.layers.BatchNormalization(dtype=self.dtype_policy, name="input_norm")
        shared: dict[str, Any] = dict(
            kernel_initializer=self.kernel_initializer,
            kernel_regularizer=self.kernel_regularizer,
            dtype=self.dtype_policy,
        )
        self.gates = [FeatureGating(gate_units, name=f"gate_{s}", **shared) for s in (1, 2)]
        self.streams = [
            MLP(units, activation, dropout=dropout, name=f"stream_{s}", **shared)
            for s, units in ((1, stream1_units), (2, stream2_units or stream1_units))
        ]
        self.fusion = InteractionAggregation(num_heads, 1, name="fusion", **shared)

    def build(self, input_shape) -> None:
        shape = tuple(input_shape)
        if self.norm is not None:
            self.norm.build(shape)
        for gate, stream in zip(self.gates, self.streams, strict=True):
            gate.build(shape)
            stream.build(shape)
        self.fusion.build(*(stream.compute_output_shape(shape) for stream in self.streams))
        self.built = True

    def call(self, inputs, training=None, mask=None):
        x = ops.cast(inputs, self.compute_dtype)
        if self.norm is not None:
            x = self.norm(x, training=training, mask=mask)
        outputs = [
            stream(gate(x), training=training, mask=mask)
            for gate, stream in zip(self.gates, self.streams, strict=True)
        ]
        return self.fusion(*outputs)

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
                "stream1_units": list(self.stream1_units),
                "stream2_units": None if self.stream2_units is None else list(self.stream2_units),
                "activation": activation,
                "gate_units": list(self.gate_units),
                "num_heads": self.num_heads,
                "input_batch_norm": self.input_batch_norm,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            }
        )
        return config
