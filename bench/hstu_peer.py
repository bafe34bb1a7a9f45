"""keras_lsrec's HSTUBlock against torch-rechub's HSTU layer (PyTorch): equality and cost.

    python bench/hstu_peer.py                          # jax; train L = 500..2000, requests to 4000
    python bench/hstu_peer.py --backends jax,torch --threads 2
    python bench/hstu_peer.py --check-only             # forward equality only

The peer is torch-rechub 0.9.0, whose `basic.layers.HSTULayer` is one HSTU
layer written after Meta's reference (one SiLU on the joint projection,
`SiLU(QK^T / sqrt(d) + rab) / N` over a causal mask, `LayerNorm(AV) * U`,
output projection); its `HSTUBlock` stacks them as `x + layer(x)`. It is
installed into an isolated virtual environment that this script creates
once (`bench/.venv-rechub`, git-ignored): torch 2.13.0 (CPU), numpy and the
three light packages its import needs (pandas, scikit-learn, tqdm), then
torch-rechub itself with `--no-deps` (so pip resolves none of its optional
extras and no other torch build). bench/rechub_hstu_driver.py runs there;
nothing of keras_lsrec is imported on that side.

Equality: one `HSTUBlock` (positions 1..L, every token valid, so causal
self-attention; `epsilon=1e-5`, torch's LayerNorm default; `normalizer_length
= L`, the peer's `max_seq_len`; `max_distance = L - 1`, so both position
tables have `2L - 1` rows) gets seeded random weights, a nonzero position
bias table included; its weights, the input and its outputs (with all queries
at once and with query blocks) go to an `.npz`; the driver loads the weights
into the peer's layer (the projection's columns reordered from our
`[U, V, Q, K]` to its `[Q, K, U, V]`, kernels transposed to torch's
`(out, in)`, the position table reversed: it indexes `j - i` where we index
`i - j`), computes `x + layer(x)` and reports the largest absolute
difference. Position bias only: the time biases bucket differently (the peer:
sqrt or log of minutes between timestamps; keras_lsrec: log2 of an integer
clock), so neither side gets times.

Cost, same shapes on both sides (`--dim` 32, `--heads` 2, `--key-dim` 16 =
value dim): milliseconds per training step of the block alone (forward,
backward of the sum of its outputs, one SGD update; keras `train_on_batch`,
`jit_compile` except under torch; torch eager) at `--train-batch` rows, and
per request (one row, forward only: keras `predict_on_batch`; torch under
`inference_mode`), medians after warm-up. Ours twice: all queries at once
(`query_block_size=None`) and the HSTU model's default, query blocks of 512
rematerialised in training (identical to the first at L <= 512). Threads are
pinned equal on both sides (`--threads`: OMP/MKL/XLA/TF and
`torch.set_num_threads`). Training configurations whose attention memory
(about six float32 `(B, H, rows, L)` tensors) exceeds `--memory-budget-gib`
are skipped. One process at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import venv
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_VENV = os.path.join(HERE, ".venv-rechub")
# torch-rechub's import chain needs these (utils.data); its optional extras are not installed
PEER_PACKAGES = ("torch==2.13.0", "numpy", "pandas", "scikit-learn", "tqdm")
PEER = "torch-rechub==0.9.0"
VARIANTS = {"all queries": (None, False), "query blocks 512 + remat": (512, True)}
CHECK_BATCH, CHECK_LENGTH = 2, 600  # > 512: the blocked variant runs two blocks


def thread_env(threads: int) -> dict[str, str]:
    n = str(threads)
    return {
        "OMP_NUM_THREADS": n,
        "MKL_NUM_THREADS": n,
        "TF_NUM_INTRAOP_THREADS": n,
        "TF_NUM_INTEROP_THREADS": "1",
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={n}",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def attention_gib(batch: int, heads: int, length: int, rows: int | None = None) -> float:
    """About six float32 `(B, H, rows, L)` tensors alive in a training step."""
    return 6 * batch * heads * (rows or length) * length * 4 / 2**30


# ----------------------------------------------------------------- keras_lsrec worker
def make_block(args: argparse.Namespace, max_len: int, variant: str):
    from keras_lsrec.layers import HSTUBlock

    block_size, remat = VARIANTS[variant]
    return HSTUBlock(
        num_heads=args.heads,
        key_dim=args.key_dim,
        value_dim=args.key_dim,
        max_distance=max_len - 1,
        time_buckets=None,
        normalizer_length=max_len,
        query_block_size=block_size,
        remat=remat,
        epsilon=1e-5,
    )


def random_weights(block, dim: int, seed: int) -> dict:
    """Seeded random weights for every variable of a built `block`, set on it."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if not block.built:
        block.build((None, None, dim))
    weights = {}
    for name, layer in (("input_norm", block.input_norm), ("attention_norm", block.attention_norm)):
        width = layer.gamma.shape[0]
        weights[f"{name}/gamma"] = 1.0 + 0.2 * rng.standard_normal(width)
        weights[f"{name}/beta"] = 0.1 * rng.standard_normal(width)
    for name, layer in (("uvqk", block.uvqk_dense), ("output", block.output_dense)):
        fan_in, units = layer.kernel.shape
        weights[f"{name}/kernel"] = rng.standard_normal((fan_in, units)) / np.sqrt(fan_in)
        weights[f"{name}/bias"] = 0.1 * rng.standard_normal(units)
    weights["position_bias"] = 0.5 * rng.standard_normal(tuple(block.relative_bias.position_bias.shape))
    weights = {k: v.astype("float32") for k, v in weights.items()}
    variables = {
        "input_norm/gamma": block.input_norm.gamma,
        "input_norm/beta": block.input_norm.beta,
        "attention_norm/gamma": block.attention_norm.gamma,
        "attention_norm/beta": block.attention_norm.beta,
        "uvqk/kernel": block.uvqk_dense.kernel,
        "uvqk/bias": block.uvqk_dense.bias,
        "output/kernel": block.output_dense.kernel,
        "output/bias": block.output_dense.bias,
        "position_bias": block.relative_bias.position_bias,
    }
    for key, variable in variables.items():
        variable.assign(weights[key])
    return weights


def check(args: argparse.Namespace, path: str) -> None:
    """Writes the weights, the input and our outputs (both variants) to `path`."""
    import keras
    import numpy as np

    rng = np.random.default_rng(1)
    x = rng.standard_normal((CHECK_BATCH, CHECK_LENGTH, args.dim)).astype("float32")
    positions = np.tile(np.arange(1, CHECK_LENGTH + 1, dtype="int32"), (CHECK_BATCH, 1))
    arrays: dict[str, Any] = {"x": x}
    weights = None
    for i, variant in enumerate(VARIANTS):
        block = make_block(args, CHECK_LENGTH, variant)
        weights = random_weights(block, args.dim, seed=0)  # the same draw for both variants
        arrays[f"ours_{i}"] = keras.ops.convert_to_numpy(block(x, positions, training=False))
    assert weights is not None
    arrays.update({f"weight/{k}": v for k, v in weights.items()})
    meta = dict(
        heads=args.heads,
        key_dim=args.key_dim,
        value_dim=args.key_dim,
        max_len=CHECK_LENGTH,
        variants=list(VARIANTS),
        backend=keras.backend.backend(),
    )
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


def sum_loss(y_true, y_pred):
    from keras import ops

    return ops.sum(y_pred, axis=(1, 2))  # per row; keras averages over the batch


def worker(args: argparse.Namespace) -> None:
    import functools

    import keras
    import numpy as np

    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        torch.set_num_threads(args.threads)
    if args.npz:
        check(args, args.npz)
    if args.check_only:
        return
    max_len = max(args.lengths + args.request_lengths)
    for variant in VARIANTS:
        keras.utils.set_random_seed(0)
        block = make_block(args, max_len, variant)
        sequence = keras.Input((None, args.dim))
        positions = keras.Input((None,), dtype="int32")
        model = keras.Model([sequence, positions], block(sequence, positions))
        random_weights(block, args.dim, seed=0)
        model.compile(optimizer=keras.optimizers.SGD(1e-4), loss=sum_loss, jit_compile=backend != "torch")
        rng = np.random.default_rng(2)
        for mode, batch, lengths in (
            ("train", args.train_batch, args.lengths),
            ("request", 1, args.request_lengths),
        ):
            for length in sorted(lengths):
                row = dict(library="keras_lsrec", backend=backend, variant=variant, mode=mode, length=length)
                x = rng.standard_normal((batch, length, args.dim)).astype("float32")
                p = np.tile(np.arange(1, length + 1, dtype="int32"), (batch, 1))
                if mode == "train":
                    block_size = VARIANTS[variant][0]
                    rows = min(length, block_size) if block_size else length
                    need = attention_gib(batch, args.heads, length, rows)
                    if need > args.memory_budget_gib:
                        common.emit(**row, skipped=f"needs ~{need:.1f} GiB")
                        continue
                    call = functools.partial(model.train_on_batch, [x, p], np.zeros_like(x))
                else:
                    call = functools.partial(model.predict_on_batch, [x, p])
                times = common.time_calls(call, warmup=2, repeats=args.repeats, budget_s=args.budget_s)
                common.emit(**row, ms=common.median_ms(times), runs=len(times))


# ----------------------------------------------------------------- the peer
def peer_python() -> str:
    """The isolated environment's interpreter, created and filled on first use."""
    python = os.path.join(PEER_VENV, "bin", "python")
    if not os.path.exists(python):
        print(f"Creating {PEER_VENV} with {', '.join(PEER_PACKAGES)} and {PEER} (once) ...", flush=True)
        venv.create(PEER_VENV, with_pip=True)
        pip = [python, "-m", "pip", "install", "-q"]
        subprocess.run([*pip, *PEER_PACKAGES], check=True)
        subprocess.run([*pip, "--no-deps", PEER], check=True)
        subprocess.run([python, "-c", "from torch_rechub.basic.layers import HSTULayer"], check=True)
    return python


def run(command: list[str], env: dict[str, str], what: str) -> list[dict]:
    proc = subprocess.run(command, env={**os.environ, **env}, capture_output=True, text=True)
    rows = [
        json.loads(line[len(common.RESULT) :])
        for line in proc.stdout.splitlines()
        if line.startswith(common.RESULT)
    ]
    if proc.returncode:
        tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
        print(f"{what}: exit {proc.returncode}:\n{tail}", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ints = lambda text: [int(v) for v in text.split(",")]  # noqa: E731
    parser.add_argument("--backends", default=os.environ.get("KERAS_BACKEND", "jax"))
    parser.add_argument("--lengths", type=ints, default=[500, 1000, 2000], help="training step lengths")
    parser.add_argument("--request-lengths", type=ints, default=[500, 1000, 2000, 4000])
    parser.add_argument("--train-batch", type=int, default=8)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--key-dim", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--budget-s", type=float, default=30.0, help="per timing: stop after 3 runs past it")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--memory-budget-gib", type=float, default=4.0)
    parser.add_argument("--check-only", action="store_true", help="forward equality only, no timings")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--npz", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    print(f"Machine: {common.machine_line()}; {args.threads} threads per side")
    python = peer_python()
    env = thread_env(args.threads)
    shared = ["--dim", str(args.dim), "--heads", str(args.heads), "--key-dim", str(args.key_dim)]
    shared += ["--lengths", ",".join(map(str, args.lengths))]
    shared += ["--request-lengths", ",".join(map(str, args.request_lengths))]
    shared += ["--train-batch", str(args.train_batch), "--repeats", str(args.repeats)]
    shared += ["--budget-s", str(args.budget_s), "--threads", str(args.threads)]
    shared += ["--memory-budget-gib", str(args.memory_budget_gib)]
    if args.check_only:
        shared.append("--check-only")
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for backend in args.backends.split(","):
            path = os.path.join(tmp, f"hstu_{backend}.npz")
            command = [sys.executable, __file__, "--worker", "--npz", path, *shared]
            rows += run(command, {**env, "KERAS_BACKEND": backend}, f"keras_lsrec {backend}")
            files.append(path)
        driver = os.path.join(HERE, "rechub_hstu_driver.py")
        rows += run([python, driver, "--npz", ",".join(files), *shared], env, "torch-rechub")

    print("\nForward equality (x + layer(x), same weights; B=2, L=600, float32):\n")
    checks = [r for r in rows if "max_abs_diff" in r]
    print(
        common.markdown_table(
            ["ours (backend, variant)", "max abs difference", "max abs output", "within 1e-5"],
            [
                [
                    f"{r['backend']}, {r['variant']}",
                    f"{r['max_abs_diff']:.2e}",
                    f"{r['max_abs']:.2f}",
                    "yes" if r["max_abs_diff"] <= 1e-5 else "NO",
                ]
                for r in checks
            ],
        )
    )
    if args.check_only:
        return
    timed = {
        (r["library"], r.get("backend"), r.get("variant"), r["mode"], r["length"]): r
        for r in rows
        if "mode" in r
    }

    def ms(row: dict | None) -> str:
        if row is None:
            return "failed"
        return "skipped" if "skipped" in row else f"{row['ms']:,.1f}"

    table = []
    for mode, lengths in (("train", args.lengths), ("request", args.request_lengths)):
        what = f"train step B={args.train_batch}" if mode == "train" else "request B=1"
        for length in sorted(lengths):
            theirs = timed.get(("torch-rechub", None, None, mode, length))
            for backend in args.backends.split(","):
                for variant in VARIANTS:
                    ours = timed.get(("keras_lsrec", backend, variant, mode, length))
                    ratio = "-"
                    if ours and theirs and "ms" in ours and "ms" in theirs:
                        ratio = f"{ours['ms'] / theirs['ms']:.2f}"
                    table.append([length, what, f"{backend}, {variant}", ms(ours), ms(theirs), ratio])
    print(f"\nTime, ms (median; d={args.dim}, {args.heads} heads, key/value dim {args.key_dim}):\n")
    print(
        common.markdown_table(
            ["L", "what", "ours (backend, variant)", "ours ms", "torch-rechub ms", "ours / theirs"], table
        )
    )


if __name__ == "__main__":
    main()
