"""Losses for candidate sets (list-wise models such as IFA); keras.ops only."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export


@keras_lsrec_export
class CandidateSetLoss(keras.losses.Loss):
    """Point-wise BCE plus list-wise softmax cross-entropy over each request's candidates.

    `y_true` and `y_pred` have shape `(B, C)`: one request of C candidates per
    row. A label of -1 marks a missing candidate (the TF-Ranking convention;
    `SequenceSchema.validate` enforces it where `target_item == 0`); missing
    candidates take no part in either term. Per request `b`, with `V_b` its
    valid candidates and `s_j` the logits:

    - point-wise: `mean_{j in V_b} BCE(y_j, p_j)`;
    - list-wise: `-sum_{j in V_b} t_j log softmax_{V_b}(s)_j` with the target
      distribution `t_j = y_j / sum_{V_b} y`, so the model learns to rank the
      clicked candidates of a request above the others, the same sets it scores
      at inference. A request with no click has no list-wise term.

    The per-request loss is `pointwise_weight * point-wise + listwise_weight *
    list-wise` (a request without valid candidates gives 0), then Keras'
    `reduction` and `sample_weight` (per request) apply as usual.

    Args:
        listwise_weight: weight of the list-wise term (0 turns it off).
        pointwise_weight: weight of the point-wise term.
        from_logits: `y_pred` holds logits; by default probabilities (the
            models' output), turned into logits after clipping to
            `[epsilon, 1 - epsilon]`.
        epsilon: the clipping of probabilities.

    Example:

    >>> model.compile(optimizer="adam", loss=CandidateSetLoss(listwise_weight=0.5))
    """

    def __init__(
        self,
        listwise_weight: float = 1.0,
        pointwise_weight: float = 1.0,
        from_logits: bool = False,
        epsilon: float = 1e-7,
        reduction: str = "sum_over_batch_size",
        name: str = "candidate_set_loss",
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, reduction=reduction, **kwargs)
        for key, value in (("listwise_weight", listwise_weight), ("pointwise_weight", pointwise_weight)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"`{key}` must be a non-negative number. Received: `{key}={value!r}`")
        if not 0 < epsilon < 0.5:
            raise ValueError(f"`epsilon` must be in (0, 0.5). Received: `epsilon={epsilon!r}`")
        self.listwise_weight = float(listwise_weight)
        self.pointwise_weight = float(pointwise_weight)
        self.from_logits = bool(from_logits)
        self.epsilon = float(epsilon)

    def call(self, y_true: Any, y_pred: Any) -> Any:
        y_pred = ops.cast(y_pred, "float32")
        y_true = ops.cast(ops.reshape(y_true, ops.shape(y_pred)), "float32")
        valid = ops.cast(ops.greater_equal(y_true, 0.0), "float32")
        labels = y_true * valid
        if self.from_logits:
            logits = y_pred
        else:
            p = ops.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
            logits = ops.log(p) - ops.log1p(-p)
        count = ops.sum(valid, axis=-1)
        # Stable BCE from logits: max(s, 0) - s y + log(1 + exp(-|s|)).
        bce = ops.relu(logits) - logits * labels + ops.log1p(ops.exp(-ops.abs(logits)))
        pointwise = ops.sum(bce * valid, axis=-1) / ops.maximum(count, 1.0)
        # Softmax over the valid candidates only.
        masked = ops.where(valid > 0, logits, ops.full_like(logits, -1e9))
        log_softmax = masked - ops.logsumexp(masked, axis=-1, keepdims=True)
        clicks = ops.sum(labels, axis=-1)
        listwise = -ops.sum(labels * valid * log_softmax, axis=-1) / ops.maximum(clicks, 1.0)
        return self.pointwise_weight * pointwise + self.listwise_weight * listwise

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "listwise_weight": self.listwise_weight,
                "pointwise_weight": self.pointwise_weight,
                "from_logits": self.from_logits,
                "epsilon": self.epsilon,
            }
        )
        return config
