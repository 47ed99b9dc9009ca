"""Property-based tests: the config validator always answers; the loss never raises and is finite in a wide box."""

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from amlfs.config import ConfigError, validate
from amlfs.spaces import build_space

from conftest import compose_search

KEYS = [
    "seed", "device", "resume", "space.name", "space.intervals", "search.population", "search.epochs",
    "search.backend", "search.max_train_loss", "search.max_failed_epochs", "model.name", "model.head", "model.scale",
    "controller.sigma", "controller.sigma_final", "controller.lr", "dataset.name", "dataset.val_fraction",
    "dataset.max_train", "dataset.noise", "dataset.noise.kind", "dataset.noise.rate", "dataset.noise.validation",
    "dataset.noise_map", "train.batch_size", "train.lr", "train.dtype", "train.autocast", "train.compile",
    "train.channels_last", "train.fused_adam", "log.curve_every", "model._target_", "model", "controller.name",
    "controller.learn", "space.terms", "space.max_gap", "space.min_active", "space.reinforce_lr", "dataset.split_seed", "dataset.path", "dataset.name",
]
VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["cpu", "cuda", "amlfs", "ce", "cosine", "linear", "symmetric", "bf16", "float64",
                                           "arrays", "poly", "cmaes", "mixture", "amlfs.models.nothing", "x.npz",
                                           "asymmetric", "pair"]),
    st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.one_of(st.integers(-2, 12), st.text(max_size=2)), st.one_of(st.integers(-2, 12), st.none()), max_size=3),
)
BASE = compose_search(["device=cpu"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4))
@example({"dataset.noise": []})  # a list where a mapping is expected
@example({"dataset.noise.kind": "asymmetric", "dataset.noise.rate": 0.4, "dataset.noise_map": {"0": None}})
def test_validator_answers_every_config(changes):
    config = OmegaConf.to_container(BASE)
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        node = config
        for parent in parents:
            if not isinstance(node.get(parent), dict):
                node[parent] = {}
            node = node[parent]
        node[leaf] = value
    cfg = OmegaConf.create(config)
    try:
        assert isinstance(validate(cfg), torch.device)
    except ConfigError as err:
        assert str(err).count("\n") == 0 and "=" in str(err)


LOGITS = 10 * (2 * torch.rand(64, 10, generator=torch.Generator().manual_seed(0)) - 1)
TARGET = torch.randint(0, 10, (64,), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["amlfs", "amlfs_tau"])
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_loss_never_raises_and_is_finite_in_a_wide_box(name, data):
    space = build_space(name, scale=10.0, intervals=3)
    scale = data.draw(st.sampled_from([1.0, 1e3, 1e30]))
    values = data.draw(st.lists(st.floats(-1, 1), min_size=space.dim, max_size=space.dim))
    theta = scale * torch.tensor([values], dtype=torch.float64)
    logits = LOGITS.clone().requires_grad_()
    loss = space.loss(theta, logits, TARGET)
    loss.sum().backward()
    assert loss.shape == (1, 64)
    if scale <= 1e3:
        assert torch.isfinite(loss).all() and torch.isfinite(logits.grad).all()
