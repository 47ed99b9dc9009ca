"""amlfs.search with an injected fault, runnable under torchrun: the loss of every parameter vector whose first
entry exceeds 1 turns NaN (the child fails wherever it trains)."""

import torch

from amlfs.search import main
from amlfs.spaces import LossSpace

healthy = LossSpace.loss


def faulty(self, theta, logits, target):
    value = healthy(self, theta, logits, target)
    return torch.where((theta[:, 0] > 1.0)[:, None], torch.full_like(value, float("nan")), value)


if __name__ == "__main__":
    LossSpace.loss = faulty
    main()
