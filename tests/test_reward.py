"""search.reward: confusion matrices, the noise-corrected accuracy and the anchor-point transition estimate, against
numpy references; a corrected search's estimate and recorded reward against its own data and final model, and its
resume."""

import json
import logging
import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from amlfs.datasets import load_data
from amlfs.models import build_model
from amlfs.noise import ASYMMETRIC_MAPS
from amlfs.reward import Reward, accuracies, anchor_transition, corrected_accuracies
from amlfs.search import execute

from conftest import CORRECTED, compose_search, write_bars

K = 10


def flip_matrix(rate: float) -> np.ndarray:
    """Fashion-MNIST's asymmetric noise at `rate` as a transition matrix (row: clean class, column: noisy label)."""
    transition = np.eye(K)
    for source, target in ASYMMETRIC_MAPS["fashion_mnist"].items():
        transition[source, source], transition[source, target] = 1 - rate, rate
    return transition


def test_corrected_accuracy_inverts_the_noise_exactly_on_expected_counts():
    clean = np.random.default_rng(0).integers(0, 50, size=(3, K, K)).astype(float)  # [child, predicted, clean label]
    transition = flip_matrix(0.4)
    noisy = clean @ transition  # expected counts against the noisy labels
    got = corrected_accuracies(torch.tensor(noisy), torch.tensor(transition))
    expected = np.trace(clean, axis1=1, axis2=2) / clean.sum((1, 2))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(accuracies(torch.tensor(clean)).numpy(), expected, rtol=1e-12)


def test_corrected_accuracy_estimates_the_clean_accuracy_from_sampled_noisy_labels():
    rng = np.random.default_rng(1)
    n, transition = 200_000, flip_matrix(0.4)
    labels = rng.integers(0, K, size=n)
    predicted = np.where(rng.random(n) < 0.8, labels, rng.integers(0, K, size=n))
    noisy = (rng.random(n)[:, None] > transition.cumsum(1)[labels]).sum(1)  # each label drawn from its row of T
    confusion = np.zeros((K, K))
    np.add.at(confusion, (predicted, noisy), 1)
    clean_accuracy, noisy_accuracy = (predicted == labels).mean(), (predicted == noisy).mean()
    corrected = float(corrected_accuracies(torch.tensor(confusion)[None], torch.tensor(transition))[0])
    assert abs(corrected - clean_accuracy) < 0.005
    assert clean_accuracy - noisy_accuracy > 0.05  # the noisy accuracy alone is far off


def test_anchor_points_recover_the_transition_from_the_noisy_posteriors():
    rng = np.random.default_rng(2)
    per_class, transition = 300, flip_matrix(0.3)
    classes = np.repeat(np.arange(K), per_class)
    confidence = np.where(rng.random(len(classes)) < 0.5, 1.0, rng.uniform(0.3, 1.0, len(classes)))
    clean = (1 - confidence)[:, None] * rng.dirichlet(np.ones(K), len(classes))
    clean[np.arange(len(classes)), classes] += confidence
    estimate = anchor_transition(torch.tensor(clean @ transition)).numpy()  # p(noisy label | x) = p(clean | x) T
    np.testing.assert_allclose(estimate, transition, atol=1e-12)


@pytest.mark.parametrize("rows,why", [({3: [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]}, "diagonal"),
                                      ({0: [0.51, 0.49, 0, 0, 0, 0, 0, 0, 0, 0], 1: [0.49, 0.51, 0, 0, 0, 0, 0, 0, 0, 0]},
                                       "condition number")])
def test_an_unusable_transition_keeps_the_plain_accuracy(caplog, rows, why):
    transition = torch.eye(K, dtype=torch.float64)
    for row, values in rows.items():
        transition[row] = torch.tensor(values)
    reward = Reward("corrected", 1)
    confusion = torch.tensor(np.random.default_rng(3).integers(0, 20, size=(2, K, K)))
    with caplog.at_level(logging.WARNING, logger="amlfs"):
        assert not reward.set_transition(transition)
    assert why in caplog.text
    assert torch.equal(reward(confusion), accuracies(confusion))


@pytest.fixture(scope="module")
def corrected_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corrected")
    cfg = compose_search([*CORRECTED, f"dataset.path={write_bars(folder / 'bars.npz')}"])
    execute(cfg, folder / "run")
    return cfg, folder / "run"


def results_of(run_dir) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    for epoch in results["epochs"]:
        epoch.pop("seconds")
    return results


def test_a_corrected_search_estimates_the_flips_and_rewards_the_corrected_accuracy(corrected_run):
    cfg, run_dir = corrected_run
    results = results_of(run_dir)
    transition = np.array(results["transition"])
    flips = flip_matrix(0.4) - np.eye(K) > 0
    assert np.allclose(transition.sum(1), 1) and (transition[flips] > 0.1).all() and (transition[~flips & ~np.eye(K, dtype=bool)] < 0.05).all()
    data = load_data(cfg.dataset, torch.device("cpu"))
    model = build_model(cfg.model, data.image_shape, data.num_classes)
    model.load_state_dict(torch.load(run_dir / "model.pt"))
    model.eval()
    with torch.no_grad():
        predicted = model(data.normalise(data.val.images)).argmax(-1).numpy()
    confusion = np.zeros((K, K))
    np.add.at(confusion, (predicted, data.val.labels.numpy()), 1)
    last = results["epochs"][-1]
    assert last["best"] is not None
    assert last["val_acc"] == pytest.approx(np.trace(confusion @ np.linalg.inv(transition)) / len(predicted), abs=1e-12)
    assert last["val_acc"] != pytest.approx(np.trace(confusion) / len(predicted), abs=1e-3)


def test_a_corrected_search_resumed_after_the_estimate_ends_as_uninterrupted(corrected_run, tmp_path):
    cfg, reference = corrected_run
    run_dir = tmp_path / "run"
    shutil.copytree(reference, run_dir)
    (run_dir / "checkpoints" / "epoch-00003.pt").unlink()  # as if killed in the last epoch: resumes after epoch 2,
    (run_dir / "model.pt").unlink()                       # one epoch after the transition was estimated
    execute(OmegaConf.merge(cfg, {"resume": True}), run_dir)
    assert results_of(run_dir) == results_of(reference)
    weights, expected = torch.load(run_dir / "model.pt"), torch.load(reference / "model.pt")
    assert all(torch.equal(weights[name], expected[name]) for name in expected)
