"""The `tower` choice every model takes (`"mlp"`, `"dcnv2"`, `"finalmlp"`), and
old configs without it. The towers' numbers are the layers' tests; the DCNv2
and FinalMLP models run the registry contract (tests/models/test_contract.py)."""

import keras
import numpy as np
import pytest
from test_case import small_batch, to_numpy

from keras_lsrec import layers, models
from keras_lsrec.models.wiring import TOWERS, make_tower

# The wiring is the same on every backend (the towers' numbers are checked per backend).
pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="backend-independent")

TOWER_LAYERS = {"mlp": layers.MLP, "dcnv2": layers.DCNv2Tower, "finalmlp": layers.FinalMLPTower}


@pytest.mark.parametrize("tower", TOWERS)
def test_a_model_scores_with_the_tower_it_is_given(tower, row_data):
    x, y = small_batch(row_data)
    model = models.DIN(row_data.schema, mlp_units=(8,), tower=tower)
    assert type(model.get_layer("tower")) is TOWER_LAYERS[tower]
    assert model.get_config()["tower"] == tower
    model.compile("adam", "binary_crossentropy")
    assert np.isfinite(model.train_on_batch(x, y))
    assert np.all((model.predict(x, verbose=0) > 0) & (model.predict(x, verbose=0) < 1))


def test_a_config_without_tower_loads_the_mlp_tower(row_data):
    """A `.keras` file saved before `tower` existed has no such key: it loads as before."""
    x, _ = small_batch(row_data)
    model = models.TWIN(row_data.schema, mlp_units=(8,))
    config = model.get_config()
    del config["tower"]
    old = models.TWIN.from_config(config)
    assert old.tower == "mlp" and type(old.get_layer("tower")) is layers.MLP
    old.set_weights(model.get_weights())
    np.testing.assert_allclose(to_numpy(old(x)), to_numpy(model(x)), atol=1e-6)


def test_the_tower_models_take_the_other_towers(row_data):
    """`DCNv2` and `FinalMLP` are a pooled history under their tower; another
    tower on the same input is a plain pooled-history baseline."""
    assert type(models.DCNv2(row_data.schema).get_layer("tower")) is layers.DCNv2Tower
    assert type(models.FinalMLP(row_data.schema).get_layer("tower")) is layers.FinalMLPTower
    baseline = models.DCNv2(row_data.schema, tower="mlp", num_cross_layers=1)
    assert type(baseline.get_layer("tower")) is layers.MLP


def test_the_tower_options_reach_the_tower(row_data):
    tower = models.DCNv2(row_data.schema, num_cross_layers=2, low_rank=4, structure="stacked").get_layer(
        "tower"
    )
    assert (tower.cross.num_layers, tower.cross.low_rank, tower.structure) == (2, 4, "stacked")
    tower = models.FinalMLP(row_data.schema, stream2_units=(16, 8), num_heads=2).get_layer("tower")
    assert tower.streams[1].hidden_units == (16, 8) and tower.fusion.num_heads == 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(tower="transformer"), "tower"),
        (dict(tower="finalmlp", mlp_units=(7,), options={"num_heads": 2}), "num_heads"),
    ],
)
def test_make_tower_refuses_bad_values(kwargs, match):
    arguments = {"mlp_units": (8,), "mlp_activation": "relu", "input_batch_norm": False, "dropout": 0.0}
    with pytest.raises(ValueError, match=match):
        make_tower(**{**arguments, "l2": 0.0, **kwargs})
