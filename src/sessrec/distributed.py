"""Data-parallel runs: the processes ``torchrun`` starts, joined in one PyTorch process group.

A run is distributed when a launcher set ``WORLD_SIZE`` > 1 (``torchrun`` sets it with
``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``); otherwise :data:`SINGLE`
stands in and every collective below is the identity, so one code path serves both. The
group is PyTorch's own (``gloo`` on the CPU, ``nccl`` on CUDA); gradients are all-reduced by
``DistributedDataParallel``. What this module adds is what a run needs around it:

* agreement: every process stops at the same step when a signal asks one of them to (a signal
  reaches the processes of a job at slightly different times), and sees the same mean loss, so
  a non-finite loss stops every one of them at once;
* rank 0 alone writes: :meth:`Group.together` runs a block on every process and, if it fails on
  one (a full disk on rank 0), stops the others too, quietly, instead of leaving them waiting;
* failures said in one line: a process that died, was killed or hangs makes the collectives of
  the others fail (at once for a closed connection, after ``ddp_timeout`` seconds for a silent
  peer); :meth:`Group.failures_said` turns that into one :class:`PeerLost` line.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from sessrec.errors import SessrecError
from sessrec.launch import launched, resume_command
from sessrec.runtime import resolve_device
from sessrec.stopping import stop_requested

T = TypeVar("T")

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class PeerLost(SessrecError):
    """A collective failed: another process of the run died, was killed, or stopped answering."""


class CollectiveFailed(RuntimeError):
    """A collective of :class:`Group` raised (its backend's error, as it was)."""


@contextlib.contextmanager
def _collective() -> Iterator[None]:
    try:
        yield
    except RuntimeError as e:
        raise CollectiveFailed(str(e)) from e


class Echo(SessrecError):
    """An error said by another process: one that failed inside :meth:`Group.together`, or rank 0
    for an error every process meets alike. This one only stops; the command line prints nothing
    for it (the other process's line is the message)."""

    echo = True


def rank_seed(seed: int, rank: int) -> int:
    """A seed of one process's own random streams (masking, dropout, SSE), well apart for every (seed, rank)."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint64)[0] >> 1)


@dataclass
class Group:
    """This process's place in the run: ``rank`` of ``size`` processes; ``comm_device`` holds the
    tensors of collectives (the GPU with ``nccl``, the CPU with ``gloo``)."""

    rank: int = 0
    size: int = 1
    comm_device: torch.device = torch.device("cpu")
    timeout_s: float = 0.0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- agreement ------------------------------------------------------------------------------
    def stop_signal(self) -> int | None:
        """The signal that asked the run to stop, as agreed by every process (the highest number of
        those any of them received), or None. A collective: every process calls it at the same point."""
        local = stop_requested()
        if not self.distributed:
            return local
        t = torch.tensor([local or 0], dtype=torch.int64, device=self.comm_device)
        with _collective():
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item()) or None

    def mean_and_stop(self, value: torch.Tensor) -> tuple[float, int | None]:
        """(the mean over the processes of a scalar such as the step's loss, :meth:`stop_signal`) in
        one collective. NaN on one process makes the mean NaN on all."""
        if not self.distributed:
            return float(value), stop_requested()
        mine = torch.stack([value.detach().to(self.comm_device, torch.float64),
                            torch.tensor(float(stop_requested() or 0), dtype=torch.float64, device=self.comm_device)])
        parts = [torch.empty_like(mine) for _ in range(self.size)]
        with _collective():
            dist.all_gather(parts, mine)
        every = torch.stack(parts).cpu()
        return float(every[:, 0].mean()), int(every[:, 1].max()) or None

    def broadcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every process (picklable objects)."""
        if not self.distributed:
            return obj
        box = [obj]
        with _collective():
            dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather(self, obj: T) -> list[T]:
        """Every process's ``obj``, by rank."""
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.size
        with _collective():
            dist.all_gather_object(out, obj)
        return out

    def _anyone(self, flag: bool) -> bool:
        t = torch.tensor([int(flag)], dtype=torch.int64, device=self.comm_device)
        with _collective():
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """Run a block on every process (rank 0's writes, say); when it fails on one, the others stop
        too, raising :class:`Echo`, instead of waiting for it at their next collective. The block
        must hold no collective of its own."""
        if not self.distributed:
            yield
            return
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):
                self._anyone(True)
            raise
        if self._anyone(False):
            raise Echo("another process of the distributed run stopped with an error (it printed it)")

    def on_main(self, fn: Callable[[], T]) -> T | None:
        """``fn()`` on rank 0 (None elsewhere), within :meth:`together`."""
        with self.together():
            return fn() if self.is_main else None

    # ---- failures -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def failures_said(self, resume_hint: Callable[[], str | None] = lambda: None) -> Iterator[None]:
        """Turn the failure of a collective (another process gone or silent) into one :class:`PeerLost` line."""
        try:
            yield
        except Exception as e:
            if not self.distributed or not is_comm_failure(e):
                raise
            hint = resume_hint()
            then = f"; the newest complete checkpoint is kept: continue with {resume_command(hint, self.size)}" if hint else ""
            raise PeerLost(f"process {self.rank} of {self.size} lost contact with the other processes of the run "
                           f"({short_reason(e)}): one of them died, was killed or did not answer within --ddp-timeout "
                           f"({self.timeout_s:g} s); stopping{then}") from None


# What the backends' errors say when a collective cannot complete (gloo and NCCL, torch 2.13)
_COMM_PHRASES = ("gloo", "NCCL", "ProcessGroup", "pair closure", "Connection reset", "Connection closed",
                 "Timed out waiting", "Broken pipe")


def is_comm_failure(e: BaseException) -> bool:
    """Whether ``e`` comes from a collective that could not complete: one of :class:`Group`, or
    ``DistributedDataParallel``'s gradient all-reduce, which fails inside ``backward()``. PyTorch
    raises ``DistError`` for many, but the gloo transport's errors (a connection reset or closed by
    a peer that died, a timeout) come as plain ``RuntimeError``: those are known by their text."""
    if isinstance(e, (CollectiveFailed, dist.DistError)):
        return True
    return isinstance(e, RuntimeError) and not isinstance(e, torch.OutOfMemoryError) and any(
        phrase in str(e) for phrase in _COMM_PHRASES)


def short_reason(e: BaseException) -> str:
    """The backend's message on one line, without its source location and advice."""
    text = " ".join(str(e).split())
    text = re.sub(r"\[[^\]]*\.(?:cc|cpp|h):\d+\]\s*", "", text)
    return text.split(". This is typically")[0].rstrip(".")[:200]


SINGLE = Group()
_current = SINGLE


def current() -> Group:
    """The group of this process: :data:`SINGLE` until :func:`init` joined a distributed run."""
    return _current


def init(device: str, timeout_s: float) -> Group:
    """Join the process group of a launched run (once per process; a group already set up by the
    caller is used as it is): ``nccl`` when ``device`` resolves to CUDA, ``gloo`` otherwise, a
    collective failing after ``timeout_s`` seconds without an answer. Outside a launched run:
    :data:`SINGLE`."""
    global _current
    if not launched() and not dist.is_initialized():
        return SINGLE
    if not dist.is_initialized():
        missing = [v for v in ENV_VARS if not os.environ.get(v)]
        if missing:
            raise SessrecError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} says this is one process of a distributed run, "
                               f"but {', '.join(missing)} is not set: start the run with torchrun "
                               "(README 'Distributed training')")
        where = resolve_device(device)
        backend = "nccl" if where.type == "cuda" else "gloo"
        if where.type == "cuda":
            torch.cuda.set_device(where)
        try:
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
        except (RuntimeError, ValueError) as e:
            raise SessrecError(f"cannot join the distributed run as rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']} "
                               f"at {os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} ({backend}): {short_reason(e)}") from None
    nccl = dist.get_backend() == "nccl"
    comm = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
    _current = Group(dist.get_rank(), dist.get_world_size(), comm, timeout_s)
    return _current


def joined() -> bool:
    """Whether this process has joined a process group."""
    return dist.is_initialized()


def shutdown() -> None:
    """Leave the process group (at the end of a command that succeeded)."""
    global _current
    if dist.is_initialized():
        dist.destroy_process_group()
    _current = SINGLE
