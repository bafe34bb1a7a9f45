"""Models: round trips, padding, masks, mixed precision, bad input, DARE's properties."""

import keras
import numpy as np
import pytest
from test_case import (
    assert_independent_initial_weights,
    right_pad_batch,
    run_model_test,
    to_numpy,
    variable_gradients,
)

import keras_lsrec
from keras_lsrec.data import SequenceSchema, synthetic
from keras_lsrec.models import DARE, DIN, SAM, TWIN
from keras_lsrec.models.base import dot_scores, split_inputs
from keras_lsrec.models.dare import query_scale

SMALL = dict(mlp_units=(8,))
CASES = {
    "din": (DIN, dict(embedding_dim=4, attention_units=(8,), **SMALL)),
    "din_dot": (DIN, dict(embedding_dim=4, scorer="dot", **SMALL)),
    "din_window": (DIN, dict(embedding_dim=4, history_window=20, attention_units=(6,), **SMALL)),
    "din_dice_sigmoid": (
        DIN,
        dict(embedding_dim=4, normalizer="sigmoid", mlp_activation="dice", target_representation=False, mlp_units=(8,)),
    ),
    "sam": (SAM, dict(embedding_dim=4, num_passes=2, enhance_steps=2, **SMALL)),
    "sam_softmax_unfed": (
        SAM,
        dict(embedding_dim=4, normalizer="softmax", feed_memory=False, enhance_steps=0, attention_units=(6, 3), **SMALL),
    ),
    "twin": (TWIN, dict(embedding_dim=4, k=5, num_heads=2, **SMALL)),
    "dare": (DARE, dict(attention_dim=2, representation_dim=4, k=5, **SMALL)),
    "dare_joint_no_aux": (
        DARE,
        dict(attention_dim=3, representation_dim=5, k=50, score_scaling="joint", auxiliary_loss_weight=0, **SMALL),
    ),
}


@pytest.fixture(scope="module")
def data():
    return synthetic.generate(
        num_users=24, examples_per_user=4, max_len=90, num_items=60, num_categories=8, seed=3
    )


def small_batch(data, size=16):
    x = {k: v[:size] for k, v in data.train.x.items()}
    return x, data.train.y[:size]


@pytest.mark.parametrize("case", sorted(CASES))
def test_model_round_trips(case, data, tmp_path):
    cls, kwargs = CASES[case]
    x, y = small_batch(data)
    run_model_test(cls(data.schema, **kwargs), x, y, tmp_path)


@pytest.mark.parametrize(
    "case", ["din", "din_dot", "din_dice_sigmoid", "twin", "dare", "dare_joint_no_aux", "sam", "sam_softmax_unfed"]
)
def test_model_same_on_left_and_right_padding(case, data):
    cls, kwargs = CASES[case]
    model = cls(data.schema, **kwargs)
    x, _ = small_batch(data)
    left = model.predict(x, verbose=0)
    right = model.predict(right_pad_batch(x), verbose=0)
    np.testing.assert_allclose(right, left, atol=1e-5)
    # Extra left padding (what a client padding to a fixed length sends to the
    # SavedModel, which takes any length) changes nothing in the graph; the
    # Python API's validation refuses histories longer than max_len.
    longer = {k: (np.pad(v, ((0, 0), (7, 0))) if k.startswith("history_") else v) for k, v in x.items()}
    np.testing.assert_allclose(to_numpy(model(longer, training=False)), left, atol=1e-5)
    with pytest.raises(ValueError, match="max_len"):
        model.predict_on_batch(longer)


@pytest.mark.parametrize("case", sorted(CASES))
def test_model_all_padding_history_is_finite(case, data):
    cls, kwargs = CASES[case]
    model = cls(data.schema, **kwargs)
    x, _ = small_batch(data, 4)
    x = {k: (np.zeros_like(v) if k.startswith("history_") else v) for k, v in x.items()}
    prediction = model.predict(x, verbose=0)
    assert np.all(np.isfinite(prediction))


def test_models_accept_any_history_length(data):
    model = DARE(data.schema, attention_dim=2, representation_dim=2, k=8, **SMALL)
    x, _ = small_batch(data, 4)
    for length in (3, 40, 90):
        short = {k: (v[:, -length:] if k.startswith("history_") else v) for k, v in x.items()}
        assert model.predict(short, verbose=0).shape == (4,)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("case", ["din", "twin", "dare", "sam"])
def test_models_train_under_mixed_precision(policy, case, data):
    keras.config.set_dtype_policy(policy)
    cls, kwargs = CASES[case]
    model = cls(data.schema, **kwargs)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = small_batch(data)
    x = {k: v.copy() for k, v in x.items()}
    x["history_item"][0] = 0  # one all-padding history
    x["history_category"][0] = 0
    x["history_time"][0] = 0
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    prediction = model.predict(x, verbose=0)
    assert prediction.dtype == np.float32 and np.all(np.isfinite(prediction))


# ------------------------------------------------------------------ bad input
def corrupt(x, key, value):
    bad = dict(x)
    bad[key] = value
    return bad


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda x, s: corrupt(x, "target_item", x["target_item"] + s.vocab_sizes["item"]), "target_item.*outside the vocabulary"),
        (lambda x, s: corrupt(x, "history_category", x["history_category"] - 100), "history_category.*negative"),
        (lambda x, s: corrupt(x, "history_item", x["history_item"].astype("float32")), "history_item.*integer"),
        (lambda x, s: {k: np.pad(v, ((0, 0), (5, 0))) if k.startswith("history_") else v for k, v in x.items()}, "history_item.*max_len"),
        (lambda x, s: {k: v for k, v in x.items() if k != "history_category"}, "history_category"),
        (lambda x, s: corrupt(x, "target_item", x["target_item"][:, None]), "target_item.*rank"),
        (lambda x, s: corrupt(x, "user_id", x["target_item"]), "user_id"),
    ],
    ids=["oov", "negative", "float", "too_long", "missing", "rank", "unknown"],
)
def test_bad_input_is_rejected_with_the_field_name(mutate, match, data):
    model = TWIN(data.schema, embedding_dim=2, k=3, **SMALL)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = small_batch(data, 4)
    bad = mutate(x, data.schema)
    with pytest.raises(ValueError, match=match):
        data.schema.validate(bad)
    with pytest.raises(ValueError, match=match):
        model.predict(bad, verbose=0)
    with pytest.raises(ValueError, match=match):
        model.fit(bad, y, verbose=0)
    for call in (model.predict_on_batch, lambda v: model.train_on_batch(v, y), lambda v: model.test_on_batch(v, y)):
        with pytest.raises(ValueError, match=match):
            call(bad)


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda s: DARE(s, k=0), "`k`"),
        (lambda s: DARE(s, attention_dim=0), "attention_dim"),
        (lambda s: DARE(s, score_scaling="sum"), "score_scaling"),
        (lambda s: DARE(s, auxiliary_loss_weight=-1), "auxiliary_loss_weight"),
        (lambda s: DIN(s, history_window=0), "history_window"),
        (lambda s: TWIN(s, num_heads=0), "num_heads"),
        (lambda s: SAM(s, num_passes=0), "num_passes"),
        (lambda s: SAM(s, enhance_steps=-2), "enhance_steps"),
        (lambda s: TWIN(SequenceSchema({"item": 5}, 4, candidates=3)), "candidates"),
    ],
)
def test_bad_hyperparameters_are_rejected(build, match, data):
    with pytest.raises(ValueError, match=match):
        build(data.schema)


def test_get_returns_the_class():
    assert keras_lsrec.models.get("dare") is DARE
    assert keras_lsrec.models.get("DIN") is DIN
    assert keras_lsrec.models.get("sam") is SAM
    with pytest.raises(ValueError, match="Unknown model"):
        keras_lsrec.models.get("dien")


# ------------------------------------------------------------------ DARE
def attention_probe(model, x):
    """Runs `model`'s own embedding, search and attention layers eagerly on
    `x` and returns a function giving `(attention weights, retrieved
    representations)`, the two quantities DARE decouples."""
    schema = model.schema
    x = {k: keras.ops.convert_to_tensor(v) for k, v in x.items()}
    embedding = model.get_layer("embedding")

    def probe():
        target_ids, history_ids, mask = split_inputs(x, schema)
        if isinstance(model, DARE):
            target_att, _ = embedding(target_ids)
            history_att, history_rep = embedding(history_ids)
            scale = query_scale(schema, model.attention_dim, model.score_scaling)
            query = target_att * keras.ops.convert_to_tensor(scale)
        else:
            query = embedding(target_ids)
            history_att = history_rep = embedding(history_ids)
        (keys, values), retrieved_mask = model.get_layer("search")(
            dot_scores(query, history_att), (history_att, history_rep), mask=mask
        )
        _, weights = model.get_layer("attention")(
            query, keys, values, mask=retrieved_mask, return_weights=True
        )
        return weights, values

    return probe


def test_dare_gradients_are_decoupled(data):
    """Logits reach only the attention table; the representation only E_rep."""
    model = DARE(data.schema, attention_dim=3, representation_dim=4, k=6, **SMALL)
    x, _ = small_batch(data, 8)
    probe, variables = attention_probe(model, x), model.trainable_variables
    rng = np.random.default_rng(0)
    c_w = keras.ops.convert_to_tensor(rng.normal(size=(8, 6)).astype("float32"))
    c_r = keras.ops.convert_to_tensor(rng.normal(size=(8, 6, 12)).astype("float32"))

    from_logits = variable_gradients(probe, variables, lambda out: keras.ops.sum(out[0] * c_w))
    from_rep = variable_gradients(probe, variables, lambda out: keras.ops.sum(out[1] * c_r))
    att = [p for p in from_logits if "/attention/" in p]
    rep = [p for p in from_logits if "/representation/" in p]
    assert len(att) == len(rep) == 3  # item, category, time; nothing shared
    assert all(from_logits[p] > 0 for p in att)
    assert all(from_logits[p] == 0 for p in from_logits if p not in att)
    assert all(from_rep[p] > 0 for p in rep)
    assert all(from_rep[p] == 0 for p in from_rep if p not in rep)


def test_twin_shares_one_table_between_logits_and_representation(data):
    """The contrast DARE fixes: in TWIN the logits' gradient reaches the table
    that also carries the representation."""
    model = TWIN(data.schema, embedding_dim=4, k=6, **SMALL)
    x, _ = small_batch(data, 8)
    probe, variables = attention_probe(model, x), model.trainable_variables
    weights = keras.ops.convert_to_tensor(np.arange(6, dtype="float32"))
    grads = variable_gradients(probe, variables, lambda out: keras.ops.sum(out[0] * weights))
    grads_rep = variable_gradients(probe, variables, lambda out: keras.ops.sum(out[1]))
    item_table = [p for p in grads if "item_embedding" in p][0]
    assert grads[item_table] > 0 and grads_rep[item_table] > 0


def test_dare_training_loss_adds_the_auxiliary_term(data):
    weight = 0.7
    model = DARE(data.schema, attention_dim=2, representation_dim=3, k=4, auxiliary_loss_weight=weight, **SMALL)
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = small_batch(data, 12)
    main = to_numpy(model(x, training=True))
    _, aux = to_numpy(model._auxiliary.graph(x, training=True))
    loss = to_numpy(model.compute_loss(x, y, model(x, training=True), training=True))

    def bce(p):
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))

    np.testing.assert_allclose(loss, bce(main) + weight * bce(aux), rtol=1e-4)
    # Inference ignores the auxiliary head.
    np.testing.assert_allclose(
        model.predict(x, verbose=0), to_numpy(model(x, training=False)), atol=1e-6
    )
    # Training moves the auxiliary tower.
    aux_weights = [v for v in model.trainable_variables if "auxiliary_tower" in v.path]
    before = [to_numpy(v).copy() for v in aux_weights]
    model.fit(x, y, epochs=1, batch_size=12, verbose=0)
    assert aux_weights and any(not np.allclose(b, to_numpy(v)) for b, v in zip(before, aux_weights))


def test_dare_without_auxiliary_has_no_auxiliary_tower(data):
    model = DARE(data.schema, auxiliary_loss_weight=0, **SMALL)
    assert model._auxiliary is None
    assert not [v for v in model.weights if "auxiliary" in v.path]


@pytest.mark.parametrize("case", ["din", "dare"])
def test_first_adam_step_moves_every_touched_embedding_entry_by_the_learning_rate(case, data):
    """Adam's first step is `-lr * g / (|g| + eps)`: +-lr for every entry with
    a gradient, however many times its id occurs in the batch. (tensorflow's
    per-lookup sparse gradients made Keras' Adam move repeated ids by less;
    `SequenceModel.compile` hands the optimizer dense gradients.)"""
    cls, kwargs = CASES[case]
    model = cls(data.schema, **kwargs)
    lr = 0.01
    model.compile(optimizer=keras.optimizers.Adam(lr, epsilon=1e-12), loss="binary_crossentropy")
    x, y = small_batch(data)
    assert np.bincount(x["history_category"].ravel())[1:].max() > 1  # ids repeat in the batch
    tables = [v for v in model.trainable_weights if "embedding" in v.path]
    before = [to_numpy(v).copy() for v in tables]
    model.train_on_batch(x, y)
    for b, v in zip(before, tables, strict=True):
        step = np.abs(to_numpy(v) - b)
        moved = step[step > 0]
        # (entries whose gradient is within ~100x of eps move slightly less)
        assert moved.size and moved.max() < 1.001 * lr and moved.min() > 0.95 * lr, (v.path, moved.min())


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_two_weights_start_from_the_same_random_draws(case, data):
    cls, kwargs = CASES[case]
    assert_independent_initial_weights(cls(data.schema, **kwargs))
