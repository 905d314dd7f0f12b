"""The architecture registry: name → builder of a body (see :mod:`sessrec.bodies` for the contract).

Its own module so that each architecture module imports it without importing the package that
imports them all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from torch import nn

from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError

log = logging.getLogger(__name__)

BodyBuilder = Callable[[ExperimentConfig], nn.Module]
HF_PREFIX = "hf:"


class BodyRegistry(dict):
    """Name → builder. ``hf:<ModelClass>`` names are not stored: they resolve to the generic
    ``transformers`` body, so ``name in BODIES`` and ``BODIES[name]`` work for them too."""

    def __missing__(self, name: str) -> BodyBuilder:
        if isinstance(name, str) and name.startswith(HF_PREFIX):
            from sessrec.bodies.hf_auto import AnyHFBody

            return lambda cfg: AnyHFBody(cfg, name[len(HF_PREFIX):])
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return dict.__contains__(self, name) or (isinstance(name, str) and name.startswith(HF_PREFIX))


BODIES: dict[str, BodyBuilder] = BodyRegistry()


def register(*names: str) -> Callable[[BodyBuilder], BodyBuilder]:
    def deco(fn: BodyBuilder) -> BodyBuilder:
        for name in names:
            BODIES[name] = fn
        return fn

    return deco


def model_options(cfg: ExperimentConfig, defaults: dict) -> dict:
    """``defaults`` updated from ``cfg.model_config``; any other key is an error that lists the options."""
    unknown = sorted(set(cfg.model_config) - set(defaults))
    if unknown:
        sizes = {"d_model", "hidden_size", "n_embd"} & set(unknown)
        hint = "; the width is set by d_model: use --d-model" if sizes else ""
        raise SessrecError(f"model_config: {cfg.model_type} does not know {', '.join(unknown)} "
                           f"(options: {', '.join(defaults) or 'none'}){hint}")
    for name, value in cfg.model_config.items():
        _check_option_type(cfg.model_type, name, value, defaults[name])
    return {**defaults, **cfg.model_config}


def _check_option_type(model_type: str, name: str, value, default) -> None:
    """A value of the default's kind: true/false for a switch, a whole number for a count, a number for a rate
    (a default of None takes any value; the body checks it)."""
    if default is None:
        return
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif isinstance(default, float):
        ok, kind = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
    else:
        return
    if not ok:
        raise SessrecError(f"model_config: {model_type} {name} must be {kind} (got {value!r})")


def check_heads(cfg: ExperimentConfig) -> None:
    """Multi-head attention splits ``d_model`` into ``n_head`` equal parts."""
    if cfg.d_model % cfg.n_head:
        raise SessrecError(f"{cfg.model_type} needs d_model divisible by n_head (got d_model={cfg.d_model}, n_head={cfg.n_head})")


def build_body(cfg: ExperimentConfig) -> nn.Module:
    if cfg.model_type not in BODIES:
        raise SessrecError(f"unknown model_type '{cfg.model_type}' (choose from {', '.join(sorted(BODIES))}, "
                           f"or {HF_PREFIX}<transformers model class> such as {HF_PREFIX}LlamaModel)")
    check_attn_type(cfg)
    return BODIES[cfg.model_type](cfg)


def check_attn_type(cfg: ExperimentConfig) -> None:
    """``attn_type`` (XLNet's original argument) never lets a model see the item it predicts.

    CLM is always causal: ``attn_type bi`` with CLM is overridden, with a warning. ``attn_type uni``
    (causal attention) with MLM/PLM/RTD is rejected: those objectives predict masked items from
    both sides and the paper ran them with ``bi``. Other architectures do not read ``attn_type``.
    """
    if cfg.attn_type is None:
        return
    if cfg.model_type != "xlnet":
        log.warning("attn_type '%s' is an XLNet argument and is ignored for model_type '%s' "
                    "(the task decides: clm is causal, mlm/plm/rtd bidirectional)", cfg.attn_type, cfg.model_type)
        return
    if cfg.attn_type == "uni" and cfg.task != "clm":
        raise SessrecError(f"attn_type uni (causal attention) cannot be used with task {cfg.task}: it predicts masked "
                           "items from both sides; use attn_type bi (or leave it unset)")
    if cfg.attn_type == "bi" and cfg.task == "clm":
        log.warning("attn_type bi is OVERRIDDEN for task clm: causal language modeling always uses causal attention, "
                    "otherwise every position would see the item it predicts")

