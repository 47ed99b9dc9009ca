"""The population of children of one search epoch, trained one after another on one device."""

import copy
from dataclasses import dataclass

import torch

from amlfs.data import DeviceData, Split, epoch_stream
from amlfs.seeding import derive_seed
from amlfs.space import LossSpace
from amlfs.training import accuracy, make_optimizer, train_one_epoch


@dataclass
class EpochOutcome:
    """What the children of one epoch achieved, one entry per child (tensors on the device)."""

    rewards: torch.Tensor
    train_loss: torch.Tensor
    images: int


class SequentialPopulation:
    """B children per epoch, each trained in turn from the broadcast weights and Adam state.

    One working model and optimizer are reused; every child's end state is kept so that any
    child can be broadcast. With `shared_batches`, all children of an epoch see the same batches
    in the same order (common random numbers); otherwise each child draws its own order.
    """

    def __init__(self, model: torch.nn.Module, space: LossSpace, data: DeviceData, train_cfg, seed: int, shared_batches: bool = True):
        self.model = model
        self.optimizer = make_optimizer(model.parameters(), train_cfg)
        self.space = space
        self.data = data
        self.batch_size = train_cfg.batch_size
        self.eval_batch_size = train_cfg.eval_batch_size
        self.seed = seed
        self.shared_batches = shared_batches
        self.broadcast_state = self._snapshot()
        self.children: list[dict] = []

    def _snapshot(self) -> dict:
        return {
            "model": {key: value.detach().clone() for key, value in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
        }

    def _restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))

    def train(self, thetas: torch.Tensor, epoch: int) -> EpochOutcome:
        """Train one child per row of `thetas` [B, dim] for one epoch; reward = validation accuracy."""
        device = self.data.train.labels.device
        rewards, losses, self.children = [], [], []
        for i, theta in enumerate(thetas.to(device, torch.float32)):
            self._restore(self.broadcast_state)
            stream = derive_seed(self.seed, "batches", epoch, 0 if self.shared_batches else i)
            order, generator = epoch_stream(len(self.data.train), stream, device)
            losses.append(train_one_epoch(self.model, self.optimizer, self.space, theta, self.data, order, self.batch_size, generator))
            rewards.append(accuracy(self.model, self.data, self.data.val, self.eval_batch_size))
            self.children.append(self._snapshot())
        return EpochOutcome(torch.stack(rewards), torch.stack(losses), len(thetas) * len(self.data.train))

    def broadcast(self, index: int) -> None:
        """Make child `index` of the last epoch the starting point of every child of the next."""
        self.broadcast_state = self.children[index]
        self.children = []

    def accuracy(self, split: Split) -> torch.Tensor:
        """Accuracy of the broadcast model on `split`."""
        self.model.load_state_dict(self.broadcast_state["model"])
        return accuracy(self.model, self.data, split, self.eval_batch_size)
