"""SequenceModel: early input validation at every entry point, recorded arguments."""

import numpy as np
import pytest
from test_case import TestCase, small_batch

from keras_lsrec.models import DIN, TWIN

SMALL = dict(mlp_units=(8,))


def corrupt(x, key, value):
    bad = dict(x)
    bad[key] = value
    return bad


class TestSequenceModel(TestCase):
    @pytest.mark.parametrize(
        "mutate, match",
        [
            (
                lambda x, s: corrupt(x, "target_item", x["target_item"] + s.vocab_sizes["item"]),
                "target_item.*outside the vocabulary",
            ),
            (
                lambda x, s: corrupt(x, "history_category", x["history_category"] - 100),
                "history_category.*negative",
            ),
            (
                lambda x, s: corrupt(x, "history_item", x["history_item"].astype("float32")),
                "history_item.*integer",
            ),
            (
                lambda x, s: {
                    k: np.pad(v, ((0, 0), (5, 0))) if k.startswith("history_") else v for k, v in x.items()
                },
                "history_item.*max_len",
            ),
            (lambda x, s: {k: v for k, v in x.items() if k != "history_category"}, "history_category"),
            (lambda x, s: corrupt(x, "target_item", x["target_item"][:, None]), "target_item.*rank"),
            (lambda x, s: corrupt(x, "user_id", x["target_item"]), "user_id"),
        ],
        ids=["oov", "negative", "float", "too_long", "missing", "rank", "unknown"],
    )
    def test_bad_input_is_rejected_with_the_field_name(self, mutate, match, row_data):
        model = TWIN(row_data.schema, embedding_dim=2, k=3, **SMALL)
        model.compile(optimizer="adam", loss="binary_crossentropy")
        x, y = small_batch(row_data, 4)
        bad = mutate(x, row_data.schema)
        with pytest.raises(ValueError, match=match):
            row_data.schema.validate(bad)
        entry_points = (
            lambda v: model.predict(v, verbose=0),
            lambda v: model.fit(v, y, verbose=0),
            lambda v: model.evaluate(v, y, verbose=0),
            model.predict_on_batch,
            lambda v: model.train_on_batch(v, y),
            lambda v: model.test_on_batch(v, y),
            lambda v: model.fit(x, y, validation_data=(v, y), verbose=0),
        )
        for call in entry_points:
            with pytest.raises(ValueError, match=match):
                call(bad)

    def test_config_is_the_recorded_constructor_arguments(self, row_data):
        model = DIN(row_data.schema, embedding_dim=6, attention_units=(5, 3), name="din_6")
        config = model.get_config()
        assert config["embedding_dim"] == 6 and config["attention_units"] == [5, 3]
        assert config["history_window"] is None and config["name"] == "din_6"
        assert model.embedding_dim == 6  # every argument is also an attribute
        assert DIN.from_config(config).get_config() == config

    def test_a_subclass_records_its_own_arguments_and_what_it_passes_on(self, row_data):
        class SmallDIN(DIN):
            def __init__(self, schema, width=3, **kwargs):
                super().__init__(schema, embedding_dim=width, mlp_units=(width,), **kwargs)

        model = SmallDIN(row_data.schema, width=5, attention_units=(4,), name="small")
        config = model.get_config()
        assert config["width"] == 5 and config["attention_units"] == [4] and "embedding_dim" not in config
        self.assert_same_model(model, SmallDIN.from_config(config), row_data)

    def test_a_pass_through_subclass_keeps_the_parent_arguments(self, row_data):
        class MyTWIN(TWIN):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)

        model = MyTWIN(row_data.schema, 4, k=3, num_heads=2)
        config = model.get_config()
        assert (config["embedding_dim"], config["k"], config["num_heads"]) == (4, 3, 2)
        self.assert_same_model(model, MyTWIN.from_config(config), row_data)

    def test_a_subclass_with_defaults_only(self, row_data):
        schema = row_data.schema

        class FixedTWIN(TWIN):
            def __init__(self, schema=schema, k=4, **kwargs):
                super().__init__(schema, k=k, **kwargs)

        model = FixedTWIN()
        assert model.get_config()["k"] == 4
        self.assert_same_model(model, FixedTWIN.from_config(model.get_config()), row_data)

    @staticmethod
    def assert_same_model(model, clone, data):
        assert clone.get_config() == model.get_config()
        clone.set_weights(model.get_weights())
        x, _ = small_batch(data, 4)
        np.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)

    def test_positional_and_missing_arguments(self, row_data):
        assert DIN(row_data.schema, 6).get_config()["embedding_dim"] == 6
        with pytest.raises(TypeError, match="DIN"):
            DIN()
        with pytest.raises(TypeError, match="SequenceSchema"):
            DIN({"item": 10})
        with pytest.raises(TypeError, match="unexpected keyword.*dtype"):
            DIN(row_data.schema, dtype="float16")


def test_a_plain_import_is_enough_to_load_a_saved_model(row_data, tmp_path):
    """`.keras` files load with `import keras_lsrec` and nothing else: no
    `custom_objects`, no import of the model's module (a fresh process)."""
    import subprocess
    import sys

    path = str(tmp_path / "twin.keras")
    TWIN(row_data.schema, **SMALL).save(path)
    code = f"import keras, keras_lsrec; print(type(keras.saving.load_model({path!r})).__name__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("TWIN"), proc.stderr[-2000:]
