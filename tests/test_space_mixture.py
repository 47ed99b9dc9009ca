"""space=mixture against a per-sample reference, and its named points against the project's own baselines."""

import math

import pytest
import torch

from amlfs.losses import BASELINES, GeneralizedCrossEntropy
from amlfs.losses.robust import RCE_LOG_ZERO
from amlfs.spaces import build_space
from amlfs.spaces.mixture import Q_RANGE

from conftest import loss_ratio, softmax_row

SPACE = build_space("mixture")
A = -RCE_LOG_ZERO
G = torch.Generator().manual_seed(0)
LOGITS = 4 * torch.randn(40, 10, generator=G, dtype=torch.float64)
TARGET = torch.randint(0, 10, (40,), generator=G)


def simplex_by_scan(scores: list[float]) -> list[float]:
    """The projection onto the simplex by trying every support size (largest scores first)."""
    ordered = sorted(scores, reverse=True)
    for k in range(len(scores), 0, -1):
        tau = (sum(ordered[:k]) - 1) / k
        if ordered[k - 1] > tau:
            return [max(s - tau, 0.0) for s in scores]
    raise AssertionError("no support")


def reference(theta: list[float], logits: list[float], y: int) -> float:
    p = softmax_row(logits)
    w_ce, w_mae, w_gce, w_nce = (pi * scale for pi, scale in zip(simplex_by_scan(theta[:4]), (1, 2, 1, 1)))
    q = min(max(theta[4], Q_RANGE[0]), Q_RANGE[1])
    ce = -math.log(p[y])
    nce = ce / sum(-math.log(pk) for pk in p)
    return w_ce * ce + w_mae * (1 - p[y]) + w_gce * (1 - p[y] ** q) / q + w_nce * nce


def test_random_parameters_match_the_per_sample_reference():
    g = torch.Generator().manual_seed(0)
    theta = SPACE.identity() + torch.randn(6, SPACE.dim, generator=g, dtype=torch.float64)
    theta[0, 4], theta[1, 4] = -3.0, 4.0  # q clamped at both ends
    got = SPACE.loss(theta, LOGITS, TARGET)
    for b in range(len(theta)):
        expected = [reference(theta[b].tolist(), LOGITS[n].tolist(), int(TARGET[n])) for n in range(len(TARGET))]
        torch.testing.assert_close(got[b], torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)


def scores_for(ce: float = 0.0, nce: float = 0.0) -> list[float]:
    """Scores whose weights are w_ce : w_mae : w_nce = ce : 1 : nce (w_mae = 2 pi_mae, the others pi), no GCE."""
    pi = [ce, 0.5, 0.0, nce]
    return [x / sum(pi) if x else -1.0 for x in pi] + [0.7]


@pytest.mark.parametrize("point,baseline", [
    ([1.0, 0.0, 0.0, 0.0, 0.7], "ce"),
    ([0.0, 1.0, 0.0, 0.0, 0.7], "mae"),
    ([0.0, 0.0, 1.0, 0.0, 0.7], "gce"),
    (scores_for(ce=0.1 / A), "sce"),  # SCE(0.1, 1) = 0.1 CE + A (1 - p_y)
    (scores_for(nce=1.0 / A), "nce_rce"),  # NCE+RCE(1, 1) = NCE + A (1 - p_y)
])
def test_named_points_are_the_baselines_up_to_a_positive_factor(point, baseline):
    ratio = loss_ratio(SPACE, point, BASELINES[baseline](), LOGITS, TARGET)
    assert ratio.min() > 0 and ratio.max().item() == pytest.approx(ratio.min().item(), rel=1e-10)


def test_the_gce_point_follows_q():
    for q in (0.05, 0.3, 1.0):
        ratio = loss_ratio(SPACE, [0.0, 0.0, 1.0, 0.0, q], GeneralizedCrossEntropy(q), LOGITS, TARGET)
        assert ratio.tolist() == pytest.approx([1.0] * len(ratio), rel=1e-12)


def test_meaning_names_the_weights():
    assert SPACE.meaning(torch.tensor([0.0, 1.0, 0.0, 0.0, 2.0])) == {"w_ce": 0.0, "w_mae": 2.0, "w_gce": 0.0, "w_nce": 0.0, "q": 1.0}
