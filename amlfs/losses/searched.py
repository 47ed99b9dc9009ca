"""The searched loss as a plain PyTorch criterion, and loading it from a search run."""

from pathlib import Path

import torch
import torch.nn as nn

from amlfs.config import with_defaults
from amlfs.losses import reduction as reductions
from amlfs.results import FILE as RESULTS_FILE, best_val_epoch, read_results
from amlfs.spaces import LossSpace, space_of


WHICH_LOSS = ("mu", "best_val_mu", "best_theta")


class SearchedLoss(nn.Module):
    """A loss of a search space at fixed parameters theta: ``forward(logits, target)`` like torch's losses.

    If ``needs_cosine_head`` is true, `logits` must be those of a cosine classifier,
    ``scale * cos(angle(feature, class weight))`` with ``scale`` as searched (``amlfs.models.CosineHead`` computes them);
    otherwise any logits will do.
    """

    def __init__(self, space: LossSpace, theta: torch.Tensor, reduction: str = "mean"):
        super().__init__()
        self.space = space
        self.reduction = reductions.check(reduction)
        if theta.numel() != space.dim:
            raise ValueError(f"theta has {theta.numel()} values; space {space.name!r} takes {space.dim}")
        self.register_buffer("theta", theta.detach().clone().reshape(1, -1))

    @property
    def needs_cosine_head(self) -> bool:
        return self.space.needs_cosine_head

    @property
    def scale(self) -> float:
        return self.space.scale

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return reductions.reduce(self.unreduced(logits, target), self.reduction)

    def unreduced(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of each sample [N] of `logits` [N, C], whatever ``reduction`` is."""
        return self.space.loss(self.theta, logits, target)[0]

    def extra_repr(self) -> str:
        head = f"cosine-head logits (scale {self.scale:g} * cos)" if self.needs_cosine_head else "any logits"
        meaning = "".join(f", {key}={value:.4g}" for key, value in self.space.meaning(self.theta[0]).items())
        return f"{self.space!r}{meaning}, expects {head}, reduction={self.reduction}"


def _finished_search(run_dir: str | Path, which: str) -> tuple[dict, LossSpace]:
    """A finished search's results.json and its loss space; ValueError when it lacks `which` in its final entry."""
    results = read_results(run_dir)
    if not results["final"] or results["final"].get(which) is None:
        raise ValueError(f"{Path(run_dir) / RESULTS_FILE}: the search has no final {which!r} (unfinished run?)")
    return results, space_of(with_defaults(results["config"]))


def load_loss(run_dir: str | Path, reduction: str = "mean", which: str = "mu") -> SearchedLoss:
    """The loss a finished search found: `which` = "mu" (the controller's final mean), "best_val_mu" (its mean at
    the search's best validation epoch, `best_val_mu`) or "best_theta" (the final epoch's best child).

    Needs only the run's results.json; no Hydra, no config files.
    """
    if which not in WHICH_LOSS:
        raise ValueError(f"which={which!r}: choose one of {', '.join(WHICH_LOSS)}")
    results, space = _finished_search(run_dir, "best_theta" if which == "best_theta" else "mu")
    theta = best_val_mu(results, space) if which == "best_val_mu" else results["final"][which]
    return SearchedLoss(space, torch.tensor(theta, dtype=torch.float64), reduction)


def best_val_mu(results: dict, space: LossSpace) -> list[float]:
    """The controller's mean in effect at the search's best validation epoch: the centre that epoch's children were
    sampled around (the mean after the epoch before; the identity at epoch 0). The final mean can drift on to losses
    that keep a trained model but do not train one from scratch; this one was in use when the model was best."""
    best = best_val_epoch(results["epochs"])
    return results["epochs"][best - 1]["mu"] if best > 0 else space.identity().tolist()


def schedule_thetas(results: dict) -> list[list[float]]:
    """Per search epoch, the parameters of its best child (mu where every child of the epoch failed)."""
    return [e["thetas"][e["best"]] if e["best"] is not None else e["mu"] for e in results["epochs"]]


def load_schedule(run_dir: str | Path, reduction: str = "mean") -> list[SearchedLoss]:
    """The loss schedule a finished search trained with: element e is the loss of epoch e's best child.

    Training a model from scratch with element e in its epoch e replays the search's losses in order; the losses
    of a search are tuned to the stage of training they were found at, so late ones can fail from scratch.
    """
    results, space = _finished_search(run_dir, "mu")
    return [SearchedLoss(space, torch.tensor(theta, dtype=torch.float64), reduction) for theta in schedule_thetas(results)]
