"""The command lines of the Transformers4Rec paper (RecSys'21), run unchanged by sessrec.

* ``python -m t4r_paper_repro.transf_exp_main ARGS``: the Transformer and GRU commands (the
  released example's ``transf_exp_main`` and the original ``hf4rec.recsys_main``);
* ``python -m t4r_paper_repro.baselines_main ARGS``: the baseline commands (the original
  ``hf4rec.baselines.recsys_baselines_main``).

Both only translate arguments (``arguments.py``) into one :class:`sessrec.config.ExperimentConfig`
and call :func:`sessrec.experiment.run_experiment`: no second implementation of anything.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def entry_point(prog: str, run: Callable[[list[str]], int], argv: list[str] | None) -> int:
    """Run a script's ``run(argv)`` with sessrec's logging; errors become one line on stderr (exit 2)."""
    from sessrec.cli import run_guarded, setup_process

    setup_process()
    return run_guarded(prog, lambda: run(sys.argv[1:] if argv is None else argv))


def print_notes(prog: str, notes: list[str]) -> None:
    """The once-per-run reports on arguments that cannot apply here."""
    for note in notes:
        print(f"{prog}: {note}", file=sys.stderr)
