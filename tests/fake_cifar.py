"""Small CIFAR-10/100 archives in the real format (pickled dicts in a *-python.tar.gz), with random images."""

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np


def _pickled(value: dict) -> bytes:
    return pickle.dumps(value, protocol=2)


def write_cifar_archive(folder: Path, name: str, train: int, test: int, seed: int = 0) -> Path:
    """Write ``cifar-10-python.tar.gz`` or ``cifar-100-python.tar.gz`` into `folder`; returns its path."""
    rng = np.random.default_rng(seed)
    classes = 10 if name == "cifar10" else 100

    def batch(n: int) -> tuple[np.ndarray, list[int]]:
        labels = (np.arange(n) % classes).tolist()
        return rng.integers(0, 256, (n, 3072), dtype=np.uint8), labels

    members = {}
    if name == "cifar10":
        base = "cifar-10-batches-py"
        per_batch = np.array_split(np.arange(train), 5)
        for i, part in enumerate(per_batch, start=1):
            data, labels = batch(len(part))
            members[f"data_batch_{i}"] = {"batch_label": f"training batch {i} of 5", "data": data, "labels": labels}
        data, labels = batch(test)
        members["test_batch"] = {"batch_label": "testing batch 1 of 1", "data": data, "labels": labels}
        members["batches.meta"] = {"label_names": [f"class{c}" for c in range(10)], "num_cases_per_batch": train // 5}
    else:
        base = "cifar-100-python"
        for split, n in (("train", train), ("test", test)):
            data, labels = batch(n)
            members[split] = {"data": data, "fine_labels": labels, "coarse_labels": [c // 5 for c in labels]}
        members["meta"] = {"fine_label_names": [f"fine{c}" for c in range(100)], "coarse_label_names": [f"coarse{c}" for c in range(20)]}

    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / ("cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz")
    with tarfile.open(archive, "w:gz") as tar:
        for member, value in members.items():
            content = _pickled(value)
            info = tarfile.TarInfo(f"{base}/{member}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return archive
