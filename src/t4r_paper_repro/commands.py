"""The paper's published command lines, as a file lists them (``tests/data/paper_commands.txt``):
a ``# DATA SET | GROUP | MODEL`` title line before each ``... python3 -m MODULE ARGS`` line."""

from __future__ import annotations

import shlex
from pathlib import Path


def read_commands(path: str | Path) -> list[tuple[str, str, list[str]]]:
    """(title, original module, arguments) of every command in the file, in order."""
    commands, title = [], ""
    for line in Path(path).read_text().splitlines():
        if line.startswith("# ") and "|" in line:
            title = line[2:].strip()
        elif "python3 -m" in line:
            tokens = shlex.split(line)
            i = tokens.index("-m")
            commands.append((title, tokens[i + 1], tokens[i + 2:]))
    return commands
