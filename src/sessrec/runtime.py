"""Process-level helpers every layer may use: the device, seeding, moving batches, one-time warnings.

The lowest module of the package after :mod:`sessrec.errors`: training, evaluation and the
baselines all need these, so they live below all of them (no module here imports a model).
"""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

from sessrec.errors import SessrecError

log = logging.getLogger(__name__)

_warned: set[str] = set()


def warn_once(message: str) -> None:
    """Log ``message`` as a warning the first time it is given in this process."""
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; CUDA without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise SessrecError(f"device '{name}' requested but CUDA is not available; use --device cpu")
    return torch.device(name)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Every tensor of a batch on ``device`` (asynchronous copies where the source is pinned)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
