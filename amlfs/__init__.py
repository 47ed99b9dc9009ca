"""amlfs: automatic loss-function search (AM-LFS) over families of classification losses."""

from amlfs.losses import SearchedLoss, load_loss, load_schedule
from amlfs.models import CosineHead, load_model

__all__ = ["CosineHead", "SearchedLoss", "load_loss", "load_model", "load_schedule", "run_evaluation", "run_search"]


def __getattr__(name: str):
    """run_search and run_evaluation load the training stack (TensorBoard, torchvision) only when first used."""
    if name in ("run_search", "run_evaluation"):
        from amlfs import api

        return getattr(api, name)
    raise AttributeError(f"module 'amlfs' has no attribute {name!r}")
