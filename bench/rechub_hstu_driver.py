"""torch-rechub's HSTU layer on keras_lsrec's weights and shapes; run by bench/hstu_peer.py.

Runs inside the isolated virtual environment that bench/hstu_peer.py creates
(torch 2.13.0 CPU and torch-rechub 0.9.0; nothing of keras_lsrec is imported).
For each `.npz` written by the keras_lsrec side: builds
`torch_rechub.basic.layers.HSTULayer` with the same sizes, loads the mapped
weights, computes `x + layer(x)` (the residual its `HSTUBlock` adds) in eval
mode and reports the largest absolute difference from each of our outputs.
Then times a training step (forward, backward of the output sum, one SGD
update) and a one-row request (forward under `inference_mode`) at the given
lengths. Prints one `RESULT {json}` line per result.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (numpy and the standard library only)


def make_layer(dim: int, heads: int, key_dim: int, value_dim: int, max_len: int):
    from torch_rechub.basic.layers import HSTULayer

    return HSTULayer(d_model=dim, n_heads=heads, dqk=key_dim, dv=value_dim, dropout=0.0, max_seq_len=max_len)


def load_weights(layer, weights: dict, heads: int, key_dim: int, value_dim: int) -> None:
    """keras_lsrec's HSTUBlock weights into the peer's layer.

    Our joint projection's columns are `[U, V, Q, K]`, the peer's `[Q, K, U, V]`
    (each head-major in both); torch's Linear weight is `(out, in)`, our
    kernel `(in, out)`. Our position table is indexed by `i - j + D` (query
    `i`, key `j`, `D = max_distance = max_len - 1`), the peer's by `j - i + D`:
    the same table reversed along its first axis."""
    u, v = heads * value_dim, heads * value_dim
    q = heads * key_dim
    order = np.concatenate(
        [np.arange(u + v, u + v + q), np.arange(u + v + q, u + v + 2 * q), np.arange(u), np.arange(u, u + v)]
    )

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))

    with torch.no_grad():
        layer.norm_in.weight.copy_(tensor(weights["input_norm/gamma"]))
        layer.norm_in.bias.copy_(tensor(weights["input_norm/beta"]))
        layer.proj1.weight.copy_(tensor(weights["uvqk/kernel"][:, order].T))
        layer.proj1.bias.copy_(tensor(weights["uvqk/bias"][order]))
        layer.norm_attn.weight.copy_(tensor(weights["attention_norm/gamma"]))
        layer.norm_attn.bias.copy_(tensor(weights["attention_norm/beta"]))
        layer.proj2.weight.copy_(tensor(weights["output/kernel"].T))
        layer.proj2.bias.copy_(tensor(weights["output/bias"]))
        table = weights["position_bias"]
        if table.shape != tuple(layer.rab.pos_w.shape):
            raise ValueError(f"position table {table.shape} vs the peer's {tuple(layer.rab.pos_w.shape)}")
        layer.rab.pos_w.copy_(tensor(table[::-1]))


def check(path: str) -> None:
    data = np.load(path)
    meta = json.loads(str(data["meta"]))
    weights = {k[len("weight/") :]: data[k] for k in data.files if k.startswith("weight/")}
    layer = make_layer(
        data["x"].shape[-1], meta["heads"], meta["key_dim"], meta["value_dim"], meta["max_len"]
    )
    load_weights(layer, weights, meta["heads"], meta["key_dim"], meta["value_dim"])
    layer.eval()
    x = torch.from_numpy(data["x"])
    with torch.no_grad():
        theirs = (x + layer(x)).numpy()
    for i, variant in enumerate(meta["variants"]):
        ours = data[f"ours_{i}"]
        common.emit(
            backend=meta["backend"],
            variant=variant,
            max_abs_diff=float(np.max(np.abs(ours - theirs))),
            max_abs=float(np.max(np.abs(theirs))),
        )


def timings(args: argparse.Namespace) -> None:
    max_len = max(args.lengths + args.request_lengths)
    torch.manual_seed(0)
    layer = make_layer(args.dim, args.heads, args.key_dim, args.key_dim, max_len)
    optimizer = torch.optim.SGD(layer.parameters(), lr=1e-4)
    generator = np.random.default_rng(2)

    def train_step(x: torch.Tensor) -> None:
        optimizer.zero_grad()
        loss = (x + layer(x)).sum(dim=(1, 2)).mean()
        loss.backward()
        optimizer.step()

    def request(x: torch.Tensor) -> None:
        with torch.inference_mode():
            (x + layer(x)).numpy()

    for mode, batch, lengths in (
        ("train", args.train_batch, args.lengths),
        ("request", 1, args.request_lengths),
    ):
        layer.train(mode == "train")
        for length in sorted(lengths):
            row = dict(library="torch-rechub", mode=mode, length=length)
            x = torch.from_numpy(generator.standard_normal((batch, length, args.dim)).astype("float32"))
            need = 6 * batch * args.heads * length * length * 4 / 2**30
            if mode == "train" and need > args.memory_budget_gib:
                common.emit(**row, skipped=f"needs ~{need:.1f} GiB")
                continue
            call = functools.partial(train_step if mode == "train" else request, x)
            times = common.time_calls(call, warmup=2, repeats=args.repeats, budget_s=args.budget_s)
            common.emit(**row, ms=common.median_ms(times), runs=len(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    ints = lambda text: [int(v) for v in text.split(",")]  # noqa: E731
    parser.add_argument("--npz", default="", help="comma-separated files written by bench/hstu_peer.py")
    parser.add_argument("--lengths", type=ints, default=[500, 1000, 2000])
    parser.add_argument("--request-lengths", type=ints, default=[500, 1000, 2000, 4000])
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--key-dim", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--memory-budget-gib", type=float, default=4.0)
    parser.add_argument("--check-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for path in filter(None, args.npz.split(",")):
        if os.path.exists(path):
            check(path)
    if not args.check_only:
        timings(args)


if __name__ == "__main__":
    main()
