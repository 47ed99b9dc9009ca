"""The AM-LFS space against independent references: cross-entropy, a per-vector loop, finite differences."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from amlfs.spaces import build_space
from amlfs.spaces.amlfs import PiecewiseSpace, piecewise_linear

SCALE = 10.0


def cosine_logits(n: int, classes: int, generator: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    return SCALE * (2 * torch.rand(n, classes, generator=generator, dtype=dtype) - 1)


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("name", ["amlfs", "amlfs_tau", "ce"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_identity_parameters_give_cross_entropy(name, dtype, continuous):
    g = torch.Generator().manual_seed(0)
    space = build_space(name, intervals=6, scale=SCALE, continuous=continuous)
    logits = cosine_logits(512, 10, g, dtype)
    target = torch.randint(0, 10, (512,), generator=g)
    loss = space.loss(space.identity()[None], logits, target)[0]
    expected = F.cross_entropy(logits, target, reduction="none")
    assert loss.dtype == dtype
    torch.testing.assert_close(loss, expected)


def test_identity_is_exact_where_the_target_probability_underflows():
    space = build_space("amlfs_tau", intervals=4)
    logits = torch.tensor([[0.0, 200.0, -50.0], [3.0, -1.0, 0.5]])
    target = torch.tensor([0, 2])
    loss = space.loss(space.identity()[None], logits, target)[0]
    torch.testing.assert_close(loss, F.cross_entropy(logits, target, reduction="none"))
    assert loss[0] == pytest.approx(200.0)


def reference_piecewise(x: float, slopes: np.ndarray, intercepts: np.ndarray, lo: float, hi: float) -> float:
    """Find x's interval by scanning the boundaries, the way the paper states the transform."""
    bounds = np.linspace(lo, hi, len(slopes) + 1)
    for i in range(len(slopes)):
        if bounds[i] <= x < bounds[i + 1] or (i == len(slopes) - 1 and x >= bounds[-1]) or (i == 0 and x < lo):
            return slopes[i] * x + intercepts[i]
    raise AssertionError("no interval")


def test_piecewise_linear_matches_interval_scan():
    rng = np.random.default_rng(1)
    slopes, intercepts = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    x = rng.uniform(-1.2, 1.2, size=(3, 40))
    x[:, :4] = [-1.0, 0.0, 0.5, 1.0]  # boundaries and end points (exact in binary)
    got = piecewise_linear(torch.tensor(x), torch.tensor(slopes), torch.tensor(intercepts), -1.0, 1.0)
    expected = [[reference_piecewise(x[b, n], slopes[b], intercepts[b], -1.0, 1.0) for n in range(40)] for b in range(3)]
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("continuous", [False, True])
@pytest.mark.parametrize("name", ["amlfs", "amlfs_tau"])
def test_batch_of_parameter_vectors_equals_a_loop(name, continuous):
    g = torch.Generator().manual_seed(2)
    space = build_space(name, intervals=6, scale=SCALE, continuous=continuous)
    theta = space.identity() + 0.3 * torch.randn(5, space.dim, generator=g, dtype=torch.float64)
    logits = cosine_logits(64, 7, g)
    per_child_logits = cosine_logits(64, 7, g).expand(5, -1, -1) + 0.1 * torch.randn(5, 64, 7, generator=g)
    target = torch.randint(0, 7, (64,), generator=g)
    batched_shared = space.loss(theta, logits, target)
    batched_own = space.loss(theta, per_child_logits, target)
    for b in range(5):
        torch.testing.assert_close(batched_shared[b], space.loss(theta[b : b + 1], logits, target)[0])
        torch.testing.assert_close(batched_own[b], space.loss(theta[b : b + 1], per_child_logits[b], target)[0])


@pytest.mark.parametrize("name", ["t", "tau"])
def test_continuous_transform_is_the_line_through_its_knots(name):
    rng = np.random.default_rng(5)
    space = PiecewiseSpace((name,), 4, continuous=True)
    lo, hi = (-1.0, 1.0) if name == "t" else (0.0, 1.0)
    theta = rng.normal(size=(3, 5))
    x = rng.uniform(lo, hi, size=(3, 50))
    x[:, :3] = [lo, (lo + hi) / 2, hi]
    got = space.transform(name, torch.tensor(theta), torch.tensor(x)).numpy()
    knots = np.linspace(lo, hi, 5)
    for b in range(3):  # knot values: the start, then each slope times the interval width
        values = theta[b, 0] + np.concatenate([[0.0], np.cumsum(theta[b, 1:]) * (hi - lo) / 4])
        np.testing.assert_allclose(got[b], np.interp(x[b], knots, values), rtol=1e-12, atol=1e-12)


def test_continuous_names_and_identity_line_up():
    space = build_space("amlfs", intervals=2, continuous=True)
    assert space.dim == 6 and space.names() == ["t.start", "t.slope0", "t.slope1", "tau.start", "tau.slope0", "tau.slope1"]
    assert space.identity().tolist() == [-1, 1, 1, 0, 1, 1]


def test_tau_matches_its_formula():
    space = build_space("amlfs_tau", intervals=4)
    theta = torch.tensor([[0.5, 1.0, 2.0, 3.0, 0.1, 0.2, -0.3, -1.5]], dtype=torch.float64)
    p = torch.tensor([0.1, 0.3, 0.6, 0.9], dtype=torch.float64)  # one per piece
    logits = torch.stack([p.log(), (1 - p).log()], dim=-1)  # softmax gives p for class 0
    loss = space.loss(theta, logits, torch.zeros(4, dtype=torch.long))[0]
    tau = torch.tensor([0.5 * 0.1 + 0.1, 1.0 * 0.3 + 0.2, 2.0 * 0.6 - 0.3, 3.0 * 0.9 - 1.5], dtype=torch.float64)
    torch.testing.assert_close(loss, -tau.log())


def test_t_transforms_the_target_cosine():
    space = build_space("amlfs", intervals=2, scale=SCALE)
    cos = torch.tensor([[-0.5, 0.2, 0.1], [0.3, 0.7, -0.9]], dtype=torch.float64)
    target = torch.tensor([0, 1])
    t_params = [2.0, 0.5, 0.1, -0.2]  # slopes on [-1,0), [0,1]; intercepts
    theta = torch.tensor([t_params + [1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    expected_logits = SCALE * cos.clone()
    expected_logits[0, 0] = SCALE * (2.0 * -0.5 + 0.1)
    expected_logits[1, 1] = SCALE * (0.5 * 0.7 - 0.2)
    loss = space.loss(theta, SCALE * cos, target)[0]
    torch.testing.assert_close(loss, F.cross_entropy(expected_logits, target, reduction="none"))


@pytest.mark.parametrize("name", ["amlfs", "amlfs_tau"])
def test_loss_and_gradient_finite_over_a_wide_box(name):
    g = torch.Generator().manual_seed(3)
    space = build_space(name, intervals=6, scale=SCALE)
    theta = 20 * torch.rand(256, space.dim, generator=g, dtype=torch.float64) - 10
    logits = cosine_logits(128, 10, g).requires_grad_()
    target = torch.randint(0, 10, (128,), generator=g)
    loss = space.loss(theta, logits, target)
    loss.sum().backward()
    assert torch.isfinite(loss).all()
    assert torch.isfinite(logits.grad).all()


def test_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(4)
    space = build_space("amlfs", intervals=6, scale=SCALE)
    theta = space.identity()[None] + 0.2 * torch.randn(1, space.dim, generator=g, dtype=torch.float64)
    target = torch.randint(0, 5, (6,), generator=g)
    logits = cosine_logits(6, 5, g, torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda z: space.loss(theta, z, target), (logits,))


def test_wrong_parameter_count_and_unknown_space_are_refused():
    space = PiecewiseSpace(("tau",), 3)
    with pytest.raises(ValueError, match="needs 6"):
        space.loss(torch.ones(1, 5), torch.zeros(2, 3), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown space"):
        build_space("focal")


def test_names_and_identity_line_up():
    space = build_space("amlfs", intervals=2)
    assert space.names() == [
        "t.slope0", "t.slope1", "t.intercept0", "t.intercept1",
        "tau.slope0", "tau.slope1", "tau.intercept0", "tau.intercept1",
    ]
    assert space.identity().tolist() == [1, 1, 0, 0, 1, 1, 0, 0]
    assert build_space("ce").dim == 0
