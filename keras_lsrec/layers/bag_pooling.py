"""`BagPooling`: the masked mean of a bag of embeddings (a multi-valued feature)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export


@keras_lsrec_export
class BagPooling(keras.layers.Layer):
    """Pools the embeddings of a bag of ids into one vector, ignoring padding.

    For embeddings `e` `(..., M, d)` and a boolean `mask` `(..., M)` (the
    bag's ids `!= 0`), returns `sum_m mask_m e_m / max(1, sum_m mask_m)`
    (`"mean"`) or `sum_m mask_m e_m` (`"sum"`), shape `(..., d)`. A bag with
    no value gives zeros; where the padding sits in the bag does not matter.
    Without a mask every value counts.

    Args:
        mode: `"mean"` (default) or `"sum"`.

    Call arguments:
        inputs: `(..., M, d)` embeddings.
        mask: `(..., M)` booleans, True at a value.

    Example:

    >>> e = np.ones((2, 3, 4), "float32")
    >>> BagPooling()(e, mask=np.array([[True, False, True], [False] * 3])).shape
    (2, 4)
    """

    def __init__(self, mode: str = "mean", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in ("mean", "sum"):
            raise ValueError(f"`mode` must be 'mean' or 'sum'. Received: `mode={mode!r}`")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None):
        inputs = ops.cast(inputs, self.compute_dtype)
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:-1], "bool")
        weights = ops.cast(mask, self.compute_dtype)
        total = ops.sum(inputs * ops.expand_dims(weights, -1), axis=-2)
        if self.mode == "sum":
            return total
        count = ops.maximum(ops.sum(weights, axis=-1, keepdims=True), ops.cast(1.0, self.compute_dtype))
        return total / count

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-2]) + (input_shape[-1],)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}
