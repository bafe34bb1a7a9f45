"""The search stage of two-stage models (SIM, TWIN, DARE)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.layers.masking import batch_gather, mask_value, masked_logits
from keras_lsrec.validation import check_positive


@keras_lsrec_export
class TopKRetrieval(keras.layers.Layer):
    """Keeps the `k` behaviours with the highest relevance scores.

    Given scores `s` (B, L) and a mask of valid events, the layer takes the
    indices of the `k` largest masked scores and gathers the behaviour tensors
    at those indices. Padding is never retrieved as a valid event: when a row
    has fewer than `k` valid events, the remaining slots are returned with
    `retrieved_mask = False` (their content is unspecified and must be
    ignored, which every attention layer here does through the mask). Any `L`
    works, including `L < k` and an `L` unknown until call time.
    The retrieved events come in order of decreasing score.

    Cost: O(L) for the scores the caller computes, plus the top-k selection;
    everything after it is O(k).

    Args:
        k: number of behaviours to keep.

    A candidate set searches the same behaviours once per candidate: with
    scores `(B, C, L)` (the relevance of each event to each candidate) every
    candidate gets its own `k`, gathered from the shared `items` (B, L, ...)
    without copying them per candidate.

    Call arguments:
        scores: `(B, L)` relevance of each event to the target, or
            `(B, C, L)` to each of C candidates.
        items: a tensor `(B, L, ...)` or a list / tuple / dict of such tensors,
            all gathered at the same indices.
        mask: boolean `(B, L)` of valid events, or `None`; with candidate
            scores also `(B, C, L)`, the events each candidate may retrieve
            (e.g. SIM's hard search: the events of the candidate's category).

    Returns:
        `(retrieved, retrieved_mask)`: `items` with `L` replaced by `k`
        (`(B, C, k, ...)` for candidate scores), and the boolean `(B, k)`
        (`(B, C, k)`) mask of retrieved slots holding a valid event.

    Example:

    >>> scores = np.array([[0.1, 0.9, 0.5, 0.0]], "float32")
    >>> items = np.arange(4).reshape(1, 4, 1).astype("float32")
    >>> mask = np.array([[True, True, True, False]])
    >>> got, got_mask = TopKRetrieval(k=2)(scores, items, mask=mask)
    >>> keras.ops.convert_to_numpy(got)[0, :, 0]
    array([1., 2.], dtype=float32)
    """

    def __init__(self, k: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_positive(k=k)
        self.k = k
        # `mask` is an explicit call argument; outputs carry no Keras mask.
        self.supports_masking = True

    def call(self, scores, items, mask=None):
        if mask is None:
            mask = ops.ones((ops.shape(scores)[0], ops.shape(scores)[-1]), dtype="bool")
        mask = ops.cast(mask, "bool")
        length = scores.shape[-1]
        if length is None or length < self.k:
            # Fewer than k events, or a length known only at run time (a
            # SavedModel): append k padding events (masked scores, zero items)
            # so that top-k and the gather are defined even for L = 0.
            scores, mask, items = self._pad(scores, mask, items)
        # A candidate set's scores (B, C, L) take the shared mask (B, L) as
        # (B, 1, L), or a mask of each candidate's own (B, C, L).
        own = len(mask.shape) == len(scores.shape)
        _, indices = ops.top_k(masked_logits(scores, mask if own else ops.expand_dims(mask, 1)), self.k)
        indices = ops.cast(indices, "int32")
        if own and len(mask.shape) == 3:
            retrieved_mask = ops.take_along_axis(mask, indices, axis=-1)
        else:
            retrieved_mask = batch_gather(mask, indices)
        retrieved = keras.tree.map_structure(lambda x: batch_gather(x, indices), items)
        return retrieved, retrieved_mask

    def _pad(self, scores, mask, items):
        batch = ops.shape(scores)[0]
        lead = tuple(ops.shape(scores)[:-1])
        fill = ops.full(lead + (self.k,), mask_value(scores.dtype), scores.dtype)
        scores = ops.concatenate([scores, fill], axis=-1)
        mask = ops.concatenate([mask, ops.zeros(tuple(ops.shape(mask)[:-1]) + (self.k,), "bool")], axis=-1)

        def pad(x):
            return ops.concatenate([x, ops.zeros((batch, self.k) + tuple(x.shape[2:]), x.dtype)], axis=1)

        return scores, mask, keras.tree.map_structure(pad, items)

    def compute_output_shape(self, scores_shape, items_shape, mask_shape=None):
        lead = tuple(scores_shape[:-1])

        def shape_of(shape):
            return lead + (self.k,) + tuple(shape[2:])

        items_out = keras.tree.map_shape_structure(shape_of, items_shape)
        return items_out, lead + (self.k,)

    def compute_output_spec(self, scores, items, mask=None):
        lead = tuple(scores.shape[:-1])

        def spec_of(x):
            return keras.KerasTensor(lead + (self.k,) + tuple(x.shape[2:]), x.dtype)

        retrieved = keras.tree.map_structure(spec_of, items)
        return retrieved, keras.KerasTensor(lead + (self.k,), "bool")

    def compute_mask(self, inputs, previous_mask=None):
        return None

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({"k": self.k})
        return config
