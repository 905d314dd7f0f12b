"""Helpers for the baseline tests: tiny hand-made sessions fed straight to a learner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sessrec.baselines import BASELINES
from sessrec.config import ExperimentConfig
from sessrec.data.loader import SessionTensors
from sessrec.schema import ITEM_ID, LIST, TIME, FeatureSpec, Schema

DAY = 86400.0


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny tensors: one thread avoids OpenMP contention on the shared 2-core CI machines."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def schema(n_items: int = 10, with_time: bool = True) -> Schema:
    feats = [FeatureSpec("item", "int", (ITEM_ID, LIST), 1, n_items - 1)]
    if with_time:
        feats.append(FeatureSpec("t", "float", (TIME, LIST)))
    return Schema(feats, source="test")


def batch(sessions: list[list[int]], last_times: list[float] | None = None, max_len: int = 20) -> dict[str, torch.Tensor]:
    """Right-padded item rows; each session's clicks one second apart, ending at ``last_times``."""
    items = torch.zeros(len(sessions), max_len, dtype=torch.int64)
    times = torch.zeros(len(sessions), max_len, dtype=torch.float64)
    for r, s in enumerate(sessions):
        items[r, : len(s)] = torch.tensor(s)
        if last_times is not None:
            times[r, : len(s)] = torch.tensor([last_times[r] - (len(s) - 1 - i) for i in range(len(s))], dtype=torch.float64)
    out = {"item": items}
    if last_times is not None:
        out["t"] = times
    return out


def learner(model: str, params: dict, sessions: list[list[int]], last_times: list[float] | None = None,
            n_items: int = 10, seed: int = 0, **cfg):
    """A baseline fitted on one window of ``sessions``."""
    config = ExperimentConfig.from_dict({"model_type": model, "baseline_params": params, "seed": seed, "quiet": True, **cfg})
    lrn = BASELINES[model](config, schema(n_items, with_time=last_times is not None))
    lrn.fit_window(SessionTensors(batch(sessions, last_times), "item"), 1)
    return lrn


def scores(lrn, prefixes: list[list[int]], last_times: list[float] | None = None) -> np.ndarray:
    """``[B, n_items]`` scores indexed by item id (column 0, padding, is NaN)."""
    s = lrn.score(batch(prefixes, last_times)).double().numpy()
    return np.concatenate([np.full((s.shape[0], 1), np.nan), s], axis=1)
