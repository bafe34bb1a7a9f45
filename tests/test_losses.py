"""CandidateSetLoss against an independent numpy reference."""

import numpy as np
import pytest
from test_case import to_numpy

from keras_lsrec.losses import CandidateSetLoss


def np_candidate_set_loss(y, p, listwise_weight, pointwise_weight, eps=1e-7):
    out = []
    for row_y, row_p in zip(y, p, strict=True):
        valid = row_y >= 0
        if not valid.any():
            out.append(0.0)
            continue
        yy, pp = row_y[valid], np.clip(row_p[valid], eps, 1 - eps)
        point = -np.mean(yy * np.log(pp) + (1 - yy) * np.log(1 - pp))
        logits = np.log(pp / (1 - pp))
        log_softmax = logits - np.log(np.exp(logits).sum())
        listwise = -(yy / yy.sum() * log_softmax).sum() if yy.sum() > 0 else 0.0
        out.append(pointwise_weight * point + listwise_weight * listwise)
    return np.mean(out)


@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.5, 2.0), (0.0, 1.0)])
def test_candidate_set_loss_matches_numpy(weights):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (6, 5)).astype("float32")
    y[1, 3:] = -1  # missing candidates
    y[2] = 0  # no click: no list-wise term
    y[3] = -1  # no candidate at all: 0
    p = rng.random((6, 5)).astype("float32")
    loss = CandidateSetLoss(listwise_weight=weights[0], pointwise_weight=weights[1])
    expected = np_candidate_set_loss(y, p, *weights)
    assert float(to_numpy(loss(y, p))) == pytest.approx(expected, rel=1e-5)
    # Missing candidates do not matter whatever their prediction.
    p2 = p.copy()
    p2[y < 0] = 0.999
    assert float(to_numpy(loss(y, p2))) == pytest.approx(expected, rel=1e-5)
    logits = np.log(p / (1 - p))
    from_logits = CandidateSetLoss(listwise_weight=weights[0], pointwise_weight=weights[1], from_logits=True)
    assert float(to_numpy(from_logits(y, logits))) == pytest.approx(expected, rel=1e-4)
    clone = CandidateSetLoss.from_config(loss.get_config())
    assert clone.get_config() == loss.get_config()
    with pytest.raises(ValueError, match="listwise_weight"):
        CandidateSetLoss(listwise_weight=-1)
