"""Inference cost versus sequence length: SAM, DIN (full), DARE, self-attention.

    python bench/scaling.py                       # L = 250, 1000, 4000, 16000; 3 backends
    python bench/scaling.py --lengths 250,1000 --backends jax --batch 16

For each backend (tensorflow and jax with `jit_compile=True`, torch eager),
model and L: milliseconds per inference batch (median of repeated
`predict_on_batch` calls after warm-up) and the peak resident-memory growth of
the process while running it (MiB above the RSS after building the model;
lengths run in increasing order, so each figure is that length's peak). The
histories are full length (no padding), random ids.

The self-attention baseline is one `keras.layers.MultiHeadAttention` block
(2 heads, residual, LayerNorm, feed-forward) over the sequence, as BST and
SASRec use, pooled by dot target attention. Its attention scores alone take
`batch * heads * L^2 * 4` bytes; configurations whose estimate (scores,
softmax and gradient-free temporaries: 3 copies) exceeds `--memory-budget-gib`
are reported as out of memory instead of being run, so the machine stays up.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

MODELS = ("SAM", "DIN", "DARE", "SelfAttention")
HEADS = 2


def self_attention_model(schema, embedding_dim: int):
    """One transformer block over the history, then dot target attention (public layers only)."""
    import keras
    from keras import ops

    from keras_lsrec.data import history_key, target_key
    from keras_lsrec.layers import MLP, FieldEmbedding, TargetAttention

    inputs = schema.inputs()
    # The ids per field as every model reads them; the target's `time` id is 0 (it happens now).
    sizes = {f: schema.vocab_sizes[f] for f in schema.fields}
    target_ids = {f: inputs[target_key(f)] for f in schema.fields}
    history_ids = {f: inputs[history_key(f)] for f in schema.fields}
    if schema.time_vocab_size is not None:
        sizes["time"] = schema.time_vocab_size
        target_ids["time"] = ops.zeros_like(inputs[target_key("item")])
        history_ids["time"] = inputs[history_key("time")]
    mask = ops.not_equal(history_ids["item"], 0)
    embedding = FieldEmbedding(sizes, embedding_dim)
    target, history = embedding(target_ids), embedding(history_ids)
    dim = history.shape[-1]
    attended = keras.layers.MultiHeadAttention(HEADS, dim // HEADS)(
        history, history, query_mask=mask, value_mask=mask
    )
    history = keras.layers.LayerNormalization()(history + attended)
    feed_forward = keras.layers.Dense(dim)(keras.layers.Dense(4 * dim, activation="relu")(history))
    history = keras.layers.LayerNormalization()(history + feed_forward)
    interest = TargetAttention(scorer="dot")(target, history, mask=mask)
    tower = MLP((200, 80), "prelu", input_batch_norm=True, output_units=1, name="tower")
    features = ops.concatenate([target, interest, target * interest], -1)
    probability = ops.sigmoid(ops.squeeze(ops.cast(tower(features), "float32"), -1))
    return keras.Model(inputs, probability)


def build(name: str, schema, dim: int):
    from keras_lsrec import models

    if name == "SelfAttention":
        return self_attention_model(schema, dim)
    if name == "DARE":
        return models.DARE(schema, attention_dim=dim, representation_dim=dim)
    return models.get(name)(schema, embedding_dim=dim)


def worker(args: argparse.Namespace) -> None:
    import keras

    from keras_lsrec.data import SequenceSchema

    backend = keras.backend.backend()
    lengths = sorted(args.lengths)
    schema = SequenceSchema(
        {"item": 100_000, "category": 1_000}, max_len=max(lengths), time_vocab_size=max(lengths) + 1
    )
    keras.utils.set_random_seed(0)
    model = build(args.model, schema, args.dim)
    model.compile(jit_compile=backend != "torch")
    baseline = common.rss_mib()
    for length in lengths:
        row = dict(backend=backend, model=args.model, length=length, batch=args.batch)
        if args.model == "SelfAttention":
            need = 3 * args.batch * HEADS * length**2 * 4 / 2**30
            if need > args.memory_budget_gib:
                common.emit(**row, oom=f"needs ~{need:.0f} GiB")
                continue
        x = schema.random_batch(args.batch, length, padded=False, dtype="int32")
        predict = functools.partial(model.predict_on_batch, x)
        times = common.time_calls(predict, warmup=2, repeats=args.repeats)
        common.emit(
            **row, ms=common.median_ms(times), peak_mib=common.peak_rss_mib() - baseline, runs=len(times)
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ints = lambda text: [int(v) for v in text.split(",")]  # noqa: E731
    parser.add_argument("--lengths", type=ints, default=[250, 1000, 4000, 16000])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dim", type=int, default=16, help="embedding size per field")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--memory-budget-gib", type=float, default=14.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    print(f"Machine: {common.machine_line()}")
    print(f"Batch {args.batch}, fields item+category+time x {args.dim} dims, full-length histories.\n")
    lengths = sorted(args.lengths)
    results = {}
    for backend in args.backends.split(","):
        for model in args.models.split(","):
            options = ["--model", model, "--lengths", ",".join(map(str, lengths)), "--batch", str(args.batch)]
            options += ["--dim", str(args.dim), "--repeats", str(args.repeats)]
            options += ["--memory-budget-gib", str(args.memory_budget_gib)]
            for row in common.run_worker(__file__, backend, options):
                if "error" in row:
                    print(f"{backend} {model}: {row['error']}", file=sys.stderr)
                    continue
                results[backend, model, row["length"]] = row
                print(
                    f"  {backend:10s} {model:13s} L={row['length']:>6}: "
                    + (row["oom"] if "oom" in row else f"{row['ms']:9.1f} ms  {row['peak_mib']:8.0f} MiB"),
                    flush=True,
                )

    def cell(key, field):
        row = results.get(key)
        if row is None:
            return "failed"
        if "oom" in row:
            return "OOM"
        return f"{row[field]:,.1f}" if field == "ms" else f"{row[field]:,.0f}"

    for backend in args.backends.split(","):
        print(f"\n### {backend} (ms per batch of {args.batch} / peak MiB)\n")
        base = 1000 if 1000 in lengths else lengths[0]
        header = ["model"] + [f"L={n}" for n in lengths] + [f"time L={lengths[-1]} / L={base}"]
        rows = []
        for model in args.models.split(","):
            cells = [
                f"{cell((backend, model, n), 'ms')} / {cell((backend, model, n), 'peak_mib')}"
                for n in lengths
            ]
            first, last = results.get((backend, model, base)), results.get((backend, model, lengths[-1]))
            ratio = (
                f"{last['ms'] / first['ms']:.1f}"
                if first and last and "ms" in first and "ms" in last
                else "-"
            )
            rows.append([model] + cells + [ratio])
        print(common.markdown_table(header, rows))

    print("\n### fastest backend per model and L (ms per batch)\n")
    rows = []
    for model in args.models.split(","):
        cells = []
        for n in lengths:
            timed = [
                (results[b, model, n]["ms"], b)
                for b in args.backends.split(",")
                if "ms" in results.get((b, model, n), {})
            ]
            cells.append(f"{min(timed)[1]} {min(timed)[0]:,.1f}" if timed else "-")
        rows.append([model] + cells)
    print(common.markdown_table(["model"] + [f"L={n}" for n in lengths], rows))


if __name__ == "__main__":
    main()
