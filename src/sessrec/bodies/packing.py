"""Dense layers on real items only: pack the non-padded positions of a ``[B, L, ...]`` batch.

Sessions are short (REES46 averages 5.5 items of a 20-item window), so most positions of a padded
batch are padding. Projections, feed-forward layers and LayerNorms act on each position alone:
running them on the ``T`` real positions (``[T, d]``) instead of all ``B * L`` gives the same
values for the real positions at a fraction of the cost. Attention still sees the padded layout.
"""

from __future__ import annotations

import torch


class Packing:
    """Where the real positions of a ``[B, L]`` padding mask are, to gather and scatter them."""

    def __init__(self, padding_mask: torch.Tensor):
        self.shape = tuple(padding_mask.shape)
        self.index = padding_mask.reshape(-1).nonzero().squeeze(1)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, *rest]`` → ``[T, *rest]``."""
        return x.reshape(-1, *x.shape[2:]).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, *rest]`` → ``[B, L, *rest]`` with zeros at the padded positions."""
        out = x.new_zeros(self.shape[0] * self.shape[1], *x.shape[1:])
        return out.index_copy(0, self.index, x).view(*self.shape, *x.shape[1:])
