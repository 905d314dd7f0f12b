"""Non-transformer baselines under the same protocol, looked up by name.

Each entry builds a learner (``fit_window`` / ``score``, see :mod:`sessrec.learners`) from the
experiment config and the schema; hyper-parameters come from ``cfg.baseline_params``.
"""

from __future__ import annotations

from collections.abc import Callable

from sessrec.baselines.gru4rec import build as build_gru4rec
from sessrec.baselines.pop import MostPopular
from sessrec.baselines.stan import build_stan, build_vstan
from sessrec.baselines.vsknn import build as build_vsknn

BASELINES: dict[str, Callable] = {
    "pop": MostPopular,
    "vsknn": build_vsknn,
    "stan": build_stan,
    "vstan": build_vstan,
    "gru4rec": build_gru4rec,
}
