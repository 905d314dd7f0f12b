"""What a launcher (``torchrun``) tells a process through its environment: whether it is one of
several processes of a distributed run, and its place there. No torch here: the command line asks
before it imports anything heavy."""

from __future__ import annotations

import os
from pathlib import Path

from sessrec.errors import SessrecError


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SessrecError(f"{name}={value!r} (set by the launcher) is not a whole number") from None


def launched() -> bool:
    """Whether a launcher started this process as one of several (``WORLD_SIZE`` > 1)."""
    return _int("WORLD_SIZE", 1) > 1


def rank() -> int:
    """``RANK`` of a launched process (0 otherwise): rank 0 alone writes a run's files."""
    return _int("RANK", 0) if launched() else 0


def local_rank() -> int | None:
    """``LOCAL_RANK`` of a launched process (its GPU on this machine), else None."""
    return _int("LOCAL_RANK", 0) if launched() and "LOCAL_RANK" in os.environ else None


def resume_command(out_dir: str | Path, processes: int = 1) -> str:
    """How a stopped run continues, whichever script started it: ``sessrec run --resume`` (the paper scripts have no
    --resume), under the same launch for a distributed run (the number of processes sets the sessions of a step)."""
    if processes == 1:
        return f"`sessrec run --resume --output-dir {out_dir}`"
    return (f"torchrun launched as before ({processes} processes) running `-m sessrec run --resume --output-dir "
            f"{out_dir}`")
