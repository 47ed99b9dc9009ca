"""Reading a search's results.json back: the one check every reader of it makes, and the early-stopping epoch."""

import json
from collections.abc import Sequence
from pathlib import Path

FILE = "results.json"


def read_results(run_dir: str | Path) -> dict:
    """The results.json of the search in `run_dir`, with ``final`` None until the search has finished; ValueError
    naming the file when it is missing, damaged or not a search's record."""
    path = Path(run_dir) / FILE
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable search result ({type(err).__name__}: {err})") from None
    shapes = {"epochs": list, "config": dict, "data": dict}
    if not isinstance(results, dict) or any(not isinstance(results.get(key), kind) for key, kind in shapes.items()) \
            or not isinstance(results.get("final"), (dict, type(None))):
        raise ValueError(f"{path}: not a readable search result (it lacks a search's epochs, config, data or final entry)")
    return results


def best_epoch(val_acc: Sequence[float]) -> int:
    """The index of the first epoch of highest validation accuracy: the early-stopping epoch of a search
    (model_best_val.pt) and of every retraining in an evaluation."""
    return max(range(len(val_acc)), key=val_acc.__getitem__)


def best_val_epoch(epochs: list[dict]) -> int:
    """`best_epoch` of a search's epoch entries (results.json's ``epochs``)."""
    return best_epoch([epoch["val_acc"] for epoch in epochs])
