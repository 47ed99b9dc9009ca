"""What every loss space promises: cross-entropy at the identity, B vectors equal a loop, finite everywhere."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from amlfs.spaces import BUILDERS, build_space
from amlfs.spaces.base import sparsemax

SCALE = 10.0
NAMES = sorted(BUILDERS)
SEARCHED = [name for name in NAMES if name != "ce"]


def cosine_logits(n: int, classes: int, generator: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    return SCALE * (2 * torch.rand(n, classes, generator=generator, dtype=dtype) - 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_identity_is_cross_entropy(name, dtype):
    g = torch.Generator().manual_seed(0)
    space = build_space(name, scale=SCALE)
    logits = cosine_logits(256, 10, g, dtype)
    target = torch.randint(0, 10, (256,), generator=g)
    loss = space.loss(space.identity()[None], logits, target)[0]
    assert loss.dtype == dtype and len(space.names()) == space.dim == len(space.identity())
    torch.testing.assert_close(loss, F.cross_entropy(logits, target, reduction="none"))


@pytest.mark.parametrize("name", SEARCHED)
def test_a_batch_of_parameter_vectors_equals_a_loop(name):
    g = torch.Generator().manual_seed(1)
    space = build_space(name, scale=SCALE)
    theta = space.identity() + 0.5 * torch.randn(5, space.dim, generator=g, dtype=torch.float64)
    shared = cosine_logits(64, 7, g)
    own = shared.expand(5, -1, -1) + 0.1 * torch.randn(5, 64, 7, generator=g, dtype=torch.float64)
    target = torch.randint(0, 7, (64,), generator=g)
    batched_shared, batched_own = space.loss(theta, shared, target), space.loss(theta, own, target)
    for b in range(5):
        torch.testing.assert_close(batched_shared[b], space.loss(theta[b : b + 1], shared, target)[0])
        torch.testing.assert_close(batched_own[b], space.loss(theta[b : b + 1], own[b], target)[0])


@pytest.mark.parametrize("name", SEARCHED)
def test_gradient_matches_finite_differences(name):
    g = torch.Generator().manual_seed(2)
    space = build_space(name, scale=SCALE)
    theta = space.identity()[None] + 0.3 * torch.randn(1, space.dim, generator=g, dtype=torch.float64)
    target = torch.randint(0, 5, (6,), generator=g)
    logits = cosine_logits(6, 5, g).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: space.loss(theta, z, target), (logits,))


@pytest.mark.parametrize("name", NAMES)
def test_probability_curve_is_the_loss_at_that_distribution(name):
    space = build_space(name, scale=SCALE)
    g = torch.Generator().manual_seed(3)
    theta = space.identity()[None] + 0.3 * torch.randn(1, space.dim, generator=g, dtype=torch.float64)
    p = torch.tensor([0.05, 0.3, 0.7, 0.99], dtype=torch.float64)
    rest = (1 - p) / 9
    logits = torch.cat([p.log()[:, None], rest.log()[:, None].expand(-1, 9)], dim=1)
    expected = space.from_log_probs(theta, F.log_softmax(logits, -1)[None], torch.zeros(1, 4, dtype=torch.long))
    torch.testing.assert_close(space.probability_curve(theta, p, 10), expected)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), name=st.sampled_from(SEARCHED), dtype=st.sampled_from([torch.float32, torch.float64]))
def test_finite_loss_and_gradient_over_the_whole_clamped_range(data, name, dtype):
    """theta far beyond every clamp, logits from a uniform spread to a confident, near-one-hot softmax."""
    space = build_space(name, scale=SCALE)
    values = data.draw(st.lists(st.floats(-30, 30), min_size=space.dim, max_size=space.dim))
    spread = data.draw(st.floats(0.0, 60.0))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**16)))
    logits = (spread * torch.randn(16, 10, generator=g, dtype=dtype)).requires_grad_()
    target = torch.randint(0, 10, (16,), generator=g)
    loss = space.loss(torch.tensor([values], dtype=torch.float64), logits, target)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logits.grad).all()


def sparsemax_by_bisection(z: np.ndarray) -> np.ndarray:
    """The projection onto the simplex: the threshold tau with sum(max(z - tau, 0)) = 1, found by bisection."""
    lo, hi = z.min() - 1, z.max()
    for _ in range(200):
        tau = (lo + hi) / 2
        lo, hi = (tau, hi) if np.maximum(z - tau, 0).sum() > 1 else (lo, tau)
    return np.maximum(z - (lo + hi) / 2, 0)


def test_sparsemax_is_the_projection_onto_the_simplex():
    rng = np.random.default_rng(4)
    z = rng.normal(scale=2.0, size=(200, 4))
    got = sparsemax(torch.tensor(z)).numpy()
    np.testing.assert_allclose(got, [sparsemax_by_bisection(row) for row in z], atol=1e-12)
    assert (got == 0).any() and np.allclose(got.sum(1), 1)
    assert sparsemax(torch.tensor([[1.0, 0.0, 0.0, 0.0]])).tolist() == [[1.0, 0.0, 0.0, 0.0]]


def test_a_step_of_sigma_moves_the_weights_by_at_most_sigma():
    rng = np.random.default_rng(5)
    z = torch.tensor(rng.normal(scale=3.0, size=(500, 4)))
    step = torch.tensor(rng.normal(size=(500, 4)))
    step = 0.2 * step / step.norm(dim=1, keepdim=True)
    moved = (sparsemax(z + step) - sparsemax(z)).norm(dim=1)
    assert (moved <= 0.2 + 1e-12).all() and moved.max() > 0.1
