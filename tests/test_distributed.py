"""One search over two processes under torchrun (CPU, gloo) equals the single-process search: results, weights,
contained failures, and a worker killed mid-run and restarted by torchrun."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

from conftest import CORRECTED, ROOT, write_bars

RUN = ["experiment=smoke", "search.population=4", "search.epochs=3", "dataset.max_train=1000", "device=cpu",
       "distributed.timeout=60"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0", "TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
KEYS = ("thetas", "rewards", "best", "failed", "mu", "val_acc", "test_acc")


def single(run_dir, *overrides, script=None):
    target = [str(script)] if script else ["-m", "amlfs.search"]
    command = [sys.executable, *target, f"hydra.run.dir={run_dir}", *RUN, *overrides]
    result = subprocess.run(command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return json.loads((run_dir / "results.json").read_text())


def torchrun(run_dir, *overrides, script=None, flags=(), wait=True):
    target = [str(script)] if script else ["-m", "amlfs.search"]
    command = [*TORCHRUN, *flags, *target, f"hydra.run.dir={run_dir}", *RUN, *overrides]
    process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait:
        return process
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    return json.loads((run_dir / "results.json").read_text())


def assert_same(results, reference):
    for got, expected in zip(results["epochs"], reference["epochs"], strict=True):
        assert {k: got[k] for k in KEYS} == {k: expected[k] for k in KEYS}
    assert results["final"] == reference["final"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("single") / "run"
    return run_dir, single(run_dir)


def test_two_ranks_give_the_single_process_search(tmp_path, reference):
    reference_dir, expected = reference
    results = torchrun(tmp_path / "run")
    assert_same(results, expected)
    assert results["environment"]["world_size"] == 2
    for model in ("model.pt", "model_best_val.pt"):
        weights, reference_weights = torch.load(tmp_path / "run" / model), torch.load(reference_dir / model)
        assert all(torch.equal(weights[name], reference_weights[name]) for name in reference_weights)
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        ".hydra", "checkpoints", "model.pt", "model_best_val.pt", "results.json", "search.log", "tb"]
    assert "epoch 3/3" in (tmp_path / "run" / "search.log").read_text()


def test_uneven_blocks_give_the_single_process_search(tmp_path):
    overrides = ("search.population=3", "search.backend=vectorized")
    assert_same(torchrun(tmp_path / "ranks", *overrides), single(tmp_path / "single", *overrides))


def test_a_corrected_reward_search_gives_the_single_process_search(tmp_path):
    overrides = (*CORRECTED, f"dataset.path={write_bars(tmp_path / 'bars.npz')}", "dataset.max_train=null", "search.population=3")
    results = torchrun(tmp_path / "ranks", *overrides)
    assert results["transition"] is not None  # estimated on rank 0, used by both
    assert_same(results, single(tmp_path / "single", *overrides))
    assert results["transition"] == json.loads((tmp_path / "single" / "results.json").read_text())["transition"]


def test_a_failing_child_on_rank_one_is_contained_as_in_one_process(tmp_path):
    script = ROOT / "tests" / "faulty_search.py"
    results = torchrun(tmp_path / "ranks", script=script)
    assert any(i >= 2 for epoch in results["epochs"] for i in epoch["failed"]), "no failure on rank 1: the test sees nothing"
    assert_same(results, single(tmp_path / "single", script=script))


def kill_a_worker_after_the_first_checkpoint(run_dir, process) -> None:
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "epoch-00001.pt").exists():
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[0]
        time.sleep(0.02)
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
    assert len(workers) == 2
    os.kill(int(workers[-1]), 9)


def test_a_killed_worker_is_restarted_and_the_search_ends_as_uninterrupted(tmp_path, reference):
    run_dir = tmp_path / "run"
    process = torchrun(run_dir, flags=["--max-restarts=1"], wait=False)
    kill_a_worker_after_the_first_checkpoint(run_dir, process)
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output
    assert "resuming" in output
    assert_same(json.loads((run_dir / "results.json").read_text()), reference[1])


def test_a_killed_worker_without_restarts_left_ends_the_job(tmp_path):
    run_dir = tmp_path / "run"
    process = torchrun(run_dir, wait=False)
    kill_a_worker_after_the_first_checkpoint(run_dir, process)
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0 and "exitcode  : -9" in output
    assert (run_dir / "checkpoints" / "epoch-00001.pt").exists()


def test_a_new_job_in_a_dir_holding_a_search_is_refused_unless_resumed(tmp_path, reference):
    run_dir = tmp_path / "run"
    shutil.copytree(reference[0], run_dir)
    process = torchrun(run_dir, wait=False)
    output, _ = process.communicate(timeout=300)
    assert process.returncode != 0
    lines = [line for line in output.splitlines() if line.startswith("amlfs:")]
    assert lines == [f"amlfs: hydra.run.dir={run_dir} is not allowed: it holds a search already; continue it with "
                     f"resume=true or choose another dir"]
    assert_same(torchrun(run_dir, "resume=true"), reference[1])


def test_more_ranks_than_children_is_one_line(tmp_path):
    process = torchrun(tmp_path / "run", "search.population=1", "space=ce", wait=False)
    output, _ = process.communicate(timeout=300)
    assert process.returncode != 0
    lines = [line for line in output.splitlines() if line.startswith("amlfs:")]
    assert lines == ["amlfs: search.population=1 is not allowed: this torchrun job has 2 ranks and every rank trains at least one child"]


@pytest.mark.parametrize("population,size", [(4, 2), (3, 2), (7, 3), (16, 16), (5, 1)])
def test_blocks_cover_every_child_once_and_differ_by_at_most_one(population, size):
    from amlfs.distributed import World

    blocks = [World(rank, size).block(population) for rank in range(size)]
    assert [child for block in blocks for child in block] == list(range(population))
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1 and min(map(len, blocks)) >= 1
    assert [World(0, size).owner(child, population) for child in range(population)] == [
        rank for rank, block in enumerate(blocks) for _ in block]
