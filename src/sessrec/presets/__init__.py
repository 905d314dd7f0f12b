"""The paper's best configuration of every experiment group, as YAML files: ``<data set>/<group>.yaml``.

``sessrec run --preset rees46/xlnet-mlm --data-path DATA`` runs one; ``sessrec run --list-presets``
lists them. The files are written from the 65 published command lines by
``scripts/make_presets.py`` (a test checks they match). ``recent/`` holds hand-written presets of
models published after the paper (``recent/sasrec-plus``, ``recent/gsasrec``). Precedence in ``sessrec run``: defaults,
then the preset, then ``--config``, then flags.
"""

from __future__ import annotations

import difflib
from importlib import resources
from typing import Any

import yaml

from sessrec.errors import SessrecError


def list_presets() -> list[str]:
    """Every preset name, ``data set/group``, sorted."""
    root = resources.files(__name__)
    return sorted(f"{d.name}/{f.name[:-5]}" for d in root.iterdir() if d.is_dir() and not d.name.startswith("_")
                  for f in d.iterdir() if f.name.endswith(".yaml"))


def load_preset(name: str) -> dict[str, Any]:
    """The config keys of a preset; an unknown name is a one-line error with the closest names."""
    names = list_presets()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise SessrecError(f"unknown preset '{name}'{hint}; 'sessrec run --list-presets' lists them")
    dataset, group = name.split("/")
    return yaml.safe_load(resources.files(__name__).joinpath(dataset, f"{group}.yaml").read_text())


def describe(name: str) -> str:
    """The preset's first comment line: the paper's title of its group."""
    dataset, group = name.split("/")
    first = resources.files(__name__).joinpath(dataset, f"{group}.yaml").read_text().splitlines()[0]
    return first.lstrip("# ").strip()
