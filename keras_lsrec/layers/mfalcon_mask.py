"""HSTU: the M-FALCON attention pattern of one history and C candidates."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from keras_lsrec.api_export import keras_lsrec_export
from keras_lsrec.validation import check_non_negative


def mfalcon_positions(history_mask, candidate_mask, num_context: int = 0):
    """Positions and validity of the tokens `[context | history | candidates]`.

    Returns `(positions, valid)`, both `(B, K + L + C)`: int32 positions 0 for
    the `K` contextual tokens, `1..n` for the `n` valid events of the history
    in order (whatever the padding), `n + 1` for every candidate; `valid` is
    True at the contextual tokens, the valid events and the present
    candidates. Padding gets the position of the valid event before it (0
    before the first); it is never visible, so that value only reaches its own
    (unused) output.
    """
    history = ops.cast(history_mask, "int32")
    rank = ops.cumsum(history, axis=1)
    count = ops.sum(history, axis=1, keepdims=True)
    candidates = ops.cast(ops.zeros_like(candidate_mask), "int32") + count + 1
    parts = [rank, candidates]
    valid = [ops.cast(history_mask, "bool"), ops.cast(candidate_mask, "bool")]
    if num_context:
        context = ops.zeros_like(count) + ops.zeros((1, num_context), "int32")
        parts.insert(0, context)
        valid.insert(0, ops.ones_like(context, dtype="bool"))
    return ops.concatenate(parts, axis=1), ops.concatenate(valid, axis=1)


def visible_keys(query_positions, key_positions, key_valid, query_offset: Any = 0):
    """Boolean `(B, Q, N)`: which keys each query may attend to.

    Query `i` (token `query_offset + i` of the sequence the keys are) sees key
    `j` when `j` is valid and `pos_j < pos_i` (an earlier event), `pos_j == 0`
    (a contextual token), or `j` is `i` itself. With the positions of
    `mfalcon_positions` this is the M-FALCON pattern: the history is causal,
    every candidate sees the whole history and itself, and no candidate sees
    another (they share the position `n + 1`). With positions `1..N` it is
    plain causal self-attention.
    """
    q = ops.expand_dims(query_positions, 2)
    k = ops.expand_dims(key_positions, 1)
    num_queries, num_keys = ops.shape(query_positions)[1], ops.shape(key_positions)[1]
    query_index = ops.arange(num_queries, dtype="int32") + query_offset
    same = ops.expand_dims(query_index, 1) == ops.expand_dims(ops.arange(num_keys, dtype="int32"), 0)
    seen = ops.logical_or(ops.logical_or(k < q, k == 0), ops.expand_dims(same, 0))
    return ops.logical_and(seen, ops.expand_dims(ops.cast(key_valid, "bool"), 1))


@keras_lsrec_export
class MFalconMask(keras.layers.Layer):
    """The M-FALCON attention mask of HSTU over one history and C candidates.

    The tokens are laid out as `[context (K) | history (L) | candidates (C)]`.
    Entry `(i, j)` of the returned `(B, N, N)` mask (`N = K + L + C`) is 1
    when token `i` may attend to token `j`:

    - the `K` contextual tokens (user and request features) are seen by every
      token and see each other;
    - the history is causal: a valid event sees the valid events up to and
      including itself, counted in order of the valid events, so left, right
      or scattered padding gives the same pattern;
    - a candidate sees the whole valid history and itself, never another
      candidate, and nothing sees a candidate but itself.

    So the C candidates of one request are scored in one pass with exactly
    the numbers of C separate passes with one candidate each (Zhai et al.
    2024, M-FALCON). Padding events and missing candidates are seen by no
    token (their rows are 0 as well).

    The HSTU block never builds this `(N, N)` matrix: it evaluates the same
    rule block by block from `mfalcon_positions` (`visible_keys`); this layer
    is that rule, whole, for inspection and for other attention layers.

    Args:
        num_context: the number of contextual tokens `K` in front.

    Call arguments:
        history_mask: boolean `(B, L)`, True at valid events.
        candidate_mask: boolean `(B, C)`, True at present candidates.

    Example:

    >>> mask = MFalconMask()(np.array([[0, 1, 1]], bool), np.array([[1, 1]], bool))
    >>> mask.shape
    (1, 5, 5)

    Reference:
        Zhai et al., "Actions Speak Louder than Words: Trillion-Parameter
        Sequential Transducers for Generative Recommendations", ICML 2024.
    """

    def __init__(self, num_context: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        check_non_negative(num_context=num_context)
        self.num_context = num_context

    def call(self, history_mask, candidate_mask):
        positions, valid = mfalcon_positions(history_mask, candidate_mask, self.num_context)
        visible = visible_keys(positions, positions, valid)
        visible = ops.logical_and(visible, ops.expand_dims(valid, 2))
        return ops.cast(visible, self.compute_dtype)

    def compute_output_shape(self, history_mask_shape, candidate_mask_shape):
        size = None
        if history_mask_shape[1] is not None and candidate_mask_shape[1] is not None:
            size = self.num_context + history_mask_shape[1] + candidate_mask_shape[1]
        return (history_mask_shape[0], size, size)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_context": self.num_context}
