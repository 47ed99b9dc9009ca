"""The AM-LFS search: a controller over loss parameters, children trained for one epoch each.

    python -m amlfs.search [dataset=...] [model=...] [space=...] [search.population=B] ...
"""

import copy
import logging
import math
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from amlfs import atomic, checkpoint, distributed, environment
from amlfs.config import CONFIG_DIR, ConfigError, fail_job, validate, with_defaults
from amlfs.controllers import build_controller
from amlfs.datasets import load_data
from amlfs.idx import DataFileError
from amlfs.models import MODEL_FILES, build_model, check_cosine_head, check_fits
from amlfs.population import cross_entropy_probabilities, make_population, resolve_backend
from amlfs.recorder import Recorder
from amlfs.results import FILE as RESULTS_FILE, best_val_epoch, read_results
from amlfs.reward import Reward, anchor_transition
from amlfs.seeding import derive_seed
from amlfs.spaces import space_of
from amlfs.training import compile_errors, compile_failure, memory_format

log = logging.getLogger("amlfs")


class SearchStopped(RuntimeError):
    """Too many epochs in a row in which every child failed."""


def holds_search(run_dir: Path) -> bool:
    """Whether `run_dir` holds work that starting a search there would destroy: checkpoint files or a finished
    results.json (an unfinished one without a checkpoint holds less than one epoch)."""
    if any((run_dir / checkpoint.FOLDER).glob("epoch-*.pt")):
        return True
    try:
        return read_results(run_dir)["final"] is not None
    except ValueError:
        return False


def records_config(run_dir: Path) -> bool:
    """Whether a search started in `run_dir` writes the record of its config (.hydra/): only rank 0 of one that
    starts there afresh. A resumed search (or restarted torchrun job) keeps the record of the command that started
    it, whose config it must match; a refused one writes nothing."""
    return distributed.rank() == 0 and not holds_search(run_dir)


def check_fresh(run_dir: Path, key: str = "hydra.run.dir") -> None:
    """Refuse to start a new search in a run dir that holds one (`key`: how the user named the dir)."""
    if holds_search(run_dir):
        raise ConfigError(f"{key}={run_dir} is not allowed: it holds a search already; continue it with resume=true "
                          f"or choose another dir")


def starting_point(run_dir: Path, config: dict, epochs: int, resume: bool) -> tuple[dict | None, dict | None]:
    """What a search in `run_dir` continues from: (None, None) for a new search, else `resumable`'s pair.

    It continues with ``resume=true``, and under torchrun when the newest checkpoint was written by this same
    torchrun job (its workers restarted by torchrun); otherwise a run dir that holds a search is refused."""
    job = distributed.run_id()
    saved = checkpoint.load_latest(run_dir) if resume or job is not None else None
    if not resume and (saved is None or saved.get("job") != job):
        check_fresh(run_dir)
        return None, None
    return resumable(run_dir, config, epochs, saved)


def resumable(run_dir: Path, config: dict, epochs: int, saved: dict | None) -> tuple[dict | None, dict | None]:
    """`saved`, the newest checkpoint in `run_dir`, refused when its config differs from `config` in anything that
    changes results; and the finished results when the run has done all its epochs already (a damaged results.json
    is written again from the last checkpoint)."""
    if not saved:
        if holds_search(run_dir):
            raise ConfigError(f"resume=true is not allowed: {run_dir} holds a search but no checkpoint in "
                              f"{run_dir / checkpoint.FOLDER} can be read; start a new run in another dir")
        return None, None
    for record in (saved, saved["results"]):  # written by an older amlfs: fill in keys added since
        record["config"] = OmegaConf.to_container(with_defaults(record["config"]))
    checkpoint.check_resumable(saved["config"], config)
    if saved["epochs_done"] == epochs and (run_dir / RESULTS_FILE).exists():
        try:
            results = read_results(run_dir)
        except ValueError as err:
            log.warning("%s: writing it again from the last checkpoint", err)
            return saved, None
        if results["final"]:
            return saved, results
    return saved, None


def judge(rewards: torch.Tensor, failed: torch.Tensor) -> tuple[torch.Tensor, int | None]:
    """Rewards the controller learns from, and the child to broadcast (None when every child failed).

    A failed child gets the worst reward of the epoch's successful children and is never broadcast;
    when all fail, every reward is 0, which gives the controller no step.
    """
    if failed.all():
        return torch.zeros_like(rewards), None
    rewards = torch.where(failed, rewards[~failed].min(), rewards)
    return rewards, int(torch.where(failed, -math.inf, rewards).argmax())


def transition_outputs(cfg: DictConfig, model: torch.nn.Module, space, data, population) -> tuple[Callable[[], torch.Tensor], str]:
    """What ``search.reward=corrected`` estimates T from, and its name: the softmax outputs on the training images of
    the broadcast model, or (``search.transition_model=ce``) of a model trained with cross-entropy from `model`'s
    weights as they are now (the search's initial weights, copied here) for ``search.transition_epoch`` epochs."""
    if cfg.search.reward != "corrected" or cfg.search.transition_model == "broadcast":
        return lambda: population.probabilities(data.train), "broadcast"
    initial = copy.deepcopy(model)
    return (lambda: cross_entropy_probabilities(initial, space, data, cfg.train, cfg.seed, cfg.search.transition_epoch),
            f"cross-entropy ({cfg.search.transition_epoch} epochs)")


def estimate_transition(reward: Reward, outputs: Callable[[], torch.Tensor], source: str, world: distributed.World,
                        recorder: Recorder | None) -> None:
    """Estimate the label-noise transition matrix of ``search.reward=corrected`` by anchor points from `outputs` (on
    rank 0, sent to all) and record it in results.json."""
    transition = distributed.on_rank_zero(world, lambda: anchor_transition(outputs()).cpu())
    if not reward.set_transition(transition):
        return
    if recorder is not None:
        recorder.results["transition"] = reward.transition.tolist()
    flips = ", ".join(f"{i}->{j} {transition[i, j]:.2f}" for i, j in torch.nonzero(transition > 0.1).tolist() if i != j)
    log.info("search.reward=corrected from epoch %d on: noise transition estimated by anchor points from the %s model, "
             "off-diagonal entries above 0.1: %s", reward.transition_epoch + 1, source, flips or "none")


def execute(cfg: DictConfig, run_dir: Path) -> dict | None:
    """Run (or, with ``resume=true``, continue) the search described by `cfg` in `run_dir`; returns results.json's
    content (on rank 0 of a torchrun job; None on the other ranks)."""
    device = validate(cfg)
    world, device = distributed.setup(device, cfg.distributed.timeout)
    try:
        return search(cfg, run_dir, world, device)
    finally:
        distributed.shutdown(world)


def search(cfg: DictConfig, run_dir: Path, world: distributed.World, device: torch.device) -> dict | None:
    """The search loop on one rank of `world` (the whole search in a plain run)."""
    population_size = cfg.search.population
    if population_size < world.size:
        raise ConfigError(f"search.population={population_size} is not allowed: this torchrun job has {world.size} ranks "
                          f"and every rank trains at least one child")
    distributed.quiet_other_ranks(world)
    config = OmegaConf.to_container(cfg, resolve=True)
    saved, finished = distributed.on_rank_zero(world, lambda: starting_point(run_dir, config, cfg.search.epochs, cfg.resume))
    if finished:
        log.info("%s finished all %d epochs already: nothing to resume", run_dir, cfg.search.epochs)
        return finished if world.main else None
    if saved and saved["failed_streak"] >= cfg.search.max_failed_epochs:
        raise ConfigError(f"search.max_failed_epochs={cfg.search.max_failed_epochs} is not allowed: this run stopped "
                          f"after {saved['failed_streak']} epochs in a row in which every child failed; resume with a larger value")
    dtype = getattr(torch, cfg.train.dtype)
    layout = memory_format(cfg.train)
    with distributed.rank_zero_first(world):  # rank 0 extracts archives; the others then read what it wrote
        data = load_data(cfg.dataset, device, augment=cfg.train.augment, dtype=dtype, memory_format=layout)
    space = space_of(cfg)
    torch.manual_seed(derive_seed(cfg.seed, "model"))
    model = build_model(cfg.model, data.image_shape, data.num_classes).to(device, dtype, memory_format=layout)
    check_fits(model, data.normalise(data.train.images[:2]), data.num_classes, cfg.model)
    if space.needs_cosine_head:
        check_cosine_head(model, cfg.model)
    controller = build_controller(cfg.controller, space.identity(), cfg.search.epochs, population_size,
                                  derive_seed(cfg.seed, "controller"))
    backend = resolve_backend(cfg.search.backend, device)
    mine = world.block(population_size)
    population = make_population(backend, model, space, data, cfg.train, cfg.seed, cfg.search.shared_batches, len(mine), mine.start)
    outputs, source = transition_outputs(cfg, model, space, data, population)
    reward = Reward(cfg.search.reward, cfg.search.transition_epoch)
    failed_streak, first_epoch = 0, 0
    if saved:
        controller.load_state_dict(saved["controller"])
        population.broadcast_state = saved["population"]
        checkpoint.restore_rng(saved["rng"])
        failed_streak, first_epoch = saved["failed_streak"], saved["epochs_done"]
        if saved["results"].get("transition") is not None:
            reward.transition = torch.tensor(saved["results"]["transition"], dtype=torch.float64)
        log.info("resuming %s after epoch %d of %d", run_dir, saved["epochs_done"], cfg.search.epochs)
    elif cfg.resume:
        log.info("resume=true but %s holds no checkpoint: starting from the beginning", run_dir)
    recorder = Recorder(run_dir, config, space, data.info, cfg.log.curve_every, environment.describe(device, world.size),
                        history=saved["results"] if saved else None) if world.main else None
    if space.dim == 0 and population_size > 1 and cfg.search.shared_batches:
        log.warning("space=ce has no loss parameters: the %d children are identical; search.population=1 gives the same result", population_size)
    where = f"{device}, {backend} backend" + (f", {world.size} ranks" if world.launched else "")
    log.info("searching %s over %d parameters with %s on %s (%s), %d children x %d epochs, run dir %s",
             cfg.space.name, space.dim, cfg.controller.name, cfg.dataset.name, where, population_size, cfg.search.epochs, run_dir)

    for epoch in range(first_epoch, cfg.search.epochs):
        started = time.perf_counter()
        sigma = controller.sigma
        if reward.wants_transition(epoch):
            estimate_transition(reward, outputs, source, world, recorder)
        thetas = controller.sample(population_size)
        outcome = population.train(thetas[mine.start : mine.stop], epoch)
        confusion, train_loss, failed = distributed.gather_outcome(world, population_size, outcome.confusion, outcome.train_loss, outcome.failed)
        failed |= train_loss > cfg.search.max_train_loss
        rewards, best = judge(reward(confusion), failed)
        controller.update(thetas, rewards)
        controller.recentre(space.project)
        if best is not None:
            distributed.broadcast_winner(world, population, best, population_size, device)
        failed_streak = failed_streak + 1 if best is None else 0
        if world.main:
            test_acc = float(population.accuracy(data.test))
            seconds = time.perf_counter() - started
            recorder.epoch({
                "epoch": epoch,
                "thetas": thetas.tolist(),
                "rewards": rewards.tolist(),
                "best": best,
                "failed": torch.nonzero(failed).flatten().tolist(),
                "mu": controller.mu.detach().tolist(),
                "val_acc": float(rewards[best]) if best is not None else float(reward(population.confusion(data.val)[None])[0]),
                "test_acc": test_acc,
                "seconds": seconds,
            }, [float(x) if math.isfinite(x) else None for x in train_loss.tolist()], sigma,
                population_size * len(data.train) / seconds)
            if best_val_epoch(recorder.results["epochs"]) == epoch:  # before the checkpoint: a resume rewrites it identically
                atomic.write_torch(run_dir / MODEL_FILES["best_val"], population.broadcast_state["model"])
            checkpoint.save(run_dir, epoch + 1, {
                "job": distributed.run_id(),
                "config": config,
                "controller": controller.state_dict(),
                "population": population.broadcast_state,
                "rng": checkpoint.capture_rng(),
                "results": recorder.results,
                "failed_streak": failed_streak,
            })
        distributed.barrier(world)  # no rank runs ahead into the next collective while rank 0 writes
        if failed_streak >= cfg.search.max_failed_epochs:
            raise SearchStopped(
                f"every child failed in {failed_streak} epochs in a row (last: epoch {epoch + 1}); the broadcast model "
                f"is unchanged since then and checkpointed in {run_dir / checkpoint.FOLDER}: start a new run with a lower "
                f"controller.sigma or train.lr, or resume=true with a larger search.max_failed_epochs"
            )

    if not world.main:
        return None
    atomic.write_torch(run_dir / MODEL_FILES["final"], population.broadcast_state["model"])
    epochs = recorder.results["epochs"]
    last = epochs[-1]
    mu = controller.mu.detach()
    recorder.finish({
        "mu": mu.tolist(),
        "loss": space.meaning(mu),
        "best_theta": last["thetas"][last["best"]] if last["best"] is not None else None,
        "val_acc": last["val_acc"],
        "test_acc": last["test_acc"],
        "best_val_epoch": best_val_epoch(epochs),
    })
    for line in summary(run_dir, recorder.results):
        log.info(line)
    return recorder.results


def summary(run_dir: Path, results: dict) -> list[str]:
    """What a finished search found, where it is and what to do next, for the terminal and search.log."""
    final = results["final"]
    best = results["epochs"][final["best_val_epoch"]]
    loss = ", ".join(f"{key} {value:.3g}" for key, value in final["loss"].items())
    return [
        f"search finished: the final model reaches {final['val_acc']:.4f} validation and {final['test_acc']:.4f} test accuracy"
        + (f"; the loss at the final mu has {loss}" if loss else ""),
        f"  best validation: epoch {best['epoch'] + 1} ({best['val_acc']:.4f} validation, {best['test_acc']:.4f} test), "
        f"its model in {MODEL_FILES['best_val']}",
        f"  run dir:     {run_dir}",
        f"  watch it:    tensorboard --logdir {run_dir / 'tb'}",
        f"  compare it:  amlfs-evaluate run={run_dir}   (retrains the searched loss next to hand-crafted ones)",
        f"  use it:      criterion = amlfs.load_loss(\"{run_dir}\")   (or amlfs.load_schedule for the per-epoch losses)",
        f"  its model:   model = amlfs.load_model(\"{run_dir}\")   (the best validation epoch's; which=\"final\" for the last)",
    ]


def resume_command(run_dir: Path) -> str:
    """The command line that continues the current Hydra job in `run_dir`."""
    overrides = [o for o in HydraConfig.get().overrides.task if not o.startswith(("hydra.run.dir=", "resume="))]
    return shlex.join(["python", "-m", "amlfs.search", *overrides, f"hydra.run.dir={run_dir}", "resume=true"])


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="search")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        execute(cfg, run_dir)
    except (ConfigError, DataFileError) as err:
        fail_job(2, str(err), say=distributed.rank() == 0)  # every rank finds the same error: one says it
    except compile_errors() as err:
        fail_job(2, compile_failure(err, "train.compile", cfg.train.compile), say=distributed.rank() == 0)
    except SearchStopped as err:
        fail_job(3, f"search stopped: {err}")
    except KeyboardInterrupt:
        print(f"amlfs: interrupted; completed epochs are checkpointed. Resume with: {resume_command(run_dir)}", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
