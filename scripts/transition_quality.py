"""How good a corrected search's noise estimate T is (RESULTS.md, "Where the noise estimate comes from").

For each search run dir given (``search.reward=corrected``; or a one-child ``space=ce`` search of the same protocol
and seed with ``search.reward=corrected``: its estimate is the one ``search.transition_model=ce`` makes), it prints
the estimated flips against the true T of the run's synthetic noise, the largest row error (L1), and how the
corrected validation accuracy under that T follows the test accuracy over the hand-crafted retrainings of the same
data (`full_scale_table.py`'s ``<hand-crafted folder>/seed<k>/baselines/evaluation.json``, with validation confusion
matrices): least-squares slope (points of validation per point of test; 1 is ideal) and correlation. The true T
gives the reference line.

    python scripts/transition_quality.py runs/full/fashion_mnist_asym40 runs/full/fashion_mnist_asym40-*/seed*/search
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from amlfs.noise import asymmetric_targets
from amlfs.reward import corrected_accuracies


def true_transition(dataset: dict, classes: int) -> np.ndarray:
    """The expected T of the synthetic noise of a run's `dataset` config (row: clean class, column: noisy label)."""
    transition, noise = np.eye(classes), dataset["noise"]
    if noise["kind"] == "symmetric":
        return (1 - noise["rate"]) * transition + noise["rate"] * (1 - transition) / (classes - 1)
    if noise["kind"] == "asymmetric":
        for source, target in asymmetric_targets(dataset["noise_map"], classes).items():
            transition[source, source], transition[source, target] = 1 - noise["rate"], noise["rate"]
    return transition


def fidelity(transition: np.ndarray, evaluation: dict) -> tuple[float, float, int]:
    """Slope and correlation of the corrected validation accuracy on the test accuracy over `evaluation`'s runs."""
    runs = [run for row in evaluation["rows"] for run in row["runs"]]
    confusions = torch.tensor([run["val_confusion"] for run in runs], dtype=torch.float64)
    corrected = corrected_accuracies(confusions, torch.tensor(transition)).tolist()
    test = [run["test_acc"] for run in runs]
    return statistics.linear_regression(test, corrected).slope, statistics.correlation(test, corrected), len(runs)


def read(path: Path, why: str) -> dict:
    if not path.is_file():
        sys.exit(f"{path} does not exist: {why}")
    return json.loads(path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hand_crafted", type=Path, help="full_scale_table.py's folder of the protocol's hand-crafted runs")
    parser.add_argument("runs", type=Path, nargs="+", help="search run dirs with an estimated transition")
    args = parser.parse_args()
    truths = {}
    for run in args.runs:
        results = read(run / "results.json", "not a finished search run dir")
        config, estimate = results["config"], results.get("transition")
        seed = config["seed"]
        truth = true_transition(config["dataset"], results["data"]["num_classes"])
        evaluation = read(args.hand_crafted / f"seed{seed}" / "baselines" / "evaluation.json",
                          f"the hand-crafted runs of seed {seed} ({run}); run full_scale_table.py for that seed")
        truths[seed] = truth, evaluation
        if estimate is None:
            print(f"{run}: no estimate (a plain-accuracy search, or its estimate was refused)")
            continue
        estimate = np.array(estimate)
        flips = ", ".join(f"{i}->{j} {estimate[i, j]:.2f}" for i, j in zip(*np.nonzero(truth - np.diag(np.diag(truth)) > 0.1))) or "none above 0.1"
        slope, correlation, n = fidelity(estimate, evaluation)
        print(f"{run} (seed {seed}, from the {config['search'].get('transition_model', 'broadcast')} model): flips {flips}; "
              f"largest row error {np.abs(estimate - truth).sum(1).max():.3f}; corrected validation per test point "
              f"{slope:.2f}, correlation {correlation:.3f} over {n} hand-crafted runs")
    for seed, (truth, evaluation) in sorted(truths.items()):
        slope, correlation, n = fidelity(truth, evaluation)
        print(f"true T, seed {seed}: corrected validation per test point {slope:.2f}, correlation {correlation:.3f} over {n} runs")


if __name__ == "__main__":
    main()
