"""keras-tuner HyperModels: search spaces are real knobs, pins hold, a tiny sweep runs."""

import inspect

import keras
import numpy as np
import pytest

keras_tuner = pytest.importorskip("keras_tuner")

from test_case import only_under  # noqa: E402

from keras_lsrec import metrics, models, tuning  # noqa: E402
from keras_lsrec.data import synthetic  # noqa: E402

NAMES = ["din", "twin", "dare", "sam"]


@pytest.fixture(scope="module")
def data():
    return synthetic.generate(
        num_users=30, examples_per_user=4, max_len=80, num_items=50, num_categories=6, seed=2
    )


@pytest.mark.parametrize("name", NAMES + ["ifa", "sim", "eta", "sdim", "twinv2"])
def test_search_space_knobs_are_constructor_arguments(name):
    cls = models.get(name)
    arguments = set(inspect.signature(cls.__init__).parameters)
    model_knobs = set(cls.SEARCH_SPACE)
    assert model_knobs <= arguments, model_knobs - arguments
    assert {"learning_rate", "batch_size"} <= set(tuning.search_space(name))


@pytest.mark.parametrize("name", NAMES)
def test_build_samples_the_space_and_pins_fixed_knobs(name, data):
    fixed = {"mlp_units": (8,), "learning_rate": 0.003}
    hypermodel = tuning.hypermodel(name, data.schema, **fixed)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert isinstance(model, models.get(name))
    assert model.mlp_units == [8]
    assert hp.get("learning_rate") == 0.003
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.003)
    searched = set(tuning.search_space(name)) - set(fixed)
    assert searched <= set(hp.values)
    for knob, spec in models.get(name).SEARCH_SPACE.items():
        if knob not in fixed and spec[0] == "choice":
            allowed = [list(v) if isinstance(v, tuple) else v for v in spec[1]]
            assert getattr(model, knob) in allowed


def test_twinv2_sweeps_clustered_histories(data):
    clustered = data.clustered(max_cluster_size=5)
    hp = keras_tuner.HyperParameters()
    model = tuning.hypermodel("twinv2", clustered.schema, mlp_units=(8,)).build(hp)
    assert isinstance(model, models.TWINV2) and model.schema.cluster_sizes
    assert model.k in models.TWINV2.SEARCH_SPACE["k"][1] and "k" in hp.values
    model.fit(clustered.train.x, clustered.train.y, epochs=1, batch_size=64, verbose=0)


def test_candidate_set_models_compile_with_the_list_wise_loss():
    from keras_lsrec.losses import CandidateSetLoss
    from keras_lsrec.metrics import CandidateSetAUC

    sets = synthetic.generate(
        num_users=20,
        examples_per_user=2,
        max_len=80,
        num_items=50,
        num_categories=6,
        candidates=5,
        min_candidates=2,
        seed=2,
    )
    hp = keras_tuner.HyperParameters()
    hypermodel = tuning.hypermodel("ifa", sets.schema, mlp_units=(8,), embedding_dim=4)
    model = hypermodel.build(hp)
    assert isinstance(model, models.IFA) and isinstance(model.loss, CandidateSetLoss)
    history = model.fit(
        sets.train.x, sets.train.y, validation_data=(sets.validation.x, sets.validation.y), verbose=0
    )
    assert np.isfinite(history.history["val_auc"][0])
    assert sorted(history.history) == tuning.objective_names(hypermodel)  # known before any trial
    # The compiled AUC leaves missing candidates (-1) out (continuous scores: no ties).
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, (300, 5)).astype("float32")
    labels[:, 3:] = -1
    scores = (
        np.where(labels > 0, rng.random(labels.shape) + 0.3, rng.random(labels.shape)).astype("float32") / 1.3
    )
    scores[labels < 0] = 1.5  # whatever a model says about missing candidates must not count
    auc = CandidateSetAUC(num_thresholds=4000)
    auc.update_state(labels, scores)
    present = labels >= 0
    expected = metrics.auc(labels[present], scores[present])
    assert float(keras.ops.convert_to_numpy(auc.result())) == pytest.approx(expected, abs=2e-3)
    plain = keras.metrics.AUC(num_thresholds=4000)
    plain.update_state(np.maximum(labels, 0), scores)  # what counting missing candidates would give
    assert abs(float(keras.ops.convert_to_numpy(plain.result())) - expected) > 0.01


def test_unknown_fixed_knob_is_rejected(data):
    with pytest.raises(ValueError, match="attention_size"):
        tuning.hypermodel("dare", data.schema, attention_size=4)


@only_under("torch", why="keras-tuner's loop is backend-independent; the hypermodel builds on every backend")
def test_random_search_runs_and_returns_a_model(data, tmp_path):
    hypermodel = tuning.hypermodel(
        "dare", data.schema, mlp_units=(8,), attention_dim=4, representation_dim=4, batch_size=64
    )

    def search():
        """A 2-trial RandomSearch in the same project directory (resumed if present)."""
        tuner = keras_tuner.RandomSearch(
            hypermodel,
            objective=keras_tuner.Objective("val_auc", direction="max"),
            max_trials=2,
            seed=0,
            directory=str(tmp_path),
            project_name="dare",
            overwrite=False,
        )
        tuner.search(
            data.train.x,
            data.train.y,
            validation_data=(data.validation.x, data.validation.y),
            epochs=1,
            verbose=0,
        )
        return tuner

    tuner = search()
    trials = tuner.oracle.get_best_trials(2)
    assert len(trials) == 2 and all(np.isfinite(t.score) for t in trials)
    # What the trials report is what the hypermodel declared beforehand (DARE: auxiliary head included).
    assert sorted(trials[0].metrics.metrics) == tuning.objective_names(hypermodel)
    assert sorted(hypermodel.reported_metrics) == tuning.objective_names(hypermodel)
    best = tuner.get_best_models(1)[0]
    assert best.predict(data.test.x, verbose=0).shape == data.test.y.shape
    # Resuming the same project does not redo finished trials.
    again = search()
    assert len(again.oracle.trials) == 2


def test_objective_is_checked_against_the_compiled_metrics(data):
    hypermodel = tuning.hypermodel("din", data.schema, mlp_units=(8,))
    assert tuning.objective_names(hypermodel) == ["auc", "loss", "val_auc", "val_loss"]
    for good in ("val_auc", "loss", keras_tuner.Objective("val_auc", "max"), ["val_auc", "val_loss"]):
        tuning.check_objective(hypermodel, good)
    listed = r"\['auc', 'loss', 'val_auc', 'val_loss'\]"
    with pytest.raises(ValueError, match=rf"'val_acu' is not a metric .*{listed}\. Did you mean 'val_auc'\?"):
        tuning.check_objective(hypermodel, "val_acu")
    with pytest.raises(ValueError, match=r"'val_accuracy' is not a metric"):
        tuning.check_objective(hypermodel, [keras_tuner.Objective("val_auc", "max"), "val_accuracy"])
    with pytest.raises(ValueError, match=r"'val_auc' is not a metric .*without validation data"):
        tuning.check_objective(hypermodel, "val_auc", validation=False)
    renamed = tuning.hypermodel("din", data.schema, objective_metric="roc", mlp_units=(8,))
    with pytest.raises(ValueError, match=r"'val_auc' is not a metric .*'val_roc'"):
        tuning.check_objective(renamed, "val_auc")

    class Foreign(keras_tuner.HyperModel):  # metrics not declared: cannot be known before a trial
        def build(self, hp):
            raise AssertionError("not built by the check")

    assert tuning.objective_names(Foreign()) is None
    tuning.check_objective(Foreign(), "val_anything")


# --- pinned knobs: read by rule or refused, before any trial -------------------------------------


def test_a_model_made_for_clustered_histories_is_refused_on_raw_ones(data):
    with pytest.raises(ValueError, match=r"'twinv2' is made for histories clustered.*cluster_sizes=False"):
        tuning.hypermodel("twinv2", data.schema, mlp_units=(8,))
    tuning.hypermodel("twinv2", data.clustered(max_cluster_size=5).schema, mlp_units=(8,))


def test_a_schema_that_is_not_one_is_refused_by_name():
    """Issue 32: `hypermodel("din", "schema")` was accepted; every trial then failed."""
    with pytest.raises(ValueError, match=r"`schema` must be a keras_lsrec.data.SequenceSchema.*`schema='s'`"):
        tuning.hypermodel("din", "s")


def test_a_numeric_string_for_a_float_knob_is_the_number(data):
    # YAML 1.1 (PyYAML) reads `1e-3` and `1e-5`, without a dot, as strings.
    hypermodel = tuning.hypermodel("din", data.schema, mlp_units=(8,), learning_rate="1e-3", l2="1E-5")
    assert hypermodel.fixed["learning_rate"] == 0.001 and hypermodel.fixed["l2"] == 1e-5
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    assert hp.get("learning_rate") == 0.001 and hp.get("mlp_units") == "8"  # recorded, results show it
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.001)
    assert tuning.hypermodel("din", data.schema, learning_rate=1).fixed["learning_rate"] == 1.0


@pytest.mark.parametrize(
    "knob, value, message",
    [
        ("batch_size", 0, "`batch_size` must be a positive integer. Received: `batch_size=0`"),
        ("batch_size", "64", "`batch_size` must be a positive integer. Received: `batch_size='64'`"),
        ("batch_size", 64.0, "`batch_size` must be a positive integer"),
        (
            "learning_rate",
            0,
            "`learning_rate` must be a positive finite number. Received: `learning_rate=0.0`",
        ),
        ("learning_rate", "fast", "`learning_rate` must be a positive finite number"),
        ("learning_rate", "nan", "`learning_rate` must be a positive finite number"),
        ("learning_rate", float("inf"), "`learning_rate` must be a positive finite number"),
    ],
)
def test_bad_training_knobs_are_refused_naming_them(knob, value, message, data):
    with pytest.raises(ValueError) as info:
        tuning.hypermodel("din", data.schema, **{knob: value})
    assert message in str(info.value)


def test_the_pinned_batch_size_is_the_one_fit_uses(data, monkeypatch):
    hypermodel = tuning.hypermodel("din", data.schema, mlp_units=(8,), batch_size=7)
    hp = keras_tuner.HyperParameters()
    model = hypermodel.build(hp)
    seen = {}
    monkeypatch.setattr(model, "fit", lambda *args, **kwargs: seen.update(kwargs))
    hypermodel.fit(hp, model, data.train.x, data.train.y)
    assert seen["batch_size"] == 7 == hp.get("batch_size")


def test_check_knobs_refuses_what_the_model_refuses_before_any_trial(data):
    tuning.hypermodel("din", data.schema, mlp_units=(8,)).check_knobs()
    bad = tuning.hypermodel("din", data.schema, mlp_units=(0,))
    with pytest.raises(
        ValueError, match=r"refused by DIN: `mlp_units` must be .*Received: `mlp_units=\(0,\)`"
    ):
        bad.check_knobs()


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="keras.distribution runs on jax")
def test_the_distribution_survives_keras_tuners_clear_session(data):
    """keras-tuner calls `clear_session()` before each trial's build, which drops the global
    distribution: without the hypermodel setting it again, `sweep.py --mesh` ran unsharded."""
    distribution = keras.distribution.DataParallel()
    keras.distribution.set_distribution(distribution)
    try:
        hypermodel = tuning.hypermodel("din", data.schema, mlp_units=(8,))
        keras.backend.clear_session()  # as keras_tuner.Tuner._try_build does
        assert keras.distribution.distribution() is None
        hypermodel.build(keras_tuner.HyperParameters())
        assert keras.distribution.distribution() is distribution
    finally:
        keras.distribution.set_distribution(None)
