"""Data resident on the training device: uint8 splits, index-slice batches, batched normalisation and augmentation."""

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class Split:
    """One split held on the device: uint8 images [N, C, H, W] and int64 labels [N]."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_arrays(cls, images: np.ndarray, labels: np.ndarray, device: torch.device) -> "Split":
        return cls(torch.from_numpy(np.ascontiguousarray(images)).to(device), torch.from_numpy(labels).long().to(device))


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (rest, held_out), both sorted: round(fraction * N) examples held out, chosen by `seed`.

    Each class gives its share rounded down; the examples left over go to the classes with the largest remainders.
    """
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    share = fraction * counts
    quota = np.floor(share).astype(int)
    left_over = int(round(fraction * len(labels))) - quota.sum()
    quota[np.lexsort((rng.random(len(classes)), -(share - quota)))[:left_over]] += 1
    held_out = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota)])
    held_out = np.sort(held_out)
    rest = np.setdiff1d(np.arange(len(labels)), held_out, assume_unique=True)
    return rest, held_out


def random_crop_flip(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crops after zero-padding by `padding` pixels and random horizontal flips, for a whole batch."""
    n, _, h, w = images.shape
    device = images.device
    padded = F.pad(images, (padding,) * 4)
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=device, generator=generator)
    flip = torch.rand(n, 1, 1, device=device, generator=generator) < 0.5
    rows = torch.arange(h, device=device).view(1, h, 1) + dy
    cols = torch.arange(w, device=device).view(1, 1, w)
    cols = torch.where(flip, w - 1 - cols, cols) + dx
    index = torch.arange(n, device=device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[index, rows, cols].permute(0, 3, 1, 2)


@dataclass
class DeviceData:
    """Train, validation and test splits on one device, with the transforms the model sees."""

    train: Split
    val: Split
    test: Split
    num_classes: int
    mean: torch.Tensor
    std: torch.Tensor
    augment: bool = False
    crop_padding: int = 4
    dtype: torch.dtype = torch.float32
    memory_format: torch.memory_format = torch.contiguous_format
    info: dict = field(default_factory=dict)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        return ((images.to(self.dtype) / 255 - self.mean) / self.std).contiguous(memory_format=self.memory_format)

    def train_batches(self, order: torch.Tensor, batch_size: int, generator: torch.Generator | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Batches of the training split in `order`; augmented (drawing from `generator`) when enabled."""
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            images = self.train.images[index]
            if self.augment:
                images = random_crop_flip(images, self.crop_padding, generator)
            yield self.normalise(images), self.train.labels[index]

    def stacked_train_batches(self, streams: list[tuple[torch.Tensor, torch.Generator]], batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The batches `train_batches` gives each stream (its order, its generator), stacked along a leading
        dimension [streams, batch, ...]: one index gather and one normalisation for all streams per step."""
        orders = torch.stack([order for order, _ in streams])
        for start in range(0, orders.shape[1], batch_size):
            index = orders[:, start : start + batch_size]
            images = self.train.images[index]
            if self.augment:
                images = torch.stack([random_crop_flip(part, self.crop_padding, generator) for part, (_, generator) in zip(images, streams)])
            yield self.normalise(images.flatten(0, 1)).unflatten(0, index.shape), self.train.labels[index]

    def eval_batches(self, split: Split, batch_size: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, len(split), batch_size):
            yield self.normalise(split.images[start : start + batch_size]), split.labels[start : start + batch_size]


def epoch_stream(n: int, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Generator]:
    """A seeded permutation of n training indices, and the generator (continued) for augmentation."""
    generator = torch.Generator(device).manual_seed(seed)
    return torch.randperm(n, generator=generator, device=device), generator
