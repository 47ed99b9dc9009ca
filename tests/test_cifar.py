"""CIFAR-10/100 through torchvision on generated files in the real format: loading, augmentation, a tiny search."""

import json
import pickle

import numpy as np
import pytest
import torch

from amlfs.datasets import load_arrays, load_data
from amlfs.idx import DataFileError

from conftest import compose_search, run_cli
from fake_cifar import write_cifar_archive


def dataset_cfg(name, root, archives, *extra):
    return compose_search([f"dataset={name}", f"dataset.root={root}", f"dataset.archives={archives}", "dataset.verify=false",
                           "dataset.download=false", *extra]).dataset


@pytest.mark.parametrize("name,classes", [("cifar10", 10), ("cifar100", 100)])
def test_generated_cifar_loads_through_torchvision(tmp_path, name, classes):
    archive = write_cifar_archive(tmp_path / "archives", name, train=300, test=200)
    arrays = load_arrays(dataset_cfg(name, tmp_path / "root", archive.parent))
    assert arrays.train_images.shape == (300, 3, 32, 32) and arrays.train_images.dtype == np.uint8
    assert arrays.test_images.shape == (200, 3, 32, 32) and arrays.num_classes == classes
    # the stored row layout is 1024 red, 1024 green, 1024 blue values of a 32x32 image
    with open(tmp_path / "root" / ("cifar-10-batches-py/data_batch_1" if name == "cifar10" else "cifar-100-python/train"), "rb") as file:
        first = pickle.load(file, encoding="latin1")
    assert np.array_equal(arrays.train_images[0], first["data"][0].reshape(3, 32, 32))
    labels_key = "labels" if name == "cifar10" else "fine_labels"
    assert arrays.train_labels[: len(first[labels_key])].tolist() == first[labels_key]


def test_published_md5_check_refuses_generated_files(tmp_path):
    archive = write_cifar_archive(tmp_path / "archives", "cifar10", train=50, test=20)
    cfg = dataset_cfg("cifar10", tmp_path / "root", archive.parent, "dataset.verify=true")
    with pytest.raises(DataFileError, match="dataset.verify=false"):
        load_arrays(cfg)


def test_augmentation_shapes_and_determinism(tmp_path):
    archive = write_cifar_archive(tmp_path / "archives", "cifar10", train=300, test=50)
    data = load_data(dataset_cfg("cifar10", tmp_path / "root", archive.parent), torch.device("cpu"), augment=True)
    order = torch.arange(len(data.train))

    def first_batch(seed):
        return next(data.train_batches(order, 64, torch.Generator().manual_seed(seed)))[0]

    batch = first_batch(1)
    assert batch.shape == (64, 3, 32, 32) and batch.dtype == torch.float32
    assert torch.equal(batch, first_batch(1)) and not torch.equal(batch, first_batch(2))
    plain = data.normalise(data.train.images[:64])
    assert not torch.equal(batch, plain)
    data.augment = False
    assert torch.equal(next(data.train_batches(order, 64))[0], plain)


def test_tiny_cifar_search_end_to_end(tmp_path):
    archive = write_cifar_archive(tmp_path / "archives", "cifar100", train=300, test=100)
    result = run_cli(tmp_path / "run", "dataset=cifar100", "model=resnet20", f"dataset.root={tmp_path / 'root'}",
                     f"dataset.archives={archive.parent}", "dataset.verify=false", "search.population=2", "search.epochs=2",
                     "train.batch_size=64", "dataset.noise.kind=asymmetric", "dataset.noise.rate=0.4")
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["data"]["train"] == 270 and results["data"]["val"] == 30 and results["data"]["num_classes"] == 100
    assert results["data"]["image_shape"] == [3, 32, 32]
    assert results["data"]["noise_rate_observed"] == pytest.approx(0.4, abs=0.05)
    assert len(results["epochs"]) == 2 and results["config"]["train"]["augment"] is True


def test_corrupt_cifar_files_are_one_line_errors(tmp_path):
    archive = write_cifar_archive(tmp_path / "archives", "cifar10", train=50, test=20)
    truncated = tmp_path / "bad_archives" / archive.name
    truncated.parent.mkdir()
    truncated.write_bytes(archive.read_bytes()[:300])
    result = run_cli(tmp_path / "run", "dataset=cifar10", f"dataset.root={tmp_path / 'root'}", f"dataset.archives={truncated.parent}")
    assert result.returncode == 2 and "cannot unpack" in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr

    load_arrays(dataset_cfg("cifar10", tmp_path / "root2", archive.parent))
    batch = tmp_path / "root2" / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:100])
    result = run_cli(tmp_path / "run2", "dataset=cifar10", f"dataset.root={tmp_path / 'root2'}", "dataset.verify=false")
    assert result.returncode == 2 and "cannot read the files" in result.stderr and str(batch.parent) in result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
