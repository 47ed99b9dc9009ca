"""Shared test helpers: composing the search config, running the CLI, per-sample loss references."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under pytest-xdist (`make test` runs one worker per core) each worker keeps to one core: one torch thread here
    # and in every process it starts, instead of each of them spinning up a thread per core.
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SHARED_DATA = ROOT.parent / "shared" / "data"


def compose_search(overrides=()):
    """The composed search config with `overrides`, as `python -m amlfs.search` would see it."""
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="search", overrides=list(overrides), return_hydra_config=False)


def run_cli(run_dir: Path, *overrides: str, module: str = "amlfs.search", flags=(), env: dict | None = None) -> subprocess.CompletedProcess:
    """Run an amlfs Hydra app in a subprocess with its run dir at `run_dir` (`flags` such as --multirun go first)."""
    command = [sys.executable, "-m", module, *flags, f"hydra.run.dir={run_dir}", "device=cpu", *overrides]
    environment = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=environment, timeout=900)


@pytest.fixture
def tiny_overrides():
    """A search of a few seconds: 2 children, 2 epochs, a few hundred embedded images."""
    return ["experiment=smoke"]


def softmax_row(logits: list[float]) -> list[float]:
    """softmax of one row of logits in plain Python floats: the per-sample references' own probabilities."""
    top = max(logits)
    exps = [math.exp(z - top) for z in logits]
    return [e / sum(exps) for e in exps]


def loss_ratio(space, theta: list[float], baseline, logits, target) -> torch.Tensor:
    """Per sample, the space's loss at `theta` divided by the `baseline` module's loss."""
    baseline.reduction = "none"
    return space.loss(torch.tensor([theta], dtype=torch.float64), logits, target)[0] / baseline(logits, target)


CORRECTED = ["dataset=arrays", "dataset.noise_map=fashion_mnist", "dataset.noise.kind=asymmetric", "dataset.noise.rate=0.4",
             "model=mlp", "model.head=linear", "space=mixture", "controller=cmaes", "search.population=2", "search.epochs=3",
             "train.batch_size=32", "device=cpu", "search.reward=corrected", "search.transition_epoch=1"]
"""A corrected search on the bars of ``write_bars``, which one epoch learns well enough to estimate the transition."""


def write_bars(path: Path, train: int = 3000, test: int = 500, seed: int = 0) -> Path:
    """A learnable 10-class dataset for ``dataset=arrays``: 10 x 10 noise images with row `label` lit."""
    rng = np.random.default_rng(seed)
    parts = {}
    for split, size in (("train", train), ("test", test)):
        labels = rng.integers(0, 10, size)
        images = rng.integers(0, 60, size=(size, 10, 10)).astype(np.uint8)
        images[np.arange(size), labels] = 255
        parts |= {f"{split}_images": images, f"{split}_labels": labels}
    np.savez(path, **parts)
    return path
