"""space=mixture against a per-sample reference, and its named points against the project's own baselines."""

import math

import pytest
import torch

from amlfs.losses import BASELINES, GeneralizedCrossEntropy, load_loss
from amlfs.losses.robust import RCE_LOG_ZERO
from amlfs.search import execute
from amlfs.spaces import build_space
from amlfs.spaces.mixture import Q_RANGE, TERM_SCALE

from conftest import compose_search, loss_ratio, softmax_row

SPACE = build_space("mixture")
A = -RCE_LOG_ZERO
G = torch.Generator().manual_seed(0)
LOGITS = 4 * torch.randn(40, 10, generator=G, dtype=torch.float64)
TARGET = torch.randint(0, 10, (40,), generator=G)


def simplex_by_scan(scores: list[float]) -> list[float]:
    """The projection onto the simplex by trying every support size (largest scores first)."""
    ordered = sorted(scores, reverse=True)
    for k in range(len(scores), 0, -1):
        tau = (sum(ordered[:k]) - 1) / k
        if ordered[k - 1] > tau:
            return [max(s - tau, 0.0) for s in scores]
    raise AssertionError("no support")


def floored(shares: list[float], floor: float) -> list[float]:
    """`shares` (ce, mae, gce, nce) after the active floor, by its definition: CE tops CE + NCE up to `floor`, MAE
    and GCE share what is left in their own proportion."""
    ce, mae, gce, nce = shares
    if ce + nce >= floor:
        return shares
    ce = floor - nce
    left = 1 - ce - nce
    return [ce, left * mae / (mae + gce), left * gce / (mae + gce), nce]


def reference(theta: list[float], logits: list[float], y: int, floor: float = 0.0) -> float:
    p = softmax_row(logits)
    shares = floored(simplex_by_scan(theta[:4]), floor)
    w_ce, w_mae, w_gce, w_nce = (pi * scale for pi, scale in zip(shares, TERM_SCALE))
    q = min(max(theta[4], Q_RANGE[0]), Q_RANGE[1])
    ce = -math.log(p[y])
    nce = ce / sum(-math.log(pk) for pk in p)
    return w_ce * ce + w_mae * (1 - p[y]) + w_gce * (1 - p[y] ** q) / q + w_nce * nce


@pytest.mark.parametrize("floor", [0.0, 0.04, 0.3])
def test_random_parameters_match_the_per_sample_reference(floor):
    g = torch.Generator().manual_seed(0)
    theta = SPACE.identity() + torch.randn(8, SPACE.dim, generator=g, dtype=torch.float64)
    theta[0, 4], theta[1, 4] = -3.0, 4.0  # q clamped at both ends
    theta[6, :4] = torch.tensor([-2.0, 1.0, 0.6, -2.0])  # passive only: CE fills the floor
    theta[7, :4] = torch.tensor([-2.0, 1.0, -1.0, 0.1])  # NCE share 0.05: CE tops it up under floor 0.3
    space = build_space("mixture", min_active=floor)
    got = space.loss(theta, LOGITS, TARGET)
    for b in range(len(theta)):
        expected = [reference(theta[b].tolist(), LOGITS[n].tolist(), int(TARGET[n]), floor) for n in range(len(TARGET))]
        torch.testing.assert_close(got[b], torch.tensor(expected, dtype=torch.float64), rtol=1e-10, atol=1e-12)


def scores_for(ce: float = 0.0, nce: float = 0.0) -> list[float]:
    """Scores whose weights are w_ce : w_mae : w_nce = ce : 1 : nce (w_mae = 2 pi_mae, the others pi), no GCE."""
    pi = [ce, 0.5, 0.0, nce]
    return [x / sum(pi) if x else -1.0 for x in pi] + [0.7]


@pytest.mark.parametrize("point,baseline", [
    ([1.0, 0.0, 0.0, 0.0, 0.7], "ce"),
    ([0.0, 1.0, 0.0, 0.0, 0.7], "mae"),
    ([0.0, 0.0, 1.0, 0.0, 0.7], "gce"),
    (scores_for(ce=0.1 / A), "sce"),  # SCE(0.1, 1) = 0.1 CE + A (1 - p_y)
    (scores_for(nce=1.0 / A), "nce_rce"),  # NCE+RCE(1, 1) = NCE + A (1 - p_y)
])
def test_named_points_are_the_baselines_up_to_a_positive_factor(point, baseline):
    ratio = loss_ratio(SPACE, point, BASELINES[baseline](), LOGITS, TARGET)
    assert ratio.min() > 0 and ratio.max().item() == pytest.approx(ratio.min().item(), rel=1e-10)


@pytest.mark.parametrize("point,baseline", [
    ([1.0, 0.0, 0.0, 0.0, 0.7], "ce"),
    (scores_for(ce=0.1 / A), "sce"),
    (scores_for(nce=1.0 / A), "nce_rce"),
])
def test_an_active_floor_up_to_sces_ce_share_keeps_the_active_points(point, baseline):
    ratio = loss_ratio(build_space("mixture", min_active=0.021), point, BASELINES[baseline](), LOGITS, TARGET)
    assert ratio.min() > 0 and ratio.max().item() == pytest.approx(ratio.min().item(), rel=1e-10)


def test_an_active_floor_turns_mae_into_sce():
    share = 0.1 / A / (0.1 / A + 0.5)  # SCE(0.1, 1) = 0.1 CE + A (1 - p_y): its CE share of the simplex
    space = build_space("mixture", min_active=share)
    mae = torch.tensor([[0.0, 1.0, 0.0, 0.0, 0.7]], dtype=torch.float64)
    assert space.parameters(mae)[0][0].tolist() == pytest.approx([share, 2 * (1 - share), 0.0, 0.0])
    ratio = loss_ratio(space, mae[0].tolist(), BASELINES["sce"](), LOGITS, TARGET)
    assert ratio.max().item() == pytest.approx(ratio.min().item(), rel=1e-10)


def test_the_active_floor_is_continuous_where_it_starts_to_act():
    space = build_space("mixture", min_active=0.2)
    steps = torch.linspace(0, 1, 2001, dtype=torch.float64)[:, None]  # from the MAE vertex to the NCE one
    path = (1 - steps) * torch.tensor([0.0, 1.0, 0.0, 0.0, 0.7], dtype=torch.float64) + steps * torch.tensor([0.0, 0.0, 0.0, 1.0, 0.7], dtype=torch.float64)
    weights, _ = space.parameters(path)
    assert (weights[:, 0] + weights[:, 3] >= 0.2 - 1e-12).all() and weights[:, 0].max() == pytest.approx(0.2)
    assert weights.diff(dim=0).abs().max() < 5e-3  # steps of 1/2000 in theta; a jump at the floor would be 0.4


def test_the_gce_point_follows_q():
    for q in (0.05, 0.3, 1.0):
        ratio = loss_ratio(SPACE, [0.0, 0.0, 1.0, 0.0, q], GeneralizedCrossEntropy(q), LOGITS, TARGET)
        assert ratio.tolist() == pytest.approx([1.0] * len(ratio), rel=1e-12)


def test_meaning_names_the_weights():
    assert SPACE.meaning(torch.tensor([0.0, 1.0, 0.0, 0.0, 2.0])) == {"w_ce": 0.0, "w_mae": 2.0, "w_gce": 0.0, "w_nce": 0.0, "q": 1.0}


def distinct_losses(space, centre: torch.Tensor, sigma: float = 0.2, samples: int = 64) -> int:
    """How many different (weights, q) the sparse simplex gives `samples` Gaussian draws around `centre`."""
    draws = centre + sigma * torch.randn(samples, len(centre), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    weights, q = space.parameters(draws)
    return len({tuple(row) for row in torch.cat([weights, q[:, None]], 1).tolist()})


def test_project_keeps_the_centre_off_flat_faces_and_the_loss_at_it():
    bounded = build_space("mixture", max_gap=1.2)
    deep_in_ce = torch.tensor([2.0, -0.5, -1.0, 0.3, 2.1], dtype=torch.float64)
    projected = bounded.project(deep_in_ce)
    assert projected.tolist() == pytest.approx([2.0, 0.8, 0.8, 0.8, Q_RANGE[1]])
    assert bounded.meaning(projected) == bounded.meaning(deep_in_ce) == {"w_ce": 1.0, "w_mae": 0.0, "w_gce": 0.0, "w_nce": 0.0, "q": 1.0}
    assert distinct_losses(bounded, deep_in_ce) == 1  # every sample is plain CE: equal rewards, no step
    assert distinct_losses(bounded, projected) > 16
    inside = torch.tensor([0.5, 0.2, -0.4, 0.1, 0.3], dtype=torch.float64)
    assert torch.equal(bounded.project(inside), inside)
    assert torch.equal(SPACE.project(deep_in_ce), deep_in_ce)  # max_gap=null: anywhere


def test_the_search_keeps_every_centre_within_max_gap_and_its_loss_above_the_floor(tmp_path):
    cfg = compose_search(["experiment=smoke", "device=cpu", "space=mixture", "space.max_gap=1.0", "controller.lr=2.0",
                          "space.min_active=0.3", "search.population=4", "search.epochs=2", "dataset.max_train=2000"])
    mus = torch.tensor([epoch["mu"] for epoch in execute(cfg, tmp_path)["epochs"]], dtype=torch.float64)
    gaps = (mus[:, :4].max(1, keepdim=True).values - mus[:, :4]).max(1).values
    assert (gaps <= 1.0 + 1e-12).all() and ((mus[:, 4] >= Q_RANGE[0]) & (mus[:, 4] <= Q_RANGE[1])).all()
    assert gaps.max() == pytest.approx(1.0)  # Adam steps of 2.0 went further: the bound was what held the centre
    taken_home = load_loss(tmp_path)
    shares = taken_home.space.parameters(taken_home.theta)[0][0] / torch.tensor(TERM_SCALE, dtype=torch.float64)
    assert shares.sum() == pytest.approx(1.0) and shares[0] + shares[3] >= 0.3 - 1e-12
    assert taken_home.space.min_active == 0.3
