"""Per-epoch search checkpoints: written atomically, pruned, and found again on resume.

A checkpoint is a pickle written by ``torch.save``; load only checkpoints you wrote yourself.
"""

import logging
import random
from pathlib import Path

import numpy as np
import torch

from amlfs import atomic
from amlfs.config import ConfigError, flatten

log = logging.getLogger("amlfs")

FOLDER = "checkpoints"
KEEP = 2
RESULT_NEUTRAL_KEYS = ("resume", "dataset.root", "dataset.archives", "dataset.download", "search.max_failed_epochs",
                       "log.", "distributed.")
"""Config keys (or prefixes ending in '.') that may differ between a run and its resumption: they do not change the
epochs' results (``search.max_failed_epochs`` only when a failing search stops)."""
CONTENT = ("epochs_done", "config", "controller", "population", "rng", "results", "failed_streak")


def capture_rng() -> dict:
    """The state of every global random generator a search may draw from."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def restore_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save(run_dir: Path, epochs_done: int, state: dict) -> Path:
    """Write the checkpoint after `epochs_done` epochs atomically, keeping only the newest KEEP."""
    folder = Path(run_dir) / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"epoch-{epochs_done:05d}.pt"
    atomic.write_torch(path, {"epochs_done": epochs_done, **state})
    for old in sorted(folder.glob("epoch-*.pt"))[:-KEEP]:
        old.unlink()
    return path


def load_latest(run_dir: Path) -> dict | None:
    """The newest checkpoint in `run_dir` that loads completely and holds a search's state, or None."""
    for path in sorted((Path(run_dir) / FOLDER).glob("epoch-*.pt"), reverse=True):
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as err:  # a damaged file: fall back to the one before
            log.warning("skipping unreadable checkpoint %s (%s)", path, err)
            continue
        missing = [key for key in CONTENT if not isinstance(state, dict) or key not in state]
        if not missing:
            return state
        log.warning("skipping checkpoint %s: it lacks %s", path, ", ".join(missing))
    return None


def differing_keys(saved: dict, current: dict) -> list[str]:
    """Keys whose values differ between two resolved configs, ignoring RESULT_NEUTRAL_KEYS."""
    before, after = flatten(saved), flatten(current)
    keys = sorted(set(before) | set(after))
    neutral = [k for k in RESULT_NEUTRAL_KEYS if not k.endswith(".")]
    prefixes = [k for k in RESULT_NEUTRAL_KEYS if k.endswith(".")]
    return [k for k in keys if before.get(k) != after.get(k) and k not in neutral and not k.startswith(tuple(prefixes))]


def check_resumable(saved: dict, current: dict) -> None:
    """Refuse to resume a run whose config differs in anything that changes results."""
    keys = differing_keys(saved, current)
    if keys:
        shown = ", ".join(f"{k} ({flatten(saved).get(k)!r} -> {flatten(current).get(k)!r})" for k in keys[:6])
        more = f" and {len(keys) - 6} more" if len(keys) > 6 else ""
        raise ConfigError(f"resume=true is not allowed: the config differs from the checkpointed run in {shown}{more}")
