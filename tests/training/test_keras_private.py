"""The private Keras members of `keras_lsrec.training.keras_private`, checked
against the installed Keras; and the line between a model and its trainer."""

import inspect

import keras
import numpy as np

import keras_lsrec
from keras_lsrec.layers import EmbeddingTable
from keras_lsrec.models import SequenceModel
from keras_lsrec.training import Trainer, keras_private

TRAINING_METHODS = {
    "compile",
    "compile_from_config",
    "get_compile_config",
    "train_step",
    "test_step",
    "predict_step",
    "call",
    "compute_loss",
    "compute_metrics",
    "fit",
    "evaluate",
    "predict",
    "train_on_batch",
    "test_on_batch",
    "predict_on_batch",
}


def test_every_private_member_exists_and_means_what_the_module_says(row_data):
    model = keras_lsrec.models.get("din")(row_data.schema, mlp_units=(8,))
    model.compile(keras.optimizers.Adam(), "binary_crossentropy", table_min_rows=0)
    tracker = keras_private.loss_tracker(model)
    assert isinstance(tracker, keras.metrics.Mean) and tracker in model.metrics
    layers = list(keras_private.all_layers(model))
    assert model not in layers and set(model.layers) <= set(layers)
    tables = [layer for layer in layers if isinstance(layer, EmbeddingTable)]
    assert {t.field for t in tables} >= set(row_data.schema.fields)  # nested in FieldEmbedding
    built_for = keras_private.optimizer_variables_built_for(model.optimizer)
    assert model.table_training is not None
    assert {id(v) for v in built_for} == {id(v) for v in model.table_training.dense_variables}


def test_the_module_names_every_private_member_the_package_reads():
    """Outside `keras_private`, no module of keras_lsrec.training reads a
    private member of a Keras object (a `._x` on something not `self`)."""
    import pathlib
    import re

    root = pathlib.Path(keras_lsrec.__file__).parent / "training"
    pattern = re.compile(r"\b(model|optimizer|inner|opt|layer|variable|keras)\._[a-z]\w*")
    found = {
        f"{path.name}: {m.group(0)}"
        for path in root.rglob("*.py")
        if path.name != "keras_private.py"
        for m in pattern.finditer(path.read_text())
    }
    assert not found, sorted(found)


def test_a_model_is_its_graph_and_config_the_trainer_trains_it():
    assert issubclass(SequenceModel, Trainer)
    overridden = TRAINING_METHODS & set(vars(SequenceModel))
    assert not overridden, overridden
    for name in keras_lsrec.models.names():
        cls = keras_lsrec.models.get(name)
        assert not TRAINING_METHODS & set(vars(cls)), name
    # The trainer's hooks are Keras' documented ones (same signatures).
    for name in ("compute_loss", "compute_metrics", "train_step"):
        assert name in vars(Trainer)
    assert "training" in inspect.signature(Trainer.compute_loss).parameters
    assert np.all([callable(getattr(Trainer, n)) for n in TRAINING_METHODS])
