"""Train zoo models on several devices, and several processes, with keras.distribution (jax).

One host, 8 GPUs, tables sharded over 4 of them and the batch over 2:

    KERAS_BACKEND=jax python examples/train_distributed.py --distribution model --mesh 2,4 --models dare

Two hosts (run on each, with its own --process-id; the first host's address):

    KERAS_BACKEND=jax python examples/train_distributed.py --distribution model --mesh 2,8 \\
        --coordinator 10.0.0.1:1234 --num-processes 2 --process-id 0

Without GPUs, virtual CPU devices stand in (what the tests run, scaled down):

    XLA_FLAGS=--xla_force_host_platform_device_count=4 KERAS_BACKEND=jax \\
        python examples/train_distributed.py --distribution model --mesh 2,2 --users 64

Each process reads its own shard of users (`keras_lsrec.distribution.process_shard`);
`--batch-size` is per process, so a step trains on `batch_size * processes` rows.
`--out DIR` writes, from process 0, `<model>.keras`, and `results.json` with the
losses, the shape of one device's shard of every table, and predictions of the
first test rows; `--init DIR` starts every model from `DIR/<model>.weights.h5`
(writing it when absent), so runs on different meshes start from the same weights.
"""

from __future__ import annotations

import argparse
import json
import os

import keras
import numpy as np

import keras_lsrec
from keras_lsrec.data import synthetic


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--distribution", choices=["none", "data", "model"], default="model")
    parser.add_argument("--mesh", default="1,1", help="data,model: the device mesh of --distribution model")
    parser.add_argument("--models", default="din,twin,dare,sam")
    parser.add_argument("--users", type=int, default=2000, help="synthetic users (examples: 8 per user)")
    parser.add_argument("--max-len", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=256, help="rows per process and step")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--optimizer", choices=["adam", "sgd"], default="adam")
    parser.add_argument("--learning-rate", type=float, default=0.003)
    parser.add_argument("--table-optimizer", default="auto", help="auto | dense (SequenceModel.compile)")
    parser.add_argument("--table-min-rows", type=int, default=200_000, help="SequenceModel.compile")
    parser.add_argument("--coordinator", help="host:port of process 0, for several processes")
    parser.add_argument("--num-processes", type=int, default=1)
    parser.add_argument("--process-id", type=int, default=0)
    parser.add_argument("--init", help="folder of initial weights (<model>.weights.h5)")
    parser.add_argument("--out", help="folder for <model>.keras and results.json (process 0)")
    return parser.parse_args(argv)


def make_distribution(args: argparse.Namespace) -> keras.distribution.Distribution | None:
    if args.distribution == "none":
        return None
    devices = keras.distribution.list_devices()
    # Each process reads its own shard (process_shard): Keras must not shard again
    # (model_parallel sets auto_shard_dataset=False too).
    if args.distribution == "data":
        return keras.distribution.DataParallel(devices=devices, auto_shard_dataset=False)
    return keras_lsrec.distribution.model_parallel(args.mesh, devices)


def shard_shape(variable: keras.Variable) -> list[int]:
    """The shape of one device's part of `variable` (jax)."""
    return list(variable.value.sharding.shard_shape(tuple(variable.shape)))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    if args.coordinator:  # before anything touches the devices
        keras.distribution.initialize(args.coordinator, args.num_processes, args.process_id)
    distribution = make_distribution(args)
    if distribution is not None:
        keras.distribution.set_distribution(distribution)
    chief = args.process_id == 0

    data = synthetic.generate(num_users=args.users, max_len=args.max_len, seed=0)
    train = keras_lsrec.distribution.process_shard(data.sequence_dataset("train", batch_size=args.batch_size))
    probe = {k: v[:8] for k, v in data.test.x.items()}
    results: dict = {"devices": len(keras.distribution.list_devices()), "repeated": train.repeated}
    for name in args.models.split(","):
        keras.utils.set_random_seed(0)
        model = keras_lsrec.models.get(name)(data.schema)
        if args.init:
            path = os.path.join(args.init, f"{name}.weights.h5")
            if os.path.exists(path):
                model.load_weights(path)
            elif chief:
                os.makedirs(args.init, exist_ok=True)
                model.save_weights(path)
        optimizer = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[args.optimizer]
        model.compile(
            optimizer(args.learning_rate),
            "binary_crossentropy",
            table_optimizer=args.table_optimizer,
            table_min_rows=args.table_min_rows,
        )
        history = model.fit(train, epochs=args.epochs, shuffle=False, verbose=0)
        tables = [v for v in model.weights if v.path.endswith("/embeddings")]  # what layout_map shards
        results[name] = {
            "loss": history.history["loss"],
            "table_shards": {table.path: shard_shape(table) for table in tables},
            "slot_shards": {
                v.path: shard_shape(v) for v in model.optimizer.variables if "_embeddings_" in v.name
            },
        }
        if args.num_processes == 1:
            results[name]["probe"] = np.asarray(model.predict(probe, verbose=0)).ravel().tolist()
        print(name, "loss", [round(v, 5) for v in history.history["loss"]], flush=True)
        if args.out:  # every process takes part in gathering the weights; process 0's file is the one
            folder = args.out if chief else os.path.join(args.out, f"process_{args.process_id}")
            os.makedirs(folder, exist_ok=True)
            model.save(os.path.join(folder, f"{name}.keras"))
    if args.out and chief:
        with open(os.path.join(args.out, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
