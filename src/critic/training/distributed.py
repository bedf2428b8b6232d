"""Data-parallel training across processes: what torchrun (or SageMaker) tells a process, and
the few collective operations the training loop needs.

``torchrun --nproc_per_node N -m critic.cli train ...`` starts N copies of ``critic train``,
each with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT`` set. :func:`session` joins them into one process group (gloo on the CPU, nccl
on GPUs); the training loop then splits every batch across the ranks, averages gradients
(DistributedDataParallel) and sums its counts here, so every rank takes the same decisions
(early stopping, time budget) and ends with the same weights. Without those variables, or
with ``WORLD_SIZE=1``, everything here is a no-op and training runs as one process.
"""

from __future__ import annotations

import gc
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist

from critic.data.batches import EncodedSplit
from critic.errors import CriticError
from critic.system import available_cores

VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
TIMEOUT = timedelta(minutes=30)
"""How long a rank waits for the others at a collective: data preparation on rank 0 included."""


@dataclass(frozen=True)
class Processes:
    """Where this process stands among the ones training together."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    """Its rank on its own machine: which GPU it takes."""
    local_world_size: int = 1
    """How many of them share its machine: they share its cores too."""

    @property
    def active(self) -> bool:
        """Whether there is more than one process (a process group to join)."""
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that logs, writes checkpoints and writes the bundle."""
        return self.rank == 0


def from_environment(environ: dict[str, str] | None = None) -> Processes:
    """The ranks torchrun set in the environment; one process when it set none."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:
        return Processes()
    values = {}
    for name in VARIABLES:
        text = environ.get(name, "1" if name == "LOCAL_WORLD_SIZE" else "0")
        try:
            values[name.lower()] = int(text)
        except ValueError:
            raise CriticError(f"{name}={text!r} must be an integer (torchrun sets it)") from None
    processes = Processes(**values)
    if not 0 <= processes.rank < processes.world_size:
        raise CriticError(f"RANK={processes.rank} is outside WORLD_SIZE={processes.world_size}")
    return processes


def is_main_process() -> bool:
    """Whether this process writes what a run leaves behind (rank 0, or the only process)."""
    return from_environment().main


@contextmanager
def session(processes: Processes, *, cuda: bool) -> Iterator[Processes]:
    """Join the process group for the body (a no-op for one process), with the CPU threads
    shared out; everyone meets at a barrier at the end, then the group is left."""
    if not processes.active:
        yield processes
        return
    missing = [name for name in ("MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise CriticError(
            f"WORLD_SIZE={processes.world_size} but {' and '.join(missing)} not set: start "
            "the processes with torchrun"
        )
    if cuda:
        torch.cuda.set_device(processes.local_rank)
    # Processes on one machine share its cores: N processes with all cores each would fight
    # over them (torchrun's own default, OMP_NUM_THREADS=1, idles all but N cores).
    torch.set_num_threads(max(1, available_cores() // processes.local_world_size))
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        rank=processes.rank,
        world_size=processes.world_size,
        timeout=TIMEOUT,
    )
    try:
        yield processes
        dist.barrier()  # nobody leaves, and no bundle is written, before every rank is done
    finally:
        # A DistributedDataParallel wrapper left in a reference cycle keeps gloo's work (and
        # its tensors) alive until the interpreter's own teardown, where freeing them can
        # abort the process ("terminate called without an active exception", seen once in a
        # loaded CI run on rank 1 after its training had finished): free it while the
        # interpreter is whole, then leave the group.
        gc.collect()
        dist.destroy_process_group()


@contextmanager
def main_first(processes: Processes) -> Iterator[None]:
    """Rank 0 runs the body first (filling a cache, repairing a checkpoint), then the others:
    they find its work done instead of racing it."""
    if processes.active and not processes.main:
        dist.barrier()
    yield
    if processes.active and processes.main:
        dist.barrier()


def all_sum(values: list[float], processes: Processes, device: torch.device) -> list[float]:
    """Each value summed over the ranks (the values themselves for one process)."""
    return _reduce(values, processes, device, dist.ReduceOp.SUM)


def all_max(values: list[float], processes: Processes, device: torch.device) -> list[float]:
    """Each value's largest over the ranks: the slowest rank's time is the run's time."""
    return _reduce(values, processes, device, dist.ReduceOp.MAX)


def _reduce(values, processes, device, op) -> list[float]:
    if not processes.active:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=op)
    return tensor.tolist()


def broadcast_parameters(module: torch.nn.Module, processes: Processes) -> None:
    """Every rank's parameters set to rank 0's (what DDP does when it wraps a model)."""
    if not processes.active:
        return
    for parameter in module.parameters():
        dist.broadcast(parameter.data, src=0)


def average_gradients(module: torch.nn.Module, processes: Processes) -> None:
    """Each parameter's gradient averaged over the ranks, in one all-reduce.

    For a module trained for a while beside the model DDP wraps (language-model pre-training):
    a second DDP over shared parameters would leave its hooks on them. A parameter without a
    gradient on this rank counts as zero.
    """
    if not processes.active:
        return
    parameters = list(module.parameters())
    for parameter in parameters:
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
    flat = torch.cat([p.grad.reshape(-1) for p in parameters])
    dist.all_reduce(flat)
    flat /= processes.world_size
    offset = 0
    for parameter in parameters:
        size = parameter.numel()
        parameter.grad.copy_(flat[offset : offset + size].view_as(parameter))
        offset += size


def shard(split: EncodedSplit, processes: Processes) -> EncodedSplit:
    """This rank's share of a split (every ``world_size``-th review): for evaluating it once
    across the ranks instead of once on each."""
    if not processes.active:
        return split
    keep = np.arange(processes.rank, len(split), processes.world_size)
    return EncodedSplit.from_lists(
        [split.review(int(i)) for i in keep], split.labels[keep], split.ratings[keep]
    )


def weights_checksum(model: torch.nn.Module) -> str:
    """A short hash of the model's weights: equal on every rank when they stayed in step."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def data_parallel(
    model: torch.nn.Module, processes: Processes, device: torch.device
) -> torch.nn.Module:
    """The model as the training step should call it: wrapped in DistributedDataParallel
    (which starts every rank from rank 0's weights and averages the gradients of each step)
    when there are several processes, else the model itself."""
    if not processes.active:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)
