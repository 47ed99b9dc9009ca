"""One child's work: an epoch of training under a given loss, and accuracy on a split."""

import torch

from amlfs.data import DeviceData, Split
from amlfs.space import LossSpace


def make_optimizer(parameters, cfg) -> torch.optim.Adam:
    """The fixed child optimizer: Adam with the ``train`` config's hyperparameters."""
    return torch.optim.Adam(parameters, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay)


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    space: LossSpace,
    theta: torch.Tensor,
    data: DeviceData,
    order: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Train `model` for one pass over `order` under the loss at `theta` [dim]; returns the mean loss (on the device)."""
    model.train()
    theta = theta.unsqueeze(0)
    total = torch.zeros((), device=order.device)
    for images, labels in data.train_batches(order, batch_size, generator):
        loss = space.loss(theta, model(images), labels).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach() * len(labels)
    return total / len(order)


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: DeviceData, split: Split, batch_size: int) -> torch.Tensor:
    """Top-1 accuracy of `model` on `split` (a 0-d tensor on the device)."""
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=split.labels.device)
    for images, labels in data.eval_batches(split, batch_size):
        correct += (model(images).argmax(-1) == labels).sum()
    return correct.double() / len(split)
