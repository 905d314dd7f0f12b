"""Non-transformer baselines under the same protocol, looked up by name.

Each entry builds a learner (``fit_window`` / ``score``, see :mod:`sessrec.learners`) from the
experiment config and the schema; hyper-parameters come from ``cfg.baseline_params``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable


def _lazy(module: str, name: str) -> Callable:
    """``module.name``, imported when first called: a Transformer run need not load the kNN code and SciPy."""

    def build(*args, **kwargs):
        return getattr(importlib.import_module(f"sessrec.baselines.{module}"), name)(*args, **kwargs)

    build.__name__ = build.__qualname__ = name
    return build


BASELINES: dict[str, Callable] = {
    "pop": _lazy("pop", "MostPopular"),
    "vsknn": _lazy("vsknn", "build"),
    "stan": _lazy("stan", "build_stan"),
    "vstan": _lazy("stan", "build_vstan"),
    "gru4rec": _lazy("gru4rec", "build"),
}
