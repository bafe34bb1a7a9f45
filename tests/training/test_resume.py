"""Training resumes from a `.keras` file: compiled loss, metrics and optimizer state restored."""

import os

import keras
import numpy as np
import pytest

from keras_lsrec.losses import CandidateSetLoss
from keras_lsrec.metrics import CandidateSetAUC
from keras_lsrec.models import DARE, IFA


@pytest.mark.parametrize("candidates", [False, True], ids=["dare", "ifa"])
def test_a_saved_model_resumes_where_it_stopped(candidates, row_data, candidate_data, tmp_path):
    if candidates:
        data, model = candidate_data, IFA(candidate_data.schema, embedding_dim=4, mlp_units=(8,))
        model.compile(
            optimizer=keras.optimizers.Adam(0.01), loss=CandidateSetLoss(), metrics=[CandidateSetAUC()]
        )
    else:
        data, model = row_data, DARE(row_data.schema, mlp_units=(8,))
        model.compile(
            optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=[keras.metrics.AUC()]
        )
    x, y = data.train.x, data.train.y
    model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == int(
        keras.ops.convert_to_numpy(model.optimizer.iterations)
    )
    # The next epochs continue the same curve: same loss and metrics as the model that never stopped.
    expected = model.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0).history
    resumed = loaded.fit(x, y, epochs=2, batch_size=32, shuffle=False, verbose=0).history
    assert sorted(resumed) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(resumed[key], expected[key], rtol=1e-4, atol=1e-5)


def test_a_loaded_model_compiles_with_jit_compile_as_it_was_asked(row_data, tmp_path):
    """`jit_compile="auto"` is saved as "auto", not as this backend resolved it
    (XLA on jax), so the file resumes eagerly on torch; an explicit choice is kept."""
    for asked in ["auto", False]:
        model = DARE(row_data.schema, mlp_units=(8,))
        model.compile("adam", "binary_crossentropy", jit_compile=asked)
        assert model.get_compile_config()["jit_compile"] == asked
        path = os.path.join(tmp_path, f"{asked}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert loaded.get_compile_config()["jit_compile"] == asked
        assert loaded.jit_compile == model.jit_compile
