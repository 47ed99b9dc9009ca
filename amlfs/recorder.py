"""Everything a search records in its run dir: TensorBoard events, results.json, the terminal progress line."""

import logging
import time
from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from amlfs import atomic
from amlfs.config import flatten
from amlfs.environment import version_changes
from amlfs.plots import loss_curves
from amlfs.spaces import LossSpace

log = logging.getLogger("amlfs")


def format_seconds(seconds: float) -> str:
    minutes, seconds = divmod(int(round(seconds)), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"


class Recorder:
    """Writes one search's record: per-epoch results and scalars, loss-curve images, final hparams."""

    def __init__(self, run_dir: Path, config: dict, space: LossSpace, data_info: dict, curve_every: int,
                 environment: dict, history: dict | None = None):
        """`history`: the results of the epochs already done, when resuming; TensorBoard events from later steps are purged.

        A new run records `environment`; a resumed one keeps the environment it started in and warns when the
        amlfs or torch version differs (results may then differ from an uninterrupted run).
        """
        self.run_dir = Path(run_dir)
        self.space = space
        self.epochs = config["search"]["epochs"]
        self.curve_every = curve_every
        self.results = history or {"epochs": [], "final": None, "data": data_info, "environment": environment, "config": config}
        self.first_epoch = len(self.results["epochs"])
        self.writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.first_epoch if history else None)
        if history is None:
            rows = "\n".join(f"| {key} | {value} |" for key, value in environment.items())
            self.writer.add_text("environment", f"| | |\n|---|---|\n{rows}", 0)
        changes = version_changes(self.results.get("environment"), environment)
        if history is not None and changes:
            log.warning("resuming with %s: results may differ from an uninterrupted run", ", ".join(changes))
        self.started = time.perf_counter()

    def epoch(self, record: dict, train_loss: list[float], sigma: float, images_per_second: float) -> None:
        """Record one finished epoch (`record` holds the keys of a results.json epoch entry)."""
        self.results["epochs"].append(record)
        atomic.write_json(self.run_dir / "results.json", self.results)
        step, rewards = record["epoch"], torch.tensor(record["rewards"], dtype=torch.float64)
        scalars = {
            "reward/mean": rewards.mean(),
            "reward/max": rewards.max(),
            "reward/min": rewards.min(),
            "reward/std": rewards.std(unbiased=False),
            "val/best_child_acc": record["val_acc"],
            "test/broadcast_acc": record["test_acc"],
            "controller/sigma": sigma,
            "time/epoch_seconds": record["seconds"],
            "time/child_images_per_second": images_per_second,
            "children/failed": len(record["failed"]),
        }
        scalars.update({f"mu/{name}": value for name, value in zip(self.space.names(), record["mu"])})
        scalars.update({f"mu_loss/{name}": value for name, value in self.space.meaning(torch.tensor(record["mu"])).items()})
        scalars.update({f"child_train_loss/{i}": value for i, value in enumerate(train_loss) if value is not None})
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, float(value), step)
        last = step == self.epochs - 1
        if self.space.dim and record["best"] is not None and (last or step % self.curve_every == 0):
            curves = {"mu": torch.tensor(record["mu"]), "best sample": torch.tensor(record["thetas"][record["best"]])}
            self.writer.add_figure("loss_curve", loss_curves(self.space, curves, self.results["data"]["num_classes"]), step)
        self.writer.flush()
        elapsed = time.perf_counter() - self.started
        eta = elapsed / (step + 1 - self.first_epoch) * (self.epochs - step - 1)
        failed = f"  failed {len(record['failed'])}/{len(record['rewards'])}" if record["failed"] else ""
        log.info(
            "epoch %*d/%d  reward mean %.4f max %.4f min %.4f  val %.4f  test %.4f%s  %.1fs  ETA %s",
            len(str(self.epochs)), step + 1, self.epochs, rewards.mean(), rewards.max(), rewards.min(),
            record["val_acc"], record["test_acc"], failed, record["seconds"], format_seconds(eta),
        )

    def finish(self, final: dict) -> None:
        """Write the final summary into results.json and the hparams of this same TensorBoard run."""
        self.results["final"] = final
        atomic.write_json(self.run_dir / "results.json", self.results)
        metrics = {"hparams/val_acc": final["val_acc"], "hparams/test_acc": final["test_acc"]}
        for summary in hparams(flatten(self.results["config"]), metrics):
            self.writer.file_writer.add_summary(summary)
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, self.epochs - 1)
        self.writer.close()
