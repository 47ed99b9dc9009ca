"""Child-training images/s: amlfs's device-resident data path against the usual torchvision DataLoader loop.

Both train the same model with the same Adam and cross-entropy on the same dataset; only the data path differs:
(a) torchvision dataset + ToTensor/Normalize transforms + DataLoader (shuffle, `--workers` processes);
(b) amlfs: the split held as one uint8 tensor on the device, batches sliced from a device-side permutation,
    normalised on the device.

    python scripts/bench_datapath.py --device cpu --archives ../shared/data/FashionMNIST/raw
"""

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig
from torch.utils.data import DataLoader
from torchvision import transforms

from amlfs.config import CONFIG_DIR
from amlfs.data import DeviceData, epoch_stream
from amlfs.datasets import load_data, torchvision_class
from amlfs.losses import CrossEntropy
from amlfs.models import build_model
from amlfs.training import make_optimizer, train_one_epoch



def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments every benchmark script takes: where to run, what to train, how often to measure."""
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="fashion_mnist", choices=["mnist", "fashion_mnist", "cifar10", "cifar100"])
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--root", default="data")
    parser.add_argument("--archives", default=None, help="folder with the original archives, when not yet under --root")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per configuration; the median is reported")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--augment", action="store_true", help="random crop + flip on every path (CIFAR's augmentation)")
    parser.add_argument("--no-verify", action="store_true", help="skip the archives' checksums (generated CIFAR-format files)")


def bench_config(args: argparse.Namespace, batch_size: int, *overrides: str) -> DictConfig:
    """The search config the benchmark trains with: `args`' dataset and model (linear head), augmentation if asked."""
    overrides = [f"dataset={args.dataset}", f"model={args.model}", f"dataset.root={Path(args.root).resolve()}",
                 "dataset.download=false", f"dataset.verify={str(not args.no_verify).lower()}", "model.head=linear",
                 f"train.augment={str(args.augment).lower()}", f"train.batch_size={batch_size}", *overrides]
    if args.archives:
        overrides.append(f"dataset.archives={Path(args.archives).resolve()}")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="search", overrides=overrides)


def machine(device: torch.device) -> str:
    """The card's name, or the CPU threads torch uses: what a benchmark's figures were measured on."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} CPU threads"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_dataloader(cfg, model, device, workers: int, steps: int) -> float:
    """Images/s of `steps` training steps fed by a torchvision DataLoader."""
    dataset = torchvision_class(cfg.dataset)(str(Path(cfg.dataset.root).resolve()), train=True)
    crop = transforms.RandomCrop(dataset.data.shape[1], padding=DeviceData.crop_padding)  # amlfs's own padding
    augment = [crop, transforms.RandomHorizontalFlip()] if cfg.train.augment else []
    dataset.transform = transforms.Compose([*augment, transforms.ToTensor(), transforms.Normalize(list(cfg.dataset.mean), list(cfg.dataset.std))])
    loader = DataLoader(dataset, batch_size=cfg.train.batch_size, shuffle=True, num_workers=workers,
                        pin_memory=device.type == "cuda", drop_last=True, persistent_workers=workers > 0)
    optimizer = make_optimizer(model.parameters(), cfg.train)
    model.train()
    seen, started = 0, None
    for step, (images, labels) in enumerate(loader):
        if step == 5:  # warm-up done: workers started, kernels chosen
            synchronize(device)
            seen, started = 0, time.perf_counter()
        if step == 5 + steps:
            break
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(labels)
    synchronize(device)
    return seen / (time.perf_counter() - started)


def time_amlfs(cfg, model, data, device, steps: int) -> float:
    """Images/s of `steps` training steps through amlfs's data path and child training loop."""
    optimizer = make_optimizer(model.parameters(), cfg.train)
    criterion = CrossEntropy()
    batch = cfg.train.batch_size
    warm, _ = epoch_stream(len(data.train), 1, device)
    train_one_epoch(model, optimizer, criterion, data, warm[: 5 * batch], batch)
    order, generator = epoch_stream(len(data.train), 0, device)
    synchronize(device)
    started = time.perf_counter()
    train_one_epoch(model, optimizer, criterion, data, order[: steps * batch], batch, generator)
    synchronize(device)
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128])
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts to measure")
    parser.add_argument("--steps", type=int, default=150, help="timed training steps per measurement")
    args = parser.parse_args()

    device = torch.device(args.device)
    rows = []
    for batch in args.batch_sizes:
        cfg = bench_config(args, batch)
        data = load_data(cfg.dataset, device, augment=cfg.train.augment)
        torch.manual_seed(0)
        model = build_model(cfg.model, data.image_shape, data.num_classes).to(device)
        initial = {k: v.clone() for k, v in model.state_dict().items()}

        def measure(label: str, run) -> None:
            values = []
            for _ in range(args.repeats):
                model.load_state_dict(initial)
                values.append(run())
            rows.append({"path": label, "batch_size": batch, "images_per_second": statistics.median(values), "runs": values})
            print(f"  {label:<24} batch {batch:<4} {statistics.median(values):>10,.0f} img/s", flush=True)

        for workers in args.workers:
            measure(f"DataLoader, {workers} workers", lambda: time_dataloader(cfg, model, device, workers, args.steps))
        measure("amlfs device-resident", lambda: time_amlfs(cfg, model, data, device, args.steps))

    print(f"\n{args.dataset}, model {args.model}, device {device} "
          f"({machine(device)}), "
          f"torch {torch.__version__}")
    print(f"{'path':<26}{'batch':>6}{'img/s':>12}{'vs best DataLoader':>20}")
    for batch in args.batch_sizes:
        best = max(r["images_per_second"] for r in rows if r["batch_size"] == batch and r["path"].startswith("DataLoader"))
        for row in (r for r in rows if r["batch_size"] == batch):
            row["ratio_to_best_dataloader"] = row["images_per_second"] / best
            print(f"{row['path']:<26}{batch:>6}{row['images_per_second']:>12,.0f}{row['ratio_to_best_dataloader']:>19.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"device": str(device), "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
