"""The full-scale table (RESULTS.md "Full scale on a CPU"): a preset as it is, several searches, every row retrained.

For one protocol of `spaces_table.py` at the preset's own size (all 60,000 training images, the preset's space,
controller, B and epochs) and each search seed k (which also draws the data split and the noisy labels):

- the search, then ``amlfs.evaluate`` of its final mu, its schedule and its own model, and (in a folder of its own,
  so that it adds to evaluations made before the row existed) of its mu at the best validation epoch, evaluation
  seed k;
- a one-child cross-entropy run of the same protocol and seed (the data, model and epochs for the hand-crafted rows),
  then ``amlfs.evaluate`` of the hand-crafted losses on it, evaluation seed k;

two jobs at a time with one torch thread each, then prints mean +- std over the seeds of the test accuracy at the final
epoch and at the best-validation epoch, with the choices `amlfs.evaluate` makes by validation (``take_home``, the
searched loss to keep; ``hand_crafted_pick``, what a user without the search would pick; ``recommended``; after a
``search.reward=corrected`` search they read every row, the hand-crafted ones included, through its noise estimate), the
paired differences of ``take_home`` and ``recommended`` against the best hand-crafted loss (by mean, and of each
search's data), the reward strength of the hand-crafted runs (``spaces_table.reward_strength``, on the scale the
choices read), and one line per search.
``--override KEY=VALUE`` changes the protocol, into a folder of its own
(``fashion_mnist_asym40-dataset.noise.validation-clean`` below). A key of `SEARCH_ONLY` (controller, space,
population) changes the searches only, which share the hand-crafted runs of the protocol without it (so
``--override controller=cmaes`` compares CMA-ES with REINFORCE on the same hand-crafted runs); any other key (data,
noise, reward split, model, training) changes the hand-crafted runs too.
Finished runs are kept and skipped and a killed search resumes, so the script can be stopped and started again; a
run that another driver is making (two cells share the hand-crafted runs) is waited for, not made twice.

    python scripts/full_scale_table.py fashion_mnist_sym40 --seeds 0 1 2
    python scripts/full_scale_table.py fashion_mnist_sym40 --override controller=cmaes
    python scripts/full_scale_table.py fashion_mnist_asym40 --override dataset.noise.validation=clean
"""

import argparse
import json
import math
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from amlfs.evaluate import Validation, hand_crafted_pick, recommended, recorded_validation, take_home
from spaces_table import BASELINES, PROTOCOLS, ROOT, cell_dir, cells_of, evaluate_job, reward_strength, search_run

SEARCH_ONLY = ("controller", "space", "search.population", "search.reward", "search.transition_epoch", "search.transition_model")
"""Override keys (and their sub-keys) that change the search alone, not the hand-crafted losses' training."""
SEARCHED = {"searched": ["searched", "schedule", "search_model"], "best_val_mu": ["best_val_mu"]}
"""The searched rows' evaluations: folder -> rows."""
ROW_NAMES = {"take_home": "`take_home` (final mu, unless another candidate is 1 SE ahead on validation)",
             "searched": "final mu from scratch", "best_val_mu": "mu of the best validation epoch from scratch",
             "schedule": "schedule from scratch", "search_model": "search's own model",
             "hand_crafted_pick": "hand-crafted loss picked by validation",
             "recommended": "recommended (`take_home`, or the hand-crafted pick when 1 SE ahead on validation)"}
"""The searched rows and the choices by validation in the table's order, with their labels."""


def search_only(override: str) -> bool:
    """Whether a Hydra override (``key=value``, ``+key=value`` or ``~key``) changes the searches alone."""
    key = override.split("=", 1)[0].lstrip("+~")
    return any(key == prefix or key.startswith(f"{prefix}.") for prefix in SEARCH_ONLY)


def search(protocol: str, seed: int, run_dir: Path, device: str, extra: list[str]) -> None:
    search_run(run_dir, [*PROTOCOLS[protocol].split(), *extra, f"seed={seed}"], run_dir.parent / f"{run_dir.name}.log", device)


def searched_job(protocol: str, seed: int, base: Path, device: str, overrides: list[str]) -> None:
    search(protocol, seed, base / "search", device, overrides)
    for folder, rows in SEARCHED.items():
        evaluate_job(base / "search", base / folder, rows, 1, seed, device)


def baselines_job(protocol: str, seed: int, base: Path, device: str, overrides: list[str]) -> None:
    search(protocol, seed, base / "ce", device, [*overrides, "space=ce", "search.population=1"])
    evaluate_job(base / "ce", base / "baselines", BASELINES, 1, seed, device)


def evaluations(searched: Path, hand_crafted: Path) -> tuple[dict[str, dict], Validation]:
    """A seed's rows from all its evaluation folders (the searched ones under `searched`, the hand-crafted ones under
    `hand_crafted`), by name, and the validation its searched evaluation chose with (the corrected accuracy after a
    ``search.reward=corrected`` search: then the hand-crafted rows are read on the same scale)."""
    folders = [*(searched / name for name in SEARCHED), hand_crafted / "baselines"]  # the searched evaluation first
    records = [json.loads((folder / "evaluation.json").read_text()) for folder in folders]
    return {row["name"]: row for record in records for row in record["rows"]}, recorded_validation(records[0])


def paired(searched: list[float], reference: list[float]) -> str:
    """Searched minus reference test accuracy, search by search, in points: mean +- std and the paired t statistic."""
    differences = [100 * (a - b) for a, b in zip(searched, reference, strict=True)]
    mean = statistics.fmean(differences)
    if len(differences) < 2:
        return f"{mean:+.2f}"
    spread = statistics.stdev(differences)
    t = mean / (spread / math.sqrt(len(differences))) if spread else math.copysign(math.inf, mean)
    return f"{mean:+.2f} ± {spread:.2f} (paired t {t:.2f}, {len(differences) - 1} df)"


def table(out: Path, hand_crafted_out: Path, seeds: list[int]) -> str:
    pairs: dict[str, list[tuple[float, float]]] = {}
    lines_per_search, hand_crafted, corrected = [], [], False
    for seed in seeds:
        base = out / f"seed{seed}"
        rows, validation = evaluations(base, hand_crafted_out / f"seed{seed}")
        hand_crafted += [(run["test_acc"], validation.accuracy({"name": name, "runs": [run]}))
                         for name in BASELINES for run in rows[name]["runs"]]
        corrected |= validation.transition is not None
        retrained = list(rows.values())
        try:
            chosen = {"take_home": take_home(retrained, validation), "hand_crafted_pick": hand_crafted_pick(retrained, validation),
                      "recommended": recommended(retrained, validation)}
        except ValueError as err:
            sys.exit(f"seed {seed}: {err}")
        for name, row in rows.items():
            pairs.setdefault(name, []).append((row["test_acc"], row["test_acc_at_best_val"]))
        for choice, name in chosen.items():
            pairs.setdefault(choice, []).append((rows[name]["test_acc"], rows[name]["test_acc_at_best_val"]))
        results = json.loads((base / "search" / "results.json").read_text())
        loss = ", ".join(f"{key} {value:.3g}" for key, value in results["final"]["loss"].items())
        minutes = sum(epoch["seconds"] for epoch in results["epochs"]) / 60
        accuracies = ", ".join(f"{name} {100 * row['test_acc']:.2f}" for name, row in rows.items())
        choices = ", ".join(f"{choice} = {name}" for choice, name in chosen.items())
        choices += " (by the corrected validation accuracy)" if validation.transition is not None else ""
        lines_per_search.append(f"- seed {seed}: final mu {loss}; {choices}; {accuracies}; "
                                f"search {minutes:.1f} min on {results['environment']['device_name']}")
    best = max(BASELINES, key=lambda name: statistics.fmean(final for final, _ in pairs[name]))
    lines = [f"| test accuracy in %, {len(seeds)} seeds | final epoch | at the best-validation epoch |", "|---|---:|---:|"]
    for name in [*ROW_NAMES, *BASELINES]:
        label = ROW_NAMES.get(name, name) + (" (best hand-crafted)" if name == best else "")
        lines.append(f"| {label} | {cells_of(pairs[name])} |")
    finals = {name: [final for final, _ in pairs[name]] for name in pairs}
    best_of_search = [max(accuracies) for accuracies in zip(*(finals[name] for name in BASELINES))]
    against = [f"Final epoch, search by search, in points: {choice} {paired(finals[choice], finals[best])} against "
               f"{best}, {paired(finals[choice], best_of_search)} against the best hand-crafted loss of each search's "
               f"data." for choice in ("take_home", "recommended")]
    return "\n".join(lines + ["", *against, "", reward_strength(hand_crafted, "corrected " if corrected else ""), "", *lines_per_search]) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocol", choices=sorted(PROTOCOLS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="search (and evaluation) seeds")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "full")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a Hydra override of the protocol (repeatable); its runs get a folder of their own")
    args = parser.parse_args()
    shared = [override for override in args.override if not search_only(override)]
    out = args.out / cell_dir(":".join([args.protocol, *args.override]))
    hand_crafted_out = args.out / cell_dir(":".join([args.protocol, *shared]))
    with ThreadPoolExecutor(args.jobs) as pool:
        jobs = [pool.submit(job, args.protocol, seed, folder / f"seed{seed}", args.device, overrides) for seed in args.seeds
                for job, folder, overrides in ((searched_job, out, args.override), (baselines_job, hand_crafted_out, shared))]
        for future in jobs:
            future.result()
    text = table(out, hand_crafted_out, args.seeds)
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
