"""Losses as drop-in criteria, ``forward(logits, target)``: hand-crafted baselines and the searched loss."""

from amlfs.losses.classic import CrossEntropy, FocalLoss, LabelSmoothing, PolyLoss
from amlfs.losses.robust import GeneralizedCrossEntropy, MeanAbsoluteError, NCEandRCE, SymmetricCrossEntropy
from amlfs.losses.searched import SearchedLoss, best_val_mu, load_loss, load_schedule, schedule_thetas

BASELINES = {
    "ce": CrossEntropy,
    "label_smoothing": lambda: LabelSmoothing(0.1),
    "focal": lambda: FocalLoss(2.0),
    "gce": lambda: GeneralizedCrossEntropy(0.7),
    "sce": lambda: SymmetricCrossEntropy(0.1, 1.0),
    "nce_rce": lambda: NCEandRCE(1.0, 1.0),
    "poly1": lambda: PolyLoss(1.0),
    "mae": MeanAbsoluteError,
}
"""Hand-crafted losses with the hyperparameters the evaluation compares against, by name."""

__all__ = [
    "BASELINES", "CrossEntropy", "FocalLoss", "GeneralizedCrossEntropy", "LabelSmoothing", "MeanAbsoluteError",
    "NCEandRCE", "PolyLoss", "SearchedLoss", "SymmetricCrossEntropy", "best_val_mu", "load_loss", "load_schedule",
    "schedule_thetas",
]
