"""SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018): the block of the
authors' code (github.com/kang205/SASRec, ``model.py`` and ``modules.py``).

* Inputs: ``x * sqrt(d_model)`` (the authors' scaled item embedding) plus a learned absolute
  position embedding, dropout, padded positions zeroed.
* Each block, pre-LayerNorm as in the authors' code: the *queries* are ``LN(h)`` while keys and
  values are projected from ``h`` itself; causal multi-head attention (Q, K, V projections with
  bias, no output projection, dropout on the attention weights), padded queries zeroed, and the
  residual added to the normalised queries: ``h = LN(h) + attn(LN(h), h)``. Then the point-wise
  feed-forward ``h = LN(h) + dropout(W2 dropout(ReLU(W1 LN(h))))`` of width ``d_model``
  (``model_config: {d_inner: N}`` widens it), padded positions zeroed again.
* A final LayerNorm.

Causal only: SASRec predicts the next item (task clm); a bidirectional SASRec is BERT4Rec, which
``bert`` with task mlm already is.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from sessrec.bodies.attention import attention, attention_mask_4d
from sessrec.bodies.registry import check_heads, model_options, register
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError


class SASRecBlock(nn.Module):
    def __init__(self, d: int, n_head: int, d_inner: int, dropout: float, eps: float):
        super().__init__()
        self.n_head = n_head
        self.attn_norm = nn.LayerNorm(d, eps=eps)
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.ffn_norm = nn.LayerNorm(d, eps=eps)
        self.fc1, self.fc2 = nn.Linear(d, d_inner), nn.Linear(d_inner, d)
        self.dropout = dropout

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        return x.view(B, L, self.n_head, d // self.n_head).transpose(1, 2)  # [B, H, L, d_head]

    def forward(self, h: torch.Tensor, mask: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """``h [B, L, d]``; ``mask``: additive ``[B, 1, L, L]``; ``real``: ``[B, L, 1]`` 1.0 at real items."""
        B, L, d = h.shape
        p = self.dropout if self.training else 0.0
        queries = self.attn_norm(h)
        out = attention(self.heads(self.q(queries)), self.heads(self.k(h)), self.heads(self.v(h)), mask, p)
        h = queries + out.transpose(1, 2).reshape(B, L, d) * real
        x = self.ffn_norm(h)
        return (x + F.dropout(self.fc2(F.dropout(F.relu(self.fc1(x)), p, self.training)), p, self.training)) * real


class SASRec(nn.Module):
    """SASRec over ``inputs_embeds``; always causal."""

    supports_causal = True
    supports_bidirectional = False
    selects_outputs = True

    def __init__(self, cfg: ExperimentConfig):
        super().__init__()
        opts = model_options(cfg, {"d_inner": cfg.d_model, "scale_inputs": True})
        check_heads(cfg)
        d = cfg.d_model
        self.scale = math.sqrt(d) if opts["scale_inputs"] else 1.0
        self.pos = nn.Embedding(cfg.session_seq_length_max, d)
        self.blocks = nn.ModuleList(SASRecBlock(d, cfg.n_head, int(opts["d_inner"]), cfg.dropout, cfg.layer_norm_eps)
                                    for _ in range(cfg.n_layer))
        self.final_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.dropout = nn.Dropout(cfg.dropout)
        for m in self.modules():  # the authors' TF code: Glorot-uniform kernels, zero biases
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.pos.weight, 0.0, cfg.initializer_range)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor, causal: bool = True,
                outputs: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        """``[B, L, d]`` hidden states, or with ``outputs`` (flat positions ``b * L + l``) theirs only, ``[n, d]``."""
        if not causal:
            raise SessrecError("sasrec is a causal model: use it with task clm (for a bidirectional one, bert with task mlm)")
        B, L, d = x.shape
        if L > self.pos.num_embeddings:
            raise SessrecError(f"sasrec: sessions of {L} positions, longer than session_seq_length_max={self.pos.num_embeddings}")
        real = padding_mask.unsqueeze(-1).to(x.dtype)
        mask = attention_mask_4d(padding_mask, True, x.dtype)
        h = self.dropout(x * self.scale + self.pos.weight[:L]) * real
        for block in self.blocks:
            h = block(h, mask, real)
        if outputs is not None:
            return self.final_norm(h.reshape(B * L, d).index_select(0, outputs))
        return self.final_norm(h)


register("sasrec")(SASRec)
