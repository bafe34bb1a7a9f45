"""HSTU's own properties: M-FALCON scores equal single-candidate passes, query
blocks change no number, contextual tokens, action encoding, positions alone without times."""

import keras
import numpy as np
import pytest
from test_case import TestCase, only_under, small_batch, to_numpy

from keras_lsrec.data import synthetic
from keras_lsrec.layers import NextEventLoss
from keras_lsrec.models import HSTU
from keras_lsrec.models.wiring import split_inputs

SMALL = dict(embedding_dim=4, key_dim=4, mlp_units=(8,))


def scores(model, x):
    return np.asarray(model.predict_on_batch(x))


def assert_one_pass_equals_single_passes(model, x):
    """The (B, C) scores of one pass equal C passes with one candidate each (1e-5)."""
    together = scores(model, x)
    present = x["target_item"] != 0
    for c in range(x["target_item"].shape[1]):
        alone = {k: (v[:, c : c + 1] if k.startswith("target_") else v) for k, v in x.items()}
        single = scores(model, alone)[:, 0]
        np.testing.assert_allclose(together[present[:, c], c], single[present[:, c]], atol=1e-5)
    np.testing.assert_array_equal(together[~present], 0.0)


def test_candidates_in_one_pass_equal_single_candidate_passes(candidate_data):
    x, _ = small_batch(candidate_data, 8)
    model = HSTU(candidate_data.schema.replace(candidates="variable"), **SMALL)
    keras.utils.set_random_seed(1)
    for block in (layer for layer in model.layers if layer.name.startswith("hstu_block")):  # a non-zero bias
        for weight in block.relative_bias.weights:
            weight.assign(np.random.default_rng(2).normal(size=weight.shape).astype("float32"))
    assert (~(x["target_item"] != 0)).any()  # missing candidates in the batch
    assert_one_pass_equals_single_passes(model, x)


@pytest.mark.skipif(
    keras.backend.backend() == "jax",
    reason="CI time: five compilations on jax; the same graph is checked on tensorflow and torch",
)
def test_contextual_token_from_row_features():
    data = synthetic.generate(
        num_users=8, examples_per_user=2, max_len=80, num_items=30, num_categories=8,
        candidates=4, min_candidates=2, features=True, seed=5,
    )  # fmt: skip
    model = HSTU(data.schema.replace(candidates="variable"), **SMALL)
    assert model.get_layer("context_projection") is not None
    x, _ = small_batch(data, 6)
    # The candidates' output tokens: one pass equals single-candidate passes with
    # the contextual token in front, and that token reaches them through the blocks.
    tokens = keras.Model(model.inputs, model.get_layer("candidate_tokens").output)
    together = tokens.predict_on_batch(x)
    present = x["target_item"] != 0
    for c in range(x["target_item"].shape[1]):
        alone = tokens.predict_on_batch(
            {k: (v[:, c : c + 1] if k.startswith("target_") else v) for k, v in x.items()}
        )
        np.testing.assert_allclose(together[present[:, c], c], alone[present[:, c], 0], atol=1e-5)
    name = next(iter(data.schema.features))
    changed = {**x, name: x[name][::-1].copy()}
    assert not np.allclose(tokens.predict_on_batch(changed), together)
    none = {k: (v[:, :0] if k.startswith("history_") else v) for k, v in x.items()}  # a new user
    assert np.all(np.isfinite(scores(model, none)))


def test_query_blocks_give_the_same_scores(row_data):
    x, _ = small_batch(row_data, 8)
    whole = HSTU(row_data.schema, query_block_size=None, **SMALL)
    blocked = HSTU(row_data.schema, query_block_size=16, **SMALL)
    blocked.set_weights(whole.get_weights())
    np.testing.assert_allclose(scores(blocked, x), scores(whole, x), atol=1e-6)


def test_runs_on_positions_alone_without_times(row_data):
    schema = row_data.schema.replace(time_vocab_size=None)
    x, y = small_batch(row_data, 8)
    x.pop("history_time")
    model = HSTU(schema, **SMALL)
    blocks = [layer for layer in model.layers if layer.name.startswith("hstu_block")]
    assert blocks and all(block.relative_bias.time_buckets is None for block in blocks)
    model.compile("adam", "binary_crossentropy")
    assert np.isfinite(float(model.train_on_batch(x, y)))
    # Without the position bias too: the order then enters through the causal pattern only.
    plain = HSTU(schema, position_bias=False, time_buckets=None, **SMALL)
    assert np.all(np.isfinite(scores(plain, x)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_blocks=0), "num_blocks"),
        (dict(block_dropout=1.0), "block_dropout"),
        (dict(max_distance=0), "max_distance"),
        (dict(query_block_size=0), "query_block_size"),
        (dict(num_heads=0), "num_heads"),
        (dict(auxiliary_loss_weight=-1.0), "auxiliary_loss_weight"),
    ],
)
def test_rejects_bad_arguments(row_data, kwargs, match):
    with pytest.raises(ValueError, match=match):
        HSTU(row_data.schema, **kwargs)


def test_rematerialised_blocks_train_as_kept_ones(row_data):
    """`remat=True` recomputes the attention of each query block in the
    backward pass: the same step as keeping the scores."""
    x, y = small_batch(row_data, 8)
    weights = []
    for remat in (True, False):
        keras.utils.set_random_seed(0)
        model = HSTU(row_data.schema, query_block_size=32, remat=remat, **SMALL)
        model.compile(keras.optimizers.SGD(0.5), "binary_crossentropy")
        model.train_on_batch(x, y)
        weights.append([to_numpy(v) for v in model.weights])
    for a, b in zip(*weights, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_next_event_loss_over_the_history_in_training_only(row_data):
    """`auxiliary_loss_weight=w` adds w x `NextEventLoss` of the history tokens' outputs against the
    next events' embeddings (the candidates and padding make no pair), through the row-sparse step
    as DIEN's; the scores and inference do not change."""
    x, y = small_batch(row_data, 8)
    losses, weights = [], None
    for weight in (0.0, 2.0):
        keras.utils.set_random_seed(0)
        model = HSTU(row_data.schema, auxiliary_loss_weight=weight, **SMALL)
        weights = model.get_weights() if weights is None else weights
        model.set_weights(weights)
        model.compile(keras.optimizers.SGD(0.0), "binary_crossentropy", table_min_rows=0)
        assert model.table_training is not None and model.table_training.active
        losses.append(float(model.train_on_batch(x, y)))
    states = to_numpy(keras.Model(model.inputs, model.get_layer("output_norm").output)(x))
    history = to_numpy(model.get_layer("embedding")(split_inputs(x, row_data.schema)[1]))
    events = np.concatenate([history, np.zeros_like(history[:, :1])], axis=1)  # history, candidate
    mask = np.concatenate([x["history_item"] != 0, np.zeros((8, 1), bool)], axis=1)
    expected = 2.0 * to_numpy(NextEventLoss(1.0).loss(states, events, mask))
    assert expected > 0.2
    np.testing.assert_allclose(losses[1] - losses[0], expected, rtol=1e-4)
    np.testing.assert_allclose(float(model.evaluate(x, y, verbose=0)), losses[0], rtol=1e-5)
    # The default is 1; a `.keras` config from before the argument existed trains without it.
    config = HSTU(row_data.schema, **SMALL).get_config()
    assert config.pop("auxiliary_loss_weight") == 1.0
    assert HSTU.from_config(config).hyperparameters["auxiliary_loss_weight"] == 0.0


def with_actions(data, kinds=3, seed=0):
    """`data`'s schema with `actions=kinds` and a batch of it with random actions at the events."""
    schema = data.schema.replace(candidates="variable" if data.schema.has_candidates else None, actions=kinds)
    x, y = small_batch(data, 8)
    actions = np.random.default_rng(seed).integers(0, 1 << kinds, x["history_item"].shape)
    x["history_action"] = np.where(x["history_item"] != 0, actions, 0).astype("int32")
    return schema, x, y


def test_actions_reach_the_history_and_candidates_carry_an_unknown_action(candidate_data):
    schema, x, _ = with_actions(candidate_data)
    model = HSTU(schema, **SMALL)
    encoding = model.get_layer("action_encoding")
    assert encoding.num_actions == schema.actions + 1  # the kinds, then "unknown" on the candidates
    encoding.embeddings.assign(
        np.random.default_rng(3).normal(size=encoding.embeddings.shape).astype("float32")
    )
    assert_one_pass_equals_single_passes(model, x)
    flipped = {**x, "history_action": np.where(x["history_item"] != 0, 7 - x["history_action"], 0)}
    assert not np.allclose(scores(model, flipped), scores(model, x))  # what the user did matters
    # What padding carries as its action changes nothing (padded tokens are masked).
    padded = {**x, "history_action": np.where(x["history_item"] != 0, x["history_action"], 5)}
    np.testing.assert_allclose(scores(model, padded), scores(model, x), atol=1e-6)


@only_under("tensorflow", why="the whole model contract (SavedModel included) once, on one backend")
class TestHSTUWithActions(TestCase):
    def test_contract_with_actions(self, row_data):
        schema, x, y = with_actions(row_data)
        self.run_model_test(HSTU, SMALL, schema, x, y)
