"""CMA-ES (config ``controller=cmaes``) through pycma, the reference implementation (Hansen et al.)."""

import pickle
import warnings

import cma
import numpy as np
import torch


class SeededNormal:
    """pycma's ``randn`` option fed from a generator of our own, so samples depend on the seed alone."""

    def __init__(self, seed: int):
        self.generator = np.random.default_rng(seed)

    def __call__(self, rows: int, columns: int) -> np.ndarray:
        return self.generator.standard_normal((rows, columns))


class CMAESController:
    """Covariance matrix adaptation over loss parameter vectors, with the controller interface of REINFORCE.

    Each search epoch asks `population` vectors from N(mean, sigma^2 C), starting at `init` (cross-entropy) with
    C = I and sigma = `sigma`, and tells their negated rewards (CMA-ES minimises); step size and covariance adapt.
    The mean moves `mean_lr` of the way to the recombination of the best half (pycma's ``CMA_cmean``; 1 is standard
    CMA-ES; 0.5 did not stop its wandering under a flat reward, RESULTS.md).
    An epoch whose rewards are all equal carries no ranking and is not told. With `learn=False` nothing is told:
    samples stay N(init, sigma^2 I), the ablation without search. The strategy object is the whole state.
    """

    def __init__(self, init: torch.Tensor, sigma: float, population: int, seed: int, learn: bool = True,
                 mean_lr: float = 1.0):
        options = {
            "popsize": population, "randn": SeededNormal(seed), "seed": float("nan"), "CMA_cmean": mean_lr,
            "verbose": -9, "verb_disp": 0, "verb_log": 0, "tolfun": 0, "tolx": 0,
        }
        self.strategy = cma.CMAEvolutionStrategy(init.double().numpy(), sigma, options)
        self.population = population
        self.learn = learn
        self.steps = 0

    @property
    def mu(self) -> torch.Tensor:
        """The mean of the search distribution."""
        return torch.from_numpy(np.array(self.strategy.mean, dtype=np.float64))

    @property
    def sigma(self) -> float:
        """The current overall step size (the covariance adds its own per-direction scales)."""
        return float(self.strategy.sigma)

    def sample(self, n: int) -> torch.Tensor:
        """n = `population` parameter vectors [n, dim] (float64, CPU)."""
        if n != self.population:
            raise ValueError(f"this CMA-ES asks {self.population} vectors per epoch, not {n}")
        with warnings.catch_warnings():  # an untold epoch leaves pycma's own injected solution unused: expected
            warnings.simplefilter("ignore", cma.evolution_strategy.InjectionWarning)
            return torch.from_numpy(np.array(self.strategy.ask(), dtype=np.float64))

    def update(self, samples: torch.Tensor, rewards: torch.Tensor) -> None:
        """Tell the sampled vectors their negated rewards; nothing when learning is off or all rewards are equal."""
        self.steps += 1
        rewards = rewards.detach().double().cpu()
        if not self.learn or not rewards.std(unbiased=False) > 1e-12:
            return
        self.strategy.tell(list(samples.double().cpu().numpy()), (-rewards).tolist())

    def recentre(self, project) -> None:
        """Move the mean to `project(mean)` (the space's ``project``); step size, covariance and paths stay."""
        self.strategy.mean = project(self.mu).numpy().astype(np.float64)

    def state_dict(self) -> dict:
        return {"strategy": pickle.dumps(self.strategy), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.strategy = pickle.loads(state["strategy"])
        self.steps = int(state["steps"])
