"""Independent numpy references shared by several test files (not collected)."""

from __future__ import annotations

import numpy as np
from test_case import to_numpy


def make_mask(rng, batch: int = 4, length: int = 7, empty_row: bool = True) -> np.ndarray:
    """Left-padded mask with a random number of valid events per row; row 0 all padding."""
    lengths = rng.integers(1, length + 1, batch)
    if empty_row:
        lengths[0] = 0
    return np.arange(length)[None, :] >= (length - lengths)[:, None]


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_normalize(logits, mask, normalizer):
    """Attention weights over the last axis: softmax over valid positions, sigmoid, or the raw
    logits ("none"); padding 0."""
    if normalizer == "sigmoid":
        return np_sigmoid(logits) * mask
    if normalizer == "none":
        return logits * mask
    weights = np.zeros_like(logits)
    for index in np.ndindex(*logits.shape[:-1]):
        valid = mask[index] if mask.ndim == logits.ndim else mask[index[0]]
        if valid.any():
            z = np.exp(logits[index][valid] - logits[index][valid].max())
            weights[index][valid] = z / z.sum()
    return weights


def np_batch_norm(x, bn):
    """Inference-mode batch normalisation with `bn`'s moving statistics."""
    mean, var = to_numpy(bn.moving_mean), to_numpy(bn.moving_variance)
    y = (x - mean) / np.sqrt(var + bn.epsilon)
    if bn.scale:
        y = y * to_numpy(bn.gamma)
    if bn.center:
        y = y + to_numpy(bn.beta)
    return y


def randomize_statistics(layer, rng) -> None:
    """Random moving statistics and weights, so batch norm is not the identity."""
    for variable in layer.non_trainable_variables + layer.trainable_variables:
        if "moving_variance" in variable.path:
            variable.assign(rng.uniform(0.5, 2.0, variable.shape).astype("float32"))
        else:
            variable.assign(rng.normal(size=variable.shape).astype("float32") * 0.5)


def left_padded_ids(rng, vocab: dict, batch: int = 4, length: int = 7) -> dict:
    """Ids per field, left-padded with 0; row 0 all padding, row 2 full."""
    ids = {f: rng.integers(1, n, (batch, length)).astype("int32") for f, n in vocab.items()}
    lengths = rng.integers(1, length + 1, batch)
    lengths[0], lengths[min(2, batch - 1)] = 0, length
    padding = np.arange(length)[None, :] < (length - lengths)[:, None]
    return {f: np.where(padding, 0, x) for f, x in ids.items()}


def np_dense_stack(x, layers, activation=lambda t: np.maximum(t, 0)):
    """`(kernel, bias)` pairs applied in turn, `activation` between them (not after the last)."""
    for i, (kernel, bias) in enumerate(layers):
        x = x @ kernel + bias
        if i < len(layers) - 1:
            x = activation(x)
    return x


def np_cross_network(x, kernels, biases):
    """DCNv2: `x_{l+1} = x_0 * (x_l W_l + b_l) + x_l`; `kernels[l]` holds the
    factors whose product is `W_l` (one `(D, D)` matrix, or `U (D, r)`, `V (r, D)`)."""
    x0 = xl = x
    for factors, bias in zip(kernels, biases, strict=True):
        w = factors[0]
        for factor in factors[1:]:
            w = w @ factor
        xl = x0 * (xl @ w + bias) + xl
    return xl


def np_feature_gating(x, gate_logits):
    """FinalMLP's feature selection: `2 * sigmoid(gate_logits) * x`."""
    return 2.0 * np_sigmoid(gate_logits) * x


def np_interaction_aggregation(x, y, w_x, w_y, w_xy, bias):
    """FinalMLP's fusion: `x w_x + y w_y + b + sum_h x_h^T W_h y_h`, heads split
    along the last axis (`w_xy` `(H, D_x / H, D_y / H, O)`), one pair at a time."""
    heads = w_xy.shape[0]
    out = x @ w_x + y @ w_y + bias
    x_heads, y_heads = np.split(x, heads, axis=-1), np.split(y, heads, axis=-1)
    for index in np.ndindex(*x.shape[:-1]):
        for h in range(heads):
            for o in range(w_xy.shape[-1]):
                out[index + (o,)] += x_heads[h][index] @ w_xy[h, :, :, o] @ y_heads[h][index]
    return out


# ---------------------------------------------------------------- HSTU (issue 31)
def np_silu(x):
    return x / (1.0 + np.exp(-x))


def np_mfalcon_mask(history_mask, candidate_mask, num_context=0):
    """(B, N, N) 0/1 over [context | history | candidates], written from the rule:
    context seen by all; valid history causal in the order of valid events;
    a candidate sees the valid history, the context and itself; nothing else."""
    batch, length = history_mask.shape
    count = candidate_mask.shape[1]
    size = num_context + length + count
    out = np.zeros((batch, size, size))
    for b in range(batch):
        events = [num_context + i for i in range(length) if history_mask[b, i]]
        candidates = [num_context + length + c for c in range(count) if candidate_mask[b, c]]
        for i in range(num_context):
            out[b, i, :num_context] = 1
        for n, i in enumerate(events):
            out[b, i, :num_context] = 1
            out[b, i, events[: n + 1]] = 1
        for i in candidates:
            out[b, i, :num_context] = 1
            out[b, i, events] = 1
            out[b, i, i] = 1
    return out


def np_time_bucket(delta: int, num_buckets: int) -> int:
    """0 for 0, else 1 + floor(log2 |delta|) (the bit length), capped at num_buckets - 1."""
    return min(int(abs(int(delta))).bit_length(), num_buckets - 1)


def np_relative_attention_bias(layer, query_positions, key_positions, query_times=None, key_times=None):
    """(B, H, Q, K): position table at clip(p_i - p_j) plus time table at the log bucket of |t_i - t_j|."""
    batch, nq = query_positions.shape
    nk = key_positions.shape[1]
    out = np.zeros((batch, layer.num_heads, nq, nk))
    for b in range(batch):
        for i in range(nq):
            for j in range(nk):
                if layer.max_distance is not None:
                    d = int(query_positions[b, i]) - int(key_positions[b, j])
                    d = max(-layer.max_distance, min(layer.max_distance, d))
                    out[b, :, i, j] += to_numpy(layer.position_bias)[d + layer.max_distance]
                if layer.time_buckets is not None and query_times is not None:
                    bucket = np_time_bucket(int(query_times[b, i]) - int(key_times[b, j]), layer.time_buckets)
                    out[b, :, i, j] += to_numpy(layer.time_bias)[bucket]
    return out


def np_layer_norm(x, layer):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + layer.epsilon) * to_numpy(layer.gamma) + to_numpy(layer.beta)


def np_hstu_block(layer, x, visible, bias):
    """One HSTU layer (inference) from its weights: `visible` (B, N, N) 0/1,
    `bias` (B, H, N, N) the relative attention bias. The layer keeps `x` at
    invalid tokens; the caller applies that."""
    x = x.astype("float64")
    heads, dk, dv = layer.num_heads, layer.key_dim, layer.value_dim

    def dense(d, values):
        return values @ to_numpy(d.kernel).astype("float64") + to_numpy(d.bias).astype("float64")

    uvqk = np_silu(dense(layer.uvqk_dense, np_layer_norm(x, layer.input_norm)))
    u = uvqk[..., : heads * dv]
    v = uvqk[..., heads * dv : 2 * heads * dv]
    q = uvqk[..., 2 * heads * dv : 2 * heads * dv + heads * dk]
    k = uvqk[..., 2 * heads * dv + heads * dk :]
    batch, size, _ = x.shape
    mixed = np.zeros((batch, size, heads * dv))
    for b in range(batch):
        for h in range(heads):
            qh, kh = q[b, :, h * dk : (h + 1) * dk], k[b, :, h * dk : (h + 1) * dk]
            vh = v[b, :, h * dv : (h + 1) * dv]
            a = np_silu(qh @ kh.T / np.sqrt(dk) + bias[b, h]) * visible[b]
            if layer.normalizer_length is None:
                a = a / np.maximum(visible[b].sum(-1, keepdims=True), 1.0)
            else:
                a = a / layer.normalizer_length
            mixed[b, :, h * dv : (h + 1) * dv] = a @ vh
    return x + dense(layer.output_dense, u * np_layer_norm(mixed, layer.attention_norm))
