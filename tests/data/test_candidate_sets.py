"""Candidate-set data: the synthetic generator's requests and the schema's label convention."""

import numpy as np
import pytest
from test_case import small_batch

from keras_lsrec.data import SequenceSchema, synthetic

C = 6


def variable(schema):
    return schema.replace(candidates="variable")


def test_synthetic_candidate_sets(candidate_data):
    x, y = candidate_data.train.x, candidate_data.train.y
    assert x["target_item"].shape == y.shape == candidate_data.train.probability.shape and y.shape[1] == C
    missing = x["target_item"] == 0
    assert missing.any() and not missing[:, :2].any()  # at least min_candidates, missing at the end
    assert np.all(y[missing] == -1) and np.all(np.isin(y[~missing], (0, 1)))
    assert np.all(x["target_category"][missing] == 0)
    candidate_data.schema.validate(x, y)
    flat = candidate_data.train.flatten()
    assert len(flat) == (~missing).sum() and flat.x["history_item"].shape == (len(flat), 90)
    assert np.array_equal(flat.x["target_item"], x["target_item"][~missing])
    # Single-target data is unchanged by the candidate option.
    single = synthetic.generate(
        num_users=10, examples_per_user=2, max_len=90, num_items=60, num_categories=8, seed=4
    )
    assert single.train.y.ndim == 1 and single.train.flatten() is single.train


def test_schema_candidate_labels_and_variable_size(candidate_data):
    x, y = small_batch(candidate_data)
    bad = y.copy()
    row, col = np.argwhere(x["target_item"] == 0)[0]
    bad[row, col] = 0
    with pytest.raises(ValueError, match=rf"labels\[{row}, {col}\] = 0.*missing candidate"):
        candidate_data.schema.validate(x, bad)
    bad = y.copy()
    bad[0, 0] = 2
    with pytest.raises(ValueError, match=r"labels\[0, 0\]"):
        candidate_data.schema.validate(x, bad)
    flexible = variable(candidate_data.schema)
    assert flexible.target_shape == (None,)
    flexible.validate({k: v[:, :4] if k.startswith("target_") else v for k, v in x.items()})
    with pytest.raises(ValueError, match="target_category.*same"):
        flexible.validate({**x, "target_category": x["target_category"][:, :3]})
    with pytest.raises(ValueError, match="6 candidates"):
        candidate_data.schema.validate({**x, "target_item": x["target_item"][:, :3]})
    batch = flexible.random_batch(5, candidates=7, seed=1)
    assert batch["target_item"].shape == (5, 7) and (batch["target_item"][:, 0] != 0).all()
    flexible.validate(batch)
    assert SequenceSchema.from_config(flexible.get_config()) == flexible
    with pytest.raises(ValueError, match="candidates"):
        SequenceSchema({"item": 5}, 4, candidates="any")


# ---------------------------------------------------------------- loss and metrics
