"""Barron's general robust loss (CVPR 2019, arXiv 1701.03077) on x = 1 - p_y, mixed with cross-entropy.

    L = w_ce CE + w_r rho(x; alpha, c),   rho = |alpha - 2| / alpha * (((x / c)^2 / |alpha - 2| + 1)^(alpha / 2) - 1)

with its limits: 1/2 (x/c)^2 at alpha = 2, log(1/2 (x/c)^2 + 1) at alpha = 0, 1 - exp(-1/2 (x/c)^2) at alpha = -inf.
alpha = 1 is a smoothed L1 (for small c close to MAE's 1 - p_y); alpha <= 0 saturates, ignoring hard examples.

theta = (s_ce, s_r, alpha, log c). The weights follow the mixture's design: (pi_ce, pi_r) = sparsemax(s_ce, s_r),
relative and able to be exactly 0, and the robust term is measured in units of its value at x = 1
(w_r = pi_r / rho(1; alpha, c)), so a change of alpha or c reshapes the term without rescaling it. alpha is clamped
to ALPHA_RANGE, c to C_RANGE. The identity (1, 0, 1, log 0.25) is exactly cross-entropy.
"""

import math
from dataclasses import dataclass

import torch

from amlfs.spaces.base import LossSpace, sparsemax, target_log_prob

ALPHA_RANGE = (-10.0, 2.0)
C_RANGE = (0.01, 10.0)
IDENTITY = (1.0, 0.0, 1.0, math.log(0.25))
ALPHA_ZERO = 1e-8  # |alpha| below this takes the alpha = 0 limit (relative error about |alpha|, far below float32's)


def rho(x: torch.Tensor, alpha: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Barron's rho(x; alpha, c), elementwise with broadcasting, exact at alpha = 0, 2 and -inf.

    Elsewhere it is evaluated as ``b / alpha * expm1(alpha / 2 * log1p(z / b))`` with z = (x / c)^2 and
    b = |alpha - 2|, which stays accurate as alpha approaches 0 or 2; |alpha| < ALPHA_ZERO takes the alpha = 0 limit
    (for a subnormal alpha the product underflows to 0 while b / alpha overflows). The special cases are taken by
    ``where`` with a harmless alpha in the general branch, so gradients stay finite everywhere.
    """
    z = (x / c) ** 2
    zero = alpha.abs() < ALPHA_ZERO
    special = zero | (alpha == 2) | torch.isinf(alpha)
    safe_alpha = torch.where(special, torch.ones_like(alpha), alpha)
    b = (safe_alpha - 2).abs()
    general = b / safe_alpha * torch.expm1(safe_alpha / 2 * torch.log1p(z / b))
    return torch.where(alpha == 2, z / 2,
                       torch.where(zero, torch.log1p(z / 2),
                                   torch.where(torch.isinf(alpha), -torch.expm1(-z / 2), general)))


@dataclass(frozen=True)
class BarronSpace(LossSpace):
    """Config ``space=barron``."""

    name = "barron"
    dim = 4

    def names(self) -> list[str]:
        return ["score.ce", "score.robust", "alpha", "log_c"]

    def identity(self) -> torch.Tensor:
        return torch.tensor(IDENTITY, dtype=torch.float64)

    def parameters(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(pi_ce, pi_r, alpha, c), each [B], of theta [B, 4]."""
        pi = sparsemax(theta[..., :2])
        alpha = theta[..., 2].clamp(*ALPHA_RANGE)
        c = theta[..., 3].clamp(math.log(C_RANGE[0]), math.log(C_RANGE[1])).exp()
        return pi[..., 0], pi[..., 1], alpha, c

    def from_log_probs(self, theta: torch.Tensor, log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pi_ce, pi_r, alpha, c = (value.unsqueeze(-1) for value in self.parameters(theta))
        log_p = target_log_prob(log_probs, target)
        robust = rho(-torch.expm1(log_p), alpha, c) / rho(torch.ones_like(c), alpha, c)
        return -pi_ce * log_p + pi_r * robust

    def meaning(self, theta: torch.Tensor) -> dict[str, float]:
        pi_ce, pi_r, alpha, c = (float(v[0]) for v in self.parameters(theta.double().reshape(1, -1)))
        unit = float(rho(torch.tensor(1.0, dtype=torch.float64), torch.tensor(alpha, dtype=torch.float64), torch.tensor(c, dtype=torch.float64)))
        return {"w_ce": pi_ce, "w_r": pi_r / unit, "alpha": alpha, "c": c}
