"""Hand-crafted losses against their formulas, and the exported searched loss."""

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import amlfs
from amlfs.losses import (
    BASELINES, CrossEntropy, FocalLoss, GeneralizedCrossEntropy, LabelSmoothing, MeanAbsoluteError, NCEandRCE,
    PolyLoss, SearchedLoss, SymmetricCrossEntropy, best_val_mu, schedule_thetas,
)
from amlfs.spaces import build_space

from conftest import run_cli

G = torch.Generator().manual_seed(0)
LOGITS = 3 * torch.randn(200, 7, generator=G, dtype=torch.float64)
TARGET = torch.randint(0, 7, (200,), generator=G)
P = np.exp(LOGITS.numpy()) / np.exp(LOGITS.numpy()).sum(1, keepdims=True)  # softmax, computed apart from torch
PY = P[np.arange(200), TARGET.numpy()]
ONE_HOT = np.eye(7)[TARGET.numpy()]


@pytest.mark.parametrize("module,formula", [
    (CrossEntropy(), -np.log(PY)),
    (LabelSmoothing(0.1), (-(0.9 * ONE_HOT + 0.1 / 7) * np.log(P)).sum(1)),
    (FocalLoss(2.0), -((1 - PY) ** 2) * np.log(PY)),
    (GeneralizedCrossEntropy(0.7), (1 - PY**0.7) / 0.7),
    (SymmetricCrossEntropy(0.1, 1.0), -0.1 * np.log(PY) - (P * np.log(np.clip(ONE_HOT, 1e-4, 1))).sum(1)),
    (NCEandRCE(1.0, 1.0), np.log(PY) / np.log(P).sum(1) - (P * np.log(np.clip(ONE_HOT, 1e-4, 1))).sum(1)),
    (PolyLoss(1.0), -np.log(PY) + (1 - PY)),
    (MeanAbsoluteError(), np.abs(P - ONE_HOT).sum(1)),
])
def test_baselines_match_their_formulas(module, formula):
    module.reduction = "none"
    np.testing.assert_allclose(module(LOGITS, TARGET).numpy(), formula, rtol=1e-10, atol=1e-12)
    module.reduction = "mean"
    assert module(LOGITS, TARGET).item() == pytest.approx(formula.mean(), rel=1e-10)


def test_cross_entropy_and_label_smoothing_equal_torch():
    torch.testing.assert_close(CrossEntropy()(LOGITS, TARGET), F.cross_entropy(LOGITS, TARGET))
    torch.testing.assert_close(LabelSmoothing(0.1)(LOGITS, TARGET), F.cross_entropy(LOGITS, TARGET, label_smoothing=0.1))
    assert CrossEntropy(reduction="sum")(LOGITS, TARGET).item() == pytest.approx(F.cross_entropy(LOGITS, TARGET, reduction="sum").item())
    with pytest.raises(ValueError, match="reduction"):
        CrossEntropy(reduction="max")


def test_every_baseline_builds_and_trains():
    for name, make in BASELINES.items():
        logits = LOGITS.clone().requires_grad_()
        make()(logits, TARGET).backward()
        assert torch.isfinite(logits.grad).all(), name


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("search") / "run"
    result = run_cli(run_dir, "experiment=smoke")
    assert result.returncode == 0, result.stderr
    return run_dir


def test_load_loss_of_a_continuous_space_run(tmp_path):
    result = run_cli(tmp_path, "experiment=smoke", "search.epochs=1", "space.continuous=true")
    assert result.returncode == 0, result.stderr
    mu = torch.tensor(json.loads((tmp_path / "results.json").read_text())["final"]["mu"], dtype=torch.float64)
    assert len(mu) == 14
    expected = build_space("amlfs", scale=10.0, continuous=True).loss(mu[None], LOGITS.double(), TARGET).mean()
    torch.testing.assert_close(amlfs.load_loss(tmp_path)(LOGITS.double(), TARGET), expected)


def test_load_loss_is_the_space_at_the_final_mu(finished_run):
    loss = amlfs.load_loss(finished_run)
    results = json.loads((finished_run / "results.json").read_text())
    mu = torch.tensor(results["final"]["mu"], dtype=torch.float64)
    space = build_space("amlfs", scale=10.0)
    logits = 10 * (2 * torch.rand(32, 10, generator=G, dtype=torch.float64) - 1)
    target = torch.randint(0, 10, (32,), generator=G)
    torch.testing.assert_close(loss(logits, target), space.loss(mu[None], logits, target).mean())
    assert loss.needs_cosine_head and loss.scale == 10.0 and "cosine-head logits" in repr(loss)
    per_sample = amlfs.load_loss(finished_run, reduction="none")(logits, target)
    assert per_sample.shape == (32,)
    best = amlfs.load_loss(finished_run, which="best_theta")
    assert best.theta.flatten().tolist() == results["final"]["best_theta"]
    val = [epoch["val_acc"] for epoch in results["epochs"]]
    best_epoch = val.index(max(val))
    expected = results["epochs"][best_epoch - 1]["mu"] if best_epoch else space.identity().tolist()
    assert amlfs.load_loss(finished_run, which="best_val_mu").theta.flatten().tolist() == expected


def test_best_val_mu_is_the_mean_the_best_epochs_children_were_sampled_around():
    space = build_space("mixture")
    epochs = [{"val_acc": v, "mu": [float(i)] * 5} for i, v in enumerate([0.5, 0.7, 0.9, 0.9, 0.6])]
    assert best_val_mu({"epochs": epochs}, space) == [1.0] * 5  # epoch 2 (the first of the two best) after epoch 1
    epochs[0]["val_acc"] = 0.95
    assert best_val_mu({"epochs": epochs}, space) == [1.0, 0.0, 0.0, 0.0, 0.7]  # epoch 0: the identity, cross-entropy


def test_load_schedule_is_each_epochs_best_child(finished_run):
    results = json.loads((finished_run / "results.json").read_text())
    schedule = amlfs.load_schedule(finished_run, reduction="sum")
    assert len(schedule) == len(results["epochs"]) == 2
    for loss, epoch in zip(schedule, results["epochs"]):
        assert loss.theta.flatten().tolist() == epoch["thetas"][epoch["best"]] and loss.reduction == "sum"
    all_failed = {"epochs": [{"thetas": [[1.0], [2.0]], "best": 1, "mu": [0.0]}, {"thetas": [[3.0], [4.0]], "best": None, "mu": [5.0]}]}
    assert schedule_thetas(all_failed) == [[2.0], [5.0]]


def test_searched_loss_at_the_identity_is_cross_entropy():
    space = build_space("amlfs_tau")
    loss = SearchedLoss(space, space.identity())
    assert not loss.needs_cosine_head
    torch.testing.assert_close(loss(LOGITS, TARGET), F.cross_entropy(LOGITS, TARGET))


def test_load_loss_refuses_what_is_not_a_finished_run(tmp_path):
    with pytest.raises(ValueError, match="not a readable search result"):
        amlfs.load_loss(tmp_path)
    for content in ("[]", "null", json.dumps({"final": 5})):
        (tmp_path / "results.json").write_text(content)
        with pytest.raises(ValueError, match="not a readable search result"):
            amlfs.load_loss(tmp_path)
        with pytest.raises(ValueError, match="not a readable search result"):
            amlfs.load_model(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"epochs": [], "final": None, "config": {}, "data": {}}))
    with pytest.raises(ValueError, match="unfinished"):
        amlfs.load_loss(tmp_path)


def test_load_loss_refuses_a_bad_which_and_a_theta_of_another_space(finished_run):
    for which in ("val_acc", "loss", "final"):
        with pytest.raises(ValueError, match=f"which='{which}': choose one of mu, best_val_mu, best_theta"):
            amlfs.load_loss(finished_run, which=which)
    with pytest.raises(ValueError, match="theta has 3 values; space 'mixture' takes 5"):
        SearchedLoss(build_space("mixture"), torch.zeros(3))


def test_load_model_refuses_a_damaged_model_file(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    (run_dir / "model_best_val.pt").write_bytes((run_dir / "model_best_val.pt").read_bytes()[:300])
    with pytest.raises(ValueError, match="model_best_val.pt: not a readable model file"):
        amlfs.load_model(run_dir)
    for foreign in ({"hello": torch.ones(1)}, [1, 2]):
        torch.save(foreign, run_dir / "model_best_val.pt")
        with pytest.raises(ValueError, match="model_best_val.pt: not the weights of this run's model"):
            amlfs.load_model(run_dir)
    assert amlfs.load_model(run_dir, which="final")(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_load_model_of_an_unfinished_search_is_its_best_epoch_so_far(finished_run, tmp_path, caplog):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    (run_dir / "results.json").write_text(json.dumps({**results, "final": None}))
    with pytest.raises(ValueError, match="the search has no final model yet"):
        amlfs.load_model(run_dir, which="final")
    images = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(amlfs.load_model(run_dir)(images), amlfs.load_model(finished_run)(images))
    assert "an unfinished search" in caplog.text
    (run_dir / "results.json").write_text(json.dumps({**results, "epochs": [], "final": None}))
    with pytest.raises(ValueError, match="the search has no best_val model yet"):
        amlfs.load_model(run_dir)


def test_exported_loss_in_a_plain_training_loop(finished_run):
    torch.manual_seed(0)
    features = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.ReLU())
    model = torch.nn.Sequential(features, amlfs.CosineHead(32, 10, scale=amlfs.load_loss(finished_run).scale))
    criterion = amlfs.load_loss(finished_run)
    optimizer = torch.optim.Adam(model.parameters(), 1e-2)
    images, labels = torch.randn(64, 1, 28, 28), torch.arange(64) % 10
    first = criterion(model(images), labels).item()
    for _ in range(30):
        loss = criterion(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first
