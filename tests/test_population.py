"""The two population backends: one stacked Adam (default or fused kernel) equals B Adams; sequential and vectorised
give the same search, compiled or not, in either memory layout; the stacked confusion matrices equal each model's."""

import json

import pytest
import torch
from torch._dynamo.utils import counters

from amlfs.datasets import load_data
from amlfs.models import build_model
from amlfs.population import stack_models, stacked_confusions, stacked_forward
from amlfs.search import execute
from amlfs.training import confusion

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
    run_dir = tmp_path / "-".join([backend, *overrides]).replace("/", "_")
    run_dir.mkdir()
    results = execute(cfg, run_dir)
    return json.loads(json.dumps(results)), torch.load(run_dir / "model.pt")


RESNET_SIZES = ["dataset.max_train=100", "dataset.max_test=50"]  # 3 batches of 32 (the last of 26) and 10 val images


@pytest.mark.parametrize("overrides", [
    ["model=cnn"],
    ["model=cnn", "train.fused_adam=true"],
    ["model=cnn", "space.continuous=true"],
    ["model=resnet20", "train.augment=true", *RESNET_SIZES],
    ["model=resnet20", "search.shared_batches=false", *RESNET_SIZES],
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


def assert_same_search(results: dict, weights: dict, reference: dict, reference_weights: dict, rtol: float) -> None:
    for a, b in zip(results["epochs"], reference["epochs"]):
        assert a["rewards"] == b["rewards"] and a["best"] == b["best"]
        torch.testing.assert_close(torch.tensor(a["mu"]), torch.tensor(b["mu"]), rtol=rtol, atol=rtol)
    for name, weight in reference_weights.items():
        torch.testing.assert_close(weights[name], weight, rtol=rtol, atol=rtol)


@pytest.mark.parametrize("backend", ["sequential", "vectorized"])
def test_compiled_training_matches_eager_and_compiles_in_the_first_epoch_only(tmp_path, backend):
    # Sizes that divide evenly into batches, so every batch has one shape: 180 train / 30, 20 val and 100 test / 20.
    sizes = ["model=mlp", "space=amlfs_tau", "dataset.max_train=200", "train.batch_size=30", "train.eval_batch_size=20"]
    eager, eager_weights = search(tmp_path, backend, *sizes, "search.epochs=3")
    graphs = {}
    for epochs in (1, 3):
        torch._dynamo.reset()
        counters.clear()
        compiled, compiled_weights = search(tmp_path, backend, *sizes, f"search.epochs={epochs}", "train.compile=default")
        graphs[epochs] = counters["stats"]["unique_graphs"]
    assert graphs[3] == graphs[1] > 0  # epochs 2 and 3 reuse what epoch 1 compiled
    assert_same_search(compiled, compiled_weights, eager, eager_weights, rtol=1e-9)


def test_stacked_confusion_matrices_equal_each_models_own():
    cfg = compose_search(["experiment=smoke", "model=mlp", "train.eval_batch_size=64"])
    data = load_data(cfg.dataset, torch.device("cpu"))
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build_model(cfg.model, data.image_shape, data.num_classes).eval())
    params, buffers = stack_models(models)
    stacked = stacked_confusions(models[0], stacked_forward(models[0]), params, buffers, data, data.test, cfg.train)
    for model, matrix in zip(models, stacked, strict=True):
        with torch.no_grad():
            predicted = model(data.normalise(data.test.images)).argmax(-1)
        expected = torch.zeros(data.num_classes, data.num_classes, dtype=torch.long)
        expected.index_put_((predicted, data.test.labels), torch.ones_like(predicted), accumulate=True)
        assert torch.equal(matrix, expected) and torch.equal(confusion(model, data, data.test, 64), expected)
    assert len({tuple(matrix.flatten().tolist()) for matrix in stacked}) == 3


def test_channels_last_batches_are_channels_last():
    data = load_data(compose_search(["experiment=smoke"]).dataset, torch.device("cpu"), memory_format=torch.channels_last)
    images, _ = next(data.train_batches(torch.arange(8), 4))
    assert images.shape == (4, 1, 28, 28) and images.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("backend", ["sequential", "vectorized"])
def test_channels_last_gives_the_same_search(tmp_path, backend):
    contiguous, contiguous_weights = search(tmp_path, backend, "model=cnn")
    channels_last, channels_last_weights = search(tmp_path, backend, "model=cnn", "train.channels_last=true")
    assert_same_search(channels_last, channels_last_weights, contiguous, contiguous_weights, rtol=1e-9)
