"""The full-scale table (RESULTS.md "Full scale on a CPU"): a preset as it is, several searches, every row retrained.

For one protocol of `spaces_table.py` at the preset's own size (all 60,000 training images, the preset's space,
controller, B and epochs) and each search seed k (which also draws the data split and the noisy labels):

- the search, then ``amlfs.evaluate`` of its final mu, its schedule and its own model, and (in a folder of its own,
  so that it adds to evaluations made before the row existed) of its mu at the best validation epoch, evaluation
  seed k;
- a one-child cross-entropy run of the same protocol and seed (the data, model and epochs for the hand-crafted rows),
  then ``amlfs.evaluate`` of the hand-crafted losses on it, evaluation seed k;

two jobs at a time with one torch thread each, then prints mean +- std over the seeds of the test accuracy at the final
epoch and at the best-validation epoch, with the candidate `amlfs.evaluate`'s ``take_home`` rule keeps, the reward
strength of the hand-crafted runs (``spaces_table.reward_strength``), and one line per search. Finished runs are
kept and skipped and a killed search resumes, so the script can be stopped and started again.

    python scripts/full_scale_table.py fashion_mnist_sym40 --seeds 0 1 2
"""

import argparse
import json
import statistics
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from amlfs.evaluate import take_home
from spaces_table import BASELINES, PROTOCOLS, ROOT, cells_of, evaluate_job, reward_strength, search_run

SEARCHED = {"searched": ["searched", "schedule", "search_model"], "best_val_mu": ["best_val_mu"]}
"""The searched rows' evaluations: folder -> rows."""
ROW_NAMES = {"take_home": "`take_home` (final mu, unless another candidate is 1 SE ahead on validation)",
             "searched": "final mu from scratch", "best_val_mu": "mu of the best validation epoch from scratch",
             "schedule": "schedule from scratch", "search_model": "search's own model"}
"""The searched rows in the table's order, with their labels."""


def search(protocol: str, seed: int, run_dir: Path, device: str, extra: list[str]) -> None:
    search_run(run_dir, [*PROTOCOLS[protocol].split(), *extra, f"seed={seed}"], run_dir.parent / f"{run_dir.name}.log", device)


def searched_job(protocol: str, seed: int, base: Path, device: str) -> None:
    search(protocol, seed, base / "search", device, [])
    for folder, rows in SEARCHED.items():
        evaluate_job(base / "search", base / folder, rows, 1, seed, device)


def baselines_job(protocol: str, seed: int, base: Path, device: str) -> None:
    search(protocol, seed, base / "ce", device, ["space=ce", "search.population=1"])
    evaluate_job(base / "ce", base / "baselines", BASELINES, 1, seed, device)


def evaluations(base: Path) -> tuple[dict[str, dict], int]:
    """A seed's rows from all its evaluation folders, by name, and the size of its validation split."""
    rows, val_size = {}, None
    for folder in [*SEARCHED, "baselines"]:
        evaluation = json.loads((base / folder / "evaluation.json").read_text())
        rows |= {row["name"]: row for row in evaluation["rows"]}
        val_size = evaluation["val_size"]
    return rows, val_size


def table(out: Path, seeds: list[int]) -> str:
    pairs: dict[str, list[tuple[float, float]]] = {}
    lines_per_search, hand_crafted = [], []
    for seed in seeds:
        base = out / f"seed{seed}"
        rows, val_size = evaluations(base)
        hand_crafted += [run for name in BASELINES for run in rows[name]["runs"]]
        kept = take_home(list(rows.values()), val_size)
        for name, row in rows.items():
            pairs.setdefault(name, []).append((row["test_acc"], row["test_acc_at_best_val"]))
        pairs.setdefault("take_home", []).append((rows[kept]["test_acc"], rows[kept]["test_acc_at_best_val"]))
        results = json.loads((base / "search" / "results.json").read_text())
        loss = ", ".join(f"{key} {value:.3g}" for key, value in results["final"]["loss"].items())
        minutes = sum(epoch["seconds"] for epoch in results["epochs"]) / 60
        accuracies = ", ".join(f"{name} {100 * row['test_acc']:.2f}" for name, row in rows.items())
        lines_per_search.append(f"- seed {seed}: final mu {loss}; take_home = {kept}; {accuracies}; "
                                f"search {minutes:.1f} min on {results['environment']['device_name']}")
    best = max(BASELINES, key=lambda name: statistics.fmean(final for final, _ in pairs[name]))
    lines = [f"| test accuracy in %, {len(seeds)} seeds | final epoch | at the best-validation epoch |", "|---|---:|---:|"]
    for name in [*ROW_NAMES, *BASELINES]:
        label = ROW_NAMES.get(name, name) + (" (best hand-crafted)" if name == best else "")
        lines.append(f"| {label} | {cells_of(pairs[name])} |")
    return "\n".join(lines + ["", reward_strength(hand_crafted), "", *lines_per_search]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", choices=sorted(PROTOCOLS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="search (and evaluation) seeds")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "full")
    args = parser.parse_args()
    out = args.out / args.protocol
    with ThreadPoolExecutor(args.jobs) as pool:
        jobs = [pool.submit(job, args.protocol, seed, out / f"seed{seed}", args.device)
                for seed in args.seeds for job in (searched_job, baselines_job)]
        for future in jobs:
            future.result()
    text = table(out, args.seeds)
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
