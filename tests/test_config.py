"""Configs: every group option and experiment composes and validates; bad values get one clear error."""

import copy

import pytest
import torch
from omegaconf import OmegaConf

from amlfs.config import ConfigError, validate, with_defaults
from amlfs.models import build_model
from amlfs.spaces import space_of

from conftest import CONFIGS, compose_search

GROUPS = ["dataset", "model", "space", "controller"]
EXPERIMENTS = sorted(path.stem for path in (CONFIGS / "experiment").glob("*.yaml"))


OWN = {
    ("model", "custom"): ["model._target_=user_models.small_net"],
    ("dataset", "arrays"): ["dataset.path=mine.npz"],
}
"""The keys a user's own model or data must set."""


def compatible(group: str, option: str) -> list[str]:
    """Overrides that make `group=option` a valid combination (a linear head cannot use space=amlfs)."""
    return [f"{group}={option}", "device=cpu", *OWN.get((group, option), [])] + (["space=amlfs_tau"] if group == "model" else [])


@pytest.mark.parametrize("group,option", [(g, p.stem) for g in GROUPS for p in sorted((CONFIGS / g).glob("*.yaml"))])
def test_every_group_option_composes_and_validates(group, option):
    cfg = compose_search(compatible(group, option))
    assert cfg[group].name == option
    assert validate(cfg) == torch.device("cpu")


@pytest.mark.parametrize("overrides,lr", [
    (["space=amlfs"], 0.05),
    (["space=mixture"], 0.2),
    (["space=barron"], 0.2),
    (["space=ce"], 0.05),
    (["space=poly", "space.reinforce_lr=0.3"], 0.3),
    (["space=mixture", "controller.lr=0.01"], 0.01),
])
def test_reinforce_step_follows_the_space_unless_set(overrides, lr):
    cfg = compose_search([*overrides, "device=cpu"])
    validate(cfg)
    assert OmegaConf.to_container(cfg, resolve=True)["controller"]["lr"] == lr
    space_of(cfg)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_a_saved_config_without_newer_keys_is_completed_with_their_defaults(name):
    written = OmegaConf.to_container(compose_search([f"experiment={name}", "device=cpu"]), resolve=True)
    older = copy.deepcopy(written)
    for section, key in [("train", "fused_adam"), ("train", "compile"), ("train", "channels_last"), ("dataset", "mean"),
                         ("model", "head")]:
        del older[section][key]
    older["space"].pop("continuous", None)  # only space=amlfs and amlfs_tau have it
    older["space"].pop("reinforce_lr", None)  # space=ce has none
    older["train"]["lr"] = 0.5
    completed = OmegaConf.to_container(with_defaults(older))
    assert completed["train"].pop("lr") == 0.5
    written["train"].pop("lr")
    assert completed == written


def test_a_mixture_run_written_before_max_gap_keeps_its_unbounded_centre():
    written = OmegaConf.to_container(compose_search(["space=mixture", "device=cpu"]), resolve=True)
    assert written["space"]["max_gap"] == 1.2
    del written["space"]["max_gap"]
    completed = with_defaults(written)
    assert completed.space.max_gap is None and space_of(completed).max_gap is None
    assert "max_gap" not in with_defaults(OmegaConf.to_container(compose_search(["device=cpu"]), resolve=True)).space


@pytest.mark.parametrize("head", ["linear", "cosine"])
def test_model_heads_build(head):
    cfg = compose_search([f"model.head={head}", "space=amlfs_tau"])
    model = build_model(cfg.model, (1, 28, 28), 10)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_and_validates(name):
    cfg = compose_search([f"experiment={name}", "device=cpu"])
    validate(cfg)
    space_of(cfg)


@pytest.mark.parametrize(
    "overrides,key",
    [
        (["model.head=linear"], "model.head"),
        (["search.population=1"], "search.population"),
        (["search.epochs=0"], "search.epochs"),
        (["space.intervals=0"], "space.intervals"),
        (["controller.sigma=0"], "controller.sigma"),
        (["controller.sigma=abc"], "controller.sigma"),
        (["dataset.val_fraction=1.0"], "dataset.val_fraction"),
        (["dataset.val_fraction=0"], "dataset.val_fraction"),
        (["dataset.noise.rate=1.0"], "dataset.noise.rate"),
        (["controller.sigma=-0.1"], "controller.sigma"),
        (["search.backend=gpu"], "search.backend"),
        (["train.batch_size=0"], "train.batch_size"),
        (["train.fused_adam=2"], "train.fused_adam"),
        (["train.channels_last=yes"], "train.channels_last"),
        (["space.continuous=1"], "space.continuous"),
        (["space=poly", "space.terms=0"], "space.terms"),
        (["space=mixture", "space.max_gap=0.5"], "space.max_gap"),
        (["space=mixture", "space.min_active=1"], "space.min_active"),
        (["space.reinforce_lr=-1"], "space.reinforce_lr"),
        (["controller.learn=maybe"], "controller.learn"),
        (["seed=abc"], "seed"),
        (["seed=1.5"], "seed"),
        (["dataset.split_seed=x1"], "dataset.split_seed"),
        (["dataset.noise.seed=-1"], "dataset.noise.seed"),
        (["controller=cmaes", "controller.sigma=0"], "controller.sigma"),
        (["controller=cmaes", "controller.mean_lr=0"], "controller.mean_lr"),
        (["controller=cmaes", "controller.mean_lr=1.5"], "controller.mean_lr"),
        (["train.compile=fast"], "train.compile"),
        (["device=tpu"], "device"),
        (["device=cuda:7"], "device"),
        (["train.augment=no"], "train.augment"),
        (["search.shared_batches=off"], "search.shared_batches"),
        (["dataset.download=no"], "dataset.download"),
        (["dataset.noise.rate=0.4"], "dataset.noise.rate"),
        (["train.eps=-1"], "train.eps"),
        (["train.weight_decay=-1"], "train.weight_decay"),
        (["train.betas=[2,3]"], "train.betas"),
        (["train.betas=abc"], "train.betas"),
        (["space=ce", "controller=cmaes"], "controller.name"),
        (["model=custom", "model._target_=amlfs.models.lenet5_classifier"], "model.scale"),
        (["search.reward=clean"], "search.reward"),
        (["search.reward=corrected", "search.transition_epoch=0"], "search.transition_epoch"),
        (["search.reward=corrected", "search.epochs=2", "search.transition_epoch=2"], "search.transition_epoch"),
        (["search.reward=corrected", "search.transition_model=clean"], "search.transition_model"),
        (["dataset.noise.kind=asymmetric", "dataset.noise.rate=0.4", "dataset.noise_map=svhn"], "dataset.noise_map"),
        (["dataset.noise.kind=asymmetric", "dataset.noise.rate=0.4", "dataset.noise_map={0:0}"], "dataset.noise_map"),
        (["dataset.noise.kind=asymmetric", "dataset.noise.rate=0.4", "dataset.noise_map={0:x}"], "dataset.noise_map"),
        (["dataset.noise.kind=asymmetric", "dataset.noise.rate=0.4", "dataset.noise_map={}"], "dataset.noise_map"),
        (["search.reward=corrected", "dataset.noise.kind=symmetric", "dataset.noise.rate=0.4", "dataset.noise.validation=clean"],
         "search.reward"),
    ],
)
def test_bad_values_name_their_key(overrides, key):
    with pytest.raises(ConfigError, match=rf"^{key}="):
        validate(compose_search(overrides))


def test_plain_cross_entropy_runs_with_one_child():
    validate(compose_search(["space=ce", "search.population=1", "device=cpu"]))


def test_command_line_runs_started_in_the_same_second_get_a_dir_each(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "same-second").mkdir(parents=True)  # as another process started this second made it
    cfg = OmegaConf.create({"dir": "${amlfs.run_dir:runs/same-second}"})
    assert cfg.dir == "runs/same-second-1" and cfg.dir == "runs/same-second-1"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["same-second", "same-second-1"]
