"""PolyLoss (Leng et al., ICLR 2022): cross-entropy plus a polynomial in 1 - p_y.

    L = CE + sum_{j=1..N} eps_j (1 - p_y)^j,      N = ``space.terms``.

theta_j = asinh(eps_j): near eps = 0 a step of sigma moves eps_j by about sigma, far from it by about sigma |eps_j|
(relative), so both Poly-1 (eps_1 = 1, theta_1 = asinh 1) and large coefficients lie within reach. eps_j is
clamped to EPS_RANGE. The identity theta = 0 is exactly cross-entropy.
"""

from dataclasses import dataclass

import torch

from amlfs.spaces.base import LossSpace, target_log_prob

EPS_RANGE = (-1.0, 100.0)


@dataclass(frozen=True)
class PolySpace(LossSpace):
    """Config ``space=poly``."""

    terms: int = 3
    name = "poly"

    @property
    def dim(self) -> int:
        return self.terms

    def names(self) -> list[str]:
        return [f"asinh_eps{j}" for j in range(1, self.terms + 1)]

    def identity(self) -> torch.Tensor:
        return torch.zeros(self.terms, dtype=torch.float64)

    def epsilons(self, theta: torch.Tensor) -> torch.Tensor:
        """eps [B, N] of each theta [B, N]."""
        return theta.sinh().clamp(*EPS_RANGE)

    def from_log_probs(self, theta: torch.Tensor, log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = target_log_prob(log_probs, target)
        powers = torch.arange(1, self.terms + 1, dtype=log_p.dtype, device=log_p.device)
        polynomial = (-torch.expm1(log_p)).unsqueeze(-1) ** powers
        return -log_p + (polynomial * self.epsilons(theta).unsqueeze(-2)).sum(-1)

    def meaning(self, theta: torch.Tensor) -> dict[str, float]:
        return {f"eps{j}": float(e) for j, e in enumerate(self.epsilons(theta.double().reshape(1, -1))[0], start=1)}
