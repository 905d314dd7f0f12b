"""Bodies backed by HuggingFace ``transformers`` models, fed with ``inputs_embeds``: XLNet, GPT-2,
and the helpers every ``transformers``-backed body shares (config building, attention masks)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import torch
import transformers
from torch import nn

from sessrec.bodies import register
from sessrec.config import ExperimentConfig
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


def attention_mask_4d(padding_mask: torch.Tensor, causal: bool, dtype: torch.dtype) -> torch.Tensor:
    """``[B, 1, L, L]`` additive attention mask: 0 where query i may attend to key j (j is a real
    item and, when ``causal``, j <= i), the dtype's minimum elsewhere. ``transformers`` 5.x uses a
    4D mask as given, for the eager and SDPA attention alike."""
    B, L = padding_mask.shape
    allowed = padding_mask[:, None, None, :].expand(B, 1, L, L)
    if causal:
        allowed = allowed & torch.ones(L, L, dtype=torch.bool, device=padding_mask.device).tril()
    return torch.zeros(allowed.shape, dtype=dtype, device=padding_mask.device).masked_fill(~allowed, torch.finfo(dtype).min)


class XLNetBody(nn.Module):
    """XLNet (Yang et al., 2019), bidirectional attention with relative positions.

    Causal attention (CLM) is an explicit ``perm_mask`` hiding every later position: the
    ``attn_type='uni'`` switch no longer works in ``transformers``. PLM passes its own
    ``perm_mask`` and ``target_mapping`` (two-stream attention).
    """

    supports_causal = True
    supports_bidirectional = True
    supports_permutation = True

    def __init__(self, cfg: ExperimentConfig):
        super().__init__()
        config = hf_config(transformers.XLNetConfig, dict(
            d_model=cfg.d_model, n_layer=cfg.n_layer, n_head=cfg.n_head, d_inner=4 * cfg.d_model,
            ff_activation=cfg.hidden_act, dropout=cfg.dropout, layer_norm_eps=cfg.layer_norm_eps,
            initializer_range=cfg.initializer_range, mem_len=None, attn_type="bi", **NO_TOKENS,
        ), cfg.model_config, "xlnet", sizes=("d_model",))
        self.model = transformers.XLNetModel(config)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor, causal: bool = False, **kwargs) -> torch.Tensor:
        if causal and "perm_mask" not in kwargs:
            L = x.shape[1]
            future = torch.triu(torch.ones(L, L, device=x.device, dtype=x.dtype), diagonal=1)
            kwargs["perm_mask"] = future.expand(x.shape[0], L, L)
        out = self.model(inputs_embeds=x, attention_mask=padding_mask.to(x.dtype), use_mems=False, **kwargs)
        return out.last_hidden_state


class GPT2Body(nn.Module):
    """GPT-2 (Radford et al., 2019): a causal decoder; it cannot run bidirectionally."""

    supports_causal = True
    supports_bidirectional = False

    def __init__(self, cfg: ExperimentConfig):
        super().__init__()
        config = hf_config(transformers.GPT2Config, dict(
            n_embd=cfg.d_model, n_layer=cfg.n_layer, n_head=cfg.n_head, n_inner=4 * cfg.d_model,
            activation_function=cfg.hidden_act, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
            layer_norm_epsilon=cfg.layer_norm_eps, initializer_range=cfg.initializer_range,
            n_positions=cfg.session_seq_length_max + 1, **NO_TOKENS,
        ), cfg.model_config, "gpt2", sizes=("n_embd",))
        self.model = transformers.GPT2Model(config)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor, causal: bool = True, **kwargs) -> torch.Tensor:
        if not causal:
            raise SessrecError("gpt2 is a causal model: use it with task clm")
        return self.model(inputs_embeds=x, attention_mask=padding_mask.to(x.dtype), use_cache=False, **kwargs).last_hidden_state


register("xlnet")(XLNetBody)
register("gpt2")(GPT2Body)
