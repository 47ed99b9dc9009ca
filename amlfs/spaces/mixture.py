"""A mixture of cross-entropy and the robust losses for noisy labels, with the hand-crafted winners as points.

With p = softmax(logits) and p_y the target probability,

    L = w_ce CE + w_mae (1 - p_y) + w_gce (1 - p_y^q) / q + w_nce NCE,      NCE = CE / sum_k (-log p_k).

theta = (s_ce, s_mae, s_gce, s_nce, q). The weights are a sparse simplex of the scores,
``w = sparsemax(s) * TERM_SCALE``: relative weights that reach exact zeros, so each term alone is a point, and a
step of size sigma in the scores moves the weights by at most sigma wherever the search is. q is clamped to Q_RANGE.
The identity (1, 0, 0, 0, 0.7) is exactly cross-entropy, on the boundary where every other term starts to enter.

The sparse simplex is flat where a term's score is more than 1 below the top one (its weight is 0 for every nearby
theta) and q is flat outside Q_RANGE: a controller centre deep in such a region samples B copies of one loss, whose
equal rewards teach it nothing, and it stays there. With ``max_gap`` set, ``project`` keeps the centre within
``max_gap`` (>= 1, so every vertex is still a centre) of the top score in every score, and q inside Q_RANGE.

MAE and GCE are passive losses: alone they fit the clean labels slowly from scratch (the reward, one epoch from a
trained model, does not see it: Fashion-MNIST under asymmetric noise, RESULTS.md), while an active term (CE or NCE)
beside them trains (Ma et al. 2020, "Normalized Loss Functions for Deep Learning with Noisy Labels"; SCE is MAE with
a little CE). With ``min_active`` > 0 the simplex share of CE + NCE is at least ``min_active``: below it CE fills the
gap and MAE and GCE give up that share in proportion, so the MAE vertex becomes SCE-like. The weights stay
continuous in theta; CE, NCE, NCE+RCE and SCE(0.1, 1) (CE share 0.02125) stay points for any ``min_active`` up to
0.02125, and 0.02125 turns the MAE vertex into SCE(0.1, 1) itself.

Points of the family (the project's own baselines, up to an overall positive factor where one is given):
CE = (1, 0, 0, 0); MAE = 2 (1 - p_y) = (0, 1, 0, 0); GCE(q) = (0, 0, 1, 0, q); SCE(alpha, beta) = alpha CE
- A beta (1 - p_y), A = RCE_LOG_ZERO, needs w_mae / w_ce = -A beta / alpha; NCE+RCE likewise with w_nce for w_ce.
"""

from dataclasses import dataclass

import torch

from amlfs.spaces.base import LossSpace, sparsemax, target_log_prob

TERMS = ("ce", "mae", "gce", "nce")
TERM_SCALE = (1.0, 2.0, 1.0, 1.0)
"""Weight of each term at its vertex of the simplex: the MAE vertex is the project's MAE, 2 (1 - p_y)."""
Q_RANGE = (0.05, 1.0)
IDENTITY = (1.0, 0.0, 0.0, 0.0, 0.7)


@dataclass(frozen=True)
class MixtureSpace(LossSpace):
    """Config ``space=mixture``: CE, MAE, GCE and NCE mixed by sparse simplex weights."""

    max_gap: float | None = None
    min_active: float = 0.0

    name = "mixture"
    dim = len(TERMS) + 1

    def names(self) -> list[str]:
        return [f"score.{term}" for term in TERMS] + ["gce.q"]

    def identity(self) -> torch.Tensor:
        return torch.tensor(IDENTITY, dtype=torch.float64)

    def parameters(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The term weights w [B, 4] (ce, mae, gce, nce) and the GCE exponent q [B] of each theta [B, dim]."""
        shares = sparsemax(theta[..., : len(TERMS)])
        if self.min_active:
            shares = active_floor(shares, self.min_active)
        return shares * theta.new_tensor(TERM_SCALE), theta[..., len(TERMS)].clamp(*Q_RANGE)

    def from_log_probs(self, theta: torch.Tensor, log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        weights, q = self.parameters(theta)
        q = q.unsqueeze(-1)
        log_p = target_log_prob(log_probs, target)
        terms = (
            -log_p,
            -torch.expm1(log_p),
            -torch.expm1(q * log_p) / q,
            log_p / log_probs.sum(-1),
        )
        return sum(weights[..., i, None] * term for i, term in enumerate(terms))

    def project(self, theta: torch.Tensor) -> torch.Tensor:
        """Scores no further than ``max_gap`` below the top one and q inside Q_RANGE; unchanged without ``max_gap``."""
        if self.max_gap is None:
            return theta
        scores = theta[: len(TERMS)]
        q = theta[len(TERMS) :].clamp(*Q_RANGE)
        return torch.cat([scores.clamp(min=float(scores.max()) - self.max_gap), q])

    def meaning(self, theta: torch.Tensor) -> dict[str, float]:
        weights, q = self.parameters(theta.double().reshape(1, -1))
        return {**{f"w_{term}": float(w) for term, w in zip(TERMS, weights[0])}, "q": float(q[0])}


def active_floor(shares: torch.Tensor, floor: float) -> torch.Tensor:
    """Simplex shares [..., 4] (ce, mae, gce, nce) with ce + nce >= `floor`: CE raised to ``floor - nce`` where it is
    below, MAE and GCE scaled down to keep the sum 1."""
    ce, mae, gce, nce = shares.unbind(-1)
    raised = torch.maximum(ce, floor - nce)
    passive = mae + gce
    keep = torch.where(passive > 0, (1 - raised - nce) / passive.where(passive > 0, 1), 1)
    return torch.stack([raised, mae * keep, gce * keep, nce], -1)
