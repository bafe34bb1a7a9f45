"""Trains one FuxiCTR 2.3.10 LongCTR model on a LongCTR dataset directory; run by bench/longctr.py --peer.

Runs inside the isolated virtual environment that bench/run.py creates
(fuxictr 2.3.10 and its dependencies; nothing of keras_lsrec is imported).
Everything on the path from the files to the test predictions is FuxiCTR's:
the wheel's `model_zoo.LongCTR` model classes, its
`longctr_dataloader.LongCTRDataLoader` (histories cut from `user_info`,
item columns gathered from `item_info` at batch time) and the models' own
`fit` (early stopping on the validation monitor with patience 2, learning
rate x 0.1 on a plateau, gradient clipping at norm 10, the best checkpoint
reloaded) and `predict`. Only the `FeatureMap` is built here, from the
files, as LongCTR's dataset YAMLs declare it: `user_index`, `item_index`,
`seq_len` as meta columns, every `item_info` column with `source: item`
(integer ids: categorical; a list of floats: `type: embedding` through
`nn.Identity()`; a list of ids: a sequence feature), the impressions' other
columns as row features.

Writes the test predictions, labels and users to `--result` (.npz) and the
run's facts to `--result`.json, so bench/longctr.py scores both libraries
with one metric implementation.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import OrderedDict

import numpy as np
import pandas as pd
import torch

META = ("user_index", "item_index", "seq_len")
LABELS = ("is_click", "click", "label")


def feature_map(data: str, embedding_dim: int, root: str):
    """FuxiCTR's `FeatureMap` for the LongCTR files in `data`, and the label column."""
    from fuxictr.features import FeatureMap

    fmap = FeatureMap("longctr", root)
    features: OrderedDict[str, dict] = OrderedDict((name, {"type": "meta"}) for name in META)
    train = pd.read_parquet(os.path.join(data, "train.parquet"))
    splits = [train] + [pd.read_parquet(os.path.join(data, f"{s}.parquet")) for s in ("valid", "test")]
    label = next(c for c in LABELS if c in train.columns)
    for column in train.columns:
        if column in META or column == label:
            continue
        features[column] = spec(pd.concat([s[column] for s in splits]), embedding_dim, source=None)
    items = pd.read_parquet(os.path.join(data, "item_info.parquet"))
    for column in items.columns:
        if column != "item_index":
            features[column] = spec(items[column], embedding_dim, source="item")
    fmap.features = features
    fmap.labels = [label]
    fmap.group_id = "user_index"
    fmap.default_emb_dim = embedding_dim
    fmap.num_fields = fmap.get_num_fields()
    fmap.set_column_index()
    return fmap


def spec(values: pd.Series, embedding_dim: int, source: str | None) -> dict:
    """A column's FuxiCTR feature spec, as LongCTR's YAMLs write them."""
    first = values.iloc[0]
    out: dict = {}
    if isinstance(first, (list, np.ndarray)):
        array = np.array(values.to_list())
        if array.dtype.kind == "f":  # a pretrained vector (image_emb_dim64), used as it is
            out = {
                "type": "embedding",
                "embedding_dim": array.shape[1],
                "pretrain_dim": array.shape[1],
                "feature_encoder": "nn.Identity()",
            }
        else:
            out = {
                "type": "sequence",
                "vocab_size": int(array.max()) + 1,
                "max_len": array.shape[1],
                "padding_idx": 0,
                "feature_encoder": "layers.MaskedAveragePooling()",
            }
    else:
        out = {"type": "categorical", "vocab_size": int(values.max()) + 1, "padding_idx": 0}
    if source:
        out["source"] = source
    return out


def settings(name: str, args) -> dict:
    """LongCTR's tuner-space values for `name` (the shared ones; one point of each grid)."""
    common = dict(
        embedding_dim=args.embedding_dim,
        dnn_hidden_units=[1024, 512, 256],
        dnn_activations="ReLU",
        net_dropout=0.1,
        batch_norm=True,
        embedding_regularizer=args.embedding_regularizer,
        net_regularizer=0,
        learning_rate=args.learning_rate,
        accumulation_steps=args.accumulation_steps,
    )
    if name == "DIN":
        return dict(
            common,
            attention_hidden_units=[512, 256],
            attention_hidden_activations="ReLU",
            attention_output_activation=None,
            attention_dropout=0.1,
            din_use_softmax=False,
        )
    search = dict(common, attention_dim=128, num_heads=1, attention_dropout=0.1, short_seq_len=50)
    if name == "SIM":
        return dict(search, topk=args.k, alpha=1, beta=1, gsu_type="soft")
    if name == "ETA":
        return dict(search, topk=args.k, hash_bits=32, reuse_hash=False)
    if name == "SDIM":
        return dict(search, num_hashes=32, hash_bits=4, reuse_hash=False, use_qkvo=True, l2_norm=False)
    if name == "TWIN":
        return dict(search, topk=args.k)
    # The five below: benchmark/<Model>_microvideo1.7m_x2/*_tuner_config_*_1000*.yaml of reczoo/LongCTR;
    # where a grid is given, the point of the run LongCTR published for L=1000 (its expid in the CSV).
    if name == "DIEN":  # DIEN_..._tuner_config_07_1000 (expid 003: batch_norm True of [True, False])
        return dict(
            common,
            gru_type="AUGRU",
            attention_type="din_attention",
            attention_hidden_units=[256, 128],
            attention_activation="ReLU",
            attention_dropout=0.1,
            use_attention_softmax=True,
            enable_sum_pooling=True,
        )
    if name == "MIRRN":  # MIRRN_..._tuner_config_01_1000 (expid 001: hash_bits 4 of [4, 8, 16, 32], topk 50)
        return dict(search, topk=args.k, hash_bits=4, reuse_hash=False, use_scale=True, max_len=args.max_len)
    tower = {k: v for k, v in common.items() if k not in ("dnn_hidden_units", "dnn_activations")}
    if name == "DCNv2":  # DCNv2_..._tuner_config_07_1000 (expid 002)
        return dict(
            tower,
            model_structure="parallel",
            use_low_rank_mixture=False,
            parallel_dnn_hidden_units=[1024, 512, 256],
            dnn_activations="ReLU",
            num_cross_layers=3,
        )
    if name == "TransAct":  # TransAct_..._tuner_config_06_1000_2 (expid 007: num_heads 2 of [1, 2],
        # transformer_layers 1 of [1, 2]; learning rate 5e-4 there, --learning-rate here)
        return dict(
            tower,
            hidden_activations="ReLU",
            dcn_cross_layers=4,
            dcn_hidden_units=[1024, 512, 256],
            mlp_hidden_units=[],
            num_heads=2,
            transformer_layers=1,
            transformer_dropout=0.1,
            dim_feedforward=512,
            first_k_cols=1,
            use_time_window_mask=False,
            concat_max_pool=False,
        )
    if name == "FinalMLP":  # FinalMLP_..._tuner_config_05_1000_2 (expid 014: mlp2 [256, 256] of 4 choices,
        # mlp2_dropout 0.3 of [0.3, 0.2], num_heads 2 of [2, 4, 8])
        finalmlp = {k: v for k, v in tower.items() if k not in ("net_dropout", "batch_norm")}
        return dict(
            finalmlp,
            mlp1_hidden_units=[1024, 512, 256],
            mlp1_hidden_activations="ReLU",
            mlp1_dropout=0.2,
            mlp1_batch_norm=True,
            mlp2_hidden_units=[256, 256],
            mlp2_hidden_activations="ReLU",
            mlp2_dropout=0.3,
            mlp2_batch_norm=True,
            use_fs=False,
            num_heads=2,
        )
    raise ValueError(
        "FuxiCTR's LongCTR zoo here: DIN, SIM, ETA, SDIM, TWIN, DIEN, TransAct, MIRRN, DCNv2, FinalMLP."
        f" Received: {name!r}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--max-len", type=int, required=True)
    parser.add_argument("--seed", type=int, default=20242025)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--accumulation-steps", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--embedding-regularizer", type=float, default=1e-5)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--root", default="/tmp/fuxictr_longctr")
    parser.add_argument("--result", required=True, help="where to write the test predictions (.npz)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import logging

    logging.basicConfig(level=logging.INFO, format="  fuxictr: %(message)s", stream=sys.stdout)
    from fuxictr.pytorch.torch_utils import seed_everything
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
    from model_zoo.LongCTR.longctr_dataloader import LongCTRDataLoader

    classes = {"DIN": DIN, "SIM": SIM, "ETA": ETA, "SDIM": SDIM, "TWIN": TWIN, "DIEN": DIEN}
    classes.update(TRANSACT=TransAct, MIRRN=MIRRN, DCNV2=DCNv2, FINALMLP=FinalMLP)
    name = {key: cls.__name__ for key, cls in classes.items()}.get(args.model.upper(), args.model)
    options = settings(name, args)  # refuses a model outside the zoo
    seed_everything(seed=args.seed)
    fmap = feature_map(args.data, args.embedding_dim, args.root)
    os.makedirs(os.path.join(args.root, fmap.dataset_id), exist_ok=True)
    model = classes[name.upper()](
        fmap,
        gpu=-1,
        optimizer="adam",
        loss="binary_crossentropy",
        metrics=["gAUC", "AUC", "logloss"],
        monitor={"gAUC": 1, "AUC": 1},
        monitor_mode="max",
        early_stop_patience=2,
        verbose=1,
        model_root=args.root,
        **options,
    )

    def loader(split: str, shuffle: bool) -> LongCTRDataLoader:
        return LongCTRDataLoader(
            fmap,
            os.path.join(args.data, f"{split}.parquet"),
            user_info=os.path.join(args.data, "user_info.parquet"),
            item_info=os.path.join(args.data, "item_info.parquet"),
            batch_size=args.batch_size,
            shuffle=shuffle,
            num_workers=0,
            max_len=args.max_len,
        )

    start = time.perf_counter()
    model.fit(loader("train", True), epochs=args.epochs, validation_data=loader("valid", False))
    seconds = time.perf_counter() - start
    test = loader("test", False)
    predictions = model.predict(test)
    table = pd.read_parquet(os.path.join(args.data, "test.parquet"), columns=["user_index", fmap.labels[0]])
    np.savez(
        args.result,
        predictions=predictions,
        labels=table[fmap.labels[0]].to_numpy(),
        users=table["user_index"].to_numpy(),
    )
    with open(args.result + ".json", "w") as f:
        json.dump(
            {
                "epochs_run": model._epoch_index + 1,
                "seconds": seconds,
                "parameters": int(sum(p.numel() for p in model.parameters())),
                "settings": settings(name, args),
            },
            f,
        )


if __name__ == "__main__":
    main()
