"""Scale-out on ``torch.distributed``: the process group of a ``torchrun`` launch and what the
training and evaluation loops need of it.

``torchrun`` starts one process per rank and tells each, in environment variables, its
``RANK`` (``0 … WORLD_SIZE − 1``), its ``LOCAL_RANK`` on its node and where the rendezvous is
(``MASTER_ADDR``/``MASTER_PORT``). :func:`init_from_env` joins that group — gloo for CPU ranks,
NCCL for CUDA ranks, one device per rank (``cuda:LOCAL_RANK``) — and is a no-op in a plain
process. Every helper below is then the identity of a single process when no group is active,
so that the loops call them unconditionally:

* :func:`rank`, :func:`world_size`, :func:`is_main` (rank 0, the one that logs and writes files),
  :func:`rank_device`;
* :func:`from_main`: compute something once, on rank 0 (read a checkpoint, check outputs,
  validate), and hand the result — or the exception — to every rank, so that all ranks take
  the same branch and a refusal on rank 0 stops them all, not only rank 0;
* :func:`any_rank`, :func:`mean_over_ranks`, :func:`gather_rows`: the collectives of the loops;
* :func:`derived_seed`: independent, reproducible seeds from tuples of integers (run seed, step,
  rank; point seed, chunk), so that what a rank draws depends on where it is in the run and not
  on what it drew before — which is what lets a run resume with another world size, and lets
  rank ``r`` draw chunk ``k`` of a Monte-Carlo stream without drawing chunks ``0 … k − 1``.

A rank that dies makes the collectives of the others fail (gloo: the connection closes; NCCL:
its watchdog times out); :data:`PEER_FAILURES` are the exceptions they raise, and
:func:`ends_if_a_rank_dies` turns them into a clean exit that says what is left.
"""
from __future__ import annotations

import contextlib
import datetime
import hashlib
import os
import sys
from typing import Callable, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

T = TypeVar("T")

#: what a collective raises when another rank is gone (gloo raises plain RuntimeErrors)
PEER_FAILURES = (dist.DistError, RuntimeError)
#: how long a rank waits in a collective for the others (a validation on rank 0 included)
TIMEOUT = datetime.timedelta(minutes=30)


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (it sets ``RANK`` and ``WORLD_SIZE``)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def active() -> bool:
    """Whether this process belongs to an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0: the rank that logs, validates and writes checkpoints and result files."""
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def rank_device(device: str | torch.device) -> torch.device:
    """This rank's device: ``cuda:LOCAL_RANK`` for ``"cuda"`` in a launched group, else ``device``.

    Raises:
        ValueError: for a numbered CUDA device (``cuda:1``) in a group of several ranks: every
            rank would use that one GPU.
    """
    device = torch.device(device)
    if device.type != "cuda" or not launched():
        return device
    if device.index is not None and int(os.environ["WORLD_SIZE"]) > 1:
        raise ValueError(f"device {str(device)!r}: under torchrun each rank takes its own GPU "
                         "(cuda:LOCAL_RANK); give --device cuda")
    return torch.device("cuda", local_rank())


def init_from_env(device: str | torch.device) -> None:
    """Join the process group of a ``torchrun`` launch (module doc); nothing in a plain process.

    The backend follows the device: NCCL for CUDA (after binding this process to its GPU), gloo
    for the CPU.
    """
    if not launched() or active():
        return
    device = rank_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)


def shutdown() -> None:
    """Leave the process group (if any)."""
    if active():
        dist.destroy_process_group()


@contextlib.contextmanager
def ends_if_a_rank_dies(left: Callable[[], str]):
    """In a process group, a collective that fails because another rank is gone ends this rank with
    exit status 1 and the message ``another rank is gone; {left()}`` (what the run leaves behind)."""
    try:
        yield
    except PEER_FAILURES as error:
        if not active():
            raise
        print(f"rank {rank()}: {type(error).__name__}: {str(error)[:300]}\nanother rank is gone; {left()}",
              file=sys.stderr)
        raise SystemExit(1) from None


def _communication_device() -> torch.device:
    """Where collective tensors live: the rank's GPU under NCCL, the CPU under gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def from_main(compute: Callable[[], T]) -> T:
    """``compute()`` run on rank 0 only, its result (plain picklable data) returned on every rank;
    an exception (or ``SystemExit``) it raises is raised on every rank."""
    if not active():
        return compute()
    outcome: list = [None]
    if is_main():
        try:
            outcome = [(True, compute())]
        except (Exception, SystemExit) as error:
            outcome = [(False, error)]
    dist.broadcast_object_list(outcome, src=0, device=_communication_device())
    succeeded, value = outcome[0]
    if not succeeded:
        raise value
    return value


def any_rank(flag: bool) -> bool:
    """Whether ``flag`` is true on some rank (a stop request: every rank stops at the same step)."""
    if not active():
        return flag
    value = torch.tensor([float(flag)], device=_communication_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_over_ranks(value: float) -> float:
    """The mean of ``value`` over the ranks (e.g. the training loss of the global batch)."""
    if not active():
        return value
    total = torch.tensor([value], dtype=torch.float64, device=_communication_device())
    dist.all_reduce(total)
    return float(total.item()) / world_size()


def gather_rows(rows: Tensor) -> Tensor:
    """``[N, *rows.shape]``: every rank's ``rows`` (same shape and dtype on every rank), by rank."""
    if not active():
        return rows[None]
    device = _communication_device()
    parts = [torch.empty_like(rows, device=device) for _ in range(world_size())]
    dist.all_gather(parts, rows.to(device))
    return torch.stack(parts).to(rows.device)


def derived_seed(*parts: int) -> int:
    """A 63-bit seed determined by the integers ``parts`` (BLAKE2b of their decimal digits):
    distinct tuples give unrelated seeds, the same tuple the same seed on every machine."""
    digest = hashlib.blake2b(":".join(str(int(p)) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def share(total: int, name: str = "batch_size") -> int:
    """This rank's part of a global count ``total`` split evenly over the ranks.

    Raises:
        ValueError: naming ``name`` when the world size does not divide ``total`` (unequal parts
            would weigh the ranks' gradients unequally in DDP's average).
    """
    world = world_size()
    if total % world:
        raise ValueError(f"{name} {total} is split over {world} ranks: it must be a multiple of {world}")
    return total // world
