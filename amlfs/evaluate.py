"""What did the search find? Retrain from scratch with the searched loss, its schedule and hand-crafted baselines.

    python -m amlfs.evaluate run=<search run dir> [evaluate.seeds=3] [evaluate.rows=[searched,ce,gce]]

Every row trains the search's model on the search's data (and noise) for the search's number of epochs with
its batch size and fixed Adam, once per seed; seed s gives every row the same initial weights and batch order.
"""

import itertools
import logging
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from amlfs import atomic
from amlfs.config import BACKENDS, COMPILE_MODES, CONFIG_DIR, HEADS, ConfigError, fail_job, resolve_device, validate_dataset, with_defaults
from amlfs.data import DeviceData, epoch_stream
from amlfs.datasets import load_data
from amlfs.idx import DataFileError
from amlfs.losses import BASELINES, SearchedLoss, best_val_mu, schedule_thetas
from amlfs.models import MODEL_FILES, build_model, load_weights
from amlfs.plots import probability_curves
from amlfs.population import resolve_backend, stack_models, stacked_confusions, stacked_forward
from amlfs.progress import progress, steps_per_epoch
from amlfs.results import FILE as RESULTS_FILE, best_epoch, read_results
from amlfs.seeding import derive_seed
from amlfs.spaces import space_of
from amlfs.spaces.base import uniform_rest_log_probs
from amlfs.reward import accuracies, corrected_accuracies, corrected_spreads
from amlfs.training import accuracy, autocast, compile_errors, compile_failure, compiled, confusion, make_optimizer, memory_format, nonzero_gradient, train_one_epoch

log = logging.getLogger("amlfs")
SEARCH_ROWS = ("searched", "best_val_mu", "schedule", "search_model")
TAKE_HOME = {"searched": 'amlfs.load_loss("{run}")', "best_val_mu": 'amlfs.load_loss("{run}", which="best_val_mu")',
             "schedule": 'amlfs.load_schedule("{run}")'}
"""The retrained searched rows a user can keep, and the call that loads each."""
LOCATION_KEYS = {"root", "download", "archives", "verify"}
"""Dataset keys that say where the data is, not what it is: changing only these keeps a search's noise estimate valid."""


def load_search(run: str) -> tuple[Path, dict]:
    """The search run dir and its results.json, or a ConfigError saying what is wrong."""
    run_dir = Path(to_absolute_path(run))
    try:
        results = read_results(run_dir)
    except ValueError as err:
        raise ConfigError(f"run={run!r} is not allowed: {err}") from None
    if not results.get("final"):
        raise ConfigError(f"run={run!r} is not allowed: the search in {run_dir} has not finished (resume it first)")
    return run_dir, results


def taken(out_dir: Path) -> list[str]:
    """The records of an evaluation or a search in `out_dir`, which an evaluation must not overwrite."""
    return [name for name in ("evaluation.json", RESULTS_FILE) if (out_dir / name).exists()]


def check_fresh(out_dir: Path, key: str = "hydra.run.dir") -> None:
    """Refuse to write an evaluation into a dir that holds one or a search (`key`: how the user named the dir)."""
    records = taken(out_dir)
    if records:
        raise ConfigError(f"{key}={out_dir} is not allowed: it holds {records[0]} already; give the evaluation a new dir")


def criteria(row: str, search_cfg: DictConfig, results: dict, device, dtype) -> list[torch.nn.Module]:
    """The loss of each epoch for `row`."""
    epochs = search_cfg.search.epochs
    if row in BASELINES:
        return [BASELINES[row]()] * epochs
    space = space_of(search_cfg)
    if row in ("searched", "best_val_mu"):
        theta = results["final"]["mu"] if row == "searched" else best_val_mu(results, space)
        return [SearchedLoss(space, torch.tensor(theta)).to(device, dtype)] * epochs
    return [SearchedLoss(space, torch.tensor(theta)).to(device, dtype) for theta in schedule_thetas(results)]


def retrain(search_cfg: DictConfig, model_cfg: DictConfig, data: DeviceData, losses: list, seed: int, device, dtype) -> dict:
    """Train a fresh model with `losses[epoch]` in each epoch; accuracies after every epoch (test for reporting only)
    and the last epoch's validation confusion matrix."""
    torch.manual_seed(derive_seed(seed, "evaluate", "model"))
    train = search_cfg.train
    model = build_model(model_cfg, data.image_shape, data.num_classes).to(device, dtype, memory_format=memory_format(train))
    optimizer = make_optimizer(model.parameters(), train)
    val, test, finite = [], [], True
    started = time.perf_counter()
    with progress(len(losses) * steps_per_epoch(len(data.train), train.batch_size), f"seed {seed}") as bar:
        for epoch, criterion in enumerate(losses):
            order, generator = epoch_stream(len(data.train), derive_seed(seed, "evaluate", "batches", epoch), device)
            _, ok = train_one_epoch(model, optimizer, criterion, data, order, train.batch_size, generator, train.autocast,
                                    on_step=bar.update)
            finite = finite and bool(ok)
            val_confusion = confusion(model, data, data.val, train.eval_batch_size, train.autocast)
            val.append(float(accuracies(val_confusion)))
            test.append(float(accuracy(model, data, data.test, train.eval_batch_size, train.autocast)))
    return run_record(seed, val, test, time.perf_counter() - started, finite, val_confusion)


def run_record(seed: int, val: list[float], test: list[float], seconds: float, finite: bool, val_confusion: torch.Tensor) -> dict:
    """One retraining's row entry from its per-epoch accuracies and its last validation confusion matrix [K, K]
    (rows: predicted class; what `Validation` corrects for label noise); its best epoch is the first of highest
    validation."""
    best = best_epoch(val)
    return {
        "seed": seed, "test_acc": test[-1], "best_val_acc": val[best], "test_acc_at_best_val": test[best],
        "val_curve": val, "test_curve": test, "seconds": seconds, "finite": finite, "val_confusion": val_confusion.tolist(),
    }


def same_loss_runs(criteria: list[torch.nn.Module]) -> list[tuple[torch.nn.Module, int, int]]:
    """(criterion, start, stop) for each run of consecutive jobs that train with the same criterion object."""
    runs, start = [], 0
    for _, run in itertools.groupby(criteria, key=id):
        run = list(run)
        runs.append((run[0], start, start + len(run)))
        start += len(run)
    return runs


def stacked_losses(runs: list[tuple[torch.nn.Module, int, int]], outputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Each copy's mean loss [copies] on its slice of `outputs` [copies, N, C]: one criterion call per run of copies
    that share it (a row's seeds), the per-sample losses averaged per copy."""
    return torch.cat([criterion.unreduced(outputs[start:stop].flatten(0, 1), labels[start:stop].flatten())
                      .view(stop - start, -1).mean(-1) for criterion, start, stop in runs])


def retrain_stacked(search_cfg: DictConfig, model_cfg: DictConfig, data: DeviceData, jobs: list[tuple[list, int]],
                    device, dtype) -> list[dict]:
    """Several retrainings (`jobs`: each epoch's losses, seed) at once as one stacked model: what `retrain` gives
    each of them, with one forward and backward pass over all copies per step, each copy's own loss on its own
    slice of the logits, its own batches and one Adam over the stacked parameters (= one Adam per copy). Jobs that
    share a loss object (one row's seeds) are best placed next to each other: their losses take one call."""
    train = search_cfg.train
    models = []
    for _, seed in jobs:
        torch.manual_seed(derive_seed(seed, "evaluate", "model"))
        models.append(build_model(model_cfg, data.image_shape, data.num_classes).to(device, dtype, memory_format=memory_format(train)))
    model, size = models[0], len(jobs)
    params, buffers = stack_models(models)
    optimizer = make_optimizer(list(params.values()), train)
    logits = compiled(stacked_forward(model), train)
    epochs = len(jobs[0][0])
    val, test = [], []
    finite = torch.ones(size, dtype=torch.bool, device=device)
    learned = torch.zeros(size, dtype=torch.bool, device=device)
    started = time.perf_counter()
    with progress(epochs * steps_per_epoch(len(data.train), train.batch_size), f"{size} retrainings") as bar:
        for epoch in range(epochs):
            streams = [epoch_stream(len(data.train), derive_seed(seed, "evaluate", "batches", epoch), device) for _, seed in jobs]
            runs = same_loss_runs([losses_[epoch] for losses_, _ in jobs])
            model.train()
            for images, labels in data.stacked_train_batches(streams, train.batch_size):
                with autocast(device, train.autocast):
                    losses = stacked_losses(runs, logits(params, buffers, images, True), labels)
                optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()
                learned |= nonzero_gradient(list(params.values()), size)
                optimizer.step()
                finite &= torch.isfinite(losses.detach())
                bar.update()
            val_confusions = stacked_confusions(model, logits, params, buffers, data, data.val, train)
            val.append(accuracies(val_confusions).tolist())
            test.append(accuracies(stacked_confusions(model, logits, params, buffers, data, data.test, train)).tolist())
    seconds = (time.perf_counter() - started) / size
    return [run_record(seed, [v[i] for v in val], [t[i] for t in test], seconds, bool(finite[i] & learned[i]), val_confusions[i])
            for i, (_, seed) in enumerate(jobs)]


def search_model_row(search_cfg: DictConfig, run_dir: Path, results: dict, data: DeviceData, device, dtype) -> dict:
    """The search's own models, evaluated as they are: the final one, and the one of its best validation epoch
    (absent from runs of amlfs before it was written, then None)."""
    batch = search_cfg.train.eval_batch_size

    def accuracies(file: str) -> tuple[float, float] | tuple[None, None]:
        if not (run_dir / file).exists():
            return None, None
        model = build_model(search_cfg.model, data.image_shape, data.num_classes).to(device, dtype)
        try:
            load_weights(model, run_dir / file)
        except ValueError as err:
            raise ConfigError(f"evaluate.rows=[...,search_model] is not allowed: {err}") from None
        return float(accuracy(model, data, data.val, batch)), float(accuracy(model, data, data.test, batch))

    final_val, final_test = accuracies(MODEL_FILES["final"])
    best_val, best_test = accuracies(MODEL_FILES["best_val"])
    return {
        "seed": search_cfg.seed, "test_acc": final_test, "best_val_acc": final_val if best_val is None else best_val,
        "test_acc_at_best_val": best_test, "val_curve": [e["val_acc"] for e in results["epochs"]],
        "test_curve": [e["test_acc"] for e in results["epochs"]],
        "seconds": sum(e["seconds"] for e in results["epochs"]), "finite": True,
    }


def summarise(name: str, runs: list[dict]) -> dict:
    def mean_std(key):
        values = [r[key] for r in runs if r[key] is not None]
        if not values:
            return None, None
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    test, test_std = mean_std("test_acc")
    at_best, at_best_std = mean_std("test_acc_at_best_val")
    return {
        "name": name, "test_acc": test, "test_acc_std": test_std, "test_acc_at_best_val": at_best,
        "test_acc_at_best_val_std": at_best_std, "best_val_acc": mean_std("best_val_acc")[0],
        "seconds": mean_std("seconds")[0], "all_finite": all(r["finite"] for r in runs), "runs": runs,
    }


@dataclass(frozen=True)
class Validation:
    """How the choices read a retrained row: its last epoch's accuracy on the `size`-image validation split (mean
    over its seeds) and one standard error of it; with a `transition` (the noise estimate of a
    ``search.reward=corrected`` search, valid for the same noisy labels), the clean accuracy its validation confusion
    matrices imply (`reward.corrected_accuracies`) and that estimate's standard error."""

    size: int
    transition: torch.Tensor | None = None

    def confusions(self, row: dict) -> torch.Tensor:
        missing = [run["seed"] for run in row["runs"] if "val_confusion" not in run]
        if missing:
            raise ValueError(f"row {row['name']} (seeds {missing}) has no validation confusion matrix, which choosing by "
                             f"the corrected accuracy needs: it was retrained by an older amlfs; run amlfs.evaluate again")
        return torch.tensor([run["val_confusion"] for run in row["runs"]], dtype=torch.float64)

    def accuracy(self, row: dict) -> float:
        if self.transition is None:
            return statistics.fmean(run["val_curve"][-1] for run in row["runs"])
        return float(corrected_accuracies(self.confusions(row), self.transition).mean())

    def standard_error(self, row: dict) -> float:
        """On one seed's split; the seeds' confusion matrices pooled for the spread."""
        if self.transition is None:
            accuracy = self.accuracy(row)
            return math.sqrt(accuracy * (1 - accuracy) / self.size)
        return float(corrected_spreads(self.confusions(row).sum(0), self.transition)) / math.sqrt(self.size)

    def ahead(self, row: dict, other: dict) -> bool:
        """The one-standard-error rule: `row`'s accuracy beats `other`'s by more than one standard error of its own."""
        return self.accuracy(row) - self.accuracy(other) > self.standard_error(row)


def recorded_validation(evaluation: dict) -> Validation:
    """The `Validation` an evaluation.json's choices were made with (without a transition before it recorded one)."""
    transition = evaluation.get("transition")
    return Validation(evaluation["val_size"], None if transition is None else torch.tensor(transition, dtype=torch.float64))


def take_home(rows: list[dict], validation: Validation) -> str | None:
    """Which searched loss to keep, by last-epoch `validation` (no test data): the final mu (``searched``, one loss),
    unless another retrained candidate of `TAKE_HOME` is ahead of it by more than one standard error of its own
    accuracy (the one-standard-error rule of model selection), then the best of those; None unless the final mu
    and at least one other candidate were retrained."""
    candidates = {row["name"]: row for row in rows if row["name"] in TAKE_HOME}
    if "searched" not in candidates or len(candidates) < 2:
        return None
    ahead = [row for name, row in candidates.items() if name != "searched" and validation.ahead(row, candidates["searched"])]
    return max(ahead, key=validation.accuracy)["name"] if ahead else "searched"


def hand_crafted_pick(rows: list[dict], validation: Validation) -> str | None:
    """The retrained hand-crafted loss with the best last-epoch `validation` accuracy (what validation picks without
    the search); None when none was retrained."""
    hand_crafted = [row for row in rows if row["name"] in BASELINES]
    return max(hand_crafted, key=validation.accuracy)["name"] if hand_crafted else None


def recommended(rows: list[dict], validation: Validation) -> str | None:
    """What to train with: `take_home`, unless the `hand_crafted_pick` is ahead of it in last-epoch `validation`
    accuracy by more than one standard error of its own accuracy (the same rule); None unless both exist."""
    keep, pick = take_home(rows, validation), hand_crafted_pick(rows, validation)
    if keep is None or pick is None:
        return None
    by_name = {row["name"]: row for row in rows}
    return pick if validation.ahead(by_name[pick], by_name[keep]) else keep


def markdown(rows: list[dict], run_dir: Path, search_cfg: DictConfig, seeds: int, validation: Validation) -> str:
    noise = search_cfg.dataset.noise
    lines = [
        f"# Evaluation of {run_dir}",
        "",
        f"{search_cfg.dataset.name}, noise {noise.kind} {noise.rate:g}, model {search_cfg.model.name} "
        f"({search_cfg.model.get('head', 'its own')} head), {search_cfg.search.epochs} epochs, batch {search_cfg.train.batch_size}, "
        f"Adam lr {search_cfg.train.lr:g}; {seeds} seeds per row (the search model: one run).",
        "",
        "| loss | test acc (final epoch) | test acc at best val epoch | best val acc | seconds per run |",
        "|---|---|---|---|---|",
    ]

    def cell(mean, std):
        return "-" if mean is None else f"{mean:.4f} ± {std:.4f}"

    for row in rows:
        flag = "" if row["all_finite"] else " (non-finite loss or no gradient in some run)"
        lines.append(
            f"| {row['name']}{flag} | {cell(row['test_acc'], row['test_acc_std'])} | "
            f"{cell(row['test_acc_at_best_val'], row['test_acc_at_best_val_std'])} | {row['best_val_acc']:.4f} | {row['seconds']:.0f} |"
        )
    keep = take_home(rows, validation)
    scale = ("validation accuracy" if validation.transition is None else
             "validation accuracy corrected for label noise with the search's transition estimate")
    if keep:
        final_val = ", ".join(f"{row['name']} {validation.accuracy(row):.4f}" for row in rows if row["name"] in TAKE_HOME)
        lines += ["", f"Take home: {keep}, `{TAKE_HOME[keep].format(run=run_dir)}`. Final-epoch {scale}: "
                      f"{final_val}; another is kept instead of the final mu (searched) only when ahead of it by more "
                      f"than one standard error of its own accuracy (on {validation.size} images)."]
    choice, pick = recommended(rows, validation), hand_crafted_pick(rows, validation)
    if choice:
        call = f'amlfs.losses.BASELINES["{choice}"]()' if choice == pick else TAKE_HOME[choice].format(run=run_dir)
        by_name = {row["name"]: row for row in rows}
        lines += ["", f"Recommended: {choice}, `{call}`. The hand-crafted loss validation picks, {pick} "
                      f"({validation.accuracy(by_name[pick]):.4f}), replaces the take-home loss "
                      f"({validation.accuracy(by_name[keep]):.4f}) only when ahead of it by more than one standard error."]
    return "\n".join(lines) + "\n"


def loss_values(losses: list[torch.nn.Module], num_classes: int, p: torch.Tensor) -> torch.Tensor:
    """The last epoch's loss as a function of p_y, the other classes sharing 1 - p_y equally."""
    criterion = losses[-1]
    if isinstance(criterion, SearchedLoss):
        return criterion.space.probability_curve(criterion.theta.detach().double().cpu(), p, num_classes)[0]
    return criterion.per_sample(uniform_rest_log_probs(p, num_classes), torch.zeros(len(p), dtype=torch.long))


def log_row(writer: SummaryWriter, row_dir: Path, row: dict) -> None:
    """A row in TensorBoard: its mean test curve under ``test_acc/<row>`` of `writer`, and its final accuracies as
    one HParams session in `row_dir`."""
    for epoch, value in enumerate(statistics.fmean(v) for v in zip(*(r["test_curve"] for r in row["runs"]))):
        writer.add_scalar(f"test_acc/{row['name']}", value, epoch)
    row_writer = SummaryWriter(str(row_dir))
    metrics = {"hparams/test_acc": row["test_acc"], "hparams/best_val_acc": row["best_val_acc"]}
    for summary in hparams({"loss": row["name"], "seeds": len(row["runs"])}, metrics):
        row_writer.file_writer.add_summary(summary)
    for tag, value in metrics.items():
        row_writer.add_scalar(tag, value, 0)
    row_writer.close()


def checked(cfg: DictConfig, out_dir: Path) -> tuple[Path, dict, DictConfig, DictConfig]:
    """The search run dir, its results.json, its config as the evaluation retrains it (``evaluate.compile`` and
    ``evaluate.dataset`` applied) and the hand-crafted rows' model config; a ConfigError naming the key otherwise."""
    if OmegaConf.is_missing(cfg, "run"):
        raise ConfigError("run is missing: name the search run dir, e.g. amlfs-evaluate run=runs/<date>/<time>")
    run_dir, results = load_search(cfg.run)
    check_fresh(Path(out_dir))
    if not OmegaConf.is_list(cfg.evaluate.rows) or not cfg.evaluate.rows:
        raise ConfigError(f"evaluate.rows={cfg.evaluate.rows!r} is not allowed: give a list of rows, e.g. "
                          f"\"evaluate.rows=[searched,ce]\"")
    unknown = [r for r in cfg.evaluate.rows if r not in BASELINES and r not in SEARCH_ROWS]
    if unknown:
        raise ConfigError(f"evaluate.rows={list(cfg.evaluate.rows)} is not allowed: unknown {unknown}; choose from {sorted(BASELINES) + list(SEARCH_ROWS)}")
    if cfg.evaluate.backend not in BACKENDS:
        raise ConfigError(f"evaluate.backend={cfg.evaluate.backend!r} is not allowed: choose one of {', '.join(sorted(BACKENDS))}")
    for key, minimum in (("seeds", 1), ("first_seed", 0)):
        value = cfg.evaluate[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigError(f"evaluate.{key}={value!r} is not allowed: use an integer >= {minimum}")
    search_cfg = with_defaults(results["config"])
    if cfg.evaluate.compile != "same":
        search_cfg.train.compile = cfg.evaluate.compile
        if search_cfg.train.compile is not None and search_cfg.train.compile not in COMPILE_MODES:
            raise ConfigError(f"evaluate.compile={cfg.evaluate.compile!r} is not allowed: choose same, null or one of "
                              f"{', '.join(sorted(COMPILE_MODES))}")
    search_cfg.dataset = OmegaConf.merge(search_cfg.dataset, cfg.evaluate.dataset)
    try:
        validate_dataset(search_cfg)
    except ConfigError as err:
        raise ConfigError(f"evaluate.{err}") from None
    baseline_model = search_cfg.model.copy()
    if cfg.evaluate.baseline_head != "same":
        if cfg.evaluate.baseline_head not in HEADS:
            raise ConfigError(f"evaluate.baseline_head={cfg.evaluate.baseline_head!r} is not allowed: choose same, "
                              f"{' or '.join(sorted(HEADS))}")
        if "head" not in baseline_model:
            raise ConfigError(f"evaluate.baseline_head={cfg.evaluate.baseline_head!r} is not allowed: model "
                              f"{search_cfg.model.name!r} has no head key; use evaluate.baseline_head=same")
        baseline_model.head = cfg.evaluate.baseline_head
    return run_dir, results, search_cfg, baseline_model


def noise_transition(cfg: DictConfig, results: dict) -> torch.Tensor | None:
    """The search's noise transition estimate (``search.reward=corrected``), to choose by the corrected validation
    accuracy; None when it has none, or when `evaluate.dataset` changes more than where the data is (other labels)."""
    if results.get("transition") is None:
        return None
    changed = sorted(set(cfg.evaluate.dataset) - LOCATION_KEYS)
    if changed:
        log.warning("evaluate.dataset changes %s: the search's noise transition estimate does not hold for these labels; "
                    "the choices use the plain validation accuracy", ", ".join(changed))
        return None
    return torch.tensor(results["transition"], dtype=torch.float64)


def execute(cfg: DictConfig, out_dir: Path) -> dict:
    run_dir, results, search_cfg, baseline_model = checked(cfg, out_dir)
    device = resolve_device(cfg.device)
    dtype = getattr(torch, search_cfg.train.dtype)
    data = load_data(search_cfg.dataset, device, augment=search_cfg.train.augment, dtype=dtype,
                     memory_format=memory_format(search_cfg.train))
    validation = Validation(len(data.val), noise_transition(cfg, results))
    own_model = search_model_row(search_cfg, run_dir, results, data, device, dtype) if "search_model" in cfg.evaluate.rows else None
    writer = SummaryWriter(str(out_dir / "tb"))
    p = torch.linspace(1e-3, 1, 400, dtype=torch.float64)
    seeds = range(cfg.evaluate.first_seed, cfg.evaluate.first_seed + cfg.evaluate.seeds)
    retrained = [name for name in cfg.evaluate.rows if name != "search_model"]
    losses = {name: criteria(name, search_cfg, results, device, dtype) for name in retrained}
    model_cfgs = {name: baseline_model if name in BASELINES else search_cfg.model for name in retrained}
    stacked = {}
    if resolve_backend(cfg.evaluate.backend, device) == "vectorized":  # every (row, seed) of one architecture at once
        for model_cfg in {OmegaConf.to_yaml(c): c for c in model_cfgs.values()}.values():
            jobs = [(name, seed) for name in retrained if model_cfgs[name] == model_cfg for seed in seeds]
            runs = retrain_stacked(search_cfg, model_cfg, data, [(losses[name], seed) for name, seed in jobs], device, dtype)
            stacked.update(zip(jobs, runs))
    rows, curves = [], {}
    for name in cfg.evaluate.rows:
        if name == "search_model":
            runs = [own_model]
        else:
            runs = []
            for seed in seeds:
                runs.append(stacked.get((name, seed)) or retrain(search_cfg, model_cfgs[name], data, losses[name], seed, device, dtype))
                log.info("%-16s seed %d  test %.4f  best val %.4f  %.0fs", name, seed, runs[-1]["test_acc"], runs[-1]["best_val_acc"], runs[-1]["seconds"])
            curves[name] = loss_values(losses[name], data.num_classes, p)
        rows.append(summarise(name, runs))
        log_row(writer, out_dir / "tb" / name, rows[-1])
        evaluation = {"run": str(run_dir), "seeds": cfg.evaluate.seeds, "first_seed": cfg.evaluate.first_seed,
                      "baseline_head": cfg.evaluate.baseline_head, "val_size": len(data.val), "rows": rows,
                      "transition": None if validation.transition is None else validation.transition.tolist(),
                      "take_home": take_home(rows, validation), "hand_crafted_pick": hand_crafted_pick(rows, validation),
                      "recommended": recommended(rows, validation)}
        atomic.write_json(out_dir / "evaluation.json", evaluation)
    figure = probability_curves(p, curves, f"losses as functions of p_y ({data.num_classes} classes, the rest sharing 1 - p_y)")
    figure.savefig(out_dir / "loss_curves.png", dpi=120)
    writer.add_figure("loss_curves", figure, 0)
    writer.close()
    atomic.write_bytes(out_dir / "evaluation.md", markdown(rows, run_dir, search_cfg, cfg.evaluate.seeds, validation).encode())
    return evaluation


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="evaluate")
def main(cfg: DictConfig) -> None:
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        evaluation = execute(cfg, out_dir)
    except (ConfigError, DataFileError) as err:
        fail_job(2, str(err))
        return None
    except compile_errors() as err:
        mode = cfg.evaluate.compile
        fail_job(2, compile_failure(err, "evaluate.compile", mode if mode != "same" else "same (the search's train.compile)"))
        return None
    log.info("wrote %s and %s", out_dir / "evaluation.json", out_dir / "evaluation.md")
    print((out_dir / "evaluation.md").read_text())
    return evaluation


if __name__ == "__main__":
    main()
