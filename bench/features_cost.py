"""What features cost a training step: each model with and without every kind of feature.

    KERAS_BACKEND=jax python bench/features_cost.py --lengths 200,1000 --models din,twin,dare

One process per backend (the backend is chosen at import). For each model and
history length L, two schemas on the same ids (items 10,000, categories 100,
reverse positions): `off`, the ids alone, and `on`, with per-row features (a
user segment, a bag of 5 user tags, an 8-float context) and item features (a
bag of 5 topics and a 64-float image embedding per item, on the target and on
every event). It times `train_on_batch` on a batch of 256 (compiled as
`lsrec quickstart` compiles: XLA on jax), the median of `--steps` steps after
two warm-up steps, and prints the step times, their ratio, the batch's bytes
and the parameter count. Timings are wall-clock on whatever machine runs it:
compare the ratio, measured in the same process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import common


def schemas(length: int):
    from keras_lsrec.data import Categorical, Dense, SequenceSchema

    off = SequenceSchema({"item": 10_000, "category": 100}, max_len=length, time_vocab_size=length + 1)
    on = off.replace(
        features={
            "user_segment": Categorical(9),
            "user_tags": Categorical(21, max_values=5),
            "context": Dense(8),
        },
        item_features={"topics": Categorical(81, max_values=5), "image_emb": Dense(64)},
    )
    return {"off": off, "on": on}


def step_ms(name: str, schema, batch_size: int, steps: int, jit: bool) -> tuple[float, int, int]:
    import keras
    import numpy as np

    from keras_lsrec import models

    x = schema.random_batch(batch_size, seed=0)
    y = (np.random.default_rng(1).random(batch_size) < 0.3).astype("float32")
    model = models.get(name)(schema)
    model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", jit_compile=jit)
    for _ in range(2):
        model.train_on_batch(x, y)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times), sum(v.nbytes for v in x.values()), model.count_params()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="200,1000")
    parser.add_argument("--models", default="din,twin,dare")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    import keras

    backend = keras.backend.backend()
    print(common.machine_line())
    rows = []
    for length in map(int, args.lengths.split(",")):
        for name in args.models.split(","):
            measured = {
                kind: step_ms(name, schema, args.batch_size, args.steps, backend == "jax")
                for kind, schema in schemas(length).items()
            }
            (off, off_bytes, off_params), (on, on_bytes, on_params) = measured["off"], measured["on"]
            rows.append(
                [
                    backend,
                    name,
                    length,
                    f"{off:.1f}",
                    f"{on:.1f}",
                    f"{on / off:.2f}",
                    f"{off_bytes / 2**20:.1f} -> {on_bytes / 2**20:.1f}",
                    f"{off_params:,} -> {on_params:,}",
                ]
            )
            print(rows[-1], flush=True)
    headers = ["backend", "model", "L", "ms/step off", "ms/step on", "on / off", "batch MiB", "parameters"]
    print(common.markdown_table(headers, rows))


if __name__ == "__main__":
    main()
