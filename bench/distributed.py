"""Memory per device of a DARE model whose tables are row-sharded over 1, 2 and 4 devices.

    python bench/distributed.py          # the table of docs/benchmarks.md ("Beyond one device")
    python bench/distributed.py --items 1000000 --devices 1,2 --steps 2

For each device count n, in a fresh jax process with n devices (virtual CPU
devices, `XLA_FLAGS=--xla_force_host_platform_device_count=n`, when the
machine has no n accelerators), DARE (attention and representation tables
of 16, k=20) on a vocabulary of `--items` items and 1,000 categories is
built under `keras_lsrec.distribution.model_parallel((1, n))` (tables
row-sharded over n devices), compiled with Adam (tables of at least 200,000 rows
train row-sparsely with lazy Adam, on their shards), and trained `--steps`
steps on random full histories (L=200, batch 256, ids uniform):

- state per device: the bytes of every weight and optimizer variable held
  by the fullest device (its shards of the tables and slots, replicas of
  the rest), MiB, with the whole state and its ratio to one device's;
- the process's peak resident memory (all virtual devices share it);
- train samples/s, median over the steps after two warm-up steps. Virtual
  devices share this machine's cores, so that figure says the step runs,
  not how it scales; samples/s against the number of GPUs needs a GPU host.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import emit, machine_line, markdown_table, peak_rss_mib, run_worker  # noqa: E402

MIB = 2**20


def worker(args: argparse.Namespace) -> None:
    import collections
    import statistics

    import keras
    import numpy as np

    import keras_lsrec
    from keras_lsrec.data import SequenceSchema

    devices = keras.distribution.list_devices()
    keras.distribution.set_distribution(keras_lsrec.distribution.model_parallel((1, len(devices))))
    schema = SequenceSchema({"item": args.items + 1, "category": 1001}, max_len=200, time_vocab_size=201)
    model = keras_lsrec.models.DARE(schema)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
    per_device: dict = collections.Counter()
    for variable in model.variables + model.optimizer.variables:
        for shard in variable.value.addressable_shards:
            per_device[shard.device] += shard.data.nbytes
    rng = np.random.default_rng(0)
    batch, length = 256, 200
    x = {
        "history_item": rng.integers(1, args.items + 1, (batch, length), dtype="int32"),
        "history_category": rng.integers(1, 1001, (batch, length), dtype="int32"),
        "history_time": np.tile(np.arange(length, 0, -1, dtype="int32"), (batch, 1)),
        "target_item": rng.integers(1, args.items + 1, batch, dtype="int32"),
        "target_category": rng.integers(1, 1001, batch, dtype="int32"),
    }
    y = rng.integers(0, 2, batch).astype("float32")
    times = []
    for _ in range(args.steps + 2):  # two warm-up steps (the second may compile again)
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    emit(
        devices=len(devices),
        items=args.items,
        sparse_tables=0 if model.table_training is None else len(model.table_training.tables),
        state_mib=sum(per_device.values()) / MIB,
        device_mib=max(per_device.values()) / MIB,
        peak_mib=peak_rss_mib(),
        samples_per_s=batch / statistics.median(times[2:]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=20_000_000)
    parser.add_argument("--devices", default="1,2,4")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    results = []
    for n in (int(d) for d in args.devices.split(",")):
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={n}"
        found = run_worker(__file__, "jax", ["--items", str(args.items), "--steps", str(args.steps)])
        results += found
        print(found, file=sys.stderr, flush=True)
    one = next((r["device_mib"] for r in results if r.get("devices") == 1), None)
    rows = []
    for r in results:
        if "error" in r:
            rows.append(["error", r["error"], "", "", "", "", ""])
            continue
        ratio = f"{r['device_mib'] / one:.2f}" if one else ""
        rows.append(
            [
                r["devices"],
                f"{r['items']:,}",
                f"{r['device_mib']:,.0f}",
                ratio,
                f"{r['state_mib']:,.0f}",
                f"{r['peak_mib']:,.0f}",
                f"{r['samples_per_s']:,.0f}",
            ]
        )
    header = [
        "devices",
        "items",
        "state per device MiB",
        "x one device",
        "state MiB",
        "peak RSS MiB",
        "samples/s",
    ]
    print(machine_line())
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
