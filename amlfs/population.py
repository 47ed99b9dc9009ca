"""The B children of a search epoch: trained one after another, or all at once as one vectorised model.

Both backends start every child from the broadcast state (model weights, buffers and Adam state, kept in
the format of a single model's ``state_dict``s) and leave it in the same format after ``broadcast``, so they
are interchangeable and a checkpoint of one can be resumed by the other.
"""

import copy
from dataclasses import dataclass

import torch
from torch.func import functional_call, vmap

from amlfs.data import DeviceData, Split, epoch_stream
from amlfs.losses import SearchedLoss
from amlfs.progress import progress, steps_per_epoch
from amlfs.seeding import derive_seed
from amlfs.spaces import LossSpace
from amlfs.training import accuracy, all_finite, autocast, compiled, confusion, make_optimizer, nonzero_gradient, train_one_epoch


@dataclass
class EpochOutcome:
    """What the children of one epoch achieved, one entry per child (tensors on the device): the confusion matrix
    [K, K] on the reward split (rows: predicted class, columns: label), the mean train loss, whether it failed."""

    confusion: torch.Tensor
    train_loss: torch.Tensor
    failed: torch.Tensor
    images: int


class Population:
    """What both backends share: the broadcast state, the children's batch streams, the broadcast model's accuracy."""

    def __init__(self, model: torch.nn.Module, space: LossSpace, data: DeviceData, train_cfg, seed: int, shared_batches: bool,
                 first_child: int = 0):
        """`first_child`: the search-wide index of this population's first child (a rank's block under torchrun)."""
        self.model = model
        self.first_child = first_child
        self.space = space
        self.data = data
        self.train_cfg = train_cfg
        self.seed = seed
        self.shared_batches = shared_batches
        self.device = data.train.labels.device
        self.runner = compiled(model, train_cfg)
        self.broadcast_state = {
            "model": {key: value.detach().clone() for key, value in model.state_dict().items()},
            "optimizer": make_optimizer(model.parameters(), train_cfg).state_dict(),
        }

    def stream(self, epoch: int, child: int) -> tuple[torch.Tensor, torch.Generator]:
        """Local child `child`'s batch order and augmentation generator in `epoch`, keyed by its search-wide index
        (the same for all when batches are shared)."""
        key = 0 if self.shared_batches else self.first_child + child
        return epoch_stream(len(self.data.train), derive_seed(self.seed, "batches", epoch, key), self.device)

    def confusion(self, split: Split) -> torch.Tensor:
        """Confusion matrix [K, K] of the broadcast model on `split`."""
        self.model.load_state_dict(self.broadcast_state["model"])
        return confusion(self.runner, self.data, split, self.train_cfg.eval_batch_size, self.train_cfg.autocast)

    def accuracy(self, split: Split) -> torch.Tensor:
        """Accuracy of the broadcast model on `split`."""
        self.model.load_state_dict(self.broadcast_state["model"])
        return accuracy(self.runner, self.data, split, self.train_cfg.eval_batch_size, self.train_cfg.autocast)

    @torch.no_grad()
    def probabilities(self, split: Split) -> torch.Tensor:
        """Softmax outputs [N, K] of the broadcast model on `split` (float64)."""
        self.model.load_state_dict(self.broadcast_state["model"])
        self.runner.eval()
        outputs = []
        for images, _ in self.data.eval_batches(split, self.train_cfg.eval_batch_size):
            with autocast(self.device, self.train_cfg.autocast):
                outputs.append(torch.softmax(self.runner(images).double(), -1))
        return torch.cat(outputs)


class SequentialPopulation(Population):
    """Children trained in turn in one working model and optimizer; every child's end state is kept."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.optimizer = make_optimizer(self.model.parameters(), self.train_cfg)
        self.children: list[dict] = []

    def train(self, thetas: torch.Tensor, epoch: int) -> EpochOutcome:
        """Train one child per row of `thetas` [B, dim] for one epoch, each from the broadcast state."""
        cfg = self.train_cfg
        confusions, losses, sound, self.children = [], [], [], []
        with progress(len(thetas) * steps_per_epoch(len(self.data.train), cfg.batch_size), f"epoch {epoch + 1}") as bar:
            for i, theta in enumerate(thetas.to(self.device, self.data.dtype)):
                self.model.load_state_dict(self.broadcast_state["model"])
                self.optimizer.load_state_dict(copy.deepcopy(self.broadcast_state["optimizer"]))
                order, generator = self.stream(epoch, i)
                loss, epoch_sound = train_one_epoch(self.runner, self.optimizer, SearchedLoss(self.space, theta), self.data,
                                                    order, cfg.batch_size, generator, cfg.autocast, on_step=bar.update)
                losses.append(loss)
                sound.append(epoch_sound & all_finite(self.model.state_dict().values()))
                confusions.append(confusion(self.runner, self.data, self.data.val, cfg.eval_batch_size, cfg.autocast))
                self.children.append({
                    "model": {key: value.detach().clone() for key, value in self.model.state_dict().items()},
                    "optimizer": copy.deepcopy(self.optimizer.state_dict()),
                })
        return EpochOutcome(torch.stack(confusions), torch.stack(losses), ~torch.stack(sound), len(thetas) * len(self.data.train))

    def broadcast(self, index: int) -> None:
        """Make child `index` of the last epoch the starting point of every child of the next."""
        self.broadcast_state = self.children[index]
        self.children = []


class VectorizedPopulation(Population):
    """All B children as one model: parameters, buffers and Adam state stacked along a leading dimension.

    The forward pass is ``vmap`` of ``functional_call`` over the stacked tensors (BatchNorm statistics and
    dropout randomness per child); one Adam over the stacked parameters equals B Adams, Adam being elementwise.
    """

    def __init__(self, model: torch.nn.Module, space: LossSpace, data: DeviceData, train_cfg, seed: int, shared_batches: bool,
                 size: int, first_child: int = 0):
        super().__init__(model, space, data, train_cfg, seed, shared_batches, first_child)
        self.size = size
        self.params, self.buffers = stack_models([model] * size)
        self.optimizer = make_optimizer(list(self.params.values()), train_cfg)
        logits = stacked_forward(model)

        def losses(params, buffers, images, labels, thetas, own_batches: bool):
            return space.loss(thetas, logits(params, buffers, images, own_batches), labels).mean(-1)

        self.logits = compiled(logits, train_cfg)
        self.losses = compiled(losses, train_cfg)

    def _load_broadcast(self) -> None:
        """Copy the broadcast state into every child's slice of the stacked tensors."""
        source, state = self.broadcast_state["model"], self.broadcast_state["optimizer"]["state"]
        with torch.no_grad():
            for name, tensor in {**self.params, **self.buffers}.items():
                tensor.copy_(source[name].expand_as(tensor))
        self.optimizer.state.clear()
        for index, param in enumerate(self.params.values()):
            if index in state:
                self.optimizer.state[param] = {
                    key: value.clone() if key == "step" else value.expand_as(param).clone() for key, value in state[index].items()
                }

    def _batches(self, epoch: int):
        """(images, labels): the shared batches, or each child's own batches stacked along a leading dimension."""
        if self.shared_batches:
            order, generator = self.stream(epoch, 0)
            yield from self.data.train_batches(order, self.train_cfg.batch_size, generator)
            return
        yield from self.data.stacked_train_batches([self.stream(epoch, i) for i in range(self.size)], self.train_cfg.batch_size)

    def train(self, thetas: torch.Tensor, epoch: int) -> EpochOutcome:
        if len(thetas) != self.size:
            raise ValueError(f"this population trains {self.size} children, got {len(thetas)} parameter vectors")
        self._load_broadcast()
        train_loss, sound = self.fit(thetas, epoch)
        for tensor in {**self.params, **self.buffers}.values():
            sound &= torch.isfinite(tensor.detach()).reshape(self.size, -1).all(1)
        return EpochOutcome(self._confusions(self.data.val), train_loss, ~sound, self.size * len(self.data.train))

    def fit(self, thetas: torch.Tensor, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One epoch of training for all children from their current state.

        Returns each child's mean train loss [B] and whether its epoch was sound [B]: all its losses finite and
        some gradient non-zero. A child whose loss turns non-finite cannot harm the others (its parameters and
        Adam state are its own slices).
        """
        thetas = thetas.to(self.device, self.data.dtype)
        self.model.train()
        total = torch.zeros(self.size, device=self.device, dtype=self.data.dtype)
        finite = torch.ones(self.size, device=self.device, dtype=torch.bool)
        learned = torch.zeros(self.size, device=self.device, dtype=torch.bool)
        parameters = list(self.params.values())
        own_batches = not self.shared_batches
        with progress(steps_per_epoch(len(self.data.train), self.train_cfg.batch_size), f"epoch {epoch + 1}") as bar:
            for images, labels in self._batches(epoch):
                with autocast(self.device, self.train_cfg.autocast):
                    losses = self.losses(self.params, self.buffers, images, labels, thetas, own_batches)
                self.optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()
                learned |= nonzero_gradient(parameters, self.size)
                self.optimizer.step()
                total += losses.detach() * labels.shape[-1]
                finite &= torch.isfinite(losses.detach())
                bar.update()
        return total / len(self.data.train), finite & learned

    def _confusions(self, split: Split) -> torch.Tensor:
        """Confusion matrix of every child on `split` [B, K, K], without leaving the device."""
        return stacked_confusions(self.model, self.logits, self.params, self.buffers, self.data, split, self.train_cfg)

    def broadcast(self, index: int) -> None:
        """Take child `index` out of the stacked tensors as the next broadcast state."""
        names = list(self.params)
        self.broadcast_state = {
            "model": {name: tensor[index].detach().clone() for name, tensor in {**self.params, **self.buffers}.items()},
            "optimizer": {
                "state": {
                    i: {key: value.clone() if key == "step" else value[index].clone() for key, value in self.optimizer.state[self.params[name]].items()}
                    for i, name in enumerate(names) if self.params[name] in self.optimizer.state
                },
                "param_groups": self.optimizer.state_dict()["param_groups"],
            },
        }


def stack_models(models: list[torch.nn.Module]) -> tuple[dict, dict]:
    """The parameters (requiring gradients) and buffers of same-architecture `models`, each stacked along a leading
    dimension: the tensors ``stacked_forward`` takes."""
    params = [dict(m.named_parameters()) for m in models]
    buffers = [dict(m.named_buffers()) for m in models]
    return ({name: torch.stack([p[name].detach() for p in params]).requires_grad_() for name in params[0]},
            {name: torch.stack([b[name] for b in buffers]) for name in buffers[0]})


def stacked_forward(model: torch.nn.Module):
    """``logits(params, buffers, images, own_batches)`` of copies of `model` whose parameters and buffers are stacked
    along a leading dimension: ``vmap`` of ``functional_call``, with one batch for all copies or one batch each."""

    def forward(params, buffers, images):
        return functional_call(model, (params, buffers), (images,))

    forward_shared = vmap(forward, in_dims=(0, 0, None), randomness="different")
    forward_own = vmap(forward, in_dims=(0, 0, 0), randomness="different")

    def logits(params, buffers, images, own_batches: bool):
        return (forward_own if own_batches else forward_shared)(params, buffers, images)

    return logits


@torch.no_grad()
def stacked_confusions(model: torch.nn.Module, logits, params: dict, buffers: dict, data: DeviceData, split: Split, train_cfg) -> torch.Tensor:
    """Confusion matrices [copies, K, K] on `split` of stacked copies of `model` (`logits` from ``stacked_forward``;
    rows: predicted class, columns: label), on the device."""
    model.eval()
    copies, classes = next(iter(params.values())).shape[0], data.num_classes
    counts = torch.zeros(copies, classes * classes, dtype=torch.long, device=split.labels.device)
    for images, labels in data.eval_batches(split, train_cfg.eval_batch_size):
        with autocast(split.labels.device, train_cfg.autocast):
            cells = logits(params, buffers, images, False).argmax(-1) * classes + labels
        counts.scatter_add_(1, cells, torch.ones_like(cells))
    return counts.reshape(copies, classes, classes)


def cross_entropy_probabilities(model: torch.nn.Module, space: LossSpace, data: DeviceData, train_cfg, seed: int,
                                epochs: int) -> torch.Tensor:
    """Softmax outputs [N, K] on the training split of `model` (trained in place: pass a copy) after `epochs` epochs
    of cross-entropy (`space`'s identity) with a fresh Adam: one child on the shared batches of the search `seed`.
    The global random state is restored afterwards (a model with dropout draws from it, seeded by `seed`)."""
    device = data.train.labels.device
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derive_seed(seed, "cross-entropy model"))
        child = SequentialPopulation(model, space, data, train_cfg, seed, shared_batches=True)
        for epoch in range(epochs):
            child.train(space.identity()[None], epoch)
            child.broadcast(0)
        return child.probabilities(data.train)


def resolve_backend(backend: str, device: torch.device) -> str:
    """`auto`: sequential on the CPU (measured faster there), vectorized on CUDA."""
    if backend == "auto":
        return "vectorized" if device.type == "cuda" else "sequential"
    return backend


def make_population(backend: str, model, space, data, train_cfg, seed: int, shared_batches: bool, size: int,
                    first_child: int = 0) -> Population:
    """The population of config ``search.backend`` (`auto` resolved for the data's device): `size` children, the
    first of them child `first_child` of the search."""
    if resolve_backend(backend, data.train.labels.device) == "vectorized":
        return VectorizedPopulation(model, space, data, train_cfg, seed, shared_batches, size, first_child)
    return SequentialPopulation(model, space, data, train_cfg, seed, shared_batches, first_child)
