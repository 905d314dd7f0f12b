"""The study's sampler: Optuna's TPE, its random draws made a function of the study's history.

A TPE sampler's random state moves with every trial a process runs, so a study killed and run again
drew other parameters than one left alone (seeding each invocation anew did not help: its state then
depended on how many trials the killed process had run). Here each trial gets a fresh TPE sampler
seeded with the seed and the number of trials the study has settled (finished, or failed other than by
an interruption): a continued study draws what an uninterrupted one would have, with one worker.
Imported only by ``sessrec tune`` (it imports optuna).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, TPESampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState


def settled(study: Study) -> int:
    """Trials that count for the draws: finished ones, and failures that were not interruptions (an interrupted
    trial is queued again with its parameters, and its retry counts once it ends)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    return sum(1 for t in trials if not (t.state == TrialState.FAIL and t.user_attrs.get("interrupted")))


class HistorySeededTPE(BaseSampler):
    """:class:`~optuna.samplers.TPESampler` (``tpe_options``) seeded per trial by ``(seed, settled trials)``."""

    def __init__(self, seed: int, **tpe_options: Any) -> None:
        self._seed, self._options = seed, tpe_options
        self._tpe = TPESampler(seed=seed, **tpe_options)

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        state = np.random.SeedSequence([self._seed, settled(study)]).generate_state(1)[0]
        self._tpe = TPESampler(seed=int(state), **self._options)
        self._tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._tpe.sample_relative(study, trial, search_space)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._tpe.reseed_rng()
