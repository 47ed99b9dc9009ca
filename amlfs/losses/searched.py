"""The searched loss as a plain PyTorch criterion, and loading it from a search run."""

import json
from pathlib import Path

import torch
import torch.nn as nn

from amlfs.losses import reduction as reductions
from amlfs.space import LossSpace, build_space


class SearchedLoss(nn.Module):
    """An AM-LFS loss at fixed parameters theta: ``forward(logits, target)`` like torch's losses.

    If ``needs_cosine_head`` is true, `logits` must be those of a cosine classifier,
    ``scale * cos(angle(feature, class weight))`` with ``scale`` as searched (``amlfs.models.CosineHead`` computes them);
    otherwise any logits will do.
    """

    def __init__(self, space: LossSpace, theta: torch.Tensor, reduction: str = "mean"):
        super().__init__()
        self.space = space
        self.reduction = reductions.check(reduction)
        self.register_buffer("theta", theta.detach().clone().reshape(1, -1))

    @property
    def needs_cosine_head(self) -> bool:
        return self.space.needs_cosine_head

    @property
    def scale(self) -> float:
        return self.space.scale

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return reductions.reduce(self.space.loss(self.theta, logits, target)[0], self.reduction)

    def extra_repr(self) -> str:
        head = f"cosine-head logits (scale {self.scale:g} * cos)" if self.needs_cosine_head else "any logits"
        return f"transforms={self.space.transforms}, intervals={self.space.intervals}, expects {head}, reduction={self.reduction}"


def load_loss(run_dir: str | Path, reduction: str = "mean", which: str = "mu") -> SearchedLoss:
    """The loss a finished search found: `which` = "mu" (the controller's final mean) or "best_theta".

    Needs only the run's results.json; no Hydra, no config files.
    """
    path = Path(run_dir) / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable search result ({err})") from None
    if not results.get("final") or results["final"].get(which) is None:
        raise ValueError(f"{path}: the search has no final {which!r} (unfinished run?)")
    config = results["config"]
    space = build_space(config["space"]["name"], config["space"]["intervals"], config["model"]["scale"])
    return SearchedLoss(space, torch.tensor(results["final"][which], dtype=torch.float64), reduction)
