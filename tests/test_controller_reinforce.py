"""The REINFORCE controller: direction of its steps, sigma schedule, state round trip."""

import pytest
import torch

from amlfs.controllers import ReinforceController


def make(dim=6, **kwargs) -> ReinforceController:
    options = {"sigma": 0.2, "lr": 0.05, "seed": 0, **kwargs}
    return ReinforceController(torch.zeros(dim, dtype=torch.float64), **options)


def test_first_step_follows_the_reinforce_gradient():
    controller = make(lr=0.01)
    samples = controller.sample(16)
    rewards = torch.randn(16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    advantage = (rewards - rewards.mean()) / rewards.std(unbiased=False)
    gradient = (advantage[:, None] * samples).mean(0) / 0.2**2  # d/dmu of E[r log N(theta; mu, sigma^2)] at mu = 0
    controller.update(samples, rewards)
    # Adam's first step is lr * g / (|g| + eps), eps = 1e-8: lr times the sign of the ascent direction, up to eps.
    torch.testing.assert_close(controller.mu.detach(), 0.01 * gradient / (gradient.abs() + 1e-8), atol=1e-12, rtol=1e-9)


def test_constant_reward_gives_no_step():
    controller = make()
    for _ in range(3):
        controller.update(controller.sample(4), torch.full((4,), 0.7, dtype=torch.float64))
    assert torch.equal(controller.mu.detach(), torch.zeros(6, dtype=torch.float64))
    assert controller.steps == 3


def test_sigma_anneals_linearly_over_the_epochs():
    controller = make(sigma=0.4, sigma_final=0.1, epochs=4)
    seen = []
    for _ in range(5):
        seen.append(controller.sigma)
        controller.update(controller.sample(2), torch.zeros(2))
    assert seen == pytest.approx([0.4, 0.3, 0.2, 0.1, 0.1])
    assert make(sigma=0.3).sigma == 0.3
