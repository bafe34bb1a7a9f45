"""Under a keras.distribution (jax, 4 virtual CPU devices), the entry points refuse,
before any step runs and naming what to change, a model built before
`set_distribution` and batches the batch axis does not divide (issue 32).

One subprocess (XLA's device count is fixed at start) runs every case and
prints what each raised; nothing is compiled (every refusal comes before the
first step), so the run costs an import and a few model builds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import pytest

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax", reason="keras.distribution runs on the jax backend (Keras 3.15)"
)

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json
    import keras
    import numpy as np
    import keras_lsrec
    from keras_lsrec.data import ArrayDataset, SequenceSchema
    from keras_lsrec.training import distributed

    schema = SequenceSchema(vocab_sizes={"item": 50, "category": 10}, max_len=8)
    rng = np.random.default_rng(0)

    def batch(n):
        x = {
            "target_item": rng.integers(1, 50, n), "target_category": rng.integers(1, 10, n),
            "history_item": rng.integers(0, 50, (n, 8)), "history_category": rng.integers(0, 10, (n, 8)),
        }
        return x, rng.integers(0, 2, n).astype("float32")

    def outcome(call):
        try:
            result = call()
        except Exception as error:  # what the user would read
            return f"{type(error).__name__}: {error}"
        return f"ok: {result!r}"[:200]

    found = {}
    x10, y10 = batch(10)
    before = keras_lsrec.models.DIN(schema, mlp_units=(8,))
    before.compile("adam", "binary_crossentropy")
    data = keras.distribution.DataParallel()
    keras.distribution.set_distribution(data)
    found["before_fit"] = outcome(lambda: before.fit(x10, y10, batch_size=2, verbose=0))
    found["before_predict"] = outcome(lambda: before.predict(x10, batch_size=2, verbose=0))
    model = keras_lsrec.models.DIN(schema, mlp_units=(8,))
    model.compile("adam", "binary_crossentropy")
    found["placed"] = outcome(lambda: distributed.check_placement(model))
    found["last_batch"] = outcome(lambda: model.fit(x10, y10, batch_size=4, verbose=0))
    x24, y24 = batch(24)
    found["batch_size"] = outcome(lambda: model.fit(x24, y24, batch_size=6, verbose=0))
    found["default_batch_size"] = outcome(lambda: model.evaluate(x10, y10, verbose=0))
    found["validation_split"] = outcome(
        lambda: model.fit(x24, y24, batch_size=4, validation_split=0.25, verbose=0)
    )
    found["predict"] = outcome(lambda: model.predict(batch(3)[0], verbose=0))
    found["dataset"] = outcome(lambda: model.fit(ArrayDataset(x10, y10, 4, schema=schema), verbose=0))
    found["generator"] = outcome(lambda: model.fit((b for b in [batch(3)]), verbose=0))
    found["train_on_batch"] = outcome(lambda: model.train_on_batch(*batch(3)))
    found["empty_predict"] = outcome(lambda: model.predict(batch(0)[0], verbose=0).shape)
    keras.distribution.set_distribution(keras_lsrec.distribution.model_parallel("2,2"))
    found["other_mesh"] = outcome(lambda: model.predict(x10, verbose=0))
    sharded = keras_lsrec.models.DIN(schema, mlp_units=(8,))
    found["sharded_placed"] = outcome(lambda: distributed.check_placement(sharded))
    found["sharded_rows"] = outcome(lambda: sharded.predict(batch(3)[0], batch_size=8, verbose=0))
    print("RESULT" + json.dumps(found))
    """
)


@pytest.fixture(scope="module")
def found() -> dict[str, str]:
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT")]
    assert done.returncode == 0 and lines, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, str] = json.loads(lines[-1].removeprefix("RESULT"))
    return result


def test_a_model_built_before_the_distribution_is_refused_naming_the_fix(found):
    for case in ["before_fit", "before_predict", "other_mesh"]:
        assert found[case].startswith("ValueError: The model's variables are not on the mesh"), found[case]
        assert "built before `keras.distribution.set_distribution" in found[case]
    assert "lives on 1 device(s) (['cpu:0'])" in found["before_fit"]
    other = "lives on a mesh of shape {'batch': 4} (the distribution's: {'data': 2, 'model': 2})"
    assert other in found["other_mesh"]
    assert found["placed"] == "ok: 4" and found["sharded_placed"] == "ok: 2"  # batch split in 4 / 2


def test_batches_the_batch_axis_does_not_divide_are_refused_before_a_step(found):
    assert "multiple of 4" in found["last_batch"] and "the last batch has 2 rows" in found["last_batch"]
    assert "`batch_size=4`" in found["last_batch"] and "Keep the first 8 rows" in found["last_batch"]
    assert found["batch_size"].startswith("ValueError") and "`batch_size=6`" in found["batch_size"]
    assert "`batch_size=32`" in found["default_batch_size"]  # Keras' default for arrays
    assert "Keep the first 8 rows or add 2 rows" in found["default_batch_size"]
    assert "`x`'s training part (`validation_split=0.25`) with 18 rows" in found["validation_split"]
    assert "3 rows" in found["predict"] and "multiple of 4" in found["predict"]
    assert "Add 1 row." in found["predict"]
    assert "this ArrayDataset with 10 rows" in found["dataset"] and "its `batch_size=4`" in found["dataset"]
    assert found["generator"].startswith("ValueError: Batch 0 of the generator has 3 rows")
    assert found["train_on_batch"].startswith("ValueError: `x` has 3 rows")
    assert found["empty_predict"] == "ok: (0,)"
    assert "3 rows" in found["sharded_rows"] and "multiple of 2" in found["sharded_rows"]
