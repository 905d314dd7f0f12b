"""The command lines of the Transformers4Rec paper (RecSys'21), run unchanged by sessrec.

* ``python -m t4r_paper_repro.transf_exp_main ARGS``: the Transformer and GRU commands (the
  released example's ``transf_exp_main`` and the original ``hf4rec.recsys_main``);
* ``python -m t4r_paper_repro.baselines_main ARGS``: the baseline commands (the original
  ``hf4rec.baselines.recsys_baselines_main``).

Both only translate arguments (``arguments.py``) into one :class:`sessrec.config.ExperimentConfig`
and call :func:`sessrec.experiment.run_experiment`: no second implementation of anything.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Collection

_DASHED = re.compile(r"--([a-z0-9]+(?:-[a-z0-9]+)+)")


def entry_point(prog: str, run: Callable[[list[str]], int], argv: list[str] | None, names: Collection[str] = ()) -> int:
    """Run a script's ``run(argv)`` with sessrec's logging; errors become one line on stderr (exit 2), naming the
    script's own flags (``names``) where sessrec's message names its command line's (``--overwrite-output-dir``)."""
    from sessrec.cli import run_guarded, setup_process
    from sessrec.errors import SessrecError

    def translated() -> int:
        try:
            return run(sys.argv[1:] if argv is None else argv)
        except SessrecError as e:
            e.args = (script_flags(str(e), names),)
            raise

    setup_process()
    return run_guarded(prog, translated)


def script_flags(message: str, names: Collection[str]) -> str:
    """``message`` with sessrec's dashed flags written as the script's (``--output-dir`` → ``--output_dir``) where the
    script has that argument; a quoted command (between backquotes, such as a ``sessrec run`` line) is kept."""
    parts = message.split("`")
    for i in range(0, len(parts), 2):  # outside backquotes
        parts[i] = _DASHED.sub(lambda m: f"--{m[1].replace('-', '_')}" if m[1].replace("-", "_") in names else m[0],
                               parts[i])
    return "`".join(parts)


def print_notes(prog: str, notes: list[str]) -> None:
    """The once-per-run reports on arguments that cannot apply here."""
    for note in notes:
        print(f"{prog}: {note}", file=sys.stderr)
