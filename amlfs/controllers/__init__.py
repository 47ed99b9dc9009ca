"""Controllers, one module each, named as in the config group ``controller``.

A controller proposes loss parameter vectors and learns from their rewards: ``sample(n)`` -> [n, dim],
``update(samples, rewards)``, ``mu`` (its current centre), ``recentre(project)`` (the centre moved to
``project(mu)``), ``sigma``, and ``state_dict``/``load_state_dict`` for checkpoints. The search loop does not know
which one it drives.
"""

import torch

from amlfs.controllers.reinforce import ReinforceController

CONTROLLERS = ("reinforce", "cmaes")


def build_controller(cfg, init: torch.Tensor, epochs: int, population: int, seed: int):
    """The controller of config group ``controller`` (`cfg`), starting at `init`."""
    if cfg.name == "cmaes":
        from amlfs.controllers.cmaes import CMAESController  # pycma takes a second to import: only when chosen

        return CMAESController(init, sigma=cfg.sigma, population=population, seed=seed, learn=cfg.learn,
                              mean_lr=cfg.mean_lr)
    return ReinforceController(init, sigma=cfg.sigma, sigma_final=cfg.sigma_final, lr=cfg.lr, betas=cfg.betas,
                               epochs=epochs, seed=seed, learn=cfg.learn)


__all__ = ["CONTROLLERS", "ReinforceController", "build_controller"]
