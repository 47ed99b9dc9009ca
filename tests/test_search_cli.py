"""The search end to end through its command line: run-dir contents, TensorBoard, determinism, multirun, errors."""

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

import amlfs
from amlfs.datasets import load_data
from amlfs.search import holds_search

from conftest import compose_search, run_cli


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("search") / "run"
    result = run_cli(run_dir, "experiment=smoke")
    assert result.returncode == 0, result.stderr
    return run_dir, result


def without_timings(results: dict) -> dict:
    for epoch in results["epochs"]:
        epoch.pop("seconds")
    return results


def test_run_dir_holds_config_log_model_and_results(tiny_run):
    run_dir, _ = tiny_run
    assert (run_dir / ".hydra" / "config.yaml").exists()
    assert "epoch 2/2" in (run_dir / "search.log").read_text()
    results = json.loads((run_dir / "results.json").read_text())
    assert [e["epoch"] for e in results["epochs"]] == [0, 1]
    for epoch in results["epochs"]:
        assert len(epoch["thetas"]) == 2 and all(len(t) == 24 for t in epoch["thetas"])
        assert len(epoch["rewards"]) == 2 and epoch["val_acc"] == max(epoch["rewards"])
        assert epoch["best"] == epoch["rewards"].index(max(epoch["rewards"]))
        assert len(epoch["mu"]) == 24 and 0 <= epoch["test_acc"] <= 1 and epoch["seconds"] > 0
    final = results["final"]
    assert final["mu"] == results["epochs"][-1]["mu"]
    assert final["best_theta"] == results["epochs"][-1]["thetas"][results["epochs"][-1]["best"]]
    assert results["data"]["train"] + results["data"]["val"] == 400 and results["data"]["test"] == 200
    assert results["config"]["search"]["population"] == 2
    weights = torch.load(run_dir / "model.pt")
    assert all(torch.isfinite(w).all() for w in weights.values())


def test_tensorboard_holds_scalars_curves_and_hparams(tiny_run):
    run_dir, _ = tiny_run
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0, "scalars": 0}).Reload()
    tags = events.Tags()
    for tag in ["reward/mean", "reward/max", "reward/min", "reward/std", "val/best_child_acc", "test/broadcast_acc",
                "controller/sigma", "mu/t.slope0", "mu/tau.intercept5", "child_train_loss/0", "child_train_loss/1",
                "time/epoch_seconds", "time/child_images_per_second", "hparams/test_acc"]:
        assert tag in tags["scalars"], tag
    assert [s.step for s in events.Scalars("reward/mean")] == [0, 1]
    assert [s.step for s in events.Images("loss_curve")] == [0, 1]
    hparams = events.PluginTagToContent("hparams")
    assert set(hparams) == {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}
    experiment = plugin_data_pb2.HParamsPluginData.FromString(hparams["_hparams_/experiment"]).experiment
    assert "search.population" in [h.name for h in experiment.hparam_infos]
    assert [m.name.tag for m in experiment.metric_infos] == ["hparams/val_acc", "hparams/test_acc"]
    results = json.loads((run_dir / "results.json").read_text())
    assert events.Scalars("hparams/test_acc")[-1].value == pytest.approx(results["final"]["test_acc"])


def test_progress_lines_show_epoch_rewards_and_eta(tiny_run):
    _, result = tiny_run
    lines = [line for line in (result.stdout + result.stderr).splitlines() if "epoch 1/2" in line]
    assert lines and "reward mean" in lines[0] and "ETA" in lines[0]


def test_same_seed_same_results(tiny_run, tmp_path):
    run_dir, _ = tiny_run
    again = run_cli(tmp_path / "again", "experiment=smoke")
    assert again.returncode == 0, again.stderr
    first = without_timings(json.loads((run_dir / "results.json").read_text()))
    second = without_timings(json.loads((tmp_path / "again" / "results.json").read_text()))
    assert first == second
    other = run_cli(tmp_path / "other", "experiment=smoke", "seed=1")
    assert other.returncode == 0, other.stderr
    assert without_timings(json.loads((tmp_path / "other" / "results.json").read_text()))["epochs"] != first["epochs"]


def test_the_model_of_the_best_validation_epoch_is_kept_and_evaluated(tmp_path):
    from amlfs.api import compose_config
    from amlfs.evaluate import execute

    run_dir = tmp_path / "run"
    result = run_cli(run_dir, "experiment=smoke", "search.epochs=4", "seed=1")
    assert result.returncode == 0, result.stderr
    results = json.loads((run_dir / "results.json").read_text())
    val = [epoch["val_acc"] for epoch in results["epochs"]]
    best = results["epochs"][val.index(max(val))]
    assert results["final"]["best_val_epoch"] == best["epoch"] < 3  # this search peaks before its last epoch
    assert best["test_acc"] != results["final"]["test_acc"]
    assert f"best validation: epoch {best['epoch'] + 1} ({best['val_acc']:.4f} validation" in (run_dir / "search.log").read_text()
    cfg = compose_config("evaluate", [f"run={run_dir}", "evaluate.rows=[search_model]", "device=cpu"])
    row = execute(cfg, tmp_path / "evaluation")["rows"][0]
    assert (row["test_acc"], row["test_acc_at_best_val"], row["best_val_acc"]) == (
        results["final"]["test_acc"], best["test_acc"], best["val_acc"])
    test = load_data(compose_search(["experiment=smoke", "seed=1"]).dataset, torch.device("cpu")).test
    for which, expected in (("best_val", best["test_acc"]), ("final", results["final"]["test_acc"])):
        with torch.no_grad():
            predicted = amlfs.load_model(run_dir, which)(test.images.float() / 255).argmax(1)
        assert (predicted == test.labels).sum().item() / len(test) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError, match="which='best'"):
        amlfs.load_model(run_dir, "best")


def test_multirun_over_seeds(tmp_path):
    result = run_cli(tmp_path / "unused", "experiment=smoke", "search.epochs=1", "seed=0,1",
                     f"hydra.sweep.dir={tmp_path / 'sweep'}", flags=["--multirun"])
    assert result.returncode == 0, result.stderr
    seeds = [json.loads((tmp_path / "sweep" / str(i) / "results.json").read_text())["config"]["seed"] for i in (0, 1)]
    assert seeds == [0, 1]


def test_config_error_is_one_line_without_traceback(tmp_path):
    result = run_cli(tmp_path / "bad", "model.head=linear")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "model.head='linear'" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "bad" / "results.json").exists()


def test_a_machine_that_cannot_compile_gets_one_line(tmp_path):
    result = run_cli(tmp_path / "run", "experiment=smoke", "train.compile=default", env={"CXX": str(tmp_path / "no-compiler")})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("amlfs: train.compile=default failed on this machine (InvalidCxxCompiler")
    assert result.stderr.strip().endswith("run with train.compile=null")
    assert not holds_search(tmp_path / "run")  # the rerun it suggests may start there
