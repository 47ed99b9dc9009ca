"""space=poly against a per-sample reference, and Poly-1 as one of its points."""

import math

import pytest
import torch

from amlfs.losses import PolyLoss
from amlfs.spaces import build_space
from amlfs.spaces.poly import EPS_RANGE

from conftest import loss_ratio, softmax_row

G = torch.Generator().manual_seed(0)
LOGITS = 4 * torch.randn(40, 10, generator=G, dtype=torch.float64)
TARGET = torch.randint(0, 10, (40,), generator=G)


def reference(theta: list[float], logits: list[float], y: int) -> float:
    p = softmax_row(logits)[y]
    eps = [min(max(math.sinh(t), EPS_RANGE[0]), EPS_RANGE[1]) for t in theta]
    return -math.log(p) + sum(e * (1 - p) ** j for j, e in enumerate(eps, start=1))


@pytest.mark.parametrize("terms", [1, 3, 5])
def test_random_parameters_match_the_per_sample_reference(terms):
    space = build_space("poly", terms=terms)
    theta = 2 * torch.randn(4, terms, generator=G, dtype=torch.float64)
    theta[0, 0], theta[1, -1] = -5.0, 8.0  # eps clamped at both ends
    got = space.loss(theta, LOGITS, TARGET)
    for b in range(len(theta)):
        expected = [reference(theta[b].tolist(), LOGITS[n].tolist(), int(TARGET[n])) for n in range(len(TARGET))]
        torch.testing.assert_close(got[b], torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("eps", [1.0, -0.5, 4.0])
def test_poly1_is_a_point(eps):
    ratio = loss_ratio(build_space("poly"), [math.asinh(eps), 0.0, 0.0], PolyLoss(eps), LOGITS, TARGET)
    assert ratio.tolist() == pytest.approx([1.0] * len(ratio), rel=1e-12)


def test_names_and_meaning():
    space = build_space("poly", terms=2)
    assert space.names() == ["asinh_eps1", "asinh_eps2"] and space.dim == 2
    assert space.meaning(torch.tensor([math.asinh(1.0), -10.0])) == pytest.approx({"eps1": 1.0, "eps2": -1.0})
