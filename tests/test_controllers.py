"""Both controllers: learning a synthetic reward with a known optimum, seeded samples, state through a checkpoint."""

import io
import math

import pytest
import torch

from amlfs.controllers import build_controller
from amlfs.controllers.cmaes import CMAESController

from conftest import compose_search

DIM, POPULATION = 5, 8
TARGET = torch.linspace(-1, 1, DIM, dtype=torch.float64)


def make(name: str, seed: int = 0, learn: bool = True, init: torch.Tensor | None = None):
    cfg = compose_search([f"controller={name}", f"controller.learn={learn}"]).controller
    start = torch.zeros(DIM, dtype=torch.float64) if init is None else init
    return build_controller(cfg, start, epochs=100, population=POPULATION, seed=seed)


def synthetic_reward(samples: torch.Tensor) -> torch.Tensor:
    return -((samples - TARGET) ** 2).sum(-1)


@pytest.mark.parametrize("name,epochs", [("reinforce", 300), ("cmaes", 60)])
def test_mu_moves_to_the_optimum_of_a_synthetic_reward(name, epochs):
    controller = make(name)
    start = (controller.mu.detach() - TARGET).norm()
    for _ in range(epochs):
        samples = controller.sample(POPULATION)
        controller.update(samples, synthetic_reward(samples))
    assert (controller.mu.detach() - TARGET).norm() < 0.15 * start


@pytest.mark.parametrize("name", ["reinforce", "cmaes"])
def test_mu_stays_put_when_learning_is_off(name):
    controller = make(name, learn=False)
    for _ in range(3):
        samples = controller.sample(POPULATION)
        controller.update(samples, synthetic_reward(samples))
    assert torch.equal(controller.mu.detach(), torch.zeros(DIM, dtype=torch.float64))
    assert controller.sigma == compose_search([f"controller={name}"]).controller.sigma


def through_a_checkpoint(state: dict) -> dict:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=False)


@pytest.mark.parametrize("name", ["reinforce", "cmaes"])
def test_seeded_samples_repeat_and_state_round_trips(name):
    first, second = make(name, seed=7), make(name, seed=7)
    assert torch.equal(first.sample(POPULATION), second.sample(POPULATION))
    assert not torch.equal(make(name, seed=8).sample(POPULATION), make(name, seed=7).sample(POPULATION))
    for _ in range(3):
        samples = first.sample(POPULATION)
        first.update(samples, synthetic_reward(samples))
    saved = through_a_checkpoint(first.state_dict())
    expected = []
    for _ in range(2):
        expected.append(first.sample(POPULATION))
        first.update(expected[-1], synthetic_reward(expected[-1]))
        expected += [first.mu.detach().clone(), torch.tensor(first.sigma)]

    restored = make(name, seed=123)
    restored.load_state_dict(saved)
    got = []
    for _ in range(2):
        got.append(restored.sample(POPULATION))
        restored.update(got[-1], synthetic_reward(got[-1]))
        got += [restored.mu.detach().clone(), torch.tensor(restored.sigma)]
    for a, b in zip(expected, got):
        assert torch.equal(a, b)


def test_cmaes_starts_at_the_identity_with_sigma_and_ignores_a_flat_epoch():
    init = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.7], dtype=torch.float64)
    sigma = compose_search(["controller=cmaes"]).controller.sigma
    controller = make("cmaes", init=init)
    samples = controller.sample(POPULATION)
    assert samples.shape == (POPULATION, DIM) and samples.dtype == torch.float64
    assert (samples - init).std().item() == pytest.approx(sigma, rel=0.35)
    controller.update(samples, torch.full((POPULATION,), 0.5, dtype=torch.float64))
    assert torch.equal(controller.mu, init) and controller.sigma == sigma and controller.steps == 1


@pytest.mark.parametrize("mean_lr", [1.0, 0.3])
def test_cmaes_mean_moves_mean_lr_of_the_way_to_the_weighted_best_half(mean_lr):
    init = torch.full((DIM,), 0.2, dtype=torch.float64)
    cfg = compose_search(["controller=cmaes", f"controller.mean_lr={mean_lr}"]).controller
    controller = build_controller(cfg, init, epochs=100, population=POPULATION, seed=0)
    samples = controller.sample(POPULATION)
    rewards = synthetic_reward(samples)
    controller.update(samples, rewards)
    half = POPULATION // 2
    weights = math.log((POPULATION + 1) / 2) - torch.log(torch.arange(1, half + 1, dtype=torch.float64))
    best = samples[rewards.argsort(descending=True)[:half]]
    recombined = init + ((weights / weights.sum())[:, None] * (best - init)).sum(0)
    assert torch.allclose(controller.mu, init + mean_lr * (recombined - init), atol=1e-12)


def test_cmaes_asks_exactly_its_population():
    controller = CMAESController(torch.zeros(3, dtype=torch.float64), sigma=0.2, population=4, seed=0)
    with pytest.raises(ValueError, match="asks 4 vectors"):
        controller.sample(5)


@pytest.mark.parametrize("name", ["reinforce", "cmaes"])
def test_recentre_moves_the_centre_the_next_samples_come_from(name):
    controller = make(name)
    samples = controller.sample(POPULATION)
    controller.update(samples, synthetic_reward(samples))
    sigma = controller.sigma
    controller.recentre(lambda mu: mu.clamp(min=3.0))
    assert torch.equal(controller.mu.detach(), torch.full((DIM,), 3.0, dtype=torch.float64)) and controller.sigma == sigma
    assert (controller.sample(POPULATION).mean(0) - 3.0).abs().max() < 2.5 * sigma
