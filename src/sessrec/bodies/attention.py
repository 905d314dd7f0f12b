"""Scaled dot-product attention at session sizes.

``softmax(q @ kᵀ * scale + mask) @ v`` with an additive mask and dropout on the weights, what
``torch.nn.functional.scaled_dot_product_attention`` computes. Why our own: for the attention
groups of :mod:`.packing` (64 sessions, at most ``session_seq_length_max`` positions, 16-dim heads)
PyTorch's CPU kernels are slower than these three operations: its flash kernel (taken without
dropout) costs GPT-2 3 % of a training step, its math fallback about as much (measured on the
Transformers4Rec bench of ``bench/compare_t4r.py``, paired steps in one process).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, dropout_p: float = 0.0,
              scale: float | None = None) -> torch.Tensor:
    """``q [..., Lq, dh]``, ``k``/``v`` ``[..., L, dh]``, additive ``mask`` broadcastable to ``[..., Lq, L]``."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    weights = torch.softmax(torch.add(mask, q @ k.transpose(-1, -2), alpha=scale), dim=-1)
    if dropout_p:
        weights = F.dropout(weights, dropout_p)
    return weights @ v


def allowed_keys(padding_mask: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """``[B, 1, L, L]`` True where query i may attend to key j: j is a real item and, when ``causal``, j <= i."""
    B, L = padding_mask.shape
    allowed = padding_mask[:, None, None, :].expand(B, 1, L, L)
    if causal:
        allowed = allowed & torch.ones(L, L, dtype=torch.bool, device=padding_mask.device).tril()
    return allowed


def attention_mask_4d(padding_mask: torch.Tensor, causal: bool, dtype: torch.dtype) -> torch.Tensor:
    """``[B, 1, L, L]`` additive attention mask of :func:`allowed_keys`: 0 where allowed, the dtype's minimum
    elsewhere. ``transformers`` 5.x uses a 4D mask as given, for the eager and SDPA attention alike."""
    allowed = allowed_keys(padding_mask, causal)
    return torch.zeros(allowed.shape, dtype=dtype, device=padding_mask.device).masked_fill(~allowed, torch.finfo(dtype).min)
