"""MNIST and Fashion-MNIST from the original archives (../shared/data), through the dataset.archives path."""

import json

import numpy as np
import pytest
import torch

from amlfs.datasets import load_arrays, load_data

from conftest import SHARED_DATA, compose_search, run_cli

pytestmark = pytest.mark.skipif(not SHARED_DATA.exists(), reason="needs the original archives in ../shared/data")

PUBLISHED_COUNTS = {
    "mnist": ([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949], [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]),
    "fashion_mnist": ([6000] * 10, [1000] * 10),
}
ARCHIVES = {"mnist": SHARED_DATA / "MNIST" / "raw", "fashion_mnist": SHARED_DATA / "FashionMNIST" / "raw"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def dataset_cfg(name, root, *extra):
    return compose_search([f"dataset={name}", f"dataset.root={root}", f"dataset.archives={ARCHIVES[name]}",
                           "dataset.download=false", *extra]).dataset


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_full_sizes_and_published_class_counts(name, data_root):
    arrays = load_arrays(dataset_cfg(name, data_root))
    assert arrays.train_images.shape == (60000, 1, 28, 28) and arrays.test_images.shape == (10000, 1, 28, 28)
    train_counts, test_counts = PUBLISHED_COUNTS[name]
    assert np.bincount(arrays.train_labels).tolist() == train_counts
    assert np.bincount(arrays.test_labels).tolist() == test_counts


def test_noise_touches_training_labels_only(data_root):
    cfg = dataset_cfg("fashion_mnist", data_root, "dataset.noise.kind=symmetric", "dataset.noise.rate=0.4",
                      "dataset.noise.validation=clean")
    noisy = load_data(cfg, torch.device("cpu"))
    clean = load_data(dataset_cfg("fashion_mnist", data_root), torch.device("cpu"))
    assert abs(noisy.info["noise_rate_observed"] - 0.4) < 0.01
    assert abs((noisy.train.labels != clean.train.labels).double().mean().item() - 0.4) < 0.01
    assert torch.equal(noisy.train.images, clean.train.images)
    assert torch.equal(noisy.val.labels, clean.val.labels) and noisy.info["noise_rate_observed_val"] == 0
    assert torch.equal(noisy.test.labels, clean.test.labels) and torch.equal(noisy.test.images, clean.test.images)
    assert (noisy.info["train"], noisy.info["val"], noisy.info["test"]) == (54000, 6000, 10000)
    again = load_data(cfg, torch.device("cpu"))
    assert torch.equal(again.train.labels, noisy.train.labels)
    noisy_val = load_data(dataset_cfg("fashion_mnist", data_root, "dataset.noise.kind=symmetric", "dataset.noise.rate=0.4"),
                          torch.device("cpu"))
    assert abs(noisy_val.info["noise_rate_observed_val"] - 0.4) < 0.01


def test_one_epoch_search_on_full_mnist(data_root, tmp_path):
    result = run_cli(tmp_path / "run", "dataset=mnist", f"dataset.root={data_root}", f"dataset.archives={ARCHIVES['mnist']}",
                     "search.population=2", "search.epochs=1")
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["data"]["train"] + results["data"]["val"] == 60000 and results["data"]["test"] == 10000
    assert results["final"]["test_acc"] >= 0.95


def test_missing_data_is_one_line_naming_what_to_do(tmp_path):
    result = run_cli(tmp_path / "run", "dataset=mnist", f"dataset.root={tmp_path / 'empty'}", "dataset.download=false")
    assert result.returncode == 2 and result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    for needle in ("dataset mnist", str(tmp_path / "empty"), "train-images-idx3-ubyte", "dataset.archives"):
        assert needle in result.stderr


def test_truncated_and_altered_files_are_one_line_errors(tmp_path, data_root):
    load_arrays(dataset_cfg("mnist", data_root))
    root = tmp_path / "root"
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for file in (data_root / "MNIST" / "raw").iterdir():
        (raw / file.name).write_bytes(file.read_bytes())
    labels = raw / "t10k-labels-idx1-ubyte"
    content = bytearray(labels.read_bytes())
    content[100] = (content[100] + 1) % 10
    labels.write_bytes(bytes(content))
    altered = run_cli(tmp_path / "run", "dataset=mnist", f"dataset.root={root}", "dataset.download=false")
    assert altered.returncode == 2 and "does not match the published mnist file" in altered.stderr
    assert altered.stderr.strip().count("\n") == 0
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-1000])
    truncated = run_cli(tmp_path / "run2", "dataset=mnist", f"dataset.root={root}", "dataset.download=false")
    assert truncated.returncode == 2 and f"{images}: holds" in truncated.stderr and "truncated" in truncated.stderr
    assert truncated.stderr.strip().count("\n") == 0 and "Traceback" not in truncated.stderr
