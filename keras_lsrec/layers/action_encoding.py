"""What the user did with each event: an embedding of an action bitmask."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.data.schema import MAX_ACTIONS
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class ActionEncoding(keras.layers.Layer):
    """Embeds action bitmasks: one learned vector per action kind, summed over the set bits.

    For integer `actions` of any shape `S` holding bitmasks of `num_actions`
    kinds (bit k set: the user did action k with the event, e.g. KuaiRand's
    click 1, like 2, follow 4), returns `sum_k bit_k(a) E[k]`, shape
    `S + (output_dim,)`, in the compute dtype. An event with no action (0),
    and padding, gives the zero vector; bits at or above `num_actions` are
    ignored. Sharing one vector per kind, not one per combination, lets a
    rare combination (click + like + forward) build on what each action
    learned, as the action encoder of Meta's HSTU (dlrm_v3) does.

    `HSTU` adds it to its history tokens, with one more kind, set on the
    candidates only, that marks "action unknown: to be predicted".

    Args:
        num_actions: the action kinds (bits), 1 to 31.
        output_dim: size of the encoding.
        embeddings_initializer: initializer of the `(num_actions, output_dim)` vectors.
        embeddings_regularizer: optional regularizer of those vectors.

    Call arguments:
        actions: integer bitmasks, any shape.

    Example:

    >>> encoding = ActionEncoding(num_actions=3, output_dim=4)
    >>> encoding(np.array([[0, 1, 5]])).shape
    (1, 3, 4)
    """

    def __init__(
        self,
        num_actions: int,
        output_dim: int,
        embeddings_initializer: Any = "uniform",
        embeddings_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_positive(num_actions=num_actions, output_dim=output_dim)
        if num_actions > MAX_ACTIONS + 1:
            raise ValueError(
                f"`num_actions` must be at most {MAX_ACTIONS + 1} (int32 bitmasks). "
                f"Received: num_actions={num_actions}"
            )
        self.num_actions = int(num_actions)
        self.output_dim = int(output_dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embeddings_regularizer = keras.regularizers.get(embeddings_regularizer)

    def build(self, actions_shape: tuple) -> None:
        self.embeddings = self.add_weight(
            shape=(self.num_actions, self.output_dim),
            initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
            name="embeddings",
        )

    def call(self, actions):
        actions = ops.cast(actions, "int32")
        powers = ops.convert_to_tensor(np.left_shift(1, np.arange(self.num_actions)).astype("int32"))
        bits = ops.not_equal(ops.mod(ops.floor_divide(ops.expand_dims(actions, -1), powers), 2), 0)
        bits = ops.cast(bits, self.compute_dtype)
        return ops.matmul(bits, ops.cast(self.embeddings, self.compute_dtype))

    def compute_output_shape(self, actions_shape: tuple) -> tuple:
        return tuple(actions_shape) + (self.output_dim,)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "num_actions": self.num_actions,
                "output_dim": self.output_dim,
                "embeddings_initializer": keras.initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": keras.regularizers.serialize(self.embeddings_regularizer),
            }
        )
        return config
