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

# The typed hyper-parameters of each baseline that has some (module, dataclass).
_PARAMS = {"vsknn": ("vsknn", "VSKNNParams"), "stan": ("stan", "STANParams"), "vstan": ("stan", "VSTANParams"),
           "gru4rec": ("gru4rec", "GRU4RecParams")}


def parse_baseline_params(model: str, values: dict) -> object:
    """``values`` checked as ``model``'s parameters (one-line errors naming the parameter), without
    building the baseline; the tuner checks a search space with it."""
    from sessrec.baselines.params import parse_params

    refuse_params(model, values)
    module, name = _PARAMS[model]
    return parse_params(getattr(importlib.import_module(f"sessrec.baselines.{module}"), name), values, model)


def refuse_params(model: str, values: dict) -> None:
    """A one-line error for parameters (``values``, possibly none) of a baseline that takes none."""
    from sessrec.errors import SessrecError

    if model not in _PARAMS:
        got = f" (got {', '.join(map(str, values))})" if values else ""
        raise SessrecError(f"baseline '{model}' takes no baseline_params{got}")
