"""amlfs: automatic loss-function search (AM-LFS) with a REINFORCE controller over a piecewise-linear loss family."""

from amlfs.losses import SearchedLoss, load_loss, load_schedule
from amlfs.models import CosineHead

__all__ = ["CosineHead", "SearchedLoss", "load_loss", "load_schedule"]
