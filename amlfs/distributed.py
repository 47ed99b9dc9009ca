"""One search spread over the processes of a ``torchrun`` job: which children each rank trains, and the collectives
that keep every rank's controller and broadcast model identical.

Every rank samples all B loss vectors from the same seeded controller and trains its own contiguous block of
children; rewards, train losses and failure flags travel in one ``all_gather``; the winner's weights, buffers and
Adam state travel from the rank that trained it in one flat-tensor ``broadcast``. A plain ``python -m amlfs.search``
is a world of one process and never touches torch.distributed.
"""

import contextlib
import datetime
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

log = logging.getLogger("amlfs")


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher that sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def rank() -> int:
    """This process's rank in the torchrun job (0 in a plain run)."""
    return int(os.environ.get("RANK", "0")) if launched() else 0


def run_id() -> str | None:
    """The torchrun job's id: the same on every rank and across restarts of the job (None outside torchrun)."""
    return os.environ.get("TORCHELASTIC_RUN_ID") if launched() else None


@dataclass(frozen=True)
class World:
    """This process's place in the job; the default is a plain single-process run."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    launched: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def block(self, population: int, rank: int | None = None) -> range:
        """The children that `rank` (default: this one) trains: contiguous blocks whose sizes differ by at most one."""
        rank = self.rank if rank is None else rank
        base, extra = divmod(population, self.size)
        start = rank * base + min(rank, extra)
        return range(start, start + base + (rank < extra))

    def owner(self, child: int, population: int) -> int:
        """The rank that trains `child`."""
        return next(rank for rank in range(self.size) if child in self.block(population, rank))


def setup(device: torch.device, timeout_seconds: float) -> tuple[World, torch.device]:
    """Join the torchrun job (one process group: gloo for CPU tensors, NCCL for CUDA ones), pin ``cuda:LOCAL_RANK``.

    `device` is the configured device; on CUDA each rank takes its local GPU instead. Outside torchrun: World().
    """
    if not launched():
        return World(), device
    rank, size, local_rank = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if rank == 0 and int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0 and os.environ.get("TORCH_DISABLE_SHARE_RDZV_TCP_STORE") != "1":
        log.warning("torchrun --max-restarts without TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1: restarted workers can hang "
                    "while they set up the process group (seen with torch 2.13 and 2.14); set it when you launch")
    if not dist.is_initialized():
        backend = "cpu:gloo,cuda:nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_seconds),
                                device_id=device if device.type == "cuda" else None)
    return World(rank, size, local_rank, launched=True), device


def shutdown(world: World) -> None:
    if world.launched and dist.is_initialized():
        dist.destroy_process_group()


def barrier(world: World) -> None:
    if world.launched:
        dist.barrier()


def on_rank_zero(world: World, function: Callable[[], object]):
    """`function()` computed on rank 0 and returned on every rank (pickled: for one-time setup such as reading a
    checkpoint); an exception it raises is raised on every rank."""
    if not world.launched:
        return function()
    box = [None]
    if world.main:
        try:
            box = [(function(), None)]
        except Exception as err:  # every rank stops with the same error instead of waiting for rank 0
            box = [(None, err)]
    dist.broadcast_object_list(box, src=0)
    value, error = box[0]
    if error is not None:
        raise error
    return value


@contextlib.contextmanager
def rank_zero_first(world: World) -> Iterator[None]:
    """Rank 0 runs the block first (e.g. extracting archives into the data folder), then the other ranks."""
    if not world.main:
        barrier(world)
    yield
    if world.main:
        barrier(world)


def gather_outcome(world: World, population: int, confusion: torch.Tensor, train_loss: torch.Tensor,
                   failed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every child's confusion matrix on the reward split [B, K, K], train loss and failure flag [B] (float64, float64,
    bool; on the CPU) on every rank, from each rank's own block: one ``all_gather`` of a [block, K * K + 2] float64
    tensor (exact for counts below 2^53)."""
    if not world.launched:
        return confusion.double().cpu(), train_loss.double().cpu(), failed.cpu()
    classes = confusion.shape[-1]
    width = len(world.block(population, 0))
    packed = torch.full((width, classes * classes + 2), float("nan"), dtype=torch.float64, device=confusion.device)
    mine = len(world.block(population))
    packed[:mine] = torch.cat([confusion.double().reshape(mine, -1), train_loss.double()[:, None], failed.double()[:, None]], dim=1)
    gathered = [torch.empty_like(packed) for _ in range(world.size)]
    dist.all_gather(gathered, packed)
    rows = torch.cat([part[: len(world.block(population, rank))] for rank, part in enumerate(gathered)]).cpu()
    return rows[:, :-2].reshape(-1, classes, classes), rows[:, -2], rows[:, -1].bool()


def _tensors(state: dict) -> Iterator[torch.Tensor]:
    """The tensors of a broadcast state (model state dict, Adam state) in an order every rank agrees on."""
    yield from state["model"].values()
    for index in sorted(state["optimizer"]["state"]):
        entry = state["optimizer"]["state"][index]
        yield from (entry[key] for key in sorted(entry))


def broadcast_state(world: World, state: dict, owner: int, device: torch.device) -> dict:
    """Rank `owner`'s broadcast state on every rank, sent as one flat float64 tensor (exact for float32/64 weights
    and integer counters). Each rank passes a state of the same structure; the others' values are replaced."""
    if not world.launched:
        return state
    tensors = list(_tensors(state))
    flat = torch.cat([t.detach().to(device, torch.float64).reshape(-1) for t in tensors])
    dist.broadcast(flat, src=owner)
    if world.rank == owner:
        return state
    values = iter(flat.split([t.numel() for t in tensors]))
    received = {id(t): next(values).to(t.device, t.dtype).reshape(t.shape) for t in tensors}
    return {
        "model": {name: received[id(t)] for name, t in state["model"].items()},
        "optimizer": {
            "state": {index: {key: received[id(t)] for key, t in entry.items()} for index, entry in state["optimizer"]["state"].items()},
            "param_groups": state["optimizer"]["param_groups"],
        },
    }


def broadcast_winner(world: World, population, best: int, population_size: int, device: torch.device) -> None:
    """Make child `best`, trained on whichever rank, the starting point of the next epoch on every rank."""
    owner = world.owner(best, population_size)
    # elsewhere the rank's own first child serves as a state of the same structure to receive into
    population.broadcast(best - world.block(population_size).start if owner == world.rank else 0)
    population.broadcast_state = broadcast_state(world, population.broadcast_state, owner, device)


def quiet_other_ranks(world: World) -> None:
    """Only rank 0 writes: the other ranks drop Hydra's log file handler and print warnings and errors only."""
    if world.main:
        return
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()
    log.setLevel(logging.WARNING)
