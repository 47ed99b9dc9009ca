"""Build amlfs's embedded dataset: a class-balanced subset of Fashion-MNIST.

Reads the original IDX archives (torchvision's raw layout), picks a seeded,
class-balanced subset of the train and test splits, and writes it xz-compressed
to ``amlfs/assets/`` with a JSON record of provenance and content checksums.

    python scripts/build_fashion_mnist_small.py --raw ../shared/data/FashionMNIST/raw
"""

import argparse
import gzip
import hashlib
import io
import json
import lzma
from pathlib import Path

import numpy as np

from amlfs.idx import read_idx

ASSETS = Path(__file__).resolve().parents[1] / "amlfs" / "assets"
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def balanced_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """The first `per_class` indices of each class in a seeded permutation, in original order."""
    order = np.random.default_rng(seed).permutation(len(labels))
    chosen = [order[labels[order] == c][:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw", type=Path, required=True, help="folder with the Fashion-MNIST *-ubyte.gz files")
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ASSETS)
    args = parser.parse_args()

    arrays, record = {}, {
        "name": "fashion_mnist_small",
        "source": "Fashion-MNIST (Xiao, Rasul, Vollgraf 2017), Zalando Research",
        "licence": "MIT",
        "built_by": "scripts/build_fashion_mnist_small.py",
        "seed": args.seed,
        "source_sha256": {},
        "sha256": {},
    }
    for split, per_class in (("train", args.train_per_class), ("test", args.test_per_class)):
        image_file, label_file = FILES[split]
        images = read_idx(args.raw / image_file)
        labels = read_idx(args.raw / label_file)
        for name in (image_file, label_file):
            content = gzip.decompress((args.raw / name).read_bytes())
            record["source_sha256"][name[:-3]] = hashlib.sha256(content).hexdigest()
        index = balanced_indices(labels, per_class, args.seed)
        arrays[f"{split}_images"] = images[index]
        arrays[f"{split}_labels"] = labels[index]
        arrays[f"{split}_source_index"] = index.astype(np.int32)
    record["sha256"] = {key: sha256(value) for key, value in arrays.items()}
    record["sizes"] = {split: int(len(arrays[f"{split}_labels"])) for split in FILES}

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    args.out.mkdir(parents=True, exist_ok=True)
    blob = lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME)
    (args.out / "fashion_mnist_small.npz.xz").write_bytes(blob)
    (args.out / "fashion_mnist_small.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {args.out / 'fashion_mnist_small.npz.xz'}: {len(blob) / 1e6:.2f} MB, sizes {record['sizes']}")


if __name__ == "__main__":
    main()
