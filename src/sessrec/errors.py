"""The one exception type users see: a problem with their input, said in one line."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class SessrecError(Exception):
    """Bad input or configuration. The CLI prints the message on one line and exits with code 2."""


class EveryProcessError(SessrecError):
    """A refusal of the command or its options that every process of a launched (torchrun) run meets alike: only
    rank 0 prints it, once for the run."""


def listed(values: Sequence[Any], limit: int, show: Callable[[Any], str] = str, sep: str = ", ") -> str:
    """The first ``limit`` of ``values`` and how many more there are, for a one-line message."""
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return sep.join(map(show, values[:limit])) + more
