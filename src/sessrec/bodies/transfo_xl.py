"""Transformer-XL (Dai et al., 2019, "Transformer-XL: Attentive Language Models Beyond a
Fixed-Length Context", ACL 2019), written in PyTorch because ``transformers`` 5.x no longer ships it.

What makes it Transformer-XL rather than a vanilla Transformer:

* **Relative positional attention.** No absolute position embeddings: the score of query ``i`` on
  key ``j`` is ``(q_i + u)·k_j + (q_i + v)·W_r R(i - j)`` (terms (a)+(c) and (b)+(d) of the paper's
  section 3.3), with ``R`` the sinusoid of the distance ``i - j`` and a content bias ``u``
  (``r_w_bias``) and a position bias ``v`` (``r_r_bias``) per layer (untied, the original
  system's ``untie_r=True``).
* **Segment-level recurrence (optional).** With ``model_config: {segment_len: S}`` a session is
  processed in segments of ``S`` positions, and every layer also attends to the cached hidden
  states of the ``mem_len`` (default ``S``) positions before the segment, with stop-gradient, as
  in the paper. Memory never crosses sessions (the original system carried one position of memory
  from batch to batch, i.e. between unrelated sessions; sessions are independent here). By default
  a session is one segment.

Post-LayerNorm residual blocks (``pre_lnorm: true`` moves the LayerNorm first), a position-wise
feed-forward of ``d_inner`` (default ``4 * d_model``) with ``hidden_act``; no adaptive
embeddings or softmax (item embeddings and the next-item head live outside the body).
Causal by default; with ``causal=False`` the same relative attention looks both ways (negative
distances), so the body also serves MLM/RTD.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sessrec.bodies.registry import model_options, register
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
from sessrec.features import activation

OPTIONS = {"d_inner": None, "segment_len": 0, "mem_len": None, "pre_lnorm": False, "dropatt": 0.0}


def sinusoid(distances: torch.Tensor, dim: int) -> torch.Tensor:
    """``[R, dim]`` sinusoidal embeddings of (possibly negative) relative distances."""
    inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2, device=distances.device, dtype=torch.float32) / dim))
    angles = distances.float()[:, None] * inv_freq[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class RelativeMultiHeadAttention(nn.Module):
    """Multi-head attention with relative positions and per-layer biases u (``r_w_bias``), v (``r_r_bias``)."""

    def __init__(self, d_model: int, n_head: int, dropout: float, dropatt: float, eps: float, pre_lnorm: bool):
        super().__init__()
        self.n_head, self.d_head = n_head, d_model // n_head
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.r_net = nn.Linear(d_model, d_model, bias=False)  # W_r: distance embedding → keys
        self.out = nn.Linear(d_model, d_model, bias=False)
        self.r_w_bias = nn.Parameter(torch.zeros(n_head, self.d_head))  # u
        self.r_r_bias = nn.Parameter(torch.zeros(n_head, self.d_head))  # v
        self.drop, self.dropatt = nn.Dropout(dropout), nn.Dropout(dropatt)
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.pre_lnorm = pre_lnorm

    def forward(self, h: torch.Tensor, mem: torch.Tensor | None, pos: torch.Tensor, rel_index: torch.Tensor,
                allowed: torch.Tensor) -> torch.Tensor:
        """``h [B, Q, D]`` attends to ``[mem; h]`` (``K = M + Q`` keys). ``pos [R, D]`` embeds the R
        distinct distances, ``rel_index [Q, K]`` picks the distance of each (query, key) pair,
        ``allowed [B, 1, Q, K]`` says which keys each query may see."""
        B, Q, D = h.shape
        ctx = h if mem is None else torch.cat([mem, h], dim=1)
        K, H, d = ctx.shape[1], self.n_head, self.d_head
        q, k, v = self.qkv(self.norm(ctx) if self.pre_lnorm else ctx).split(D, dim=-1)
        q = q[:, -Q:].reshape(B, Q, H, d).transpose(1, 2)
        k = k.reshape(B, K, H, d).transpose(1, 2)
        v = v.reshape(B, K, H, d).transpose(1, 2)
        r = self.r_net(pos).reshape(-1, H, d)
        content = torch.einsum("bhqd,bhkd->bhqk", q + self.r_w_bias[None, :, None], k)  # (a) + (c)
        position = torch.einsum("bhqd,rhd->bhqr", q + self.r_r_bias[None, :, None], r)  # (b) + (d), per distance
        position = position.gather(-1, rel_index.expand(B, H, Q, K))
        score = (content + position) / math.sqrt(d)
        score = score.masked_fill(~allowed, torch.finfo(score.dtype).min)
        attn = torch.einsum("bhqk,bhkd->bhqd", self.dropatt(score.softmax(dim=-1)), v)
        out = self.drop(self.out(attn.transpose(1, 2).reshape(B, Q, D)))
        return h + out if self.pre_lnorm else self.norm(h + out)


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_inner: int, act: str, dropout: float, eps: float, pre_lnorm: bool):
        super().__init__()
        self.core = nn.Sequential(nn.Linear(d_model, d_inner), activation(act), nn.Dropout(dropout),
                                  nn.Linear(d_inner, d_model), nn.Dropout(dropout))
        self.norm = nn.LayerNorm(d_model, eps=eps)
        self.pre_lnorm = pre_lnorm

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.core(self.norm(h)) if self.pre_lnorm else self.norm(h + self.core(h))


class TransfoXLLayer(nn.Module):
    def __init__(self, d_model: int, n_head: int, d_inner: int, cfg: ExperimentConfig, opts: dict):
        super().__init__()
        self.attn = RelativeMultiHeadAttention(d_model, n_head, cfg.dropout, opts["dropatt"], cfg.layer_norm_eps, opts["pre_lnorm"])
        self.ff = FeedForward(d_model, d_inner, cfg.hidden_act, cfg.dropout, cfg.layer_norm_eps, opts["pre_lnorm"])

    def forward(self, h, mem, pos, rel_index, allowed):
        return self.ff(self.attn(h, mem, pos, rel_index, allowed))


class TransfoXLBody(nn.Module):
    supports_causal = True
    supports_bidirectional = True

    def __init__(self, cfg: ExperimentConfig):
        super().__init__()
        opts = model_options(cfg, OPTIONS)
        D = cfg.d_model
        if D % cfg.n_head or D % 2:
            raise SessrecError(f"transfoxl needs an even d_model divisible by n_head (got d_model={D}, n_head={cfg.n_head})")
        self.segment_len = int(opts["segment_len"])
        self.mem_len = int(opts["mem_len"] if opts["mem_len"] is not None else self.segment_len)
        if self.segment_len < 0 or self.mem_len < 0:
            raise SessrecError("model_config: transfoxl segment_len and mem_len must be >= 0")
        d_inner = int(opts["d_inner"] or 4 * D)
        self.layers = nn.ModuleList(TransfoXLLayer(D, cfg.n_head, d_inner, cfg, opts) for _ in range(cfg.n_layer))
        self.drop = nn.Dropout(cfg.dropout)
        self.d_model = D
        self._init(cfg.initializer_range)

    def _init(self, std: float) -> None:
        """As ``transformers``' Transformer-XL: Normal(0, std) weights and biases u, v; zero Linear biases."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, RelativeMultiHeadAttention):
                nn.init.normal_(m.r_w_bias, 0.0, std)
                nn.init.normal_(m.r_r_bias, 0.0, std)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor, causal: bool = True, **kwargs) -> torch.Tensor:
        L = x.shape[1]
        S = self.segment_len if 0 < self.segment_len < L else L
        mems: list[torch.Tensor] | None = None  # per layer: the cached inputs of that layer
        mem_mask: torch.Tensor | None = None
        outputs = []
        for start in range(0, L, S):
            h, seg_mask = self.drop(x[:, start:start + S]), padding_mask[:, start:start + S]
            Q, M = h.shape[1], 0 if mem_mask is None else mem_mask.shape[1]
            key_mask = seg_mask if mem_mask is None else torch.cat([mem_mask, seg_mask], dim=1)
            dist = (M + torch.arange(Q, device=x.device))[:, None] - torch.arange(M + Q, device=x.device)[None]
            allowed = key_mask[:, None, None, :] & ((dist >= 0) if causal else torch.ones_like(dist, dtype=torch.bool))
            distances = torch.arange(M + Q - 1, -Q, -1, device=x.device)  # every distance a pair can have
            pos = self.drop(sinusoid(distances, self.d_model).to(x.dtype))
            rel_index = (distances[0] - dist)[None, None]
            inputs = []
            for i, layer in enumerate(self.layers):
                inputs.append(h)
                h = layer(h, None if mems is None else mems[i], pos, rel_index, allowed)
            outputs.append(self.drop(h))
            if start + S < L and self.mem_len > 0:
                mems = [(h_in if mems is None else torch.cat([mems[i], h_in], dim=1))[:, -self.mem_len:].detach()
                        for i, h_in in enumerate(inputs)]
                mem_mask = (seg_mask if mem_mask is None else torch.cat([mem_mask, seg_mask], dim=1))[:, -self.mem_len:]
        return torch.cat(outputs, dim=1)


register("transfoxl")(TransfoXLBody)
