"""Where progress bars are drawn: on a terminal and in a notebook, not into a log file (its carriage-return
redraws, ten a second, and the next line glued to the bar's text)."""

from __future__ import annotations

import sys


def bar_disabled(quiet: bool) -> bool | None:
    """tqdm's ``disable`` for a bar on stderr: True when ``quiet``; else None, tqdm's "off where the stream is not a
    terminal", except in a Jupyter kernel, whose stream is no terminal yet shows bars (False)."""
    if quiet:
        return True
    return False if "ipykernel" in sys.modules else None
