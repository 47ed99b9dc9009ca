"""The two population backends: one stacked Adam (default or fused kernel) equals B Adams; sequential and vectorised give the same search."""

import json

import pytest
import torch

from amlfs.search import run_search

from conftest import compose_search


@pytest.mark.parametrize("fused", [None, True])
def test_one_adam_over_stacked_parameters_equals_one_adam_per_child(fused):
    g = torch.Generator().manual_seed(0)
    shapes = [(3, 4), (5,)]
    stacked = [torch.randn(4, *s, generator=g, dtype=torch.float64, requires_grad=True) for s in shapes]
    separate = [[p[i].detach().clone().requires_grad_() for p in stacked] for i in range(4)]
    options = {"lr": 0.01, "betas": (0.8, 0.99), "weight_decay": 0.1}
    stacked_adam = torch.optim.Adam(stacked, **options, fused=fused)
    child_adams = [torch.optim.Adam(params, **options) for params in separate]
    for _ in range(5):
        grads = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in stacked]
        for p, grad in zip(stacked, grads):
            p.grad = grad.clone()
        stacked_adam.step()
        for i, adam in enumerate(child_adams):
            for p, grad in zip(separate[i], grads):
                p.grad = grad[i].clone()
            adam.step()
    for i in range(4):
        for p, q in zip(stacked, separate[i]):
            torch.testing.assert_close(p[i], q, rtol=1e-13, atol=1e-15)


def search(tmp_path, backend: str, *overrides: str) -> tuple[dict, dict]:
    cfg = compose_search(["experiment=smoke", "device=cpu", "train.dtype=float64", "search.population=3",
                          "dataset.max_train=200", "dataset.max_test=100", "train.batch_size=32",
                          f"search.backend={backend}", *overrides])
    run_dir = tmp_path / backend
    run_dir.mkdir()
    results = run_search(cfg, run_dir)
    return json.loads(json.dumps(results)), torch.load(run_dir / "model.pt")


@pytest.mark.parametrize("overrides", [
    ["model=cnn"],
    ["model=cnn", "train.fused_adam=true"],
    ["model=resnet20", "train.augment=true"],
    ["model=resnet20", "search.shared_batches=false"],
])
def test_sequential_and_vectorized_backends_agree(tmp_path, overrides):
    sequential, sequential_weights = search(tmp_path, "sequential", *overrides)
    vectorized, vectorized_weights = search(tmp_path, "vectorized", *overrides)
    for a, b in zip(sequential["epochs"], vectorized["epochs"]):
        assert a["rewards"] == b["rewards"] and a["best"] == b["best"] and a["thetas"] == b["thetas"]
        torch.testing.assert_close(torch.tensor(a["mu"]), torch.tensor(b["mu"]), rtol=1e-12, atol=1e-12)
        assert a["test_acc"] == b["test_acc"]
    assert sequential_weights.keys() == vectorized_weights.keys()
    for name, weight in sequential_weights.items():
        torch.testing.assert_close(vectorized_weights[name], weight, rtol=1e-9, atol=1e-11)
    if "model=resnet20" in overrides:
        assert "features.1.running_mean" in sequential_weights  # BatchNorm statistics compared too
