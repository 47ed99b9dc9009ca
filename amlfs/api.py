"""amlfs from Python (notebooks, scripts): the search and the evaluation, composed from the same configs as the
command line with Hydra's compose API, leaving no Hydra or logging state behind.

    results = amlfs.run_search(["space=mixture", "search.epochs=5"], run_dir="runs/mine")
    evaluation = amlfs.run_evaluation("runs/mine", ["evaluate.seeds=1"])
"""

import contextlib
import datetime
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from amlfs import distributed, evaluate, search
from amlfs.config import CONFIG_DIR, ConfigError, claim_dir

log = logging.getLogger("amlfs")


def compose_config(config_name: str, overrides: Sequence[str] = (), config_dirs: Sequence[str | Path] = ()) -> DictConfig:
    """The config `config_name` ("search" or "evaluate") with command-line style `overrides`.

    `config_dirs`: folders of your own (datasets, models, experiment presets laid out like amlfs's configs/),
    searched after amlfs's own, as ``--config-dir`` / ``hydra.searchpath`` do on the command line.
    """
    for name, value in (("overrides", overrides), ("config_dirs", config_dirs)):
        if isinstance(value, (str, Path)):
            raise TypeError(f"{name}={str(value)!r}: give a list, e.g. [{str(value)!r}]")
    missing = [str(folder) for folder in config_dirs if not Path(folder).is_dir()]
    if missing:
        raise ConfigError(f"config_dirs={missing} is not allowed: no such folder")
    searchpath = [f"file://{Path(folder).resolve()}" for folder in config_dirs]
    extra = [f"hydra.searchpath=[{','.join(searchpath)}]"] if searchpath else []
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=config_name, overrides=[*overrides, *extra])


@contextlib.contextmanager
def logging_to(log_file: Path) -> Iterator[None]:
    """amlfs's progress lines to `log_file` and, unless logging is already set up, to stderr; restored afterwards."""
    saved_handlers, saved_level = list(log.handlers), log.level
    formatter = logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    handlers = [logging.FileHandler(log_file)]
    if not logging.getLogger().handlers:
        handlers.append(logging.StreamHandler(sys.stderr))
    for handler in handlers:
        handler.setFormatter(formatter)
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()
        log.handlers[:] = saved_handlers
        log.setLevel(saved_level)


def _chosen_dir(run_dir: str | Path | None, default_parent: str) -> Path:
    """The run dir: `run_dir`, or runs/<date>/<time> like the command line when None (with -1, -2, ... when taken)."""
    if run_dir is None:
        return claim_dir(Path(default_parent) / datetime.datetime.now().strftime("%Y-%m-%d/%H-%M-%S"))
    return Path(run_dir)


def _record(run_dir: Path, cfg: DictConfig, overrides: Sequence[str]) -> None:
    """The composed config and the overrides in .hydra/, as the command line records them."""
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(OmegaConf.create(list(overrides)), run_dir / ".hydra" / "overrides.yaml")


def run_search(overrides: Sequence[str] = (), run_dir: str | Path | None = None, config_dirs: Sequence[str | Path] = ()) -> dict:
    """Run the search `overrides` describe (as on the command line) in `run_dir`; returns results.json's content.

    Bad values raise amlfs.config.ConfigError (the one line the command line prints); ``resume=true`` continues
    the run in `run_dir`.
    """
    cfg = compose_config("search", overrides, config_dirs)
    if run_dir is not None and not cfg.resume and distributed.run_id() is None:  # before anything is written there;
        search.check_fresh(Path(run_dir), "run_dir")  # under torchrun the search decides (a restarted job continues)
    run_dir = _chosen_dir(run_dir, "runs")
    if search.records_config(run_dir):
        _record(run_dir, cfg, overrides)
    with logging_to(run_dir / "search.log"):
        return search.execute(cfg, run_dir)


def run_evaluation(run: str | Path, overrides: Sequence[str] = (), out_dir: str | Path | None = None) -> dict:
    """Retrain and compare what the search in `run` found (see ``amlfs-evaluate --help``); returns evaluation.json's content."""
    overrides = [f"run={Path(run).resolve()}", *overrides]
    cfg = compose_config("evaluate", overrides)
    if out_dir is not None:
        evaluate.check_fresh(Path(out_dir), "out_dir")
    out_dir = _chosen_dir(out_dir, "runs/evaluate")
    _record(out_dir, cfg, overrides)
    with logging_to(out_dir / "evaluate.log"):
        return evaluate.execute(cfg, out_dir)
