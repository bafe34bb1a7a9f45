"""Row-sparse table training (keras_lsrec.training.tables) against a numpy
reference: touched rows exact, untouched rows and their slots bit-identical,
the gradients of a repeated id summed; routing; saving; mixed precision."""

import os
import warnings

import keras
import numpy as np
import pytest
from keras import ops
from test_case import only_under, small_batch, to_numpy

from keras_lsrec.data import SequenceSchema
from keras_lsrec.layers import FieldEmbedding
from keras_lsrec.metrics import evaluate
from keras_lsrec.models import DARE, DIN, SequenceModel
from keras_lsrec.training import RowAdagrad, RowAdam, RowSGD

V, L, D, B = 40, 6, 3, 5
DENSE_LR = 0.05


class SumModel(SequenceModel):
    """`p = sigmoid(w_h . sum_l E[h_l] + w_t . E[t])`: a model whose table
    gradient has a closed form (`reference_step`)."""

    def __init__(self, schema, regularizer=None):
        inputs = schema.inputs()
        embedding = FieldEmbedding(
            {"item": schema.vocab_sizes["item"]}, D, embeddings_regularizer=regularizer, name="embedding"
        )
        history = ops.sum(embedding({"item": inputs["history_item"]}), axis=1)
        target = embedding({"item": inputs["target_item"]})
        kernel = keras.initializers.RandomNormal(seed=1)
        logit = keras.layers.Dense(1, use_bias=False, kernel_initializer=kernel, name="w")(
            ops.concatenate([history, target], -1)
        )
        super().__init__(schema=schema, inputs=inputs, outputs=ops.sigmoid(ops.squeeze(logit, -1)))


def batches():
    """Two batches: ids repeat within a row and across rows; left and right
    padding and an all-padding history; the second batch leaves rows of the first."""
    rng = np.random.default_rng(0)
    first = rng.integers(1, 15, size=(B, L))
    first[0, :3] = 0  # left padding
    first[1, -2:] = 0  # right padding
    first[2] = 0  # all padding
    first[3] = 7  # one id six times
    second = rng.integers(10, 25, size=(B, L))
    targets = [np.array([7, 3, 3, 14, 1]), np.array([11, 20, 7, 24, 24])]
    labels = [np.array([1, 0, 1, 1, 0], "float32"), np.array([0, 1, 1, 0, 1], "float32")]
    return [
        ({"history_item": h.astype("int32"), "target_item": t.astype("int32")}, y)
        for h, t, y in zip([first, second], targets, labels, strict=True)
    ]


def numpy_rule(rule, table, slots, grad, touched, step):
    """One numpy step of `rule` on the rows in `touched`; other rows untouched."""
    table, slots = table.copy(), [s.copy() for s in slots]
    g = grad[touched]
    if isinstance(rule, RowSGD):
        table[touched] -= rule.learning_rate * g
    elif isinstance(rule, RowAdagrad):
        slots[0][touched] += g**2
        table[touched] -= rule.learning_rate * g / np.sqrt(slots[0][touched] + rule.epsilon)
    else:
        m, v = slots
        m[touched] += (g - m[touched]) * (1 - rule.beta_1)
        v[touched] += (g**2 - v[touched]) * (1 - rule.beta_2)
        alpha = rule.learning_rate * np.sqrt(1 - rule.beta_2**step) / (1 - rule.beta_1**step)
        table[touched] -= alpha * m[touched] / (np.sqrt(v[touched]) + rule.epsilon)
    return table, slots


def reference_step(table, w, x, y):
    """Gradients of the mean BCE of `SumModel` w.r.t. the table (every
    lookup of an id adds to its row) and the dense kernel."""
    h, t = x["history_item"], x["target_item"]
    features = np.concatenate([table[h].sum(1), table[t]], -1)
    p = 1 / (1 + np.exp(-(features @ w)[:, 0]))
    dlogit = (p - y) / len(y)
    grad = np.zeros_like(table)
    for b in range(len(y)):
        np.add.at(grad, h[b], dlogit[b] * w[:D, 0])
        grad[t[b]] += dlogit[b] * w[D:, 0]
    return grad, features.T @ dlogit[:, None]


@pytest.mark.parametrize(
    "rule",
    [RowSGD(0.3), RowAdagrad(0.3, initial_accumulator_value=0.2), RowAdam(0.02, beta_1=0.8, beta_2=0.9)],
    ids=["sgd", "adagrad", "adam"],
)
def test_two_steps_match_the_numpy_reference(rule):
    schema = SequenceSchema({"item": V}, L)
    model = SumModel(schema)
    model.compile(
        optimizer=keras.optimizers.SGD(DENSE_LR),
        loss="binary_crossentropy",
        table_optimizer=rule,
        table_min_rows=0,
    )
    tables = model.table_training
    assert tables.active and [t.field for t in tables.tables] == ["item"]
    table, w = to_numpy(tables.tables[0].embeddings).copy(), to_numpy(model.get_layer("w").kernel).copy()
    slots = [to_numpy(s).copy() for s in tables.slots[0]]
    np.testing.assert_allclose([s.flat[0] for s in slots], list(rule.SLOTS.values()), rtol=1e-7)
    for step, (x, y) in enumerate(batches(), start=1):
        grad, grad_w = reference_step(table, w, x, y)
        touched = np.unique(np.concatenate([[0], x["history_item"].ravel(), x["target_item"]]))
        table, slots = numpy_rule(rule, table, slots, grad, touched, step)
        w = w - DENSE_LR * grad_w
        model.train_on_batch(x, y)
        untouched = np.setdiff1d(np.arange(V), touched)
        got = to_numpy(tables.tables[0].embeddings)
        np.testing.assert_allclose(got[touched], table[touched], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got[untouched], table[untouched])  # bit-identical
        for got_slot, slot in zip(tables.slots[0], slots, strict=True):
            np.testing.assert_allclose(to_numpy(got_slot)[touched], slot[touched], rtol=1e-5, atol=1e-7)
            np.testing.assert_array_equal(to_numpy(got_slot)[untouched], slot[untouched])
        np.testing.assert_allclose(to_numpy(model.get_layer("w").kernel), w, rtol=1e-5, atol=1e-6)
        # Continue from the model's own values (float32 rounding): untouched
        # entries are then compared bit for bit with the previous step's.
        table, slots = got.copy(), [to_numpy(s).copy() for s in tables.slots[0]]


def test_auto_follows_the_compiled_optimizer_and_its_learning_rate():
    schema = SequenceSchema({"item": V}, L)
    for optimizer, kind in [
        (keras.optimizers.Adam(0.01), RowAdam),
        (keras.optimizers.Adagrad(0.01), RowAdagrad),
        (keras.optimizers.SGD(0.01), RowSGD),
    ]:
        model = SumModel(schema)
        model.compile(optimizer=optimizer, loss="binary_crossentropy", table_min_rows=0)
        rule = model.table_training.rule
        assert type(rule) is kind and rule.learning_rate is None
    # One step of auto Adam equals the dense route's step (fresh moments), and
    # follows a learning rate changed after compile (as ReduceLROnPlateau does).
    weights = []
    for route in ["auto", "dense"]:
        keras.utils.set_random_seed(0)
        model = SumModel(schema)
        model.compile(
            keras.optimizers.Adam(0.5), "binary_crossentropy", table_optimizer=route, table_min_rows=0
        )
        model.optimizer.learning_rate = 0.01
        model.train_on_batch(*batches()[0])
        weights.append([to_numpy(v) for v in model.weights])
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_routing_by_size_regularizer_and_request():
    schema = SequenceSchema({"item": V}, L)
    model = SumModel(schema)
    model.compile(keras.optimizers.Adam(), "binary_crossentropy", table_min_rows=V + 1)
    assert not model.table_training.active  # too small: dense
    model.compile(keras.optimizers.Adam(), "binary_crossentropy", table_optimizer="dense", table_min_rows=0)
    assert not model.table_training.active
    with pytest.warns(UserWarning, match="RMSprop.*RowAdam"):
        model.compile(keras.optimizers.RMSprop(), "binary_crossentropy", table_min_rows=0)
    assert not model.table_training.active
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no table large enough: nothing to warn about
        model.compile(keras.optimizers.RMSprop(), "binary_crossentropy")
    with pytest.raises(ValueError, match="table_optimizer.*'adam'"):
        model.compile(keras.optimizers.Adam(), "binary_crossentropy", table_optimizer="adam")
    with pytest.raises(ValueError, match="beta_1"):
        RowAdam(beta_1=1.5)
    regularized = SumModel(schema, regularizer=keras.regularizers.L2(1e-3))
    regularized.compile(keras.optimizers.Adam(), "binary_crossentropy", table_min_rows=0)
    assert not regularized.table_training.active  # the regularizer reads the whole table
    frozen = SumModel(schema)
    frozen.get_layer("embedding").tables["item"].embeddings.trainable = False
    frozen.compile(keras.optimizers.Adam(), "binary_crossentropy", table_min_rows=0)
    assert not frozen.table_training.active


def test_an_optimizer_built_for_other_variables_is_refused():
    schema = SequenceSchema({"item": V}, L)
    optimizer = keras.optimizers.Adam()
    SumModel(schema).compile(optimizer, "binary_crossentropy", table_optimizer="dense")
    with pytest.raises(ValueError, match="already built"):
        SumModel(schema).compile(optimizer, "binary_crossentropy", table_min_rows=0)
    model = SumModel(schema)  # re-compiling with a fresh optimizer is fine
    model.compile(keras.optimizers.Adam(), "binary_crossentropy", table_min_rows=0)
    model.compile(keras.optimizers.Adam(), "binary_crossentropy", table_min_rows=0)
    model.train_on_batch(*batches()[0])


def test_table_slots_are_saved_and_training_resumes(row_data, tmp_path):
    x, y = row_data.train.x, row_data.train.y

    def compiled():
        keras.utils.set_random_seed(0)
        model = DIN(row_data.schema, mlp_units=(8,))
        model.compile(
            keras.optimizers.Adam(0.01), "binary_crossentropy", table_optimizer=RowAdam(), table_min_rows=0
        )
        return model

    model = compiled()
    model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded.table_training.rule, RowAdam) and loaded.table_training.active
    for a, b in zip(model.table_training.slots, loaded.table_training.slots, strict=True):
        for u, v in zip(a, b, strict=True):
            np.testing.assert_array_equal(to_numpy(u), to_numpy(v))
    expected = model.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0).history["loss"]
    resumed = loaded.fit(x, y, epochs=1, batch_size=32, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(resumed, expected, rtol=1e-5)


def test_mixed_precision_trains_tables_and_skips_non_finite_steps(row_data):
    keras.config.set_dtype_policy("mixed_float16")
    model = DIN(row_data.schema, mlp_units=(8,))
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", table_min_rows=0)
    assert model.table_training.active and hasattr(model.optimizer, "dynamic_scale")
    table = model.get_layer("embedding").tables["item"].embeddings
    before = to_numpy(table).copy()
    x, y = small_batch(row_data)
    for _ in range(3):
        loss = model.train_on_batch(x, y)
    assert np.isfinite(loss) and np.isfinite(to_numpy(table)).all()
    assert not np.array_equal(to_numpy(table), before)
    # An overflowing loss scale: the step is skipped (tables, slots, dense
    # weights, the step count) and the scale halves.
    model.optimizer.dynamic_scale.assign(1e38)
    state = [to_numpy(v).copy() for v in [*model.trainable_variables, *model.table_training.slots[0]]]
    iterations = int(to_numpy(model.optimizer.iterations))
    model.train_on_batch(x, y)
    after = [to_numpy(v) for v in [*model.trainable_variables, *model.table_training.slots[0]]]
    for a, b in zip(after, state, strict=True):
        np.testing.assert_array_equal(a, b)
    assert int(to_numpy(model.optimizer.iterations)) == iterations
    assert float(to_numpy(model.optimizer.dynamic_scale)) == pytest.approx(5e37, rel=1e-6)


@only_under(
    "tensorflow",
    "jax",
    why="training is slowest under torch, where every model's row-sparse route equals the dense one "
    "exactly (tests/models/test_contract.py)",
)
def test_fit_reaches_the_auc_of_dense_adam():
    """Lazy Adam on the tables learns as dense Adam does (one seed here; three
    seeds and more data in docs/training.md)."""
    from keras_lsrec.data import synthetic

    data = synthetic.generate(num_users=600, max_len=90, seed=7)
    auc = {}
    for route in ["auto", "dense"]:
        keras.utils.set_random_seed(1)
        model = DARE(data.schema, mlp_units=(32,), input_batch_norm=False)
        model.compile(
            keras.optimizers.Adam(1e-2), "binary_crossentropy", table_optimizer=route, table_min_rows=0
        )
        model.fit(data.train.x, data.train.y, epochs=3, batch_size=64, verbose=0)
        auc[route] = evaluate(model, data.test.x, data.test.y)["auc"]
    assert auc["dense"] > 0.62, auc
    assert abs(auc["auto"] - auc["dense"]) < 0.03, auc
