"""search.reward: confusion matrices, the noise-corrected accuracy and the anchor-point transition estimate, against
numpy references; a corrected search's estimate and recorded reward against its own data and final model, its
resume, the estimate from a cross-entropy model against a cross-entropy search's, and the choices of an evaluation
by the corrected accuracy."""

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
from amlfs.evaluate import Validation, take_home
from amlfs.reward import Reward, accuracies, anchor_transition, corrected_accuracies, corrected_spreads
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


def test_corrected_spread_is_the_standard_deviation_of_the_per_image_terms():
    rng = np.random.default_rng(4)
    confusion = rng.integers(0, 30, size=(2, K, K))
    for transition in (flip_matrix(0.4), np.eye(K)):
        inverse = np.linalg.inv(transition)
        for child in range(2):  # each image with prediction i and noisy label j contributes inverse[j, i]
            terms = np.concatenate([np.full(confusion[child, i, j], inverse[j, i]) for i in range(K) for j in range(K)])
            spread = corrected_spreads(torch.tensor(confusion), torch.tensor(transition))[child]
            assert float(spread) == pytest.approx(terms.std(), rel=1e-9)
            mean = corrected_accuracies(torch.tensor(confusion), torch.tensor(transition))[child]
            assert float(mean) == pytest.approx(terms.mean(), rel=1e-12)


def test_choosing_by_the_corrected_accuracy_sees_a_lead_on_a_flipped_class_that_the_noisy_accuracy_hides():
    transition, per_class = flip_matrix(0.4), 100
    perfect = np.eye(K) * per_class  # [predicted, clean label]
    weaker = perfect.copy()
    weaker[0, 0], weaker[6, 0] = 70, 30  # 30 T-shirts (flipped to Shirt at 40%) taken for shirts

    def row(name, clean):  # expected counts against the noisy labels
        return {"name": name, "runs": [{"seed": 0, "val_curve": [np.trace(clean @ transition) / clean.sum()],
                                        "val_confusion": (clean @ transition).tolist()}]}

    rows = [row("searched", weaker), row("schedule", perfect)]
    plain, corrected = Validation(K * per_class), Validation(K * per_class, torch.tensor(transition))
    assert [plain.accuracy(r) for r in rows] == pytest.approx([0.834, 0.84])  # 0.006 apart, one standard error 0.012
    assert [corrected.accuracy(r) for r in rows] == pytest.approx([0.97, 1.0])  # the clean accuracies
    inverse = np.linalg.inv(transition)
    terms = np.concatenate([np.full(int(round(n * 10)), inverse[j, i]) for (i, j), n in np.ndenumerate(perfect @ transition) if n])
    assert corrected.standard_error(rows[1]) == pytest.approx(terms.std() / np.sqrt(K * per_class))  # 0.016
    assert take_home(rows, plain) == "searched" and take_home(rows, corrected) == "schedule"
    with pytest.raises(ValueError, match="row ce .*no validation confusion matrix"):
        corrected.accuracy({"name": "ce", "runs": [{"seed": 2, "val_curve": [0.8]}]})


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


def test_a_cross_entropy_transition_model_is_the_broadcast_model_of_a_cross_entropy_search(corrected_run, tmp_path):
    """search.transition_model=ce reads T from a model trained with cross-entropy on the search's own batches: the
    broadcast model of a one-child space=ce search of the same seed, whose estimate is the reference; the broadcast
    model of a search whose children are never cross-entropy (space=poly, CMA-ES at step size 2) gives another."""
    cfg, _ = corrected_run
    overrides = [*(o for o in CORRECTED if not o.startswith("controller=")), f"dataset.path={cfg.dataset.path}", "search.epochs=2"]
    far = [*overrides, "space=poly", "controller=cmaes", "controller.sigma=2"]
    from_ce_model = execute(compose_search([*far, "search.transition_model=ce"]), tmp_path / "ce_model")
    from_broadcast = execute(compose_search([*far, "search.transition_model=broadcast"]), tmp_path / "broadcast")
    ce_search = execute(compose_search([*overrides, "space=ce", "search.population=1"]), tmp_path / "ce_search")
    reference = np.array(ce_search["transition"])
    np.testing.assert_allclose(from_ce_model["transition"], reference, atol=1e-6)
    assert np.abs(np.array(from_broadcast["transition"]) - reference).max() > 0.01


def test_an_evaluation_of_a_corrected_search_chooses_by_the_corrected_accuracy(corrected_run, tmp_path):
    from amlfs.api import compose_config
    from amlfs.evaluate import execute as evaluate

    _, run_dir = corrected_run
    cfg = compose_config("evaluate", [f"run={run_dir}", "evaluate.seeds=1", "evaluate.rows=[searched,schedule,ce,mae]", "device=cpu"])
    evaluation = evaluate(cfg, tmp_path / "evaluation")
    transition = np.array(results_of(run_dir)["transition"])
    assert evaluation["transition"] == transition.tolist()
    corrected = {}
    for row in evaluation["rows"]:
        confusion = np.array(row["runs"][0]["val_confusion"])
        corrected[row["name"]] = np.trace(confusion @ np.linalg.inv(transition)) / evaluation["val_size"]
    assert evaluation["hand_crafted_pick"] == max(["ce", "mae"], key=corrected.get)
    assert "corrected for label noise" in (tmp_path / "evaluation" / "evaluation.md").read_text()
    validation = Validation(evaluation["val_size"], torch.tensor(transition))
    assert [validation.accuracy(row) for row in evaluation["rows"]] == pytest.approx(list(corrected.values()), abs=1e-12)


def test_an_evaluation_on_other_labels_does_not_use_the_searchs_transition(caplog):
    from amlfs.evaluate import noise_transition

    results = {"transition": flip_matrix(0.4).tolist()}
    moved = OmegaConf.create({"evaluate": {"dataset": {"archives": "/data/raw", "root": "/data"}}})
    assert np.array_equal(noise_transition(moved, results).numpy(), flip_matrix(0.4))
    assert noise_transition(moved, {"transition": None}) is None
    relabelled = OmegaConf.create({"evaluate": {"dataset": {"archives": "/data/raw", "noise": {"rate": 0.2}}}})
    with caplog.at_level(logging.WARNING, logger="amlfs"):
        assert noise_transition(relabelled, results) is None
    assert "evaluate.dataset changes noise" in caplog.text
