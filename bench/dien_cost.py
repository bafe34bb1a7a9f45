"""What DIEN's recurrence costs against DIN (and TransAct's attention), at L=200 and 1000.

    KERAS_BACKEND=jax python bench/dien_cost.py --lengths 200,1000 --batch-size 256

One process, the backend of `KERAS_BACKEND` (jax: XLA-compiled, as `lsrec
quickstart` compiles). For each history length L, on the same batch (items
10,000, categories 100, full histories): DIN, DIEN with and without its
auxiliary loss, and TransAct, each with its defaults. It times
`train_on_batch` (one training step) and `predict_on_batch` (inference of
the batch), the median of `--steps` calls after two warm-up calls, and
prints a table with each model's times relative to DIN's. Timings are
wall-clock on whatever machine runs it: compare the ratios, measured in the
same process.
"""

from __future__ import annotations

import argparse
from typing import Any

import common

MODELS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("DIN", "din", {}),
    ("DIEN", "dien", {}),
    ("DIEN, no auxiliary loss", "dien", {"auxiliary_loss_weight": 0.0}),
    ("TransAct", "transact", {}),
)


def measure(name: str, overrides: dict, length: int, batch_size: int, steps: int) -> tuple[float, float]:
    import keras
    import numpy as np

    from keras_lsrec import models
    from keras_lsrec.data import SequenceSchema

    schema = SequenceSchema({"item": 10_000, "category": 100}, max_len=length)
    x = schema.random_batch(batch_size, padded=False, seed=0)  # full histories: every step is real work
    y = (np.random.default_rng(1).random(batch_size) < 0.3).astype("float32")
    model = models.get(name)(schema, **overrides)
    model.compile(
        keras.optimizers.Adam(1e-3), "binary_crossentropy", jit_compile=keras.backend.backend() == "jax"
    )
    train = common.time_calls(lambda: model.train_on_batch(x, y), repeats=steps, budget_s=60.0)
    infer = common.time_calls(lambda: model.predict_on_batch(x), repeats=steps, budget_s=60.0)
    return common.median_ms(train), common.median_ms(infer)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lengths", default="200,1000")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    import keras

    print(common.machine_line())
    rows = []
    for length in map(int, args.lengths.split(",")):
        base = None
        for label, name, overrides in MODELS:
            train, infer = measure(name, overrides, length, args.batch_size, args.steps)
            base = base or (train, infer)
            rows.append(
                [
                    keras.backend.backend(),
                    length,
                    label,
                    f"{train:.1f}",
                    f"{train / base[0]:.1f}x",
                    f"{infer:.1f}",
                    f"{infer / base[1]:.1f}x",
                ]
            )
            print(rows[-1], flush=True)
    headers = ["backend", "L", "model", "train ms/step", "vs DIN", "inference ms/batch", "vs DIN"]
    print(common.markdown_table(headers, rows))


if __name__ == "__main__":
    main()
