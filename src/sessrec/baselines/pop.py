"""Most popular items of the training windows seen so far: the floor every model must beat."""

from __future__ import annotations

from typing import Any

import torch

from sessrec.config import ExperimentConfig
from sessrec.data.loader import Batch, SessionTensors
from sessrec.schema import Schema


class MostPopular:
    """Scores every item by its interaction count over all training windows so far (incremental)."""

    scores_are_logits = False

    def __init__(self, cfg: ExperimentConfig | None, schema: Schema):
        self.input_names = [schema.item_id.name]
        self.counts = torch.zeros(schema.n_items, dtype=torch.float64)

    def fit_window(self, data: SessionTensors, window: int) -> dict[str, float]:
        self.counts += torch.bincount(data.items.flatten(), minlength=self.counts.numel()).to(torch.float64)
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"model": {"counts": self.counts}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counts = state["model"]["counts"].to(torch.float64).clone()

    def score(self, prefix: Batch) -> torch.Tensor:
        n = next(iter(prefix.values())).shape[0]
        return self.counts[1:].expand(n, -1)
