"""Child-images/s of a search population: DataLoader children one by one, amlfs sequential, amlfs vectorised.

All rows train the same model with the same Adam on the same dataset for `--steps` steps per child:
(a) torchvision dataset + ToTensor/Normalize + DataLoader, one child after another;
(b) amlfs sequential backend: device-resident batches, one child after another;
(c) amlfs vectorised backend: all B children as one stacked model (vmap), B in `--populations`.
Sequential rates do not depend on B, so (a) and (b) are measured once per batch size. With `--augment` every row
crops and flips (torchvision transforms in (a), amlfs's batched ones on the device in (b) and (c)).

    python scripts/bench_population.py --device cpu --archives ../shared/data/FashionMNIST/raw
"""

import argparse
import json
import statistics
import time

import torch

from amlfs.config import COMPILE_MODES
from amlfs.data import epoch_stream
from amlfs.datasets import load_data
from amlfs.losses import SearchedLoss
from amlfs.models import build_model
from amlfs.population import VectorizedPopulation
from amlfs.spaces import space_of
from amlfs.training import compiled, make_optimizer, memory_format, train_one_epoch
from bench_datapath import add_common_arguments, bench_config, machine, synchronize, time_dataloader


def time_sequential(cfg, model, data, device, steps: int) -> float:
    """Child-images/s of one child trained by amlfs's sequential path (the rate of B children one by one)."""
    optimizer = make_optimizer(model.parameters(), cfg.train)
    space = space_of(cfg)
    criterion = SearchedLoss(space, space.identity().to(device, data.dtype))
    batch = cfg.train.batch_size
    runner = compiled(model, cfg.train)
    order, generator = epoch_stream(len(data.train), 0, device)
    train_one_epoch(runner, optimizer, criterion, data, order[: 3 * batch], batch, generator, cfg.train.autocast)
    synchronize(device)
    started = time.perf_counter()
    train_one_epoch(runner, optimizer, criterion, data, order[: steps * batch], batch, generator, cfg.train.autocast)
    synchronize(device)
    return steps * batch / (time.perf_counter() - started)


def time_vectorized(cfg, model, data, device, size: int, steps: int) -> float:
    """Child-images/s of `size` children trained at once by the vectorised backend."""
    space = space_of(cfg)
    batch = cfg.train.batch_size
    full = data.train
    population = VectorizedPopulation(model, space, data, cfg.train, seed=0, shared_batches=True, size=size)
    thetas = space.identity().expand(size, -1)
    try:
        data.train = type(full)(full.images[: 3 * batch], full.labels[: 3 * batch])
        population.fit(thetas, 0)
        data.train = type(full)(full.images[: steps * batch], full.labels[: steps * batch])
        synchronize(device)
        started = time.perf_counter()
        population.fit(thetas, 1)
        synchronize(device)
    finally:
        data.train = full
    return size * steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--space", default="amlfs_tau", help="the loss space of rows (b) and (c), at its identity")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--populations", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers for row (a)")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps per child")
    parser.add_argument("--autocast", default=None, choices=[None, "bf16"])
    parser.add_argument("--fused-adam", action="store_true", help="torch's fused Adam kernel in rows (b) and (c)")
    parser.add_argument("--channels-last", action="store_true", help="channels-last images and weights in rows (b) and (c)")
    parser.add_argument("--compile", default=None, choices=[None, *sorted(COMPILE_MODES)],
                        help="torch.compile mode of rows (b) and (c); compilation happens in the untimed warm-up")
    args = parser.parse_args()

    device = torch.device(args.device)
    rows = []
    for batch in args.batch_sizes:
        cfg = bench_config(args, batch, f"space={args.space}", f"train.autocast={args.autocast or 'null'}",
                           f"train.fused_adam={str(args.fused_adam).lower()}", f"train.compile={args.compile or 'null'}",
                           f"train.channels_last={str(args.channels_last).lower()}")
        layout = memory_format(cfg.train)  # rows (b) and (c); row (a) stays as users write it
        data = load_data(cfg.dataset, device, augment=cfg.train.augment, memory_format=layout)

        def measure(label: str, size: int, run, layout=torch.contiguous_format) -> None:
            values = []
            for _ in range(args.repeats):
                torch._dynamo.reset()  # each run compiles afresh (within dynamo's recompile limit), in its warm-up
                torch.manual_seed(0)
                values.append(run(build_model(cfg.model, data.image_shape, data.num_classes).to(device, memory_format=layout)))
            rows.append({"path": label, "population": size, "batch_size": batch, "child_images_per_second": statistics.median(values), "runs": values})
            print(f"  {label:<34} B={size:<3} batch {batch:<4} {statistics.median(values):>12,.0f} child-img/s", flush=True)

        measure(f"(a) DataLoader, {args.workers} workers, one by one", 1,
                lambda model: time_dataloader(cfg, model, device, args.workers, args.steps))
        measure("(b) amlfs sequential", 1, lambda model: time_sequential(cfg, model, data, device, args.steps), layout)
        for size in args.populations:
            measure("(c) amlfs vectorized", size, lambda model: time_vectorized(cfg, model, data, device, size, args.steps), layout)

    where = machine(device)
    print(f"\n{args.dataset}, model {args.model}, space {args.space}, {where}, torch {torch.__version__}, autocast {args.autocast}, "
          f"fused Adam {args.fused_adam}, channels-last {args.channels_last}, compile {args.compile}")
    print(f"{'path':<36}{'B':>4}{'batch':>7}{'child-img/s':>14}{'vs (a)':>9}{'vs (b)':>9}")
    for batch in args.batch_sizes:
        baseline = next(r for r in rows if r["batch_size"] == batch and r["path"].startswith("(a)"))["child_images_per_second"]
        sequential = next(r for r in rows if r["batch_size"] == batch and r["path"].startswith("(b)"))["child_images_per_second"]
        for row in (r for r in rows if r["batch_size"] == batch):
            row["ratio_to_dataloader"] = row["child_images_per_second"] / baseline
            row["ratio_to_sequential"] = row["child_images_per_second"] / sequential
            print(f"{row['path']:<36}{row['population']:>4}{batch:>7}{row['child_images_per_second']:>14,.0f}"
                  f"{row['ratio_to_dataloader']:>8.2f}x{row['ratio_to_sequential']:>8.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"device": where, "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
