"""Sequence-model bodies, looked up by name.

A body maps ``inputs_embeds [B, L, d_model]`` and a padding mask ``[B, L]`` (True = real item)
to hidden states ``[B, L, d_model]``. ``causal=True`` asks that position i sees only positions
<= i. Adding an architecture is one file with a builder registered here.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError

BodyBuilder = Callable[[ExperimentConfig], nn.Module]
BODIES: dict[str, BodyBuilder] = {}


def register(*names: str) -> Callable[[BodyBuilder], BodyBuilder]:
    def deco(fn: BodyBuilder) -> BodyBuilder:
        for name in names:
            BODIES[name] = fn
        return fn

    return deco


def build_body(cfg: ExperimentConfig) -> nn.Module:
    try:
        builder = BODIES[cfg.model_type]
    except KeyError:
        raise SessrecError(f"unknown model_type '{cfg.model_type}' (choose from {', '.join(sorted(BODIES))})") from None
    return builder(cfg)


from sessrec.bodies import hf  # noqa: E402,F401  (registers the HuggingFace architectures)
