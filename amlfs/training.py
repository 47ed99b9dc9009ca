"""One child's work: an epoch of training under a given loss, and accuracy on a split."""

import sys
from collections.abc import Callable

import torch

from amlfs.data import DeviceData, Split


def make_optimizer(parameters, cfg) -> torch.optim.Adam:
    """The fixed child optimizer: Adam with the ``train`` config's hyperparameters.

    ``train.fused_adam`` selects torch's fused kernel (one kernel for all tensors) instead of its default
    implementation (foreach on CUDA, per-tensor on the CPU); both compute the same update.
    """
    return torch.optim.Adam(parameters, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay,
                            fused=True if cfg.fused_adam else None)


def memory_format(cfg) -> torch.memory_format:
    """The layout of images and conv weights under config ``train.channels_last``."""
    return torch.channels_last if cfg.channels_last else torch.contiguous_format


def compiled(function: Callable, cfg) -> Callable:
    """`function` (or a module) under ``torch.compile`` with mode ``train.compile``; itself when that is null.

    Compiled on first call; later calls with the same shapes and train/eval mode reuse the compiled code.
    """
    return function if cfg.compile is None else torch.compile(function, mode=cfg.compile)


def compile_errors() -> tuple[type[Exception], ...]:
    """What a ``torch.compile`` that failed raises, for an ``except`` clause: nothing before anything was compiled
    (``torch._dynamo`` takes seconds to import, so it is left unloaded until then)."""
    dynamo_exc = sys.modules.get("torch._dynamo.exc")
    return (dynamo_exc.BackendCompilerFailed,) if dynamo_exc is not None else ()


def compile_failure(err: Exception, key: str, mode: str) -> str:
    """The one line for a ``torch.compile`` that failed on this machine (`key`: the config key that asked for it)."""
    return f"{key}={mode} failed on this machine ({str(err).strip().splitlines()[0]}); run with {key}=null"


def autocast(device: torch.device, mode: str | None):
    """The autocast context of config ``train.autocast`` (null: full precision; bf16: bfloat16 matmuls and convs)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode == "bf16")


def train_one_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    data: DeviceData,
    order: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
    autocast_mode: str | None = None,
    check_every: int = 25,
    on_step: Callable[[], object] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train `model` for one pass over `order`, minimising the mean loss ``criterion(logits, labels)``.

    Returns the mean loss and whether the epoch was sound (0-d tensors on the device): every step's loss finite, and
    some step's gradient non-zero (a loss without gradient trains nothing; Adam's momentum alone would still move
    the weights). The finiteness is read every `check_every` steps (one host synchronisation each), and training
    stops once it fails. `on_step` is called after every step (a progress bar).
    """
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    total = torch.zeros((), device=order.device, dtype=data.dtype)
    finite = torch.ones((), device=order.device, dtype=torch.bool)
    learned = torch.zeros((), device=order.device, dtype=torch.bool)
    for step, (images, labels) in enumerate(data.train_batches(order, batch_size, generator), start=1):
        with autocast(order.device, autocast_mode):
            loss = criterion(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        learned |= nonzero_gradient(parameters)
        optimizer.step()
        total += loss.detach() * len(labels)
        finite &= torch.isfinite(loss.detach())
        if on_step is not None:
            on_step()
        if step % check_every == 0 and not finite:
            break
    return total / len(order), finite & learned


def nonzero_gradient(parameters: list[torch.Tensor], children: int | None = None) -> torch.Tensor:
    """Whether any gradient entry is non-zero: a 0-d bool, or [children] for parameters stacked per child."""
    grads = [p.grad.detach() for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros(() if children is None else (children,), dtype=torch.bool)
    if children is None:
        return torch.stack([g.ne(0).any() for g in grads]).any()
    return torch.stack([g.reshape(children, -1).ne(0).any(1) for g in grads]).any(0)


def all_finite(tensors) -> torch.Tensor:
    """Whether every element of every tensor is finite (a 0-d bool tensor on their device)."""
    return torch.stack([torch.isfinite(t).all() for t in tensors]).all()


@torch.no_grad()
def confusion(model: torch.nn.Module, data: DeviceData, split: Split, batch_size: int, autocast_mode: str | None = None) -> torch.Tensor:
    """Confusion matrix [K, K] of `model` on `split` (rows: predicted class, columns: label; counts on the device)."""
    model.eval()
    classes = data.num_classes
    counts = torch.zeros(classes * classes, dtype=torch.long, device=split.labels.device)
    for images, labels in data.eval_batches(split, batch_size):
        with autocast(split.labels.device, autocast_mode):
            counts += torch.bincount(model(images).argmax(-1) * classes + labels, minlength=classes * classes)
    return counts.reshape(classes, classes)


def accuracy(model: torch.nn.Module, data: DeviceData, split: Split, batch_size: int, autocast_mode: str | None = None) -> torch.Tensor:
    """Top-1 accuracy of `model` on `split` (a 0-d tensor on the device)."""
    return confusion(model, data, split, batch_size, autocast_mode).trace().double() / len(split)
