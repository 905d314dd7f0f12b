"""GPT-2 (Radford et al., "Language Models are Unsupervised Multitask Learners", 2019): a causal
Transformer decoder with learned absolute positions and pre-LayerNorm blocks.

The same computation, parameter names and shapes as ``transformers.GPT2Model`` (so a state dict
moves between the two; ``tests/bodies/test_native_equivalence.py`` checks they give the same hidden states).
Why our own: the projections, feed-forward layers and LayerNorms run on the real (non-padded)
positions only (:mod:`.packing`), which ``transformers`` cannot do; sessions are mostly padding,
so this is several times less work (``bench/`` and the README's speed section show it).
Attention (:mod:`.attention`) takes a causal + padding mask, per group of sessions of similar
length (:mod:`.packing`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sessrec.bodies.attention import attention
from sessrec.bodies.packing import Packing
from sessrec.bodies.registry import check_heads, model_options, register
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
from sessrec.features import activation


class Conv1D(nn.Module):
    """``transformers``' GPT-2 linear layer: ``y = x @ weight + bias`` with ``weight [in, out]``."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x, self.weight)


class Attention(nn.Module):
    def __init__(self, d: int, n_head: int, dropout: float):
        super().__init__()
        self.n_head, self.d_head = n_head, d // n_head
        self.c_attn = Conv1D(d, 3 * d)
        self.c_proj = Conv1D(d, d)
        self.attn_dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, packing: Packing, masks: list[torch.Tensor], rows: torch.Tensor | None = None) -> torch.Tensor:
        """``x``: packed ``[T, d]``; ``masks``: the additive ``[n, L, L]`` mask of each of ``packing``'s attention
        groups (``n`` sessions of ``L`` positions); ``rows``: the packed rows whose output is wanted (None: all)."""
        p = self.attn_dropout if self.training else 0.0
        outs = []
        for qkv, mask in zip(packing.to_head_groups(self.c_attn(x), 3 * self.n_head), masks):
            q, k, v = qkv.view(3, self.n_head, *mask.shape[:2], self.d_head).unbind(0)  # [n_head, n, L, d_head] each
            outs.append(attention(q, k, v, mask, p).view(self.n_head, -1, self.d_head))
        out = packing.from_head_groups(outs)
        return self.resid_dropout(self.c_proj(out if rows is None else out[rows]))


class MLP(nn.Module):
    def __init__(self, d: int, d_inner: int, hidden_act: str, dropout: float):
        super().__init__()
        self.c_fc = Conv1D(d, d_inner)
        self.c_proj = Conv1D(d_inner, d)
        self.act = activation(hidden_act)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: ExperimentConfig, d_inner: int):
        super().__init__()
        d = cfg.d_model
        self.ln_1 = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.attn = Attention(d, cfg.n_head, cfg.dropout)
        self.ln_2 = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.mlp = MLP(d, d_inner, cfg.hidden_act, cfg.dropout)

    def forward(self, x: torch.Tensor, packing: Packing, masks: list[torch.Tensor], rows: torch.Tensor | None = None) -> torch.Tensor:
        x = (x if rows is None else x[rows]) + self.attn(self.ln_1(x), packing, masks, rows)
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    """GPT-2 over ``inputs_embeds``; always causal."""

    supports_causal = True
    supports_bidirectional = False
    selects_outputs = True
    takes_packed = True

    def __init__(self, cfg: ExperimentConfig):
        super().__init__()
        opts = model_options(cfg, {"n_inner": 4 * cfg.d_model})
        check_heads(cfg)
        self.wpe = nn.Embedding(cfg.session_seq_length_max + 1, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList(Block(cfg, int(opts["n_inner"])) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        std = cfg.initializer_range
        for name, p in self.named_parameters():  # transformers' GPT-2 initialisation
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * cfg.n_layer))
            elif name.endswith(("c_attn.weight", "c_fc.weight", "wpe.weight")):
                nn.init.normal_(p, 0.0, std)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor, causal: bool = True,
                outputs: torch.Tensor | None = None, packing: Packing | None = None, **kwargs) -> torch.Tensor:
        """``[B, L, d]`` hidden states, or with ``outputs`` (flat positions ``b * L + l``) theirs only,
        ``[n, d]``: the last block then projects and feeds forward those positions alone. ``x`` is
        ``[B, L, d]``, or with ``packing`` (``group=True``, of ``padding_mask``) its packed rows."""
        if not causal:
            raise SessrecError("gpt2 is a causal model: use it with task clm")
        L = padding_mask.shape[1]
        if packing is None:
            packing = Packing(padding_mask, group=True)
            h = packing.pack(x + self.wpe.weight[:L])
        else:
            h = x + self.wpe.weight.index_select(0, packing.index % L)
        masks = []
        causal_mask = torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
        for group in packing.groups:
            n = group.length
            allowed = group.padding_mask[:, None, :] & causal_mask[:n, :n]  # [sessions, n, n]
            masks.append(torch.zeros(allowed.shape, dtype=x.dtype, device=x.device).masked_fill(~allowed, torch.finfo(x.dtype).min))
        h = self.drop(h)
        rows, real = packing.rows_of(outputs) if outputs is not None else (None, None)
        for i, block in enumerate(self.h):
            h = block(h, packing, masks, rows if i == len(self.h) - 1 else None)
        return packing.unpack(self.ln_f(h)) if outputs is None else (self.ln_f(h) * real)[:outputs.numel()]


register("gpt2")(GPT2)
