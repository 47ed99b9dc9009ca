"""The AM-LFS space (Li et al. 2019): piecewise-linear transforms of the target cosine and the target probability.

A parameter vector theta holds, for each transform the space uses, M slopes then M intercepts of a
piecewise-linear function on M equal intervals (the paper's form, free to jump at interval boundaries), or, in the
continuous form, the function's value at the left end then its M slopes (no jumps, M + 1 parameters per transform):

- ``t`` on [-1, 1] maps the target-class cosine of a cosine-classifier head,
  so the target logit ``s * cos`` becomes ``s * t(cos)``;
- ``tau`` on [0, 1] maps the target-class softmax probability p_y, and the loss is ``-log(tau(p_y))``.

Slopes 1 and intercepts 0 (continuous: the left end's own value as start) give exactly cross-entropy.
Config ``space=amlfs`` uses both, ``space=amlfs_tau`` tau only, ``space=ce`` neither (plain cross-entropy).
"""

from dataclasses import dataclass

import torch

from amlfs.spaces.base import LossSpace, target_log_prob

TRANSFORMS = {"t": (-1.0, 1.0), "tau": (0.0, 1.0)}
VARIANTS = {"amlfs": ("t", "tau"), "amlfs_tau": ("tau",), "ce": ()}
TAU_FLOOR = 1e-8
"""tau(p_y) is clamped to at least this, so a non-positive tau gives a finite loss with zero gradient."""


def piecewise_linear(x: torch.Tensor, slopes: torch.Tensor, intercepts: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Evaluate ``slopes[..., i] * x + intercepts[..., i]`` where i is the interval of [lo, hi] holding x.

    x: [B, N]; slopes, intercepts: [B, M]. Values outside [lo, hi] use the end pieces.
    """
    m = slopes.shape[-1]
    piece = ((x.detach() - lo) * (m / (hi - lo))).floor().long().clamp_(0, m - 1)
    return slopes.gather(-1, piece) * x + intercepts.gather(-1, piece)


@dataclass(frozen=True)
class PiecewiseSpace(LossSpace):
    """The AM-LFS family.

    transforms: which of "t" and "tau" the space uses (none: plain cross-entropy).
    intervals: M, the number of equal pieces of each transform.
    scale: s of the cosine head; needed only by "t".
    continuous: parameterise each transform by its start value and slopes, so it cannot jump.
    """

    transforms: tuple[str, ...]
    intervals: int
    scale: float = 1.0
    continuous: bool = False

    @property
    def name(self) -> str:
        return next(name for name, used in VARIANTS.items() if used == self.transforms)

    @property
    def per_transform(self) -> int:
        return self.intervals + 1 if self.continuous else 2 * self.intervals

    @property
    def dim(self) -> int:
        return self.per_transform * len(self.transforms)

    @property
    def needs_cosine_head(self) -> bool:
        return "t" in self.transforms

    def names(self) -> list[str]:
        """One name per parameter, e.g. ``tau.slope3``, in the order of theta."""
        kinds = [f"{kind}{i}" for kind in ("slope", "intercept") for i in range(self.intervals)]
        if self.continuous:
            kinds = ["start"] + [f"slope{i}" for i in range(self.intervals)]
        return [f"{transform}.{kind}" for transform in self.transforms for kind in kinds]

    def identity(self) -> torch.Tensor:
        """The parameter vector of cross-entropy: every transform the identity."""
        ones = torch.ones(self.intervals, dtype=torch.float64)
        pieces = [
            torch.cat([torch.tensor([TRANSFORMS[name][0]], dtype=torch.float64), ones]) if self.continuous
            else torch.cat([ones, torch.zeros_like(ones)])
            for name in self.transforms
        ]
        return torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.float64)

    def unpack(self, theta: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Split theta [B, dim] into {transform: (slopes [B, M], intercepts [B, M])}."""
        params = {}
        for name, chunk in zip(self.transforms, theta.split(self.per_transform, dim=-1)):
            if not self.continuous:
                params[name] = (chunk[..., : self.intervals], chunk[..., self.intervals :])
                continue
            lo, hi = TRANSFORMS[name]
            width = (hi - lo) / self.intervals
            start, slopes = chunk[..., :1], chunk[..., 1:]
            left_values = start + width * (slopes.cumsum(-1) - slopes)
            left_ends = lo + width * torch.arange(self.intervals, dtype=theta.dtype, device=theta.device)
            params[name] = (slopes, left_values - slopes * left_ends)
        return params

    def transform(self, name: str, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Apply transform `name` under each parameter vector: theta [B, dim], x [B, N] -> [B, N]."""
        slopes, intercepts = self.unpack(theta)[name]
        return piecewise_linear(x, slopes, intercepts, *TRANSFORMS[name])

    def transform_logits(self, theta: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """With "t", the target logit ``s * cos`` becomes ``s * t(cos)``; logits must be those of a cosine head."""
        if "t" not in self.transforms:
            return logits
        target = target.unsqueeze(-1)
        cos = logits.gather(-1, target).squeeze(-1) / self.scale
        shift = self.scale * (self.transform("t", theta, cos) - cos)
        return logits.scatter_add(-1, target, shift.unsqueeze(-1))

    def from_log_probs(self, theta: torch.Tensor, log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """-log tau(p_y) (after t); plain -log p_y when the space has no tau."""
        log_p = target_log_prob(log_probs, target)
        params = self.unpack(theta.to(log_p.dtype))
        if "tau" not in params:
            return -log_p
        slopes, intercepts = params["tau"]
        p = log_p.exp()
        piece = (p.detach() * self.intervals).floor().long().clamp_(0, self.intervals - 1)
        slope, intercept = slopes.gather(-1, piece), intercepts.gather(-1, piece)
        general = -(slope * p + intercept).clamp_min(TAU_FLOOR).log()
        # On a piece with zero intercept, -log(c p) = -log c - log p: exact even where p underflows.
        through_origin = -(slope.clamp_min(TAU_FLOOR).log() + log_p)
        return torch.where((intercept == 0) & (slope > 0), through_origin, general)


def build(variant: str, scale: float, intervals: int = 6, continuous: bool = False) -> PiecewiseSpace:
    """Config ``space=amlfs|amlfs_tau|ce``."""
    return PiecewiseSpace(VARIANTS[variant], intervals, scale, continuous)
