"""The tables of search spaces and controllers under 40% label noise and on clean labels (README, RESULTS.md).

For one protocol (Fashion-MNIST or MNIST with 40% symmetric noise, Fashion-MNIST with 40% asymmetric noise (its
standard class flips), or clean Fashion-MNIST; 20,000 training images of which 2,000 are the reward split, small CNN
with a cosine head, B = 4 children x 15 epochs, data split and noise fixed at seed 0), it runs what is missing:

- for every cell SPACE:CONTROLLER[:OVERRIDE...] (`frozen` = REINFORCE with ``controller.learn=false``; each OVERRIDE
  a search config ``key=value`` that changes neither the training data nor the noise, e.g.
  ``dataset.noise.validation=clean``), one search per seed;
- for every learning cell, ``amlfs.evaluate`` of each search's schedule and final mu from scratch, with the
  evaluation seed equal to the search seed (so the spread covers both the search and the retraining), and which of
  the two its validation accuracy picks (``take_home``: the final mu unless the schedule is more than one
  standard error ahead);
- the hand-crafted losses, 3 evaluation seeds each (``--baseline-seeds``: more, one folder per extra seed), on
  the same data;

two jobs at a time with one torch thread each, then prints the table (mean +- std of the test accuracy at the final
epoch and at the epoch of best validation accuracy) and, for each search, the loss at its final mu with that search's
figures.
Finished runs are kept and skipped, so the script can be stopped and started again; a run another driver is making
is waited for (a lock file beside its folder).

    python scripts/spaces_table.py fashion_mnist_sym40 mixture:reinforce poly:reinforce mixture:frozen
"""

import argparse
import fcntl
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from amlfs.evaluate import recorded_validation, take_home
from amlfs.results import best_val_epoch

ROOT = Path(__file__).resolve().parents[1]
PROTOCOLS = {
    "fashion_mnist_clean": "experiment=fashion_mnist_cnn dataset.archives=../shared/data/FashionMNIST/raw",
    "fashion_mnist_sym40": "experiment=fashion_mnist_sym40 dataset.archives=../shared/data/FashionMNIST/raw",
    "mnist_sym40": "experiment=mnist_sym40 dataset.archives=../shared/data/MNIST/raw",
    "fashion_mnist_asym40": "experiment=fashion_mnist_sym40 dataset.noise.kind=asymmetric dataset.archives=../shared/data/FashionMNIST/raw",
    "mnist_asym40": "experiment=mnist_sym40 dataset.noise.kind=asymmetric dataset.archives=../shared/data/MNIST/raw",
}
SCALE = "dataset.max_train=20000 dataset.split_seed=0 dataset.noise.seed=0 search.population=4 search.epochs=15"
BASELINES = ["ce", "gce", "sce", "nce_rce", "mae"]
SEARCHED_ROWS = {"search_model": "search's own model", "schedule": "schedule replayed from scratch",
                 "searched": "final mu from scratch", "take_home": "final mu or schedule, by validation (take_home, 1-SE rule)"}


def search_overrides(cell: str) -> list[str]:
    space, controller, *extra = cell.split(":")
    chosen = ["controller=reinforce", "controller.learn=false"] if controller == "frozen" else [f"controller={controller}"]
    return [f"space={space}", *chosen, *extra]


def cell_dir(cell: str) -> str:
    """The folder of a cell's runs: ``mixture:reinforce:dataset.noise.validation=clean`` ->
    ``mixture-reinforce-dataset.noise.validation-clean``."""
    return cell.replace(":", "-").replace("=", "-")


def run(command: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with log.open("w") as out:
        result = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed (exit {result.returncode}); see {log}")


@contextmanager
def claimed(out_dir: Path):
    """An exclusive lock on the run into `out_dir` (a file beside it), held while the run is checked and made: a second
    driver that needs the same run (two cells sharing the hand-crafted runs) waits for it instead of making it again."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with (out_dir.parent / f".{out_dir.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def finished(path: Path, key: str) -> bool:
    try:
        return bool(json.loads(path.read_text()).get(key))
    except (OSError, json.JSONDecodeError):
        return False


def search_run(run_dir: Path, overrides: list[str], log: Path, device: str = "cpu") -> None:
    """One ``amlfs.search`` with `overrides` into `run_dir`: skipped once finished, resumed from its checkpoints."""
    with claimed(run_dir):
        if finished(run_dir / "results.json", "final"):
            return
        resume = ["resume=true"] if (run_dir / "checkpoints").exists() else []
        run([sys.executable, "-m", "amlfs.search", *overrides, f"hydra.run.dir={run_dir}", f"device={device}", *resume], log)


def search_job(out: Path, protocol: str, cell: str, seed: int) -> None:
    run_dir = out / cell_dir(cell) / f"seed{seed}" / "search"
    overrides = [*PROTOCOLS[protocol].split(), *SCALE.split(), *search_overrides(cell), f"seed={seed}"]
    search_run(run_dir, overrides, run_dir.parent / "search.log")


def evaluate_job(run_dir: Path, out_dir: Path, rows: list[str], seeds: int, first_seed: int, device: str = "cpu") -> None:
    with claimed(out_dir):
        if finished(out_dir / "evaluation.json", "rows") and len(json.loads((out_dir / "evaluation.json").read_text())["rows"]) == len(rows):
            return
        (out_dir / "evaluation.json").unlink(missing_ok=True)  # of other rows: amlfs.evaluate refuses to overwrite it
        command = [sys.executable, "-m", "amlfs.evaluate", f"run={run_dir}", f"evaluate.rows=[{','.join(rows)}]",
                   f"evaluate.seeds={seeds}", f"evaluate.first_seed={first_seed}", f"hydra.run.dir={out_dir}", f"device={device}"]
        run(command, out_dir.parent / f"{out_dir.name}.log")


def cell_runs(out: Path, cell: str, seeds: int) -> list[tuple[dict, dict | None]]:
    """Per search of `cell`: its results.json and its evaluation.json (None before the evaluation ran)."""
    runs = []
    for seed in range(seeds):
        base = out / cell_dir(cell) / f"seed{seed}"
        evaluation_file = base / "evaluation" / "evaluation.json"
        evaluation = json.loads(evaluation_file.read_text()) if evaluation_file.exists() else None
        if evaluation and "val_size" not in evaluation:
            sys.exit(f"{evaluation_file} was written before evaluation.json held val_size: run amlfs.evaluate again")
        runs.append((json.loads((base / "search" / "results.json").read_text()), evaluation))
    return runs


def cell_values(runs: list[tuple[dict, dict | None]]) -> dict[str, list[tuple[float, float]]]:
    """Per row, each search's test accuracy at the final epoch and at the epoch of best validation accuracy (the
    search's own model: the broadcast model of its best epoch, kept in model_best_val.pt)."""
    values = {row: [] for row in SEARCHED_ROWS}
    for results, evaluation in runs:
        epochs = results["epochs"]
        values["search_model"].append((results["final"]["test_acc"], epochs[best_val_epoch(epochs)]["test_acc"]))
        if evaluation:
            rows = {row["name"]: (row["test_acc"], row["test_acc_at_best_val"]) for row in evaluation["rows"]}
            for name, accuracies in rows.items():
                values[name].append(accuracies)
            keep = take_home(evaluation["rows"], recorded_validation(evaluation))
            if keep:
                values["take_home"].append(rows[keep])
    return {row: v for row, v in values.items() if v}


def cell(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    spread = 100 * statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {spread:.2f} ({len(values)})"


def cells_of(pairs: list[tuple[float, float]]) -> str:
    """The table's two columns: the final epoch and the best-validation epoch."""
    final, at_best = zip(*pairs)
    return f"{cell(final)} | {cell(at_best)}"


def baseline_dirs(out: Path, seeds: int) -> list[tuple[Path, int, int]]:
    """The hand-crafted losses' evaluations as (folder, seeds, first seed): seeds 0-2 in ``baselines``, every further
    seed in its own ``baselines-seed<k>`` (so extra seeds add to the first three and run in parallel)."""
    return [(out / "baselines", min(seeds, 3), 0)] + [(out / f"baselines-seed{k}", 1, k) for k in range(3, seeds)]


def baseline_runs(out: Path, seeds: int) -> dict[str, list[dict]]:
    """Per hand-crafted loss, its runs over all `seeds` evaluation seeds."""
    runs = {}
    for folder, _, _ in baseline_dirs(out, seeds):
        for row in json.loads((folder / "evaluation.json").read_text())["rows"]:
            runs.setdefault(row["name"], []).extend(row["runs"])
    return runs


def reward_strength(points: list[tuple[float, float]], scale: str = "") -> str:
    """How far the final-epoch validation accuracy of hand-crafted retrainings moves per point of test accuracy: least
    squares over their (test, validation) `points`, as a line of the table's notes; `scale` names the validation's."""
    slope = statistics.linear_regression(*zip(*points)).slope
    return (f"Reward strength: the hand-crafted runs' final-epoch {scale}validation accuracy moves {slope:.2f} points "
            f"per point of test accuracy (least squares over {len(points)} runs).")


def table(out: Path, cells: list[str], seeds: int, baseline_seeds: int) -> str:
    lines = ["| loss | test accuracy, final epoch (%) | at the best-validation epoch (%) |", "|---|---:|---:|"]
    baselines = baseline_runs(out, baseline_seeds)
    best = max(baselines, key=lambda name: statistics.fmean(r["test_acc"] for r in baselines[name]))
    for name, row_runs in baselines.items():
        mark = " (best hand-crafted)" if name == best else ""
        lines.append(f"| {name}{mark} | {cells_of([(r['test_acc'], r['test_acc_at_best_val']) for r in row_runs])} |")
    runs_of = {name: cell_runs(out, name, seeds) for name in cells}
    for name in cells:
        for row, values in cell_values(runs_of[name]).items():
            lines.append(f"| {name} {SEARCHED_ROWS[row]} | {cells_of(values)} |")
    lines += ["", reward_strength([(r["test_acc"], r["val_curve"][-1]) for row_runs in baselines.values() for r in row_runs])]
    for name in cells:
        epochs = [e for results, _ in runs_of[name] for e in results["epochs"]]
        tied = sum(max(e["rewards"]) == min(e["rewards"]) for e in epochs)
        lines.append(f"{name}: {tied} of {len(epochs)} search epochs with B equal rewards (no controller step).")
    lines += ["", "Each search's final mu and its test accuracy (%) in each row:"]
    for name in cells:
        lines += [f"- {name} seed {seed}: {search_line(*run)}" for seed, run in enumerate(runs_of[name])]
    return "\n".join(lines) + "\n"


def search_line(results: dict, evaluation: dict | None) -> str:
    """One search: the loss at its final mu, then every row's test accuracy for that search."""
    accuracies = {"search_model": results["final"]["test_acc"]}
    if evaluation:
        accuracies |= {row["name"]: row["test_acc"] for row in evaluation["rows"]}
    loss = ", ".join(f"{key} {value:.2f}" for key, value in results["final"]["loss"].items())
    epochs = results["epochs"]
    best = epochs[best_val_epoch(epochs)]
    return (f"{loss}; " + ", ".join(f"{row} {100 * acc:.2f}" for row, acc in accuracies.items())
            + f"; search model at its best validation epoch ({best['epoch'] + 1}/{len(epochs)}) {100 * best['test_acc']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", choices=sorted(PROTOCOLS))
    parser.add_argument("cells", nargs="+", help="SPACE:CONTROLLER[:KEY=VALUE...], controller reinforce, cmaes or frozen")
    parser.add_argument("--seeds", type=int, default=3, help="searches per cell (seeds 0, 1, ...)")
    parser.add_argument("--baseline-seeds", type=int, default=3, help="evaluation seeds per hand-crafted loss")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "spaces")
    args = parser.parse_args()
    out = args.out / args.protocol

    with ThreadPoolExecutor(args.jobs) as pool:
        searches = [pool.submit(search_job, out, args.protocol, name, seed)
                    for name in args.cells for seed in range(args.seeds)]
        for future in searches:
            future.result()
        first = out / cell_dir(args.cells[0]) / "seed0" / "search"
        evaluations = [pool.submit(evaluate_job, first, folder, BASELINES, count, first_seed)
                       for folder, count, first_seed in baseline_dirs(out, args.baseline_seeds)]
        for name in args.cells:
            if name.split(":")[1] == "frozen":
                continue
            for seed in range(args.seeds):
                base = out / cell_dir(name) / f"seed{seed}"
                evaluations.append(pool.submit(evaluate_job, base / "search", base / "evaluation", ["schedule", "searched"], 1, seed))
        for future in evaluations:
            future.result()
    text = table(out, args.cells, args.seeds, args.baseline_seeds)
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
