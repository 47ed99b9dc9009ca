"""amlfs as a library: installed from a wheel and run from anywhere, your own configs, models and data, the Python
entry point, the environment record and the closing summary."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import amlfs
from amlfs.config import ConfigError, with_defaults
from amlfs.datasets import load_data, load_npz, normalisation
from amlfs.environment import describe
from amlfs.idx import DataFileError

from conftest import CONFIGS, ROOT, run_cli

TESTS = Path(__file__).resolve().parent
USER_ENV = {"PYTHONPATH": str(TESTS)}
TINY = ["search.population=2", "search.epochs=1", "device=cpu"]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)], check=True,
                   capture_output=True, timeout=600)
    return next(out.glob("amlfs-*.whl"))


def test_the_wheel_holds_every_module_config_and_asset(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = [p.relative_to(ROOT).as_posix() for p in (ROOT / "amlfs").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    configs = [f"amlfs/configs/{p.relative_to(CONFIGS).as_posix()}" for p in CONFIGS.rglob("*.yaml")]
    assert "amlfs/assets/fashion_mnist_small.npz.xz" in sources and "amlfs/configs/search.yaml" in configs
    assert sorted(set(sources + configs) - names) == []


def test_an_installed_wheel_runs_from_any_directory(wheel, tmp_path):
    target, elsewhere = tmp_path / "site", tmp_path / "experiments"
    elsewhere.mkdir()
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target), "HYDRA_FULL_ERROR": "0"}

    def amlfs_cli(program, *args):  # the console scripts the wheel installs
        return subprocess.run([str(target / "bin" / program), *args], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=600)

    where = subprocess.run([sys.executable, "-c", "import amlfs.config as c; print(c.CONFIG_DIR)"], cwd=elsewhere, env=env,
                           capture_output=True, text=True, check=True)
    assert Path(where.stdout.strip()) == target / "amlfs" / "configs"
    job = amlfs_cli("amlfs-search", "--cfg", "job")
    assert job.returncode == 0 and "population: 6" in job.stdout, job.stderr
    search = amlfs_cli("amlfs-search", "experiment=smoke", *TINY, "hydra.run.dir=run")
    assert search.returncode == 0, search.stderr
    assert json.loads((elsewhere / "run" / "results.json").read_text())["final"]["test_acc"] > 0
    help_text = amlfs_cli("amlfs-evaluate", "--help")
    assert help_text.returncode == 0 and "amlfs-evaluate: what did a search find?" in help_text.stdout


def test_search_help_names_groups_keys_and_outputs():
    result = subprocess.run([sys.executable, "-m", "amlfs.search", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for text in ("amlfs-search: search for a classification loss", "space: amlfs, amlfs_tau, barron, ce, mixture, poly",
                 "controller: cmaes, reinforce", "search.population=B", "results.json"):
        assert text in result.stdout


@pytest.fixture(scope="module")
def user_configs(tmp_path_factory) -> Path:
    """A user's config folder: an experiment preset of their own, using a model of their own."""
    folder = tmp_path_factory.mktemp("my_configs")
    (folder / "experiment").mkdir()
    (folder / "experiment" / "mine.yaml").write_text(
        "# @package _global_\n"
        "defaults:\n  - override /model: custom\n  - override /space: mixture\n"
        "model:\n  _target_: user_models.small_net\n"
        "search:\n  population: 2\n  epochs: 1\n"
        "dataset:\n  max_train: 300\n  max_test: 100\n"
    )
    return folder


def test_a_user_config_folder_composes_with_the_packaged_configs(user_configs, tmp_path):
    result = run_cli(tmp_path / "run", "experiment=mine", flags=[f"--config-dir={user_configs}"], env=USER_ENV)
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "run" / "results.json").read_text())["config"]
    assert config["model"]["_target_"] == "user_models.small_net" and config["space"]["name"] == "mixture"
    assert config["search"]["population"] == 2 and config["dataset"]["name"] == "fashion_mnist_small"


def test_python_composes_a_user_config_folder_too(user_configs):
    from amlfs.api import compose_config

    cfg = compose_config("search", ["experiment=mine", "seed=3"], config_dirs=[user_configs])
    assert cfg.model._target_ == "user_models.small_net" and cfg.space.name == "mixture" and cfg.seed == 3
    with pytest.raises(TypeError, match=r"overrides='space=mixture': give a list, e.g. \['space=mixture'\]"):
        compose_config("search", "space=mixture")
    with pytest.raises(TypeError, match="config_dirs="):
        compose_config("search", [], config_dirs=user_configs)
    with pytest.raises(ConfigError, match="config_dirs=.* is not allowed: no such folder"):
        compose_config("search", [], config_dirs=[user_configs / "nothing"])


def write_npz(path: Path, channels=3, classes=4, **replace) -> Path:
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (240, channels, 12, 12), dtype=np.uint8),
        "train_labels": np.arange(240) % classes,
        "test_images": rng.integers(0, 256, (60, channels, 12, 12), dtype=np.uint8),
        "test_labels": np.arange(60) % classes,
    }
    arrays["train_images"][:, 0, 0, :] = (arrays["train_labels"] * 60)[:, None]  # a learnable signal
    arrays["test_images"][:, 0, 0, :] = (arrays["test_labels"] * 60)[:, None]
    arrays.update(replace)
    np.savez(path, **{key: value for key, value in arrays.items() if value is not None})
    return path


OWN_NOISE = ["dataset.noise.kind=asymmetric", "dataset.noise.rate=0.3", "dataset.noise_map={0:1,2:3,3:0}"]
"""Class-dependent noise by a map of one's own: 30% of classes 0, 2 and 3 flipped to 1, 3 and 0."""


def own_model_and_data(npz: Path) -> list[str]:
    return ["dataset=arrays", f"dataset.path={npz}", "model=custom", "model._target_=user_models.small_net",
            "+model.width=4", "space=poly", *OWN_NOISE, *TINY]


def test_own_model_and_data_search_and_evaluate_from_the_cli(tmp_path):
    from amlfs.api import compose_config

    npz = write_npz(tmp_path / "mine.npz")
    search = run_cli(tmp_path / "run", *own_model_and_data(npz), env=USER_ENV)
    assert search.returncode == 0, search.stderr
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert results["data"]["num_classes"] == 4 and results["data"]["image_shape"] == [3, 12, 12]
    assert results["data"]["train"] + results["data"]["val"] == 240
    noisy = load_data(with_defaults(results["config"]).dataset, torch.device("cpu")).train.labels  # the map's keys as JSON wrote them
    clean_cfg = compose_config("search", [*own_model_and_data(npz), "dataset.noise.kind=none", "dataset.noise.rate=0"])
    clean = load_data(clean_cfg.dataset, torch.device("cpu")).train.labels
    changed = noisy != clean
    assert changed.float().mean() == pytest.approx(0.3 * 3 / 4, abs=0.01) == results["data"]["noise_rate_observed"]
    assert set(zip(clean[changed].tolist(), noisy[changed].tolist())) == {(0, 1), (2, 3), (3, 0)}
    pixels = np.load(npz)["train_images"].transpose(1, 0, 2, 3).reshape(3, -1) / 255
    np.testing.assert_allclose(results["data"]["mean"], pixels.mean(1), rtol=1e-12)
    weights = torch.load(tmp_path / "run" / "model.pt")
    assert weights["0.weight"].shape == (4, 3, 3, 3)  # the user's own network, width 4
    evaluation = run_cli(tmp_path / "eval", f"run={tmp_path / 'run'}", "evaluate.seeds=1", "evaluate.rows=[searched,gce]",
                         module="amlfs.evaluate", env=USER_ENV)
    assert evaluation.returncode == 0, evaluation.stderr
    rows = json.loads((tmp_path / "eval" / "evaluation.json").read_text())["rows"]
    assert [row["name"] for row in rows] == ["searched", "gce"] and all(0 <= row["test_acc"] <= 1 for row in rows)


def test_own_model_and_data_from_python_leave_no_hydra_state(tmp_path, monkeypatch):
    from hydra.core.global_hydra import GlobalHydra

    monkeypatch.syspath_prepend(str(TESTS))
    npz = write_npz(tmp_path / "mine.npz", channels=1)
    handlers = list(amlfs.api.log.handlers) if hasattr(amlfs, "api") else []
    results = amlfs.run_search([*own_model_and_data(npz), "model._target_=user_models.cosine_net", "~model.width",
                                "+model.scale=8.0", "space=amlfs"], run_dir=tmp_path / "run")
    assert results["final"]["val_acc"] >= 0 and len(results["final"]["mu"]) == 24
    assert not GlobalHydra.instance().is_initialized() and amlfs.api.log.handlers == handlers
    assert "search finished" in (tmp_path / "run" / "search.log").read_text()
    assert (tmp_path / "run" / ".hydra" / "config.yaml").exists()
    evaluation = amlfs.run_evaluation(tmp_path / "run", ["evaluate.seeds=1", "evaluate.rows=[schedule,ce]", "device=cpu"],
                                      out_dir=tmp_path / "eval")
    assert [row["name"] for row in evaluation["rows"]] == ["schedule", "ce"]
    assert amlfs.load_loss(tmp_path / "run").scale == 8.0


@pytest.mark.parametrize("overrides,message", [
    (["dataset.path=missing.npz"], "dataset.path='missing.npz': cannot read it as an .npz file"),
    (["model._target_=user_models.nothing"], "model._target_='user_models.nothing' is not allowed: it cannot be imported"),
    (["model._target_=no_such_package.net"], "it cannot be imported (ModuleNotFoundError"),
    (["model._target_=user_models.not_a_model", "~model.width"], "returned int, not a torch.nn.Module"),
    (["model._target_=user_models.small_net", "+model.depth=3"], "could not build a model"),
    (["space=amlfs", "model._target_=user_models.linear_net", "~model.width", "+model.scale=10"],
     "is not allowed with space=amlfs, which transforms cosine logits"),
    (["seed=abc"], "seed='abc' is not allowed"),
    (["dataset.noise_map={0:4}"], "dataset.noise_map={0: 4, 2: 3, 3: 0} is not allowed: class 4 is out of range for 4 classes"),
    (["model._target_=user_models.three_logits", "~model.width"],
     "it returns (2, 3) for 2 images; it must return logits of shape (2, 4)"),
    (["model._target_=user_models.frozen_net", "~model.width"], "the model has no trainable parameters"),
    (["model._target_=user_models.fixed_input_net", "~model.width"],
     "it fails on the data's (3, 12, 12) images (RuntimeError: mat1 and mat2 shapes cannot be multiplied"),
])
def test_bad_own_model_or_data_gives_one_line(tmp_path, overrides, message):
    npz = write_npz(tmp_path / "mine.npz")
    result = run_cli(tmp_path / "run", *own_model_and_data(npz), *overrides, env=USER_ENV)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr, result.stderr


@pytest.mark.parametrize("replace,message", [
    ({"train_labels": None}, "lacks the array(s) train_labels"),
    ({"train_images": np.zeros((240, 3, 12, 12), dtype=np.float32)}, "train_images is float32"),
    ({"test_images": np.zeros((60, 12), dtype=np.uint8)}, "test_images is uint8 with shape (60, 12)"),
    ({"test_labels": np.arange(59) % 4}, "test_labels is int64 with shape (59,)"),
    ({"test_images": np.zeros((60, 3, 10, 10), dtype=np.uint8)}, "they must match"),
    ({"train_labels": np.arange(240) % 4 - 1}, "labels range over [-1, 3]"),
    ({"test_images": np.zeros((0, 3, 12, 12), dtype=np.uint8), "test_labels": np.zeros(0, dtype=np.int64)},
     "test_images holds no images"),
])
def test_bad_arrays_give_one_line(tmp_path, replace, message):
    """The loader's message (the command line prints it as it is: see the missing-file case above)."""
    npz = write_npz(tmp_path / "mine.npz", **replace)
    with pytest.raises(DataFileError) as refused:
        load_npz(OmegaConf.create({"path": str(npz), "num_classes": None}))
    assert str(refused.value).startswith(f"dataset.path='{npz}': ") and message in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize("content,message", [
    (b"", "cannot read it as an .npz file"),
    (None, "it is a single .npy array, not an .npz archive"),
])
def test_a_file_that_is_not_an_npz_archive_is_refused(tmp_path, content, message):
    path = tmp_path / "mine.npz"
    if content is None:
        with path.open("wb") as file:
            np.save(file, np.zeros(3))
    else:
        path.write_bytes(content)
    with pytest.raises(DataFileError) as refused:
        load_npz(OmegaConf.create({"path": str(path), "num_classes": None}))
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_a_model_that_can_no_longer_be_imported_says_why(tmp_path, monkeypatch):
    from amlfs.models import ModelError, build_model

    (tmp_path / "moved_nets.py").write_text("import a_dependency_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModelError, match="could not build a model .*No module named 'a_dependency_not_installed'"):
        build_model(OmegaConf.create({"_target_": "moved_nets.make_net"}), (1, 28, 28), 10)


def test_a_zero_std_is_refused():
    images = np.full((5, 2, 4, 4), 7, dtype=np.uint8)
    images[:, 1] = np.arange(5)[:, None, None]
    with pytest.raises(ConfigError, match=r"^dataset.std=null is not allowed: a channel of the training images is constant"):
        normalisation(OmegaConf.create({"mean": None, "std": None}), images)
    with pytest.raises(ConfigError, match=r"^dataset.std=\[0.5, 0\] is not allowed"):
        normalisation(OmegaConf.create({"mean": [0.5, 0.5], "std": [0.5, 0]}), images)


def test_labels_beyond_the_declared_classes_are_refused(tmp_path):
    npz = write_npz(tmp_path / "mine.npz")
    with pytest.raises(DataFileError, match=r"labels range over \[0, 3\]"):
        load_npz(OmegaConf.create({"path": str(npz), "num_classes": 3}))


def test_python_runs_without_a_run_dir_get_one_each(tmp_path, monkeypatch):
    from amlfs.api import _chosen_dir

    monkeypatch.chdir(tmp_path)
    first, second = _chosen_dir(None, "runs"), _chosen_dir(None, "runs")
    assert first != second and first.parent == second.parent == Path("runs") / first.parent.name
    assert {first.name, second.name} <= {path.name for path in first.parent.iterdir()}


def test_python_entry_point_raises_the_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"^search.epochs=0 is not allowed"):
        amlfs.run_search(["search.epochs=0", "device=cpu"], run_dir=tmp_path / "run")


def test_a_run_records_its_environment_and_ends_with_a_summary(tmp_path):
    result = run_cli(tmp_path / "run", "experiment=smoke", *TINY)
    assert result.returncode == 0, result.stderr
    environment = json.loads((tmp_path / "run" / "results.json").read_text())["environment"]
    assert environment == describe(torch.device("cpu"))
    assert environment["torch"] == torch.__version__ and environment["world_size"] == 1
    events = EventAccumulator(str(tmp_path / "run" / "tb"), size_guidance={"tensors": 0}).Reload()
    assert "environment/text_summary" in events.Tags()["tensors"]
    output = result.stdout + result.stderr
    for text in ("search finished", f"tensorboard --logdir {tmp_path / 'run' / 'tb'}", f"amlfs-evaluate run={tmp_path / 'run'}",
                 f'amlfs.load_loss("{tmp_path / "run"}")'):
        assert text in output


def test_the_command_line_starts_without_the_slow_optional_imports(tmp_path):
    # torchvision (real datasets), torch._dynamo (torch.compile) and matplotlib (figures) take seconds to import:
    # the search and the evaluation load them only when a run needs them, so a config error is answered fast.
    slow = ("torchvision", "torch._dynamo", "matplotlib")
    code = f"import sys, amlfs.search, amlfs.evaluate; print([m for m in {slow!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_resuming_under_another_torch_version_warns(tmp_path):
    run_dir = tmp_path / "run"
    first = run_cli(run_dir, "experiment=smoke", "device=cpu", "search.epochs=1")
    assert first.returncode == 0, first.stderr
    checkpoint = next((run_dir / "checkpoints").glob("epoch-*.pt"))
    state = torch.load(checkpoint, weights_only=False)
    state["results"]["environment"]["torch"] = "2.0.0"
    torch.save(state, checkpoint)
    (run_dir / "results.json").unlink()
    resumed = run_cli(run_dir, "experiment=smoke", "device=cpu", "search.epochs=1", "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    warnings = [line for line in (resumed.stdout + resumed.stderr).splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and f"torch 2.0.0 -> {torch.__version__}" in warnings[0]
