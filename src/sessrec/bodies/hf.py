"""Helpers every ``transformers``-backed body shares: config building and attention masks."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from sessrec.errors import SessrecError

# Special-token ids are meaningless with inputs_embeds; unset them so the configs stay valid for vocab_size=1.
NO_TOKENS = {"vocab_size": 1, "pad_token_id": None, "bos_token_id": None, "eos_token_id": None}


def config_fields(config_class: type) -> set[str]:
    """Names a ``transformers`` config class accepts (its fields and their aliases)."""
    if dataclasses.is_dataclass(config_class):
        names = {f.name for f in dataclasses.fields(config_class)}
    else:
        names = set(inspect.signature(config_class.__init__).parameters) - {"self", "kwargs"}
    return names | set(getattr(config_class, "attribute_map", {}))


def hf_config(config_class: type, values: dict[str, Any], model_config: dict[str, Any], model_type: str,
              sizes: tuple[str, ...] = ()):
    """``config_class(**values)`` with ``model_config`` on top. A ``model_config`` key the class does
    not know is an error (``transformers`` configs would silently keep it as an unused attribute), and
    so is one of ``sizes``, the fields that must equal ``d_model`` (the width of the inputs)."""
    aliases = getattr(config_class, "attribute_map", {})
    unknown = sorted(set(model_config) - config_fields(config_class))
    if unknown:
        raise SessrecError(f"model_config: {', '.join(unknown)} is not a field of {config_class.__name__} "
                           f"(model_type {model_type})")
    fixed = sorted(k for k in model_config if aliases.get(k, k) in sizes)
    if fixed:
        raise SessrecError(f"model_config: {', '.join(fixed)} of model_type {model_type} is set by d_model: use --d-model")
    merged = {aliases.get(k, k): v for k, v in values.items()}
    merged.update({aliases.get(k, k): v for k, v in model_config.items()})
    try:
        return config_class(**merged)
    except (TypeError, ValueError) as e:
        raise SessrecError(f"model_type {model_type}: invalid {config_class.__name__} ({e})") from None
