"""The model contract for the non-default configurations of each model
(scorers, normalisers, windows, heads, feature maps): the registry-driven
tests/models/test_contract.py covers the defaults."""

from typing import Any, cast

import numpy as np
import pytest
from test_case import TestCase, small_batch, to_numpy

from keras_lsrec.losses import CandidateSetLoss
from keras_lsrec.models import DARE, DIEN, DIN, IFA, SAM, SIM, TWIN
from keras_lsrec.models.wiring import most_recent

SMALL = dict(mlp_units=(8,))
ROW_CASES = {
    "din_dot": (DIN, dict(embedding_dim=4, scorer="dot", **SMALL)),
    "din_window": (DIN, dict(embedding_dim=4, history_window=20, attention_units=(6,), **SMALL)),
    "din_raw_weights": (DIN, dict(embedding_dim=4, attention_units=(6,), normalizer="none", **SMALL)),
    "din_dice_sigmoid": (
        DIN,
        dict(
            embedding_dim=4, normalizer="sigmoid", mlp_activation="dice", target_representation=False, **SMALL
        ),
    ),
    "sam_softmax_unfed": (
        SAM,
        dict(
            embedding_dim=4,
            normalizer="softmax",
            feed_memory=False,
            enhance_steps=0,
            attention_units=(6, 3),
            **SMALL,
        ),
    ),
    "sam_paper": (
        SAM,
        dict(
            embedding_dim=4,
            attention_units=(8,),
            attention_activation="sigmoid",
            normalizer="sigmoid",
            **SMALL,
        ),
    ),
    "twin_heads": (TWIN, dict(embedding_dim=4, k=5, num_heads=2, **SMALL)),
    "twin_search_only": (TWIN, dict(embedding_dim=4, k=5, short_window=None, **SMALL)),
    "twin_short_window_7": (TWIN, dict(embedding_dim=4, k=5, short_window=7, **SMALL)),
    "dare_joint_no_aux": (
        DARE,
        dict(
            attention_dim=3,
            representation_dim=5,
            k=50,
            score_scaling="joint",
            auxiliary_loss_weight=0,
            **SMALL,
        ),
    ),
}
IFA_SMALL = dict(embedding_dim=4, num_heads=2, key_dim=3, candidate_key_dim=4, **SMALL)
CANDIDATE_CASES = {
    "ifa_no_set_attention": dict(candidate_attention=False, feature_map="relu", **IFA_SMALL),
    "ifa_favor": dict(feature_map="favor", random_features=8, **IFA_SMALL),
    "ifa_no_tr": dict(target_representation=False, value_dim=2, mlp_activation="dice", **IFA_SMALL),
}


class TestVariants(TestCase):
    @pytest.mark.parametrize("case", sorted(ROW_CASES))
    def test_row_model_variant(self, case, row_data):
        cls, kwargs = ROW_CASES[case]
        x, y = small_batch(row_data)
        self.run_model_test(
            cls,
            kwargs,
            row_data.schema,
            x,
            y,
            run_mixed_precision=False,
            run_saved_model=False,  # the SavedModel of every model's graph: tests/models/test_contract.py
            right_padding="history_window" not in kwargs,  # the window relies on left padding (documented)
        )

    @pytest.mark.parametrize("case", sorted(CANDIDATE_CASES))
    def test_candidate_model_variant(self, case, candidate_data):
        x, y = small_batch(candidate_data)
        self.run_model_test(
            IFA,
            CANDIDATE_CASES[case],
            candidate_data.schema,
            x,
            y,
            loss=CandidateSetLoss(),
            run_mixed_precision=False,
            run_saved_model=False,
        )

    @pytest.mark.parametrize(
        "build, match",
        [
            (lambda s: DARE(s, k=0), "`k`"),
            (lambda s: DARE(s, attention_dim=0), "attention_dim"),
            (lambda s: DARE(s, score_scaling="sum"), "score_scaling"),
            (lambda s: DARE(s, auxiliary_loss_weight=-1), "auxiliary_loss_weight"),
            (lambda s: DIN(s, history_window=0), "history_window"),
            (lambda s: DIN(s, scorer="cosine"), "scorer"),
            (lambda s: SAM(s, normalizer="none"), "normalizer"),  # raw weights: DIN's only
            (lambda s: DIEN(s, normalizer="none"), "normalizer"),
            (lambda s: SIM(s, normalizer="none"), "normalizer"),
            (lambda s: TWIN(s, num_heads=0), "num_heads"),
            (lambda s: SAM(s, num_passes=0), "num_passes"),
            (lambda s: SAM(s, enhance_steps=-2), "enhance_steps"),
            (lambda s: SAM(s, mlp_units=(0,)), "mlp_units"),
            (lambda s: TWIN(s, l2=-1.0), "l2"),
            (lambda s: DARE(s, auxiliary_loss_weight=float("inf")), "auxiliary_loss_weight"),
            (lambda s: DIN(s, embedding_dim=cast(Any, 4.0)), "embedding_dim"),  # a float: refused
            (lambda s: SAM(s, dropout=1.5), "dropout"),
        ],
    )
    def test_bad_hyperparameters_are_rejected(self, build, match, row_data):
        with pytest.raises(ValueError, match=match):
            build(row_data.schema)


def test_most_recent_counts_from_the_newest_event_whatever_the_padding():
    """TWIN's `short_window` events, as `DIN(history_window=N)` would take them from left padding."""
    mask = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 1, 0], [0, 0, 0, 0, 0, 0]], bool)
    got = to_numpy(most_recent(mask, 2))
    expected = np.zeros_like(mask)
    for row in range(len(mask)):
        expected[row, np.nonzero(mask[row])[0][-2:]] = True
    np.testing.assert_array_equal(got, expected)


def test_a_twin_saved_before_short_window_loads_as_the_search_only_form(row_data):
    config = TWIN(row_data.schema, embedding_dim=4, short_window=None, **SMALL).get_config()
    del config["short_window"]  # what a TWIN saved before the argument existed holds
    assert TWIN.from_config(config).short_window is None
    assert TWIN(row_data.schema, embedding_dim=4, **SMALL).short_window == 50
