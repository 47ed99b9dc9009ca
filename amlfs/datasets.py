"""Image datasets as host arrays: the embedded Fashion-MNIST subset and torchvision's datasets, with their error paths."""

import gzip
import hashlib
import io
import json
import lzma
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from hydra.utils import to_absolute_path

from amlfs import atomic
from amlfs.config import ConfigError
from amlfs.data import DeviceData, Split, stratified_split
from amlfs.idx import DataFileError, read_idx
from amlfs.noise import asymmetric_targets, corrupt_labels
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


IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
PUBLISHED_SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
"""sha256 of the original uncompressed MNIST and Fashion-MNIST files."""


@dataclass(frozen=True)
class TorchvisionSource:
    """Where a torchvision dataset keeps its files under the root, and the archives they come from."""

    class_name: str
    folder: str
    files: tuple[str, ...]
    archives: tuple[str, ...]
    num_classes: int

    @property
    def is_idx(self) -> bool:
        return self.files == IDX_FILES

    @property
    def dataset(self) -> type:
        """The torchvision dataset class, imported on first use (torchvision takes seconds to import)."""
        from torchvision import datasets

        return getattr(datasets, self.class_name)


SOURCES = {
    "mnist": TorchvisionSource("MNIST", "MNIST/raw", IDX_FILES, tuple(f"{f}.gz" for f in IDX_FILES), 10),
    "fashion_mnist": TorchvisionSource("FashionMNIST", "FashionMNIST/raw", IDX_FILES, tuple(f"{f}.gz" for f in IDX_FILES), 10),
    "cifar10": TorchvisionSource(
        "CIFAR10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch", "batches.meta"),
        ("cifar-10-python.tar.gz",), 10,
    ),
    "cifar100": TorchvisionSource("CIFAR100", "cifar-100-python", ("train", "test", "meta"), ("cifar-100-python.tar.gz",), 100),
}


def _extract_idx(source: TorchvisionSource, archives: Path, folder: Path) -> None:
    """Decompress the original ``*-ubyte.gz`` files from `archives` into torchvision's raw folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in source.files:
        packed, plain = archives / f"{name}.gz", archives / name
        if plain.exists():
            atomic.write_bytes(folder / name, plain.read_bytes())
            continue
        try:
            atomic.write_bytes(folder / name, gzip.decompress(packed.read_bytes()))
        except (OSError, EOFError, zlib.error) as err:
            raise DataFileError(f"{packed}: cannot decompress ({err}); fetch the original archive again") from None


def _extract_tar(archive: Path, root: Path) -> None:
    """Unpack a CIFAR ``*-python.tar.gz`` into `root`."""
    root.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive) as tar:
            # the "data" filter refuses absolute paths and links out of `root` (Python >= 3.11.4, 3.10.12)
            tar.extractall(root, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataFileError(f"{archive}: cannot unpack ({err}); fetch the original archive again") from None


def _verify_idx(name: str, folder: Path, files: tuple[str, ...]) -> None:
    for file in files:
        if hashlib.sha256((folder / file).read_bytes()).hexdigest() != PUBLISHED_SHA256[name][file]:
            raise DataFileError(
                f"{folder / file}: does not match the published {name} file (corrupt or altered); "
                "delete it and fetch it again, or set dataset.verify=false for IDX files of your own"
            )


def _unverified(dataset: type) -> type:
    """The torchvision CIFAR class with its md5 checks off (files need only exist), for data of your own."""
    return type(f"Unverified{dataset.__name__}", (dataset,), {
        "train_list": [[file, None] for file, _ in dataset.train_list],
        "test_list": [[file, None] for file, _ in dataset.test_list],
        "meta": {**dataset.meta, "md5": None},
    })


def torchvision_class(cfg) -> type:
    """The torchvision dataset class of config group ``dataset``; CIFAR's md5 checks off when ``dataset.verify=false``."""
    source = SOURCES[cfg.name]
    return source.dataset if cfg.verify or source.is_idx else _unverified(source.dataset)


def load_torchvision(cfg) -> ImageArrays:
    """Load MNIST, Fashion-MNIST, CIFAR-10 or CIFAR-100 through torchvision from ``dataset.root``.

    Missing files are extracted from ``dataset.archives`` when set, else downloaded when ``dataset.download``.
    """
    source = SOURCES[cfg.name]
    root = Path(to_absolute_path(cfg.root))
    folder = root / source.folder
    missing = [file for file in source.files if not (folder / file).exists()]
    if missing and cfg.archives:
        archives = Path(to_absolute_path(cfg.archives))
        absent = [a for a in source.archives if not (archives / a).exists() and not (archives / a.removesuffix(".gz")).exists()]
        if absent:
            raise DataFileError(f"dataset {cfg.name}: dataset.archives={archives} lacks {', '.join(absent)}")
        if source.is_idx:
            _extract_idx(source, archives, folder)
        else:
            _extract_tar(archives / source.archives[0], root)
        missing = [file for file in source.files if not (folder / file).exists()]
    if missing and not cfg.download:
        raise DataFileError(
            f"dataset {cfg.name}: not found under {root} (expected {', '.join(missing)} in {folder}); "
            f"set dataset.download=true, or dataset.archives=<folder with {', '.join(source.archives)}>"
        )
    if missing:
        try:
            source.dataset(str(root), train=True, download=True)
        except Exception as err:  # torchvision wraps network failures in RuntimeError
            raise DataFileError(
                f"dataset {cfg.name}: download into {root} failed ({err}); "
                f"set dataset.archives=<folder with {', '.join(source.archives)}>"
            ) from None
    if source.is_idx:
        for file in source.files:
            read_idx(folder / file)
        if cfg.verify:
            _verify_idx(cfg.name, folder, source.files)
    dataset = torchvision_class(cfg)
    try:
        train, test = dataset(str(root), train=True), dataset(str(root), train=False)
    except Exception as err:  # torchvision reports corrupt files with RuntimeError, pickle, numpy or zlib errors
        hint = ", or set dataset.verify=false for files of your own" if "corrupted" in str(err) else ""
        raise DataFileError(
            f"dataset {cfg.name}: cannot read the files in {folder} ({type(err).__name__}: {err}); "
            f"delete them and fetch them again{hint}"
        ) from None
    return ImageArrays(
        train_images=_channels_first(train.data),
        train_labels=np.asarray(train.targets, dtype=np.int64),
        test_images=_channels_first(test.data),
        test_labels=np.asarray(test.targets, dtype=np.int64),
        num_classes=source.num_classes,
    )


def _channels_first(images) -> np.ndarray:
    """torchvision's MNIST data [N, H, W] (tensor) or CIFAR data [N, H, W, C] (array) -> uint8 [N, C, H, W]."""
    images = np.asarray(images, dtype=np.uint8)
    return images[:, None] if images.ndim == 3 else images.transpose(0, 3, 1, 2)


NPZ_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")


def load_npz(cfg) -> ImageArrays:
    """Config ``dataset=arrays``: your own images and labels from the .npz file ``dataset.path``.

    Images: uint8, N x C x H x W or N x H x W (one channel), the same C x H x W in both splits. Labels: integers in
    [0, num_classes), one per image; ``dataset.num_classes`` null takes the largest label + 1.
    """
    path = Path(to_absolute_path(cfg.path))

    def refuse(problem: str):
        raise DataFileError(f"dataset.path={cfg.path!r}: {problem}")

    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        refuse(f"cannot read it as an .npz file ({type(err).__name__}: {err})")
    if not isinstance(archive, np.lib.npyio.NpzFile):
        refuse("it is a single .npy array, not an .npz archive of named arrays (numpy.savez)")
    with archive:
        arrays = {key: archive[key] for key in archive.files if key in NPZ_ARRAYS}
    missing = [key for key in NPZ_ARRAYS if key not in arrays]
    if missing:
        refuse(f"lacks the array(s) {', '.join(missing)}; it needs {', '.join(NPZ_ARRAYS)}")
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            refuse(f"{split}_images is {images.dtype} with shape {images.shape}; use uint8 images (0-255), N x C x H x W or N x H x W")
        if len(images) == 0:
            refuse(f"{split}_images holds no images")
        if images.ndim == 3:
            arrays[f"{split}_images"] = images[:, None]
        if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (len(images),):
            refuse(f"{split}_labels is {labels.dtype} with shape {labels.shape}; use one integer label per image ({len(images)})")
    if arrays["train_images"].shape[1:] != arrays["test_images"].shape[1:]:
        refuse(f"train images are {arrays['train_images'].shape[1:]} and test images {arrays['test_images'].shape[1:]} (C, H, W); they must match")
    labels = np.concatenate([arrays["train_labels"], arrays["test_labels"]])
    num_classes = cfg.num_classes if cfg.num_classes is not None else int(labels.max()) + 1
    if labels.min() < 0 or labels.max() >= num_classes or num_classes < 2:
        refuse(f"labels range over [{labels.min()}, {labels.max()}]; they must lie in [0, num_classes) with at least 2 classes "
               f"(dataset.num_classes={cfg.num_classes})")
    return ImageArrays(
        train_images=arrays["train_images"], train_labels=arrays["train_labels"].astype(np.int64),
        test_images=arrays["test_images"], test_labels=arrays["test_labels"].astype(np.int64), num_classes=num_classes,
    )


def load_arrays(cfg) -> ImageArrays:
    """The host arrays of config group ``dataset``."""
    if cfg.name == "fashion_mnist_small":
        return load_embedded(cfg.name)
    if cfg.name == "arrays":
        return load_npz(cfg)
    if cfg.name in SOURCES:
        return load_torchvision(cfg)
    raise ValueError(f"dataset={cfg.name!r} is not a known dataset")


def normalisation(cfg, images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of images in [0, 1]: ``dataset.mean``/``dataset.std``, or measured on `images`."""
    channels = images.shape[1]
    if cfg.get("mean") is None or cfg.get("std") is None:
        pixels = images.transpose(1, 0, 2, 3).reshape(channels, -1) / 255.0
        mean, std = pixels.mean(1).tolist(), pixels.std(1).tolist()
        if min(std) < 1e-6:
            raise ConfigError(f"dataset.std=null is not allowed: a channel of the training images is constant (measured "
                              f"std {std}); give dataset.mean and dataset.std")
        return mean, std
    mean, std = list(cfg.mean), list(cfg.std)
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(f"dataset.mean={mean} is not allowed: mean and std need one entry per channel ({channels}), std={std}")
    if not all(isinstance(value, (int, float)) and value > 0 for value in std):
        raise ConfigError(f"dataset.std={std} is not allowed: use positive numbers")
    return mean, std


def _subset(images: np.ndarray, labels: np.ndarray, limit: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A class-stratified subset of at most `limit` examples (all of them when limit is None)."""
    if limit is None or limit >= len(labels):
        return images, labels
    _, keep = stratified_split(labels, limit / len(labels), seed)
    return images[keep], labels[keep]


def load_data(cfg, device: torch.device, augment: bool = False, dtype: torch.dtype = torch.float32,
              memory_format: torch.memory_format = torch.contiguous_format) -> DeviceData:
    """Load config group ``dataset``: carve the validation split from the training data, add label noise, move to `device`.

    Noise touches the training part, and the validation part too when ``noise.validation=noisy``;
    the test split keeps its labels.
    """
    arrays = load_arrays(cfg)
    seed = cfg.split_seed
    train_images, train_labels = _subset(arrays.train_images, arrays.train_labels, cfg.max_train, derive_seed(seed, "max_train"))
    test_images, test_labels = _subset(arrays.test_images, arrays.test_labels, cfg.max_test, derive_seed(seed, "max_test"))
    rest, held_out = stratified_split(train_labels, cfg.val_fraction, derive_seed(seed, "val"))
    if len(held_out) == 0 or len(rest) == 0:
        raise ConfigError(f"dataset.val_fraction={cfg.val_fraction} is not allowed: it splits {len(train_labels)} training images into {len(rest)} + {len(held_out)}")
    noise = cfg.noise
    flips = None
    if noise.kind == "asymmetric":
        try:
            flips = asymmetric_targets(cfg.noise_map, arrays.num_classes)
        except ValueError as err:
            raise ConfigError(f"dataset.noise_map={cfg.noise_map!r} is not allowed: {err}") from None
    labels = {"train": train_labels[rest], "val": train_labels[held_out]}
    noisy = {
        part: corrupt_labels(clean, noise.kind, noise.rate, arrays.num_classes, derive_seed(noise.seed, "noise", part), flips)
        if part == "train" or noise.validation == "noisy" else clean
        for part, clean in labels.items()
    }
    channels = train_images.shape[1]
    mean, std = normalisation(cfg, arrays.train_images)
    return DeviceData(
        train=Split.from_arrays(train_images[rest], noisy["train"], device),
        val=Split.from_arrays(train_images[held_out], noisy["val"], device),
        test=Split.from_arrays(test_images, test_labels, device),
        num_classes=arrays.num_classes,
        mean=torch.tensor(mean, device=device, dtype=dtype).view(1, channels, 1, 1),
        std=torch.tensor(std, device=device, dtype=dtype).view(1, channels, 1, 1),
        augment=augment,
        dtype=dtype,
        memory_format=memory_format,
        info={
            "train": len(rest),
            "val": len(held_out),
            "test": len(test_labels),
            "num_classes": arrays.num_classes,
            "image_shape": list(train_images.shape[1:]),
            "mean": mean,
            "std": std,
            "noise_rate_observed": float(np.mean(noisy["train"] != labels["train"])),
            "noise_rate_observed_val": float(np.mean(noisy["val"] != labels["val"])),
        },
    )
