"""Times FuxiCTR's LongCTR models (DIN, SIM, ETA, SDIM, TWIN, DIEN, TransAct, MIRRN, DCNv2,
FinalMLP) at given sizes; run by bench/run.py.

Runs inside the isolated virtual environment that bench/run.py creates
(fuxictr 2.3.10 and its dependencies; nothing of keras_lsrec is imported).
FuxiCTR's classes are used directly: a `FeatureMap` with two item features
(item and category ids, `source: item`) and an integer label, and batches in
the format its LongCTR data loader produces, `(batch_dict, item_dict, mask)`,
where `item_dict[f]` holds the L behaviours then the target of every row,
flattened. Prints one `RESULT {json}` line per (model, L).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from collections import OrderedDict

import numpy as np
import torch

ITEMS, CATEGORIES = 100_000, 1_000


def feature_map(embedding_dim: int, root: str):
    from fuxictr.features import FeatureMap

    fmap = FeatureMap("bench", root)
    fmap.features = OrderedDict(
        item_id={"type": "categorical", "source": "item", "vocab_size": ITEMS, "padding_idx": 0},
        cate_id={"type": "categorical", "source": "item", "vocab_size": CATEGORIES, "padding_idx": 0},
    )
    fmap.labels = ["label"]
    fmap.default_emb_dim = embedding_dim
    fmap.num_fields = 2
    return fmap


def build(name: str, fmap, args, root: str):
    from model_zoo.LongCTR import (  # the classes, from the wheel's model zoo
        DIEN,
        DIN,
        ETA,
        MIRRN,
        SDIM,
        SIM,
        TWIN,
        DCNv2,
        FinalMLP,
        TransAct,
    )

    common = dict(
        gpu=-1,
        embedding_dim=args.dim,
        dnn_hidden_units=[200, 80],
        learning_rate=1e-3,
        optimizer="adam",
        loss="binary_crossentropy",
        verbose=0,
        model_root=root,
        metrics=["AUC"],
        batch_norm=True,
    )
    if name == "DIN":
        return DIN(fmap, attention_hidden_units=[80, 40], din_use_softmax=True, **common)
    if name == "SIM":
        return SIM(fmap, attention_dim=args.attention_dim, topk=args.k, gsu_type="soft", **common)
    if name == "ETA":
        return ETA(fmap, attention_dim=args.attention_dim, topk=args.k, hash_bits=32, **common)
    if name == "SDIM":
        return SDIM(fmap, attention_dim=args.attention_dim, num_hashes=48, hash_bits=3, **common)
    if name == "DIEN":  # LongCTR's DIEN: GRU extractor, AUGRU evolution (no auxiliary loss)
        return DIEN(fmap, gru_type="AUGRU", attention_type="bilinear_attention", **common)
    if name == "TransAct":  # its own DCNv2 tower over [target, transformer output]; FFN 128 as ours
        del common["dnn_hidden_units"]
        return TransAct(fmap, dcn_hidden_units=[200, 80], dim_feedforward=128, **common)
    if name == "MIRRN":  # its table of retrieved positions spans the longest history
        longest = max(int(v) for v in args.lengths.split(","))
        return MIRRN(
            fmap, attention_dim=args.attention_dim, topk=args.k, hash_bits=32, max_len=longest, **common
        )
    if name == "DCNv2":
        del common["dnn_hidden_units"]
        return DCNv2(fmap, parallel_dnn_hidden_units=[200, 80], num_cross_layers=3, **common)
    if name == "FinalMLP":
        del common["dnn_hidden_units"], common["batch_norm"]  # its own names for them
        return FinalMLP(
            fmap,
            mlp1_hidden_units=[200, 80],
            mlp2_hidden_units=[200, 80],
            mlp1_batch_norm=True,
            mlp2_batch_norm=True,
            fs_hidden_units=[64],
            **common,
        )
    return TWIN(fmap, attention_dim=args.attention_dim, topk=args.k, **common)


def make_batch(rows: int, length: int, rng, same_user: bool = False):
    history = rng.integers(1, ITEMS, (1 if same_user else rows, length))
    history = np.repeat(history, rows, axis=0) if same_user else history
    target = rng.integers(1, ITEMS, (rows, 1))
    items = np.hstack([history, target])
    item_dict = {
        "item_id": torch.from_numpy(items.reshape(-1)),
        "cate_id": torch.from_numpy(items.reshape(-1) % (CATEGORIES - 1) + 1),
    }
    batch_dict = {"label": torch.from_numpy(rng.integers(0, 2, rows))}
    return batch_dict, item_dict, torch.ones(rows, length)


def timed(fn, warmup: int, repeats: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    global ITEMS
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--lengths", required=True)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--attention-dim", type=int, default=32)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--root", default="/tmp/fuxictr_bench")
    parser.add_argument("--items", type=int, default=ITEMS, help="item vocabulary (bench/vocab.py)")
    args = parser.parse_args()
    ITEMS = args.items
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    fmap = feature_map(args.dim, args.root)
    model = build(args.model, fmap, args, args.root)
    model._batch_index, model._max_gradient_norm = 0, 10.0
    for length in sorted(int(v) for v in args.lengths.split(",")):
        train = [make_batch(args.batch, length, rng) for _ in range(2)]

        def steps(train=train):
            model.train()
            for i in range(args.steps):
                model.train_step(train[i % 2])

        train_s = timed(steps, 1, args.repeats)
        model.eval()
        with torch.no_grad():
            infer = timed(lambda batch=train[0]: model.forward(batch), 2, 2 * args.repeats)
            request = make_batch(100, length, rng, same_user=True)
            latency = timed(lambda request=request: model.forward(request), 2, 2 * args.repeats)
        print(
            "RESULT "
            + json.dumps(
                {
                    "library": "fuxictr",
                    "backend": "torch",
                    "model": args.model,
                    "length": length,
                    "batch": args.batch,
                    "train_sps": args.steps * args.batch / statistics.median(train_s),
                    "infer_p50": 1000 * float(np.percentile(infer, 50)),
                    "infer_p95": 1000 * float(np.percentile(infer, 95)),
                    "request_ms": 1000 * statistics.median(latency),
                    "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
