"""Shared by the serving tests: tiny synthetic data, small trained models, one DARE exported twice."""

import os

import keras
import pytest

from keras_lsrec import cli, serving
from keras_lsrec.data import synthetic
from keras_lsrec.models import DARE, DIN, HSTU, SAM, TWIN

MODELS = {
    "din": (DIN, dict(embedding_dim=4, attention_units=(8,))),
    "twin": (TWIN, dict(embedding_dim=4, k=5)),
    "dare": (DARE, dict(attention_dim=2, representation_dim=4, k=5)),
    "sam": (SAM, dict(embedding_dim=4, num_passes=2, enhance_steps=1)),
    # HSTU's request signature scores a whole candidate set in one pass (M-FALCON).
    "hstu": (HSTU, dict(embedding_dim=4, num_heads=1, key_dim=4)),
}


@pytest.fixture(scope="session")
def data():
    return synthetic.generate(
        num_users=40, examples_per_user=4, max_len=80, num_items=60, num_categories=8, seed=5
    )


@pytest.fixture(scope="session")
def train(data):
    """`train(name)`: a small model of `MODELS[name]` fitted for one epoch on `data`."""

    def train(name):
        cls, kwargs = MODELS[name]
        keras.utils.set_random_seed(1)
        model = cls(data.schema, mlp_units=(8,), **kwargs)
        model.compile(optimizer="adam", loss="binary_crossentropy")
        model.fit(data.train.x, data.train.y, batch_size=64, epochs=1, verbose=0)
        return model

    return train


# Every model exports under tensorflow (and every registered model's SavedModel
# is checked there by the model contract). From jax and torch the export saves
# the `.keras` file and builds it in a tensorflow subprocess, one mechanism for
# all models: DARE, with two tables per field and a top-k search, checks it.
EXPORTED = sorted(MODELS) if keras.backend.backend() == "tensorflow" else ["dare"]


@pytest.fixture(params=EXPORTED)
def model_name(request):
    """Each name of `EXPORTED` in turn."""
    return request.param


@pytest.fixture(scope="session")
def exported(train, tmp_path_factory):
    """`(model, base_dir, version_1_path, version_2_path)`: DARE exported by the API, then by the CLI."""
    root = tmp_path_factory.mktemp("saved_models")
    model = train("dare")
    base = str(root / "dare")
    first = serving.export(model, base)
    # The second version goes through the command line, from the .keras file.
    model_file = str(root / "dare.keras")
    model.save(model_file)
    assert cli.main(["export", model_file, "--base-dir", base]) == 0
    return model, base, first, os.path.join(base, "2")
