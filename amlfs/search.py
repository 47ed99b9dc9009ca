"""The AM-LFS search: a REINFORCE controller over loss parameters, children trained for one epoch each.

    python -m amlfs.search [dataset=...] [model=...] [space=...] [search.population=B] ...
"""

import logging
import sys
import time
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from amlfs.config import ConfigError, validate
from amlfs.controller import ReinforceController
from amlfs.datasets import load_data
from amlfs.idx import DataFileError
from amlfs.models import build_model
from amlfs.population import SequentialPopulation
from amlfs.recorder import Recorder
from amlfs.seeding import derive_seed
from amlfs.space import build_space

log = logging.getLogger("amlfs")


def run_search(cfg: DictConfig, run_dir: Path) -> dict:
    """Run the search described by `cfg`, recording into `run_dir`; returns the results.json content."""
    device = validate(cfg)
    data = load_data(cfg.dataset, device, augment=cfg.train.augment)
    space = build_space(cfg.space.name, cfg.space.intervals, cfg.model.scale)
    torch.manual_seed(derive_seed(cfg.seed, "model"))
    model = build_model(cfg.model, data.image_shape, data.num_classes).to(device)
    c = cfg.controller
    controller = ReinforceController(
        space.identity(), sigma=c.sigma, sigma_final=c.sigma_final, lr=c.lr, betas=c.betas,
        epochs=cfg.search.epochs, seed=derive_seed(cfg.seed, "controller"), learn=c.learn,
    )
    population = SequentialPopulation(model, space, data, cfg.train, seed=cfg.seed, shared_batches=cfg.search.shared_batches)
    recorder = Recorder(run_dir, OmegaConf.to_container(cfg, resolve=True), space, data.info, cfg.log.curve_every)
    if space.dim == 0 and cfg.search.population > 1 and cfg.search.shared_batches:
        log.warning("space=ce has no loss parameters: the %d children are identical; search.population=1 gives the same result", cfg.search.population)
    log.info("searching %s over %d parameters on %s (%s), %d children x %d epochs, run dir %s",
             cfg.space.name, space.dim, cfg.dataset.name, device, cfg.search.population, cfg.search.epochs, run_dir)

    for epoch in range(cfg.search.epochs):
        started = time.perf_counter()
        sigma = controller.sigma
        thetas = controller.sample(cfg.search.population)
        outcome = population.train(thetas, epoch)
        rewards = outcome.rewards.cpu()
        best = int(rewards.argmax())
        controller.update(thetas, rewards)
        population.broadcast(best)
        test_acc = float(population.accuracy(data.test))
        seconds = time.perf_counter() - started
        record = {
            "epoch": epoch,
            "thetas": thetas.tolist(),
            "rewards": rewards.tolist(),
            "best": best,
            "mu": controller.mu.detach().tolist(),
            "val_acc": float(rewards[best]),
            "test_acc": test_acc,
            "seconds": seconds,
        }
        recorder.epoch(record, outcome.train_loss.tolist(), sigma, outcome.images / seconds)

    torch.save(population.broadcast_state["model"], run_dir / "model.pt")
    recorder.finish({
        "mu": controller.mu.detach().tolist(),
        "best_theta": record["thetas"][best],
        "val_acc": record["val_acc"],
        "test_acc": record["test_acc"],
    })
    return recorder.results


@hydra.main(version_base="1.3", config_path="../configs", config_name="search")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run_search(cfg, run_dir)
    except (ConfigError, DataFileError) as err:
        print(f"amlfs: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
