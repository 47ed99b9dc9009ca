"""Reliability: kill and resume bit-identically, contained child failures, one-line errors, Ctrl-C."""

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import amlfs
from amlfs.config import ConfigError
from amlfs.search import SearchStopped, execute, judge
from amlfs.spaces import LossSpace

from conftest import ROOT, compose_search, run_cli

RUN = ["experiment=smoke", "search.epochs=4", "dataset.max_train=2000"]


def results_without_timings(run_dir) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    for epoch in results["epochs"]:
        epoch.pop("seconds")
    return results


def assert_same_search(run_dir, reference_dir):
    assert results_without_timings(run_dir) == results_without_timings(reference_dir)
    for model in ("model.pt", "model_best_val.pt"):
        weights, reference = torch.load(run_dir / model), torch.load(reference_dir / model)
        assert all(torch.equal(weights[name], reference[name]) for name in reference)
    events = EventAccumulator(str(run_dir / "tb")).Reload()
    assert [s.step for s in events.Scalars("reward/mean")] == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    result = run_cli(run_dir, *RUN)
    assert result.returncode == 0, result.stderr
    return run_dir


def start(run_dir, *overrides, code=None):
    """Start a search in the background; `code` replaces the plain module launch (to inject faults)."""
    args = [f"hydra.run.dir={run_dir}", "device=cpu", *RUN, *overrides]
    command = [sys.executable, "-m", "amlfs.search", *args] if code is None else [sys.executable, "-c", code, *args]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)


def default_sigint() -> None:
    """In the child: SIGINT back to its default, so that Python turns it into KeyboardInterrupt even when the test
    suite itself was started in the background of a script (which starts it with SIGINT ignored, inherited)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(path, process, timeout=120):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.005)


def killed_after_first_checkpoint(run_dir):
    """`run_dir` of a search killed (SIGKILL) once its first checkpoint exists."""
    process = start(run_dir)
    wait_for(run_dir / "checkpoints" / "epoch-00001.pt", process)
    process.kill()
    process.wait()
    return run_dir


def test_killed_after_a_checkpoint_resumes_bit_identically(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    process = start(run_dir)
    wait_for(run_dir / "checkpoints" / "epoch-00002.pt", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (run_dir / "model.pt").exists()
    resumed = run_cli(run_dir, *RUN, "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout + resumed.stderr
    assert_same_search(run_dir, uninterrupted)


def test_a_cmaes_search_killed_after_a_checkpoint_resumes_bit_identically(tmp_path):
    cmaes = ("space=mixture", "controller=cmaes")
    reference = run_cli(tmp_path / "reference", *RUN, *cmaes)
    assert reference.returncode == 0, reference.stderr
    run_dir = tmp_path / "run"
    process = start(run_dir, *cmaes)
    wait_for(run_dir / "checkpoints" / "epoch-00002.pt", process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = run_cli(run_dir, *RUN, *cmaes, "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout + resumed.stderr
    assert_same_search(run_dir, tmp_path / "reference")
    mus = [epoch["mu"] for epoch in results_without_timings(run_dir)["epochs"]]
    assert len({tuple(mu) for mu in mus}) > 1, "CMA-ES never moved its mean: the test would not see a lost state"


DIE_WHILE_WRITING = """
import os, signal, sys
from pathlib import Path
import amlfs.atomic
write = amlfs.atomic.write_bytes
def write_then_die(path, data):
    if Path(path).name == "epoch-00003.pt":
        Path(path).with_name(".epoch-00003.pt.partial.tmp").write_bytes(data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    write(path, data)
amlfs.atomic.write_bytes = write_then_die
sys.argv[0] = "amlfs.search"
from amlfs.search import main
main()
"""


def test_killed_while_writing_a_checkpoint_resumes_bit_identically(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    process = start(run_dir, code=DIE_WHILE_WRITING)
    process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [".epoch-00003.pt.partial.tmp", "epoch-00001.pt", "epoch-00002.pt"]
    resumed = run_cli(run_dir, *RUN, "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_search(run_dir, uninterrupted)
    assert sorted(p.name for p in (run_dir / "checkpoints").glob("epoch-*.pt")) == ["epoch-00003.pt", "epoch-00004.pt"]
    finished = run_cli(run_dir, *RUN, "resume=true")
    assert finished.returncode == 0 and "nothing to resume" in finished.stdout + finished.stderr
    assert_same_search(run_dir, uninterrupted)


def test_interrupt_says_how_to_resume(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    process = start(run_dir)
    wait_for(run_dir / "checkpoints" / "epoch-00001.pt", process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130
    assert "resume=true" in stderr and f"hydra.run.dir={run_dir}" in stderr and "Traceback" not in stderr
    resumed = run_cli(run_dir, *RUN, "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    assert_same_search(run_dir, uninterrupted)


def test_resume_accepts_only_config_differences_that_leave_the_search_as_it_was(tmp_path, uninterrupted):
    run_dir = killed_after_first_checkpoint(tmp_path / "run")
    recorded = (run_dir / ".hydra" / "config.yaml").read_bytes()
    refused = run_cli(run_dir, *RUN, "resume=true", "controller.sigma=0.3", "train.lr=0.01")
    assert refused.returncode == 2 and refused.stderr.strip().count("\n") == 0
    assert "controller.sigma (0.2 -> 0.3)" in refused.stderr and "train.lr" in refused.stderr
    assert (run_dir / ".hydra" / "config.yaml").read_bytes() == recorded
    for path in (run_dir / "checkpoints").glob("*.pt"):  # as written by versions before these keys existed
        saved = torch.load(path, weights_only=False)
        for key in ("fused_adam", "channels_last", "compile"):
            del saved["config"]["train"][key]
        torch.save(saved, path)
    allowed = run_cli(run_dir, *RUN, "resume=true", "log.curve_every=3", f"dataset.root={tmp_path}")
    assert allowed.returncode == 0, allowed.stderr
    assert_same_search(run_dir, uninterrupted)
    assert (run_dir / ".hydra" / "config.yaml").read_bytes() == recorded  # the record of the command that started it


def copy_of(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy


def test_a_run_dir_holding_a_search_is_not_overwritten_without_resume(tmp_path, uninterrupted):
    run_dir = copy_of(uninterrupted, tmp_path)
    before = (run_dir / "results.json").read_bytes()
    with pytest.raises(ConfigError, match="holds a search already; continue it with resume=true"):
        execute(compose_search([*RUN, "device=cpu", "seed=5"]), run_dir)
    recorded = (run_dir / ".hydra" / "config.yaml").read_bytes()
    with pytest.raises(ConfigError, match=f"^run_dir={run_dir} is not allowed: it holds a search already"):
        amlfs.run_search([*RUN, "device=cpu", "seed=5"], run_dir=run_dir)
    amlfs.run_search([*RUN, "device=cpu", "resume=true", "log.curve_every=2"], run_dir=run_dir)  # nothing to resume
    assert (run_dir / "results.json").read_bytes() == before
    assert (run_dir / ".hydra" / "config.yaml").read_bytes() == recorded
    for module, overrides in (("amlfs.search", [*RUN, "device=cpu", "seed=5"]), ("amlfs.evaluate", [f"run={run_dir}", "device=cpu"])):
        refused = run_cli(run_dir, *overrides, module=module)
        assert refused.returncode == 2 and "is not allowed: it holds" in refused.stderr
        assert (run_dir / ".hydra" / "config.yaml").read_bytes() == recorded  # Hydra's record of the run stays


def test_resume_refuses_a_run_none_of_whose_checkpoints_can_be_read(tmp_path, uninterrupted):
    run_dir = copy_of(uninterrupted, tmp_path)
    before = (run_dir / "results.json").read_bytes()
    for path in (run_dir / "checkpoints").glob("*.pt"):
        path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ConfigError, match="no checkpoint in .* can be read"):
        execute(compose_search([*RUN, "device=cpu", "resume=true"]), run_dir)
    assert (run_dir / "results.json").read_bytes() == before


def test_resume_writes_a_damaged_results_json_again(tmp_path, uninterrupted):
    run_dir = copy_of(uninterrupted, tmp_path)
    (run_dir / "results.json").write_text((run_dir / "results.json").read_text()[:200])
    execute(compose_search([*RUN, "device=cpu", "resume=true"]), run_dir)
    assert_same_search(run_dir, uninterrupted)


def test_resume_skips_a_checkpoint_that_is_not_a_search_state(tmp_path, uninterrupted):
    run_dir = copy_of(uninterrupted, tmp_path)
    torch.save({"hello": 1}, run_dir / "checkpoints" / "epoch-00004.pt")
    execute(compose_search([*RUN, "device=cpu", "resume=true"]), run_dir)
    assert_same_search(run_dir, uninterrupted)


def test_judge_gives_failed_children_the_worst_reward_and_never_picks_them():
    rewards = torch.tensor([0.9, 0.5, 0.7, 0.95], dtype=torch.float64)
    failed = torch.tensor([False, False, False, True])
    judged, best = judge(rewards, failed)
    assert judged.tolist() == [0.9, 0.5, 0.7, 0.5] and best == 0
    judged, best = judge(torch.tensor([0.5, 0.5], dtype=torch.float64), torch.tensor([True, False]))
    assert best == 1
    judged, best = judge(rewards, torch.ones(4, dtype=torch.bool))
    assert best is None and judged.tolist() == [0, 0, 0, 0]


def faulty_for(rows, fault=lambda value: torch.full_like(value, float("nan"))):
    """A LossSpace.loss that applies `fault` (default: NaN) to the losses of the parameter vectors `rows` picks."""
    loss = LossSpace.loss

    def faulty(self, theta, logits, target):
        value = loss(self, theta, logits, target)
        return torch.where(rows(theta)[:, None], fault(value), value)

    return faulty


def without_gradient(value):
    """The same loss values with a zero gradient: a loss that trains nothing."""
    return value.detach() + 0 * value


@pytest.mark.parametrize("fault", [None, without_gradient], ids=["nan", "no-gradient"])
@pytest.mark.parametrize("backend", ["sequential", "vectorized"])
def test_failing_children_are_contained(tmp_path, monkeypatch, backend, fault):
    monkeypatch.setattr(LossSpace, "loss", faulty_for(lambda theta: theta[:, 0] > 1.0, *([fault] if fault else [])))
    cfg = compose_search(["experiment=smoke", "device=cpu", "search.population=4", "search.epochs=3", f"search.backend={backend}"])
    results = execute(cfg, tmp_path)
    failures = [epoch["failed"] for epoch in results["epochs"]]
    assert any(failures) and not all(len(f) == 4 for f in failures)
    for epoch in results["epochs"]:
        expected = [i for i, theta in enumerate(epoch["thetas"]) if theta[0] > 1.0]
        assert epoch["failed"] == expected and epoch["best"] not in expected
    weights = torch.load(tmp_path / "model.pt")
    assert all(torch.isfinite(w).all() for w in weights.values())
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert [s.value for s in events.Scalars("children/failed")] == [len(f) for f in failures]


def test_search_stops_after_failed_epochs_with_a_usable_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(LossSpace, "loss", faulty_for(lambda theta: torch.ones(len(theta), dtype=torch.bool)))
    overrides = ["experiment=smoke", "device=cpu", "search.epochs=5", "search.max_failed_epochs=2"]
    with pytest.raises(SearchStopped, match="every child failed in 2 epochs in a row"):
        execute(compose_search(overrides), tmp_path)
    assert [e["best"] for e in json.loads((tmp_path / "results.json").read_text())["epochs"]] == [None, None]
    monkeypatch.undo()
    with pytest.raises(ConfigError, match="search.max_failed_epochs=2 is not allowed: this run stopped after 2 epochs"):
        execute(compose_search(overrides + ["resume=true"]), tmp_path)
    results = execute(compose_search(overrides + ["search.max_failed_epochs=3", "resume=true"]), tmp_path)
    assert len(results["epochs"]) == 5 and results["epochs"][2]["best"] is not None


def test_a_failing_job_does_not_end_a_multirun_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(tmp_path / "unused", "experiment=smoke", "search.population=0,2", f"hydra.sweep.dir={sweep}",
                     flags=("--multirun",))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "amlfs: search.population=0 is not allowed" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "amlfs: 1 job(s) of the sweep failed, each said why above: #0 (device=cpu experiment=smoke search.population=0)")
    assert json.loads((sweep / "1" / "results.json").read_text())["final"] is not None


@pytest.mark.parametrize("override,key", [  # every key's check is tested in-process (test_config.py)
    ("search.population=1", "search.population"),
    ("model.head=linear", "model.head"),
    ("device=cuda:9", "device"),
    ("search.backend=gpu", "search.backend"),
])
def test_config_errors_through_the_cli(tmp_path, override, key):
    result = run_cli(tmp_path / "run", override)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert f"amlfs: {key}=" in result.stderr
    assert not (tmp_path / "run" / "tb").exists()
