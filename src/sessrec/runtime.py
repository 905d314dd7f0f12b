"""Process-level helpers every layer may use: the device, seeding, moving batches, loading saved
weights, one-time warnings, and private PyTorch operations with their public fallback.

The lowest module of the package after :mod:`sessrec.errors`: training, evaluation and the
baselines all need these, so they live below all of them (no module here imports a model).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from sessrec.errors import EveryProcessError, SessrecError, warn_once
from sessrec.launch import local_rank


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def load_weights(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """``model.load_state_dict(weights)``, or one line naming what differs when the saved weights were not made
    by the model this configuration builds (another sessrec version, an edited ``config.yaml``)."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        want = model.state_dict()
        missing = sorted(set(want) - set(weights))
        unexpected = sorted(set(weights) - set(want))
        resized = sorted(k for k in set(want) & set(weights) if want[k].shape != weights[k].shape)
        parts = [f"{label} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
                 for label, keys in (("missing", missing), ("unexpected", unexpected), ("other shape", resized)) if keys]
        raise SessrecError("the saved weights do not fit the model its config.yaml builds ("
                           + ("; ".join(parts) or str(e).splitlines()[0])
                           + "): saved by another sessrec version or with another configuration; train it again "
                           "with this version") from None


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; CUDA without a GPU is an error.

    In a process of a distributed run (torchrun) ``auto`` and ``cuda`` mean the process's own GPU,
    ``cuda:LOCAL_RANK``; one ``cuda:N`` for every process is refused."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EveryProcessError(f"device '{name}' requested but CUDA is not available; use --device cpu")
    local = local_rank()
    if local is not None and name.startswith("cuda"):
        if name != "cuda":
            raise EveryProcessError(f"--device {name}: under torchrun each process uses its own GPU (cuda:LOCAL_RANK); "
                               "give --device cuda (or auto), and choose the GPUs with CUDA_VISIBLE_DEVICES")
        if local >= torch.cuda.device_count():
            raise SessrecError(f"LOCAL_RANK {local} but this machine has {torch.cuda.device_count()} visible GPU(s): "
                               "start at most that many processes per node (--nproc-per-node)")
        return torch.device("cuda", local)
    return torch.device(name)


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Every tensor of a batch on ``device`` (asynchronous copies where the source is pinned)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


_unusable: set[str] = set()


def private_op(name: str, resolve: Callable[[], Callable], public: Callable, *args: Any, **kwargs: Any) -> Any:
    """``resolve()(*args, **kwargs)``, a private PyTorch operation (faster than the public ones, but
    free to change or vanish in any release); where it is missing or raises (other than running out
    of memory), ``public(*args, **kwargs)`` instead, for the rest of the process, with one warning.
    ``public`` must compute the same result with public operations."""
    if name not in _unusable:
        try:
            return resolve()(*args, **kwargs)
        except torch.OutOfMemoryError:
            raise
        except (AttributeError, TypeError, ValueError, RuntimeError, NotImplementedError) as e:
            _unusable.add(name)
            reason = " ".join(f"{type(e).__name__}: {e}".split())[:200]
            warn_once(f"{name} is not usable with torch {torch.__version__} ({reason}); "
                      "using public PyTorch operations instead (same results, slower)")
    return public(*args, **kwargs)
