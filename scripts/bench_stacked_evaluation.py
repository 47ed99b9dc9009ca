"""One training step of `amlfs.evaluate`'s stacked retraining: per-copy batches and losses against batched ones.

Both paths train the same stacked model (every (row, seed) copy of the evaluation's table: `--seeds` seeds of three
searched losses in space=mixture and CE, GCE, SCE, NCE+RCE, MAE) with one forward and backward pass over all copies
and one Adam over the stacked parameters per step; they differ in the work around it:
(a) per copy: each copy's batch gathered and normalised on its own, one loss call per copy (amlfs before 2026-11-30);
(b) amlfs: all copies' batches gathered and normalised at once (`DeviceData.stacked_train_batches`), one loss call
    per row (`amlfs.evaluate.stacked_losses`).
Reports child-images/s and the computing operator calls per step (about the kernels a GPU launches per step, what it
waits on when the host cannot keep up).

    python scripts/bench_stacked_evaluation.py --device cpu --archives ../shared/data/FashionMNIST/raw
"""

import argparse
import json
import statistics
import time

import torch
from torch.profiler import profile

from amlfs.data import epoch_stream
from amlfs.datasets import load_data
from amlfs.evaluate import same_loss_runs, stacked_losses
from amlfs.losses import BASELINES, SearchedLoss
from amlfs.models import build_model
from amlfs.population import stack_models, stacked_forward
from amlfs.spaces.mixture import MixtureSpace
from amlfs.training import make_optimizer
from bench_datapath import add_common_arguments, bench_config, machine, synchronize

NO_KERNEL = {"aten::" + name for name in (
    "as_strided", "view", "reshape", "_reshape_alias", "_unsafe_view", "expand", "unsqueeze", "squeeze", "select", "slice",
    "flatten", "unflatten", "t", "transpose", "permute", "detach", "alias", "empty", "empty_like", "empty_strided",
    "to", "lift_fresh", "split", "chunk", "unbind", "numpy_T", "contiguous", "resolve_conj", "resolve_neg")}
"""Operators that launch no kernel of their own (views, allocations, dispatch wrappers), left out of the count."""
SEARCHED = ((1.0, 0.0, 0.0, 0.0, 0.7), (0.2, 0.9, 0.3, 0.5, 0.6), (0.0, 0.7, 0.0, 0.4, 1.0))
"""Three points of the mixture space standing in for the searched rows (schedule, final mu, best_val_mu)."""


def per_copy_batches(data, streams, batch_size):
    """(a): each copy's batch from `train_batches`, stacked."""
    for batch in zip(*(data.train_batches(order, batch_size, generator) for order, generator in streams)):
        images, labels = zip(*batch)
        yield torch.stack(images), torch.stack(labels)


def parents(event):
    """The profiler events `event` was called from, innermost first."""
    while event.cpu_parent is not None:
        event = event.cpu_parent
        yield event


def run_steps(path: str, cfg, data, criteria, device, steps: int, profiled: bool = False) -> tuple[float, int]:
    """Child-images/s of `steps` steps of `path` after 3 warm-up steps, and the operator calls per step if `profiled`."""
    batch = cfg.train.batch_size
    models = []
    for seed in range(len(criteria)):
        torch.manual_seed(seed)
        models.append(build_model(cfg.model, data.image_shape, data.num_classes).to(device))
    params, buffers = stack_models(models)
    optimizer = make_optimizer(list(params.values()), cfg.train)
    logits = stacked_forward(models[0])
    streams = [epoch_stream(len(data.train), seed, device) for seed in range(len(criteria))]
    if path == "a":
        batches = per_copy_batches(data, streams, batch)

        def losses_of(outputs, labels):
            return torch.stack([criterion(outputs[i], labels[i]) for i, criterion in enumerate(criteria)])
    else:
        batches = data.stacked_train_batches(streams, batch)
        runs = same_loss_runs(criteria)

        def losses_of(outputs, labels):
            return stacked_losses(runs, outputs, labels)

    def step():
        images, labels = next(batches)
        losses = losses_of(logits(params, buffers, images, True), labels)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        optimizer.step()

    models[0].train()
    for _ in range(3):
        step()
    synchronize(device)
    if profiled:
        with profile() as trace:
            step()
        return 0.0, sum(1 for event in trace.events() if event.name.startswith("aten::") and event.name not in NO_KERNEL
                        and not any(p.name.startswith("aten::") and p.name not in NO_KERNEL for p in parents(event)))
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return len(criteria) * steps * batch / (time.perf_counter() - started), 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3], help="seeds per row: copies = 8 x seeds")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    args = parser.parse_args()

    device = torch.device(args.device)
    cfg = bench_config(args, args.batch_size)
    data = load_data(cfg.dataset, device, augment=cfg.train.augment)
    space = MixtureSpace(max_gap=1.2)
    losses = [SearchedLoss(space, torch.tensor(theta, dtype=torch.float64)).to(device) for theta in SEARCHED]
    losses += [BASELINES[name]() for name in ("ce", "gce", "sce", "nce_rce", "mae")]
    rows = []
    for seeds in args.seeds:
        criteria = [criterion for criterion in losses for _ in range(seeds)]
        for path, label in (("a", "(a) per-copy batches and losses"), ("b", "(b) amlfs: batched")):
            _, calls = run_steps(path, cfg, data, criteria, device, 1, profiled=True)
            rates = [run_steps(path, cfg, data, criteria, device, args.steps)[0] for _ in range(args.repeats)]
            rows.append({"path": label, "copies": len(criteria), "batch_size": args.batch_size,
                         "child_images_per_second": statistics.median(rates), "runs": rates, "operator_calls_per_step": calls})
            print(f"  {label:<34} copies {len(criteria):<3} {statistics.median(rates):>10,.0f} child-img/s  {calls:>5} op calls/step", flush=True)

    where = machine(device)
    print(f"\n{args.dataset}, model {args.model}, batch {args.batch_size}, {where}, torch {torch.__version__}")
    print(f"{'path':<36}{'copies':>7}{'child-img/s':>14}{'vs (a)':>9}{'op calls/step':>15}")
    for copies in sorted({row["copies"] for row in rows}):
        baseline = next(r for r in rows if r["copies"] == copies and r["path"].startswith("(a)"))
        for row in (r for r in rows if r["copies"] == copies):
            row["ratio_to_per_copy"] = row["child_images_per_second"] / baseline["child_images_per_second"]
            print(f"{row['path']:<36}{copies:>7}{row['child_images_per_second']:>14,.0f}{row['ratio_to_per_copy']:>8.2f}x"
                  f"{row['operator_calls_per_step']:>15}")
    if args.json:
        args.json.write_text(json.dumps({"device": where, "torch": torch.__version__, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
