"""Child models: feature extractors with a linear or cosine classifier head."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class CosineHead(nn.Module):
    """logit_j = scale * cos(angle between the feature and class weight j)."""

    def __init__(self, in_features: int, num_classes: int, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        nn.init.xavier_uniform_(self.weight)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.linear(F.normalize(x, dim=-1), F.normalize(self.weight, dim=-1))


def make_head(kind: str, in_features: int, num_classes: int, scale: float) -> nn.Module:
    if kind == "linear":
        return nn.Linear(in_features, num_classes)
    if kind == "cosine":
        return CosineHead(in_features, num_classes, scale)
    raise ValueError(f"model.head={kind!r}: choose linear or cosine")


class Classifier(nn.Module):
    """A feature extractor followed by a classifier head."""

    def __init__(self, features: nn.Module, feature_dim: int, num_classes: int, head: str, scale: float):
        super().__init__()
        self.features = features
        self.head = make_head(head, feature_dim, num_classes, scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def small_cnn(in_channels: int, image_size: int, channels: list[int], hidden: int) -> tuple[nn.Module, int]:
    """3x3 conv + ReLU + 2x2 max-pool blocks, then one hidden fully-connected layer."""
    layers, width, size = [], in_channels, image_size
    for out in channels:
        layers += [nn.Conv2d(width, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        width, size = out, size // 2
    layers += [nn.Flatten(), nn.Linear(width * size * size, hidden), nn.ReLU()]
    return nn.Sequential(*layers), hidden


def build_model(cfg, image_shape: tuple[int, int, int], num_classes: int) -> Classifier:
    """The model of config group ``model`` for images of `image_shape` (C, H, W)."""
    in_channels, image_size, _ = image_shape
    if cfg.name == "cnn":
        features, dim = small_cnn(in_channels, image_size, list(cfg.channels), cfg.hidden)
    else:
        raise ValueError(f"model={cfg.name!r} is not a known model")
    return Classifier(features, dim, num_classes, cfg.head, cfg.scale)
