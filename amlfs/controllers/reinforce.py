"""REINFORCE (config ``controller=reinforce``): a Gaussian policy N(mu, sigma^2 I) over loss parameter vectors."""

import copy

import torch


class ReinforceController:
    """Samples loss parameters and moves mu by policy gradient on normalised rewards.

    mu starts at `init` (the identity, i.e. cross-entropy) and is updated by Adam on the
    REINFORCE surrogate ``-mean_i r_i log N(theta_i; mu, sigma^2 I)``, with rewards r
    normalised to zero mean and unit standard deviation across the population. sigma goes
    linearly from `sigma` to `sigma_final` over `epochs` updates (fixed when `sigma_final` is None).
    With `learn=False`, mu stays at `init`: sampling and selection without search.
    The controller owns its random generator, so its samples depend on `seed` alone.
    """

    def __init__(
        self,
        init: torch.Tensor,
        sigma: float,
        lr: float,
        seed: int,
        epochs: int = 1,
        sigma_final: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        learn: bool = True,
    ):
        self.mu = torch.nn.Parameter(init.detach().clone().double())
        self.sigma_start = float(sigma)
        self.sigma_final = self.sigma_start if sigma_final is None else float(sigma_final)
        self.epochs = int(epochs)
        self.learn = learn
        self.steps = 0
        self.optimizer = torch.optim.Adam([self.mu], lr=lr, betas=tuple(betas))
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def sigma(self) -> float:
        """The standard deviation used at the current step of the schedule."""
        if self.epochs <= 1:
            return self.sigma_start
        fraction = min(self.steps, self.epochs - 1) / (self.epochs - 1)
        return self.sigma_start + fraction * (self.sigma_final - self.sigma_start)

    def sample(self, n: int) -> torch.Tensor:
        """n parameter vectors [n, dim] (float64, CPU)."""
        noise = torch.randn(n, self.mu.numel(), generator=self.generator, dtype=torch.float64)
        return self.mu.detach() + self.sigma * noise

    def update(self, samples: torch.Tensor, rewards: torch.Tensor) -> None:
        """One Adam step of mu toward higher reward; no step when all rewards are equal."""
        sigma = self.sigma
        self.steps += 1
        rewards = rewards.detach().double().cpu()
        spread = rewards.std(unbiased=False)
        if not self.learn or self.mu.numel() == 0 or not spread > 1e-12:
            return
        advantage = (rewards - rewards.mean()) / spread
        log_prob = -((samples.double() - self.mu) ** 2).sum(-1) / (2 * sigma**2)
        self.optimizer.zero_grad()
        (-(advantage * log_prob).mean()).backward()
        self.optimizer.step()

    def recentre(self, project) -> None:
        """Move mu to `project(mu)` (the space's ``project``), keeping Adam's moments."""
        with torch.no_grad():
            self.mu.copy_(project(self.mu.detach().clone()))

    def state_dict(self) -> dict:
        return {
            "mu": self.mu.detach().clone(),
            "steps": self.steps,
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.mu.copy_(state["mu"])
        self.steps = int(state["steps"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])

