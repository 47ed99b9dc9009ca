"""Checks on a composed search config, run before any work starts; each failure is one line naming the key."""

import importlib
import itertools
import math
import re
import sys
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from amlfs.controllers import CONTROLLERS
from amlfs.distributed import run_id
from amlfs.noise import PAIR, asymmetric_targets
from amlfs.reward import REWARDS, TRANSITION_MODELS
from amlfs.spaces import BUILDERS as SPACES
from amlfs.spaces.amlfs import VARIANTS as PIECEWISE_SPACES

DATASETS = {"fashion_mnist_small", "mnist", "fashion_mnist", "cifar10", "cifar100", "arrays"}
HEADS = {"linear", "cosine"}
BACKENDS = {"auto", "sequential", "vectorized"}
COMPILE_MODES = {"default", "reduce-overhead", "max-autotune"}


def _config_dir() -> Path:
    """amlfs/configs in an installed package (the wheel maps the top-level configs/ there), else the checkout's configs/."""
    package = Path(__file__).resolve().parent
    return package / "configs" if (package / "configs").is_dir() else package.parent / "configs"


CONFIG_DIR = _config_dir()


def claim_dir(path: str | Path) -> Path:
    """`path` created by this call, or `path`-1, -2, ... when it exists already (an atomic mkdir each): runs started
    in the same second, by one process or several, get a dir each."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for taken in itertools.count():
        candidate = path.with_name(f"{path.name}-{taken}") if taken else path
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate


_CLAIMED: dict[str, str] = {}


def _claim(default: str) -> str:
    """Resolver: `claim_dir(default)`, the same answer every time this process asks (Hydra resolves the run dir
    more than once)."""
    if default not in _CLAIMED:
        _CLAIMED[default] = str(claim_dir(default))
    return _CLAIMED[default]


def _run_dir(default: str) -> str:
    """Resolver of ``hydra.run.dir``: `default` (runs/<date>/<time>), claimed by this process, in a plain run; under
    torchrun runs/torchrun/<job id>, which every rank and every restart of the job computes alike (each rank
    resolves ``${now:...}`` on its own)."""
    return _claim(default) if run_id() is None else f"runs/torchrun/{run_id()}"


def _search_record(run_dir: str) -> str | None:
    """Resolver of the search's ``hydra.output_subdir``, where Hydra records the job's config before amlfs runs:
    ``.hydra`` when `search.records_config`, else null (no record)."""
    from amlfs.search import records_config

    return ".hydra" if records_config(Path(run_dir)) else None


def _evaluation_record(out_dir: str) -> str | None:
    """Resolver of the evaluation's ``hydra.output_subdir``: ``.hydra``, or null in a dir amlfs will refuse."""
    from amlfs.evaluate import taken

    return None if taken(Path(out_dir)) else ".hydra"


for _name, _resolver in (("amlfs.run_dir", _run_dir), ("amlfs.claim", _claim), ("amlfs.search_record", _search_record),
                         ("amlfs.evaluation_record", _evaluation_record)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_new_resolver(_name, _resolver)
GROUPS = ("dataset", "model", "space", "controller")


class ConfigError(ValueError):
    """A config value that a search cannot run with."""


FAILED_JOBS: list[tuple[int, str]] = []
"""(exit code, job) of the jobs of this process's multirun sweep that failed, for `SweepReport`."""


def fail_job(code: int, message: str, say: bool = True) -> None:
    """End a command-line job that failed: print ``amlfs: <message>`` (when `say`) and exit with `code`; in a
    multirun sweep only note it and return, so that the remaining jobs run (`SweepReport` exits at the end)."""
    if say:
        print(f"amlfs: {message}", file=sys.stderr)
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        hydra_cfg = HydraConfig.get()
        FAILED_JOBS.append((code, f"#{hydra_cfg.job.num} ({' '.join(hydra_cfg.overrides.task)})"))
        return
    sys.exit(code)


class SweepReport(Callback):
    """Hydra callback (``hydra.callbacks``): after a multirun sweep in which jobs failed, one line naming them, and
    the exit code of the first."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if FAILED_JOBS:
            jobs = ", ".join(job for _, job in FAILED_JOBS)
            print(f"amlfs: {len(FAILED_JOBS)} job(s) of the sweep failed, each said why above: {jobs}", file=sys.stderr)
            sys.exit(FAILED_JOBS[0][0])


def flatten(config: dict, prefix: str = "") -> dict:
    """Nested config -> {"a.b": value}, values kept when bool/int/float/str, else written as strings (lists, None)."""
    flat = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat


BEFORE_KEY = {("space", "mixture", "max_gap"): None}
"""(group, option, key) of keys whose default changes results: the value that does what runs written before the key
did."""


def with_defaults(saved: dict) -> DictConfig:
    """A run's saved config, completed with the current defaults of keys added to amlfs since the run was written.

    A new key defaults to the behaviour from before it existed (``BEFORE_KEY`` where the current default differs),
    so an older run evaluates and resumes as it ran. The other defaults are those of configs/search.yaml and of the
    group files the run chose (its dataset, model, ...).
    """
    saved = OmegaConf.to_container(OmegaConf.create(saved))
    for (group, option, key), before in BEFORE_KEY.items():
        if isinstance(saved.get(group), dict) and saved[group].get("name") == option:
            saved[group].setdefault(key, before)
    base = OmegaConf.load(CONFIG_DIR / "search.yaml")
    for key in ("defaults", "hydra"):
        base.pop(key)
    for group in GROUPS:
        path = CONFIG_DIR / group / f"{saved.get(group, {}).get('name')}.yaml"
        if path.is_file():
            base = OmegaConf.merge(base, {group: OmegaConf.load(path)})
    merged = OmegaConf.merge(base, saved)
    OmegaConf.resolve(merged)
    return merged


def _value(cfg: DictConfig, key: str):
    try:
        return OmegaConf.select(cfg, key, default=None)
    except OmegaConfBaseException:  # a parent that is not a mapping, e.g. dataset.noise=[]
        return None


def _fail(key: str, value, allowed: str):
    raise ConfigError(f"{key}={value!r} is not allowed: {allowed}")


def _integer(cfg: DictConfig, key: str, minimum: int, why: str = "", optional: bool = False) -> int | None:
    value = _value(cfg, key)
    if optional and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(key, value, f"use an integer >= {minimum}{why}" + (" or null" if optional else ""))
    return value


def _real(cfg: DictConfig, key: str, low: float, high: float, *, low_open: bool, high_open: bool, optional: bool = False):
    value = _value(cfg, key)
    if optional and value is None:
        return None
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    inside = (number > low if low_open else number >= low) and (number < high if high_open else number <= high)
    if not inside:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        _fail(key, value, f"use a number in {interval}" + (" or null" if optional else ""))
    return number


def _boolean(cfg: DictConfig, key: str) -> bool:
    value = _value(cfg, key)
    if not isinstance(value, bool):
        _fail(key, value, "use true or false")
    return value


def _locate(path: str):
    """The object at a dotted `path`: the longest importable module prefix, then attributes (as Hydra finds ``_target_``)."""
    parts = path.split(".")
    error: Exception = ImportError("it is not a dotted path")
    for split in range(len(parts) - 1, 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ImportError as err:
            error = err
            continue
        for name in parts[split:]:
            target = getattr(target, name)
        return target
    raise error


def _importable(cfg: DictConfig, key: str) -> None:
    """`key` names an importable object (a Hydra ``_target_``)."""
    value = _value(cfg, key)
    if not isinstance(value, str) or not value:
        _fail(key, value, "name an importable factory, e.g. my_package.nets.make_net")
    try:
        _locate(value)
    except Exception as err:  # the user's module may fail in any way while importing
        _fail(key, value, f"it cannot be imported ({type(err).__name__}: {err})")


def _choice(cfg: DictConfig, key: str, choices: set[str]) -> str:
    value = _value(cfg, key)
    if not isinstance(value, str) or value not in choices:
        _fail(key, value, f"choose one of {', '.join(sorted(choices))}")
    return value


def resolve_device(value) -> torch.device:
    """The torch device for config ``device`` (auto: CUDA when present, else CPU)."""
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if value == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", str(value))
    if not match:
        _fail("device", value, "choose auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        _fail("device", value, "CUDA is not available on this machine; use device=cpu or device=auto")
    if match.group(1) is not None and int(match.group(1)) >= torch.cuda.device_count():
        _fail("device", value, f"this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device(value)


def _noise_map(cfg: DictConfig) -> None:
    """Refuse a ``dataset.noise_map`` that is no map; its classes are checked against the data's when it is loaded."""
    value = _value(cfg, "dataset.noise_map")
    if value == PAIR:
        return
    try:
        asymmetric_targets(value)
    except ValueError as err:
        _fail("dataset.noise_map", value, str(err))


def validate_dataset(cfg: DictConfig) -> None:
    """Raise ConfigError for the first ``dataset.*`` value a search (or an evaluation's data) cannot run with."""
    for key in ("dataset.split_seed", "dataset.noise.seed"):
        _integer(cfg, key, 0)
    if _choice(cfg, "dataset.name", DATASETS) == "arrays":
        path = _value(cfg, "dataset.path")
        if not isinstance(path, str) or not path:
            _fail("dataset.path", path, "give the .npz file holding train_images, train_labels, test_images, test_labels")
        _integer(cfg, "dataset.num_classes", 2, optional=True)
    _real(cfg, "dataset.val_fraction", 0, 1, low_open=True, high_open=True)
    _integer(cfg, "dataset.max_train", 1, optional=True)
    _integer(cfg, "dataset.max_test", 1, optional=True)
    noise = _choice(cfg, "dataset.noise.kind", {"none", "symmetric", "asymmetric"})
    rate = _real(cfg, "dataset.noise.rate", 0, 1, low_open=False, high_open=True)
    if noise == "none" and rate > 0:
        _fail("dataset.noise.rate", rate, "dataset.noise.kind is none; set dataset.noise.kind=symmetric or asymmetric")
    _choice(cfg, "dataset.noise.validation", {"clean", "noisy"})
    if noise == "asymmetric":
        _noise_map(cfg)
    for key in ("dataset.download", "dataset.verify"):
        _boolean(cfg, key)


def validate(cfg: DictConfig) -> torch.device:
    """Raise ConfigError for the first value a search cannot run with; return the device to use."""
    space = _choice(cfg, "space.name", set(SPACES))
    searching = space != "ce"
    if space in PIECEWISE_SPACES:
        _integer(cfg, "space.intervals", 1)
        _boolean(cfg, "space.continuous")
    if space == "poly":
        _integer(cfg, "space.terms", 1)
    if space == "mixture":
        _real(cfg, "space.max_gap", 1, math.inf, low_open=False, high_open=True, optional=True)
        _real(cfg, "space.min_active", 0, 1, low_open=False, high_open=True)
    _real(cfg, "space.reinforce_lr", 0, math.inf, low_open=False, high_open=True, optional=True)
    _integer(cfg, "search.population", 2 if searching else 1, f" for space={space}" if searching else "")
    _integer(cfg, "search.epochs", 1)
    _importable(cfg, "model._target_")
    model = _value(cfg, "model")
    if isinstance(model, DictConfig) and "head" in model:  # the built-in models' head; a model of your own brings its own
        head = _choice(cfg, "model.head", HEADS)
        if space == "amlfs" and head != "cosine":
            _fail("model.head", head, "space=amlfs transforms cosine logits and needs model.head=cosine (or use space=amlfs_tau)")
    if space == "amlfs" and _value(cfg, "model.scale") is None:
        _fail("model.scale", None, "space=amlfs transforms cosine logits: end the model in amlfs.CosineHead(features, "
                                   "classes, scale) and set model.scale to that scale, or use space=amlfs_tau")
    if _value(cfg, "model.scale") is not None:
        _real(cfg, "model.scale", 0, math.inf, low_open=True, high_open=True)
    controller = _choice(cfg, "controller.name", set(CONTROLLERS))
    if controller == "cmaes" and not searching:
        _fail("controller.name", controller, "space=ce has no parameters to search; use controller=reinforce")
    _real(cfg, "controller.sigma", 0, math.inf, low_open=True, high_open=True)
    _boolean(cfg, "controller.learn")
    if controller == "reinforce":
        _real(cfg, "controller.sigma_final", 0, math.inf, low_open=True, high_open=True, optional=True)
        _real(cfg, "controller.lr", 0, math.inf, low_open=False, high_open=True)
    else:
        _real(cfg, "controller.mean_lr", 0, 1, low_open=True, high_open=False)
    _integer(cfg, "seed", 0)
    validate_dataset(cfg)
    _choice(cfg, "search.backend", BACKENDS)
    _real(cfg, "search.max_train_loss", 0, math.inf, low_open=True, high_open=False)
    _integer(cfg, "search.max_failed_epochs", 1)
    if _choice(cfg, "search.reward", set(REWARDS)) == "corrected":
        epochs = _value(cfg, "search.epochs")
        _integer(cfg, "search.transition_epoch", 1)
        _choice(cfg, "search.transition_model", set(TRANSITION_MODELS))
        if _value(cfg, "search.transition_epoch") >= epochs:
            _fail("search.transition_epoch", _value(cfg, "search.transition_epoch"),
                  f"search.reward=corrected needs it below search.epochs={epochs}, or the corrected reward is never used")
        if _value(cfg, "dataset.noise.kind") != "none" and _value(cfg, "dataset.noise.validation") == "clean":
            _fail("search.reward", "corrected", "it corrects a noisy reward split, and dataset.noise.validation=clean "
                                                "keeps that split clean; use search.reward=accuracy")
    for key in ("resume", "search.shared_batches", "train.fused_adam", "train.channels_last", "train.augment"):
        _boolean(cfg, key)
    _integer(cfg, "train.batch_size", 1)
    _choice(cfg, "train.dtype", {"float32", "float64"})
    if _value(cfg, "train.autocast") is not None:
        _choice(cfg, "train.autocast", {"bf16"})
    if _value(cfg, "train.compile") is not None:
        _choice(cfg, "train.compile", COMPILE_MODES)
    _integer(cfg, "train.eval_batch_size", 1)
    _real(cfg, "train.lr", 0, math.inf, low_open=True, high_open=True)
    betas = _value(cfg, "train.betas")
    if not (OmegaConf.is_list(betas) and len(betas) == 2 and all(isinstance(b, (int, float)) and not isinstance(b, bool)
                                                                  and 0 <= b < 1 for b in betas)):
        _fail("train.betas", betas if not OmegaConf.is_config(betas) else OmegaConf.to_container(betas),
              "use two numbers in [0, 1), e.g. [0.9,0.999]")
    _real(cfg, "train.eps", 0, math.inf, low_open=False, high_open=True)
    _real(cfg, "train.weight_decay", 0, math.inf, low_open=False, high_open=True)
    _integer(cfg, "log.curve_every", 1)
    _real(cfg, "distributed.timeout", 0, math.inf, low_open=True, high_open=True)
    return resolve_device(_value(cfg, "device"))
