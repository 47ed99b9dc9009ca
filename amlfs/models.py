"""Child models: feature extractors with a linear or cosine classifier head; the search's own model, loaded."""

import logging
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from amlfs.config import ConfigError, with_defaults
from amlfs.results import FILE as RESULTS_FILE, best_val_epoch, read_results

log = logging.getLogger("amlfs")


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


def mlp(in_channels: int, image_size: int, hidden: list[int]) -> tuple[nn.Module, int]:
    """Fully-connected layers with ReLU on the flattened image."""
    layers, width = [nn.Flatten()], in_channels * image_size * image_size
    for out in hidden:
        layers += [nn.Linear(width, out), nn.ReLU()]
        width = out
    return nn.Sequential(*layers), width


def small_cnn(in_channels: int, image_size: int, channels: list[int], hidden: int) -> tuple[nn.Module, int]:
    """3x3 conv + ReLU + 2x2 max-pool blocks, then one hidden fully-connected layer."""
    layers, width, size = [], in_channels, image_size
    for out in channels:
        layers += [nn.Conv2d(width, out, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        width, size = out, size // 2
    layers += [nn.Flatten(), nn.Linear(width * size * size, hidden), nn.ReLU()]
    return nn.Sequential(*layers), hidden


def lenet5(in_channels: int, image_size: int) -> tuple[nn.Module, int]:
    """LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling; 28x28 inputs are padded to 32x32 by the first conv."""
    padding = max(0, (32 - image_size) // 2)
    size = ((image_size + 2 * padding - 4) // 2 - 4) // 2
    features = nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=padding), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * size * size, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
    )
    return features, 84


class GlobalAveragePool(nn.Module):
    """Mean over the spatial dimensions: [N, C, H, W] -> [N, C] (a plain mean, which vmap batches natively)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a parameter-free shortcut (He et al. 2016, option A)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.extra_channels == 0:
            return x
        x = x[:, :, :: self.stride, :: self.stride]
        half = self.extra_channels // 2
        return F.pad(x, (0, 0, 0, 0, half, self.extra_channels - half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


def cifar_resnet(in_channels: int, depth: int) -> tuple[nn.Module, int]:
    """ResNet-(6n+2) for 32x32 images: 3 stages of n blocks with 16, 32, 64 channels, global average pool."""
    if (depth - 2) % 6:
        raise ValueError(f"model.depth={depth}: a CIFAR ResNet has depth 6n+2 (20, 32, 44, 56, 110)")
    blocks = (depth - 2) // 6
    layers = [nn.Conv2d(in_channels, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU()]
    width = 16
    for stage, out in enumerate((16, 32, 64)):
        for i in range(blocks):
            layers.append(BasicBlock(width, out, 2 if stage > 0 and i == 0 else 1))
            width = out
    layers.append(GlobalAveragePool())
    features = nn.Sequential(*layers)
    for module in features.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
    return features, width


def mlp_classifier(image_shape: tuple[int, int, int], num_classes: int, head: str, scale: float, hidden: list[int]) -> Classifier:
    """Config ``model=mlp``."""
    features, dim = mlp(image_shape[0], image_shape[1], list(hidden))
    return Classifier(features, dim, num_classes, head, scale)


def cnn_classifier(image_shape: tuple[int, int, int], num_classes: int, head: str, scale: float, channels: list[int],
                   hidden: int) -> Classifier:
    """Config ``model=cnn``."""
    features, dim = small_cnn(image_shape[0], image_shape[1], list(channels), hidden)
    return Classifier(features, dim, num_classes, head, scale)


def lenet5_classifier(image_shape: tuple[int, int, int], num_classes: int, head: str, scale: float) -> Classifier:
    """Config ``model=lenet5``."""
    features, dim = lenet5(image_shape[0], image_shape[1])
    return Classifier(features, dim, num_classes, head, scale)


def resnet_classifier(image_shape: tuple[int, int, int], num_classes: int, head: str, scale: float, depth: int) -> Classifier:
    """Config ``model=resnet20|resnet32|resnet56``."""
    features, dim = cifar_resnet(image_shape[0], depth)
    return Classifier(features, dim, num_classes, head, scale)


class ModelError(ConfigError):
    """A model config whose ``_target_`` cannot build a model."""


def build_model(cfg, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """The model of config group ``model``: its ``_target_`` called with ``image_shape`` (C, H, W), ``num_classes``
    and the group's other keys except ``name``. The built-in models are configs pointing at the factories above."""
    kwargs = {key: value for key, value in OmegaConf.to_container(cfg, resolve=True).items() if key != "name"}
    try:
        model = instantiate(kwargs, image_shape=tuple(image_shape), num_classes=num_classes)
    except InstantiationException as err:
        reason = " ".join(line.strip() for line in str(err.__cause__ or err).splitlines() if line.strip())[:300]
        raise ModelError(f"model._target_={kwargs['_target_']!r} could not build a model ({reason})") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"model._target_={kwargs['_target_']!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def check_cosine_head(model: nn.Module, cfg) -> None:
    """space=amlfs transforms cosine logits: the model must end in an amlfs.CosineHead of scale ``model.scale``."""
    heads = [module for module in model.modules() if isinstance(module, CosineHead)]
    if not heads or heads[-1].scale != cfg.get("scale"):
        raise ModelError(
            f"model._target_={cfg._target_!r} is not allowed with space=amlfs, which transforms cosine logits: end the model "
            f"with amlfs.CosineHead(features, classes, scale) and set model.scale to that scale, or use space=amlfs_tau"
        )


def first_line(err: Exception) -> str:
    """`err` as ``Type: first line of its message``, for one-line errors."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def check_fits(model: nn.Module, images: torch.Tensor, num_classes: int, cfg) -> None:
    """The model can train on the data: it has trainable parameters and maps `images` (a few normalised training
    images) to logits [N, num_classes]. Probed in eval mode, so batch-norm statistics stay as they were."""
    name = f"model._target_={cfg._target_!r}"
    if not any(parameter.requires_grad for parameter in model.parameters()):
        raise ModelError(f"{name} is not allowed: the model has no trainable parameters")
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(images)
    except Exception as err:  # the user's forward may fail in any way on images of the wrong size
        raise ModelError(f"{name} is not allowed: it fails on the data's {tuple(images.shape[1:])} images "
                         f"({first_line(err)})") from None
    finally:
        model.train(training)
    expected = (len(images), num_classes)
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != expected:
        found = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ModelError(f"{name} is not allowed: it returns {found} for {len(images)} images; it must return logits "
                         f"of shape {expected} ({num_classes} classes)")


MODEL_FILES = {"best_val": "model_best_val.pt", "final": "model.pt"}
"""The search's own models in its run dir: the broadcast model of the epoch with the highest validation accuracy
(the earliest such epoch; early stopping on the reward split) and the last epoch's."""


class Normalised(nn.Module):
    """`model` on images in [0, 1], normalised per channel with the search's mean and std as the search did."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model((images - self.mean) / self.std)


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """`model` with the weights in `path`; ValueError naming the file when it is missing, damaged or another model's."""
    try:
        state = torch.load(path, map_location="cpu")
    except FileNotFoundError:
        raise ValueError(f"{path}: no such model file (a search of an older amlfs, or unfinished?)") from None
    except Exception as err:  # a truncated or foreign file fails inside torch's zip or pickle reader
        raise ValueError(f"{path}: not a readable model file ({first_line(err)})") from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: not the weights of this run's model ({first_line(err)})") from None
    return model


def load_model(run_dir: str | Path, which: str = "best_val") -> Normalised:
    """The model a finished search trained, in eval mode on the CPU: `which` = "best_val" (its best validation
    epoch) or "final". It takes images in [0, 1] of shape [N, C, H, W] and returns logits; it is built from the
    run's results.json (the model config, image shape and classes), so a model of your own must be importable.
    Of an unfinished search (still running, or stopped) "best_val" is the best epoch so far, with a warning."""
    if which not in MODEL_FILES:
        raise ValueError(f"which={which!r}: choose one of {sorted(MODEL_FILES)}")
    results = read_results(run_dir)
    if results["final"] is None:
        if which == "final" or not results["epochs"]:
            raise ValueError(f"{Path(run_dir) / RESULTS_FILE}: the search has no {which} model yet (unfinished run?)")
        log.warning("%s: an unfinished search; its model of the best validation epoch so far (epoch %d of %d done)",
                    run_dir, best_val_epoch(results["epochs"]) + 1, len(results["epochs"]))
    data = results["data"]
    model = build_model(with_defaults(results["config"]).model, data["image_shape"], data["num_classes"])
    load_weights(model, Path(run_dir) / MODEL_FILES[which])
    return Normalised(model.to(torch.float32), data["mean"], data["std"]).eval()
