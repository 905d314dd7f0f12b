"""Bodies backed by HuggingFace ``transformers`` models, fed with ``inputs_embeds``."""

from __future__ import annotations

import torch
import transformers
from torch import nn

from sessrec.bodies import register
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError

# Special-token ids are meaningless with inputs_embeds; unset them so the configs stay valid for vocab_size=1.
_NO_TOKENS = {"vocab_size": 1, "pad_token_id": None, "bos_token_id": None, "eos_token_id": None}


class XLNetBody(nn.Module):
    """XLNet (Yang et al., 2019). Causal attention is an explicit ``perm_mask`` (``attn_type='uni'`` is gone from transformers)."""

    supports_causal = True
    supports_bidirectional = True

    def __init__(self, cfg: ExperimentConfig):
        super().__init__()
        config = transformers.XLNetConfig(
            d_model=cfg.d_model, n_layer=cfg.n_layer, n_head=cfg.n_head, d_inner=4 * cfg.d_model,
            ff_activation=cfg.hidden_act, dropout=cfg.dropout, layer_norm_eps=cfg.layer_norm_eps,
            initializer_range=cfg.initializer_range, mem_len=None, attn_type="bi", **_NO_TOKENS, **cfg.model_config,
        )
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
        config = transformers.GPT2Config(
            n_embd=cfg.d_model, n_layer=cfg.n_layer, n_head=cfg.n_head, n_inner=4 * cfg.d_model,
            activation_function=cfg.hidden_act, resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout,
            layer_norm_epsilon=cfg.layer_norm_eps, initializer_range=cfg.initializer_range,
            n_positions=cfg.session_seq_length_max + 1, **_NO_TOKENS, **cfg.model_config,
        )
        self.model = transformers.GPT2Model(config)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor, causal: bool = True, **kwargs) -> torch.Tensor:
        if not causal:
            raise SessrecError("gpt2 is a causal model: use it with task clm")
        return self.model(inputs_embeds=x, attention_mask=padding_mask.to(x.dtype), **kwargs).last_hidden_state


register("xlnet")(XLNetBody)
register("gpt2")(GPT2Body)
