"""Data: the embedded dataset and its provenance, torchvision's file layout, IDX reading, splits, device batches and augmentation."""

import gzip
import io
import lzma
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.datasets

from amlfs.data import DeviceData, Split, epoch_stream, random_crop_flip, stratified_split
from amlfs.datasets import SOURCES, load_embedded
from amlfs.idx import DataFileError, read_idx
from amlfs.seeding import derive_seed

from conftest import ROOT, SHARED_DATA


def test_embedded_dataset_is_balanced_and_sized():
    arrays = load_embedded()
    assert arrays.train_images.shape == (10000, 1, 28, 28) and arrays.train_images.dtype == np.uint8
    assert arrays.test_images.shape == (2000, 1, 28, 28)
    assert np.bincount(arrays.train_labels).tolist() == [1000] * 10
    assert np.bincount(arrays.test_labels).tolist() == [200] * 10


@pytest.mark.skipif(not (SHARED_DATA / "FashionMNIST").exists(), reason="needs the original Fashion-MNIST archives")
def test_embedded_images_are_the_originals_at_their_recorded_indices():
    raw = SHARED_DATA / "FashionMNIST" / "raw"
    embedded = np.load(io.BytesIO(lzma.decompress((ROOT / "amlfs/assets/fashion_mnist_small.npz.xz").read_bytes())))
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = read_idx(raw / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(raw / f"{prefix}-labels-idx1-ubyte.gz")
        index = embedded[f"{split}_source_index"]
        assert np.array_equal(embedded[f"{split}_images"], images[index])
        assert np.array_equal(embedded[f"{split}_labels"], labels[index])


def test_corrupt_embedded_dataset_is_reported(tmp_path):
    assets = ROOT / "amlfs" / "assets"
    shutil.copy(assets / "fashion_mnist_small.json", tmp_path)
    blob = bytearray((assets / "fashion_mnist_small.npz.xz").read_bytes())
    (tmp_path / "fashion_mnist_small.npz.xz").write_bytes(bytes(blob[: len(blob) // 2]))
    with pytest.raises(DataFileError, match="cannot read"):
        load_embedded(assets=tmp_path)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def test_read_idx_round_trip_and_errors(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "good.gz").write_bytes(gzip.compress(idx_bytes(array)))
    assert np.array_equal(read_idx(tmp_path / "good.gz"), array)
    (tmp_path / "short").write_bytes(idx_bytes(array)[:-5])
    with pytest.raises(DataFileError, match="truncated or corrupt"):
        read_idx(tmp_path / "short")
    (tmp_path / "magic").write_bytes(b"\x1f\x00\x08\x01" + bytes(8))
    with pytest.raises(DataFileError, match="bad magic"):
        read_idx(tmp_path / "magic")
    (tmp_path / "broken.gz").write_bytes(gzip.compress(idx_bytes(array))[:20])
    with pytest.raises(DataFileError, match="gzip"):
        read_idx(tmp_path / "broken.gz")


def test_stratified_split_is_disjoint_balanced_and_seeded():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    rest, held = stratified_split(labels, 0.1, seed=3)
    assert np.intersect1d(rest, held).size == 0
    assert np.array_equal(np.sort(np.concatenate([rest, held])), np.arange(200))
    assert np.bincount(labels[held]).tolist() == [10, 5, 3, 2]
    assert np.array_equal(held, stratified_split(labels, 0.1, seed=3)[1])
    assert not np.array_equal(held, stratified_split(labels, 0.1, seed=4)[1])


def reference_crop_flip(image: torch.Tensor, dy: int, dx: int, flip: bool, padding: int) -> torch.Tensor:
    padded = F.pad(image, (padding,) * 4)
    h, w = image.shape[-2:]
    crop = padded[:, dy : dy + h, dx : dx + w]
    return crop.flip(-1) if flip else crop


def test_crop_flip_matches_per_image_reference():
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(images, 2, torch.Generator().manual_seed(5))
    replay = torch.Generator().manual_seed(5)
    dy = torch.randint(0, 5, (16, 1, 1), generator=replay).flatten()
    dx = torch.randint(0, 5, (16, 1, 1), generator=replay).flatten()
    flip = (torch.rand(16, 1, 1, generator=replay) < 0.5).flatten()
    assert flip.any() and not flip.all()
    for i in range(16):
        assert torch.equal(out[i], reference_crop_flip(images[i], int(dy[i]), int(dx[i]), bool(flip[i]), 2))


def make_device_data(n=50) -> DeviceData:
    images = torch.randint(0, 256, (n, 1, 4, 4), dtype=torch.uint8)
    split = Split(images, torch.arange(n) % 3)
    return DeviceData(split, split, split, 3, torch.tensor(0.5).view(1, 1, 1, 1), torch.tensor(0.25).view(1, 1, 1, 1))


@pytest.mark.parametrize("augment", [False, True])
def test_stacked_train_batches_are_each_streams_batches_stacked(augment):
    data = make_device_data()
    data.augment, data.crop_padding = augment, 1

    def streams():
        return [epoch_stream(50, derive_seed(seed, "batches", 0), torch.device("cpu")) for seed in range(3)]

    stacked = list(data.stacked_train_batches(streams(), 16))
    one_by_one = zip(*(data.train_batches(order, 16, generator) for order, generator in streams()))
    assert len(stacked) == 4
    for (images, labels), batch in zip(stacked, one_by_one, strict=True):
        assert torch.equal(images, torch.stack([x for x, _ in batch]))
        assert torch.equal(labels, torch.stack([y for _, y in batch]))


def test_train_batches_cover_the_order_once_and_normalise():
    data = make_device_data()
    order, _ = epoch_stream(50, derive_seed(0, "batches", 0), torch.device("cpu"))
    batches = list(data.train_batches(order, 16))
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    assert torch.equal(torch.cat([y for _, y in batches]), data.train.labels[order])
    x, _ = batches[0]
    torch.testing.assert_close(x, (data.train.images[order[:16]].float() / 255 - 0.5) / 0.25)
    again, _ = epoch_stream(50, derive_seed(0, "batches", 0), torch.device("cpu"))
    assert torch.equal(order, again)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_sources_name_torchvision_folders_and_archives(name):
    source = SOURCES[name]
    dataset = getattr(torchvision.datasets, source.class_name)
    assert source.dataset is dataset
    if not source.is_idx:  # CIFAR: written out in amlfs so that torchvision is only imported to load the files
        assert source.folder == dataset.base_folder and source.archives == (dataset.filename,)
        assert set(source.files) == {file for file, _ in dataset.train_list + dataset.test_list} | {dataset.meta["filename"]}
    else:  # MNIST and Fashion-MNIST keep their files in <root>/<class name>/raw
        assert source.folder == f"{dataset.__name__}/raw" and {f"{file}.gz" for file in source.files} == {
            url.rsplit("/", 1)[-1] for url, _ in dataset.resources}
