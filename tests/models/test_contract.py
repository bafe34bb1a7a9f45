"""The model contract, driven by the registry: every model `keras_lsrec.models.get`
resolves is tested here with its defaults, without a test file of its own."""

import inspect

import keras
import numpy as np
import pytest
from test_case import TestCase, forward, set_batch_norm_statistics, small_batch, to_numpy

import keras_lsrec
from keras_lsrec.data import SequenceSchema
from keras_lsrec.layers import EmbeddingTable
from keras_lsrec.losses import CandidateSetLoss
from keras_lsrec.models import base
from keras_lsrec.models.wiring import TOWER_DEFAULTS, TOWERS
from keras_lsrec.training import keras_private

NAMES = keras_lsrec.models.names()
# One table per field (`din`), DARE's two, a candidate set (`ifa`), DIEN's auxiliary loss reading
# the tables a second time, HSTU's blocks: the routes tables are read by, checked on every backend.
TABLE_ROUTES = ("din", "dare", "ifa", "dien", "hstu")


def batch_for(cls, row_data, candidate_data):
    """A batch in the first form the model takes, and the loss that trains it."""
    if cls.INPUT_FORMS[0] == base.CANDIDATES:
        x, y = small_batch(candidate_data)
        return candidate_data.schema, x, y, CandidateSetLoss()
    x, y = small_batch(row_data)
    return row_data.schema, x, y, "binary_crossentropy"


@pytest.mark.parametrize("name", NAMES)
class TestModelContract(TestCase):
    def test_contract(self, name, row_data, candidate_data):
        cls = keras_lsrec.models.get(name)
        schema, x, y, loss = batch_for(cls, row_data, candidate_data)
        self.run_model_test(cls, {}, schema, x, y, loss=loss)

    def test_is_resolved_by_name_and_exported(self, name):
        cls = keras_lsrec.models.get(name.upper())
        assert issubclass(cls, keras_lsrec.models.SequenceModel)
        assert getattr(keras_lsrec.models, cls.__name__) is cls
        assert cls.__doc__ and "Args:" in cls.__doc__

    def test_takes_the_tower_arguments_with_the_shared_defaults(self, name):
        """The shared defaults, but where the model declares its own
        (`OWN_TOWER_DEFAULTS`: a model named after a tower defaults to it)."""
        cls = keras_lsrec.models.get(name)
        parameters = inspect.signature(cls.__init__).parameters
        assert set(cls.OWN_TOWER_DEFAULTS) <= set(TOWER_DEFAULTS)
        if name in TOWERS:
            assert cls.OWN_TOWER_DEFAULTS.get("tower") == name
        for argument, default in {**TOWER_DEFAULTS, **cls.OWN_TOWER_DEFAULTS}.items():
            assert argument in parameters, argument
            assert parameters[argument].default == default, argument

    def test_refuses_a_schema_of_another_form(self, name):
        cls = keras_lsrec.models.get(name)
        other = SequenceSchema(
            {"item": 10, "category": 3}, 5, candidates=None if base.CANDIDATES in cls.INPUT_FORMS else 4
        )
        form = base.CANDIDATES if other.has_candidates else base.ROW
        if form in cls.INPUT_FORMS:
            pytest.skip(f"{cls.__name__} takes both forms")
        with pytest.raises(ValueError, match="candidates"):
            cls(other)

    def test_refuses_a_misspelled_argument(self, name, row_data, candidate_data):
        cls = keras_lsrec.models.get(name)
        schema = batch_for(cls, row_data, candidate_data)[0]
        with pytest.raises(TypeError, match="embeding_dim"):
            cls(schema, embeding_dim=8)

    def test_row_sparse_tables_train_as_the_dense_route(self, name, row_data, candidate_data):
        """Every table the model looks up trains row-sparsely, and the result
        equals the dense route: one Adam step (fresh moments), three SGD steps.
        (Every model on torch; on tensorflow and jax, CI's longer lanes, the
        models whose tables are read by distinct routes.)"""
        if keras.backend.backend() != "torch" and name not in TABLE_ROUTES:
            pytest.skip("CI time: this model's tables are checked under torch")
        cls = keras_lsrec.models.get(name)
        schema, x, y, loss = batch_for(cls, row_data, candidate_data)
        for optimizer, steps in [
            (lambda: keras.optimizers.Adam(0.01), 1),
            (lambda: keras.optimizers.SGD(0.5), 3),
        ]:
            weights = []
            for route in ["auto", "dense"]:
                keras.utils.set_random_seed(0)
                model = cls(schema, mlp_units=(8,))
                model.compile(optimizer(), loss, table_optimizer=route, table_min_rows=0)
                tables = [t for t in keras_private.all_layers(model) if isinstance(t, EmbeddingTable)]
                assert model.table_training is not None
                assert (len(model.table_training.tables) == len(tables) > 0) is (route == "auto")
                for _ in range(steps):
                    model.train_on_batch(x, y)
                weights.append([to_numpy(v) for v in model.weights])
            for a, b in zip(*weights, strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    def test_any_history_length_within_max_len(self, name, row_data, candidate_data):
        cls = keras_lsrec.models.get(name)
        schema, x, _, _ = batch_for(cls, row_data, candidate_data)
        model = cls(schema)
        for length in (3, 40, 90):
            short = {k: (v[:4, -length:] if k.startswith("history_") else v[:4]) for k, v in x.items()}
            assert (
                model.predict(short, verbose=0).shape
                == model.predict({k: v[:4] for k, v in x.items()}, verbose=0).shape
            )


@pytest.mark.parametrize("name", NAMES)
class TestRequestForm:
    """Every single-target model scores a user's candidate set with the history
    read once, equal to scoring each candidate as a row."""

    def test_equals_the_row_form(self, name, row_data, candidate_data):
        cls = keras_lsrec.models.get(name)
        if base.ROW not in cls.INPUT_FORMS:
            pytest.skip(f"{cls.__name__} takes candidate sets only")
        assert base.CANDIDATES in cls.INPUT_FORMS, "a single-target model must also take candidate sets"
        model = cls(row_data.schema, mlp_units=(8,))
        set_batch_norm_statistics(model)  # the inference path reads them
        x, y = small_batch(candidate_data)
        present = y >= 0
        assert (~present).any() and present.all(axis=1).any()  # missing candidates, and full sets
        rows = {
            k: (v[present] if k.startswith("target_") else v[np.nonzero(present)[0]]) for k, v in x.items()
        }
        expected = forward(model, rows)
        request = model.request_form()  # "variable": any C per batch, as served
        assert request.schema.candidates == "variable" and type(request) is cls
        scores = request.predict(x, verbose=0)
        assert scores.shape == y.shape
        np.testing.assert_allclose(scores[present], expected, atol=1e-5)
        np.testing.assert_array_equal(scores[~present], 0.0)
        assert model.request_form(x["target_item"].shape[1]).schema.candidates == 6  # a fixed C builds too
        # The documented equivalent: the class on the candidate schema takes the row model's weights.
        same = cls(row_data.schema.replace(candidates="variable"), mlp_units=(8,))
        same.set_weights(model.get_weights())
        np.testing.assert_allclose(forward(same, x), scores, atol=1e-6)

    def test_trains_on_candidate_sets_and_round_trips(self, name, row_data, candidate_data, tmp_path):
        cls = keras_lsrec.models.get(name)
        if base.ROW not in cls.INPUT_FORMS:
            pytest.skip(f"{cls.__name__} takes candidate sets only")
        x, y = small_batch(candidate_data)
        # No input BatchNorm (TransAct's default): on one 16-request batch its statistics make
        # three Adam steps non-monotone; the descent is what this test checks.
        model = cls(row_data.schema, mlp_units=(8,), input_batch_norm=False).request_form()
        model.compile(
            keras.optimizers.Adam(0.01), CandidateSetLoss(), table_optimizer="auto", table_min_rows=0
        )
        losses = [float(model.train_on_batch(x, y)) for _ in range(3)]
        assert np.isfinite(losses).all() and losses[-1] < losses[0], losses
        path = str(tmp_path / "request.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
        np.testing.assert_allclose(forward(reloaded, x), forward(model, x), atol=1e-6)


def test_names_lists_every_model():
    assert NAMES == sorted(NAMES) and {"din", "twin", "dare", "sam", "ifa"} <= set(NAMES)
    with pytest.raises(ValueError, match="Unknown model"):
        keras_lsrec.models.get("no_such_model")


def test_a_new_registered_model_is_enrolled(monkeypatch, row_data):
    """Registering a class is all it takes: `names()` lists it, so every test
    above runs on it; a config that loses an argument fails the contract."""

    class Forgetful(keras_lsrec.models.TWIN):
        def get_config(self):
            config = super().get_config()
            config.pop("k")
            return config

    monkeypatch.setitem(keras_lsrec.models._MODELS, "forgetful", Forgetful)
    assert "forgetful" in keras_lsrec.models.names()
    x, y = small_batch(row_data)
    with pytest.raises(AssertionError, match="config lacks \\['k'\\]"):
        TestCase().run_model_test(Forgetful, {}, row_data.schema, x, y, run_mixed_precision=False)
    np.testing.assert_equal(keras_lsrec.models.get("forgetful"), Forgetful)
