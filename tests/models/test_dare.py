"""DARE's properties: decoupled gradients (against TWIN's shared table) and the auxiliary head."""

import keras
import numpy as np
from test_case import small_batch, to_numpy, variable_gradients

from keras_lsrec.models import DARE, TWIN
from keras_lsrec.models.dare import query_scale
from keras_lsrec.models.wiring import dot_scores, split_inputs

SMALL = dict(mlp_units=(8,))


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


def test_dare_gradients_are_decoupled(row_data):
    """Logits reach only the attention table; the representation only E_rep."""
    model = DARE(row_data.schema, attention_dim=3, representation_dim=4, k=6, **SMALL)
    x, _ = small_batch(row_data, 8)
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


def test_twin_shares_one_table_between_logits_and_representation(row_data):
    """The contrast DARE fixes: in TWIN the logits' gradient reaches the table
    that also carries the representation."""
    model = TWIN(row_data.schema, embedding_dim=4, k=6, **SMALL)
    x, _ = small_batch(row_data, 8)
    probe, variables = attention_probe(model, x), model.trainable_variables
    weights = keras.ops.convert_to_tensor(np.arange(6, dtype="float32"))
    grads = variable_gradients(probe, variables, lambda out: keras.ops.sum(out[0] * weights))
    grads_rep = variable_gradients(probe, variables, lambda out: keras.ops.sum(out[1]))
    item_table = [p for p in grads if "item_embedding" in p][0]
    assert grads[item_table] > 0 and grads_rep[item_table] > 0


def test_dare_training_loss_adds_the_auxiliary_term(row_data):
    weight = 0.7
    model = DARE(
        row_data.schema, attention_dim=2, representation_dim=3, k=4, auxiliary_loss_weight=weight, **SMALL
    )
    model.compile(optimizer="adam", loss="binary_crossentropy")
    x, y = small_batch(row_data, 12)

    def bce(p):
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return -np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))

    # In training the model returns the main and the auxiliary prediction.
    main, aux = to_numpy(model(x, training=True))
    loss = to_numpy(model.compute_loss(x, y, model(x, training=True), training=True))
    # Evaluation's loss is the compiled loss alone.
    np.testing.assert_allclose(
        to_numpy(model.compute_loss(x, y, model(x, training=False), training=False)),
        bce(to_numpy(model(x, training=False))),
        rtol=1e-4,
    )

    np.testing.assert_allclose(loss, bce(main) + weight * bce(aux), rtol=1e-4)
    # Inference ignores the auxiliary head.
    np.testing.assert_allclose(model.predict(x, verbose=0), to_numpy(model(x, training=False)), atol=1e-6)
    # Training moves the auxiliary tower.
    aux_weights = [v for v in model.trainable_variables if "auxiliary_tower" in v.path]
    before = [to_numpy(v).copy() for v in aux_weights]
    model.fit(x, y, epochs=1, batch_size=12, verbose=0)
    assert aux_weights and any(
        not np.allclose(b, to_numpy(v)) for b, v in zip(before, aux_weights, strict=True)
    )


def test_dare_without_auxiliary_has_no_auxiliary_tower(row_data):
    model = DARE(row_data.schema, auxiliary_loss_weight=0, **SMALL)
    assert model._auxiliary is None
    assert not [v for v in model.weights if "auxiliary" in v.path]
