"""space=barron: rho against its closed forms and limits, the loss against a per-sample reference."""

import math

import numpy as np
import pytest
import torch

from amlfs.losses import MeanAbsoluteError
from amlfs.spaces import build_space
from amlfs.spaces.barron import ALPHA_RANGE, C_RANGE, rho

from conftest import softmax_row

SPACE = build_space("barron")
G = torch.Generator().manual_seed(0)
LOGITS = 4 * torch.randn(40, 10, generator=G, dtype=torch.float64)
TARGET = torch.randint(0, 10, (40,), generator=G)
X = torch.linspace(0, 1, 101, dtype=torch.float64)


def rho_formula(x: float, alpha: float, c: float) -> float:
    """Barron's eq. for alpha not in {0, 2}, straight from the paper."""
    b = abs(alpha - 2)
    return b / alpha * (((x / c) ** 2 / b + 1) ** (alpha / 2) - 1)


@pytest.mark.parametrize("alpha", [-7.5, -1.0, 0.5, 1.0, 1.5])
@pytest.mark.parametrize("c", [0.05, 0.3, 2.0])
def test_rho_is_the_papers_formula(alpha, c):
    got = rho(X, torch.tensor(alpha, dtype=torch.float64), torch.tensor(c, dtype=torch.float64))
    np.testing.assert_allclose(got.numpy(), [rho_formula(x, alpha, c) for x in X.tolist()], rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("alpha,closed_form", [
    (2.0, lambda z: z / 2),
    (0.0, lambda z: np.log(z / 2 + 1)),
    (-math.inf, lambda z: 1 - np.exp(-z / 2)),
])
def test_rho_limits_are_exact_and_continuous(alpha, closed_form):
    c = torch.tensor(0.2, dtype=torch.float64)
    expected = closed_form(((X / c) ** 2).numpy())
    np.testing.assert_allclose(rho(X, torch.tensor(alpha, dtype=torch.float64), c).numpy(), expected, rtol=1e-12)
    nearby = {2.0: [2 - 1e-7, 2 - 2e-16], 0.0: [1e-7, -1e-9, 1e-300, 2e-309], -math.inf: [-1e7]}[alpha]
    for value in nearby:
        got = rho(X, torch.tensor(value, dtype=torch.float64), c).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-12, err_msg=f"alpha={value}")


def test_rho_gradient_is_finite_at_the_special_values():
    alpha = torch.tensor([2.0, 0.0, -math.inf, 1.0], dtype=torch.float64)
    x = torch.full((4,), 0.4, dtype=torch.float64, requires_grad=True)
    rho(x, alpha, torch.tensor(0.1, dtype=torch.float64)).sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad > 0).all()


def reference(theta: list[float], logits: list[float], y: int) -> float:
    p = softmax_row(logits)[y]
    diff = theta[0] - theta[1]
    pi_ce = min(max((diff + 1) / 2, 0.0), 1.0)  # the two-entry simplex projection
    alpha = min(max(theta[2], ALPHA_RANGE[0]), ALPHA_RANGE[1])
    c = math.exp(min(max(theta[3], math.log(C_RANGE[0])), math.log(C_RANGE[1])))
    closed = {2.0: lambda x: (x / c) ** 2 / 2, 0.0: lambda x: math.log((x / c) ** 2 / 2 + 1)}
    term = closed.get(alpha, lambda x: rho_formula(x, alpha, c))
    return -pi_ce * math.log(p) + (1 - pi_ce) * term(1 - p) / term(1.0)


def test_random_parameters_match_the_per_sample_reference():
    theta = SPACE.identity() + torch.randn(6, SPACE.dim, generator=G, dtype=torch.float64) * torch.tensor([0.5, 0.5, 3.0, 1.0])
    theta[0, 2:], theta[1, 2:] = torch.tensor([5.0, -9.0]), torch.tensor([-20.0, 4.0])  # alpha and c clamped at both ends
    theta[2, 2] = 0.0
    got = SPACE.loss(theta, LOGITS, TARGET)
    for b in range(len(theta)):
        expected = [reference(theta[b].tolist(), LOGITS[n].tolist(), int(TARGET[n])) for n in range(len(TARGET))]
        torch.testing.assert_close(got[b], torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=1e-12)


def test_alpha_one_and_small_c_approaches_mae():
    """At alpha = 1 the robust term is within c of x = 1 - p_y (half the project's MAE), for every sample."""
    c = C_RANGE[0]
    loss = SPACE.loss(torch.tensor([[0.0, 1.0, 1.0, math.log(c)]], dtype=torch.float64), LOGITS, TARGET)[0]
    half_mae = MeanAbsoluteError(reduction="none")(LOGITS, TARGET) / 2
    assert (loss - half_mae).abs().max() <= c * 1.02


def test_alpha_at_most_zero_saturates():
    """The robust term of a saturating alpha barely grows once x is a few c: hard examples are nearly ignored."""
    p = torch.tensor([0.02, 0.2], dtype=torch.float64)
    curve = SPACE.probability_curve(torch.tensor([[0.0, 1.0, -10.0, math.log(0.05)]], dtype=torch.float64), p, 10)[0]
    assert curve[0] - curve[1] < 1e-6 and curve[0] <= 1.0


def test_meaning_gives_the_formulas_weights():
    meaning = SPACE.meaning(torch.tensor([0.0, 1.0, 2.0, math.log(0.5)], dtype=torch.float64))
    assert meaning == pytest.approx({"w_ce": 0.0, "w_r": 1 / (0.5 * (1 / 0.5) ** 2), "alpha": 2.0, "c": 0.5})
