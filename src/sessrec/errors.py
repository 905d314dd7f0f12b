"""The one exception type users see: a problem with their input, said in one line; and the warnings said once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

log = logging.getLogger(__name__)
_warned: set[str] = set()


def warn_once(message: str) -> None:
    """Log ``message`` as a warning the first time it is given in this process."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


class SessrecError(Exception):
    """Bad input or configuration. The CLI prints the message on one line and exits with code 2."""


class EveryProcessError(SessrecError):
    """A refusal of the command or its options that every process of a launched (torchrun) run meets alike: only
    rank 0 prints it, once for the run."""


def listed(values: Sequence[Any], limit: int, show: Callable[[Any], str] = str, sep: str = ", ") -> str:
    """The first ``limit`` of ``values`` and how many more there are, for a one-line message."""
    more = f" and {len(values) - limit} more" if len(values) > limit else ""
    return sep.join(map(show, values[:limit])) + more
