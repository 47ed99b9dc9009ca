"""Image datasets as host arrays: the embedded Fashion-MNIST subset and torchvision's datasets."""

import hashlib
import io
import json
import lzma
import zipfile
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch

from amlfs.data import DeviceData, Split, stratified_split
from amlfs.idx import DataFileError
from amlfs.seeding import derive_seed


@dataclass
class ImageArrays:
    """A dataset's official train and test splits: uint8 images [N, C, H, W], int64 labels [N]."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int


def load_embedded(name: str = "fashion_mnist_small", assets=None) -> ImageArrays:
    """Load a dataset shipped in ``amlfs/assets`` (or the folder `assets`), verifying its content checksums."""
    assets = resources.files("amlfs") / "assets" if assets is None else assets
    record = json.loads((assets / f"{name}.json").read_text())
    blob = assets / f"{name}.npz.xz"
    try:
        archive = np.load(io.BytesIO(lzma.decompress(blob.read_bytes())))
        arrays = {key: archive[key] for key in record["sha256"]}
    except (lzma.LZMAError, zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise DataFileError(f"embedded dataset {name}: cannot read {blob} ({err}); reinstall amlfs") from None
    for key, expected in record["sha256"].items():
        if hashlib.sha256(np.ascontiguousarray(arrays[key]).tobytes()).hexdigest() != expected:
            raise DataFileError(f"embedded dataset {name}: array {key} fails its sha256 check; reinstall amlfs")
    return ImageArrays(
        train_images=arrays["train_images"][:, None],
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=arrays["test_images"][:, None],
        test_labels=arrays["test_labels"].astype(np.int64),
        num_classes=10,
    )


def load_arrays(cfg) -> ImageArrays:
    """The host arrays of config group ``dataset``."""
    if cfg.name == "fashion_mnist_small":
        return load_embedded(cfg.name)
    raise ValueError(f"dataset={cfg.name!r} is not a known dataset")


def _subset(images: np.ndarray, labels: np.ndarray, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A class-stratified subset of at most `limit` examples (all of them when limit is None)."""
    if limit is None or limit >= len(labels):
        return images, labels
    _, keep = stratified_split(labels, limit / len(labels), seed)
    return images[keep], labels[keep]


def load_data(cfg, device: torch.device, augment: bool = False) -> DeviceData:
    """Load config group ``dataset``, carve the validation split from training data, and move all to `device`."""
    arrays = load_arrays(cfg)
    seed = cfg.split_seed
    train_images, train_labels = _subset(arrays.train_images, arrays.train_labels, cfg.max_train, derive_seed(seed, "max_train"))
    test_images, test_labels = _subset(arrays.test_images, arrays.test_labels, cfg.max_test, derive_seed(seed, "max_test"))
    rest, held_out = stratified_split(train_labels, cfg.val_fraction, derive_seed(seed, "val"))
    channels = train_images.shape[1]
    return DeviceData(
        train=Split.from_arrays(train_images[rest], train_labels[rest], device),
        val=Split.from_arrays(train_images[held_out], train_labels[held_out], device),
        test=Split.from_arrays(test_images, test_labels, device),
        num_classes=arrays.num_classes,
        mean=torch.tensor(list(cfg.mean), device=device).view(1, channels, 1, 1),
        std=torch.tensor(list(cfg.std), device=device).view(1, channels, 1, 1),
        augment=augment,
    )
