"""Stopping a run cleanly on SIGTERM or SIGINT (Ctrl-C), e.g. when a cluster preempts a job.

Inside :func:`stop_on_signals` the first signal only asks the run to stop: the process goes on
to its next safe point (after the current training step, between evaluation batches, or at the
end of the window for learners that cannot checkpoint inside one), saves a checkpoint there and
exits with 128 + the signal number (143 for SIGTERM, 130 for SIGINT), as a process killed by the
signal would. A second signal stops at once: :class:`RunInterrupted` is raised wherever the
process is, temporary files are removed on the way out, and the newest complete checkpoint stays
(checkpoints and result files are only ever replaced by renaming a complete copy over them).
A signal that arrives after the last safe point is not lost: the run ends complete, then stops
the process the same way (a tuning study does not go on to its next trial).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)

_requested: int | None = None  # the first signal received inside stop_on_signals()


class StopRequested(Exception):
    """Raised at a safe point (between two training steps or evaluation batches) once a stop was
    requested by signal ``signum``; the experiment loop catches it and checkpoints the run where
    it stands. (In a distributed run every process raises it at the same point, with the signal
    they agreed on, received by one of them at least.)"""

    def __init__(self, where: str, signum: int):
        super().__init__(where)
        self.signum = signum


class RunInterrupted(KeyboardInterrupt):
    """The run stopped on a signal. ``exit_code`` is 128 + the signal number; the message says what
    was saved and how to continue. A ``KeyboardInterrupt``, so code that handles Ctrl-C handles it."""

    def __init__(self, signum: int, message: str, quiet: bool = False):
        super().__init__(message)
        self.signum = signum
        self.exit_code = 128 + signum
        self.quiet = quiet  # another process of a distributed run says it (the command line prints nothing)


def signal_name(signum: int) -> str:
    return signal.Signals(signum).name


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within this block SIGTERM stops the process as Ctrl-C does (:class:`RunInterrupted`, exit 143): the command's
    clean-up runs (``prepare`` removes its temporary folder) and the stop is said, where the default action ended the
    process silently. A run's :func:`stop_on_signals` replaces it while it trains. Only in the main thread, and only
    where SIGTERM has its default action (a handler of an embedding program is kept)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handle(signum: int, frame) -> None:
        raise RunInterrupted(signum, f"stopped by {signal_name(signum)}")

    signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop_requested() -> int | None:
    """The signal that asked the run to stop, or None. Cheap: read once per training step."""
    return _requested


@contextlib.contextmanager
def stop_on_signals(checkpoint: bool = True) -> Iterator[None]:
    """Within this block SIGTERM and SIGINT request a stop (see the module docstring; ``checkpoint``: whether
    the run saves one there, for the message) instead of
    ending the process. Only in the main thread (the only one Python delivers signals to), and a
    signal the process was started ignoring (SIGINT for a job started with ``&`` from a script)
    stays ignored."""
    global _requested
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in SIGNALS}

    def handle(signum: int, frame) -> None:
        global _requested
        name = signal_name(signum)
        if _requested is not None:
            raise RunInterrupted(signum, f"stopped at once by a second {name}; the newest complete checkpoint is kept")
        _requested = signum
        # os.write, not print or logging: the handler may run while the main thread is inside a write to stderr
        saving = " with a checkpoint" if checkpoint else ""
        os.write(2, f"sessrec: {name} received: stopping at the next safe point{saving} "
                    f"(send it again to stop at once)\n".encode())

    _requested = None
    installed = [s for s in SIGNALS if previous[s] is not signal.SIG_IGN]
    for s in installed:
        signal.signal(s, handle)
    pending = None
    try:
        yield
        pending = _requested  # a signal that came after the last safe point: nothing acted on it yet
    finally:
        for s in installed:
            signal.signal(s, signal.SIG_DFL if previous[s] is None else previous[s])  # None: a handler set outside Python
        _requested = None
    if pending is not None:  # not swallowed: the caller (a tuning study, a script) must stop too
        raise RunInterrupted(pending, f"{signal_name(pending)} received after the run's last safe point: the run is "
                                      "complete and its outputs are written; stopping as asked")
