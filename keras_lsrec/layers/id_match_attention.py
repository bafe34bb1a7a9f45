"""IFA: linear attention whose kernel is the equality of an id (SIM's hard search, read in O(L + C))."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class IdMatchAttention(keras.layers.Layer):
    """Every candidate reads the behaviours that share its id: their mean and how many there are.

    Linear attention (see `LinearCrossAttention`) with the kernel
    `k(q, e) = [bucket(q) == bucket(e)]`, `bucket(id) = id mod buckets`: its
    feature map is the one-hot of the bucket, so the per-user summaries are,
    for every bucket `b`, the sum `S_b` of the values `v_i` of the valid
    events in `b` and their count `n_b`, computed once over the WHOLE sequence
    (a scatter-add, O(L d)). Candidate `j` with id `c_j` reads its bucket
    (a gather, O(d)):

        o_j = [S_b / max(n_b, 1), log(1 + n_b)],   b = bucket(c_j)

    i.e. the mean of the behaviours matching the candidate (SIM's hard search
    on that field, averaged over every match instead of truncated to k) and
    the log of their number, which the softmax normaliser of attention would
    discard. No position enters and nothing is searched away, so the cost is
    O((L + C) d) per user, independent of the vocabulary and of C x L.

    With `buckets` at least the field's vocabulary (the default in `IFA`),
    the match is exact; otherwise ids that share a bucket are merged (a hashed
    match, as in count sketches).

    The summaries are sums over events, so a server can cache them per user
    and add the summaries of new events (`summaries` / `attend`). Computed in
    float32 whatever the dtype policy; the output is cast to the compute dtype.

    Design note: IFA's code is not public; this read is our design (see
    docs/ifa.md): the exact-match kernel gives a linear attention the sharp
    id matching a dot-product kernel lacks, at the same linear cost.

    Args:
        buckets: number of hash buckets of the ids.

    Call arguments:
        candidate_ids: integer `(B, C)`, the candidates' ids in the field.
        history_ids: integer `(B, L)`, the behaviours' ids in the same field.
        values: `(B, L, d)`, what is averaged (e.g. the behaviours' embeddings).
        mask: boolean `(B, L)` marking valid events, or `None` (all valid).

    Returns:
        `(B, C, d + 1)`: the mean of the matching values, then `log(1 + n)`.

    Example:

    >>> read = IdMatchAttention(buckets=64)
    >>> candidates = np.array([[3, 7]])
    >>> history = np.array([[3, 3, 5, 0]])
    >>> read(candidates, history, np.ones((1, 4, 2), "float32"), mask=history != 0).shape
    (1, 2, 3)
    """

    def __init__(self, buckets: int = 1024, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_positive(buckets=buckets)
        self.buckets = int(buckets)
        self.supports_masking = True

    def _bucket(self, ids):
        return ops.mod(ops.cast(ids, "int32"), self.buckets)

    def summaries(self, history_ids, values, mask=None):
        """Per-user summaries `(B, buckets, d + 1)`, float32: the sums of the
        valid values in each bucket, then the counts. Additive over events."""
        values = ops.cast(values, "float32")
        weight = ops.ones(ops.shape(values)[:2], "float32") if mask is None else ops.cast(mask, "float32")
        weight = ops.expand_dims(weight, -1)
        data = ops.concatenate([values * weight, weight], axis=-1)  # (B, L, d + 1)
        batch, width = ops.shape(data)[0], data.shape[-1]
        offsets = ops.expand_dims(ops.arange(batch, dtype="int32") * self.buckets, -1)
        segments = ops.reshape(self._bucket(history_ids) + offsets, (-1,))
        table = ops.segment_sum(ops.reshape(data, (-1, width)), segments, num_segments=batch * self.buckets)
        return ops.reshape(table, (batch, self.buckets, width))

    def attend(self, candidate_ids, summaries):
        """Every candidate's read of `summaries`: `(B, C, d + 1)`."""
        batch, width = ops.shape(summaries)[0], summaries.shape[-1]
        offsets = ops.expand_dims(ops.arange(batch, dtype="int32") * self.buckets, -1)
        rows = self._bucket(candidate_ids) + offsets  # (B, C)
        read = ops.take(ops.reshape(summaries, (-1, width)), ops.reshape(rows, (-1,)), axis=0)
        read = ops.reshape(read, (batch, -1, width))
        sums, count = read[..., :-1], read[..., -1:]
        output = ops.concatenate([sums / ops.maximum(count, 1.0), ops.log1p(count)], axis=-1)
        return ops.cast(output, self.compute_dtype)

    def call(self, candidate_ids, history_ids, values, mask=None):
        if mask is not None:
            mask = ops.cast(mask, "bool")
        return self.attend(candidate_ids, self.summaries(history_ids, values, mask))

    def compute_output_shape(self, candidate_ids_shape, history_ids_shape, values_shape):
        return tuple(candidate_ids_shape) + (values_shape[-1] + 1,)

    def compute_mask(self, *args, **kwargs):
        return None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"buckets": self.buckets})
        return config
