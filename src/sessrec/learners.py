"""What the experiment loop trains and scores: a neural session model or a baseline, by name."""

from __future__ import annotations

from typing import Protocol

import torch

from sessrec.config import ExperimentConfig
from sessrec.data.loader import Batch, SessionTensors
from sessrec.errors import SessrecError
from sessrec.schema import Schema


class Learner(Protocol):
    """Trained window by window; scores the item following each session prefix."""

    input_names: list[str]  # features it reads
    scores_are_logits: bool  # True: scores are logits (an evaluation loss is reported)

    def fit_window(self, data: SessionTensors, window: int) -> dict[str, float]:
        """Train on one window's sessions; returns statistics such as loss and sessions/s."""
        ...

    def score(self, prefix: Batch) -> torch.Tensor:
        """``[B, n_items - 1]`` scores (column j = item j + 1) of the item following each prefix."""
        ...


def build_learner(cfg: ExperimentConfig, schema: Schema) -> Learner:
    from sessrec.baselines import BASELINES
    from sessrec.bodies import BODIES

    if cfg.model_type in BASELINES:
        return BASELINES[cfg.model_type](cfg, schema)
    if cfg.model_type in BODIES:
        from sessrec.training import NeuralLearner

        return NeuralLearner(cfg, schema)
    known = ", ".join(sorted(set(BODIES) | set(BASELINES)))
    raise SessrecError(f"unknown model_type '{cfg.model_type}' (choose from {known})")
