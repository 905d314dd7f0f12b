"""Dense layers on real items only: pack the non-padded positions of a ``[B, L, ...]`` batch.

Sessions are short (REES46 averages 5.5 items of a 20-item window), so most positions of a padded
batch are padding. Projections, feed-forward layers and LayerNorms act on each position alone:
running them on the ``T`` real positions (``[T, d]``) instead of all ``B * L`` gives the same
values for the real positions at a fraction of the cost.

Attention needs a ``[n, L, ...]`` layout. It gets one per *group*: the sessions of the batch sorted
by span (last real position + 1) and cut into groups of ``GROUP`` sessions, each padded only to its
longest span. Positions keep their index and the cut-off columns are padding that every query
masks anyway, so each session's attention output is unchanged, on far fewer padded positions
(20-item windows of ~6-item sessions: a third of the scores; measured in ``bench/compare_t4r.py``).

``T`` is rounded up to a multiple of ``BUCKET`` rows (copies of a padded position, dropped again by
``unpack``): with the exact ``T`` every batch allocates tensors of new sizes, and glibc's heap
fragments and keeps growing (measured: +400 MB of resident memory over 4 windows of a d_model-128
XLNet run; flat with buckets, at the same speed).
"""

from __future__ import annotations

from functools import cached_property

import torch

BUCKET = 64
GROUP = 64  # sessions per attention group (32 and 128 were slower, measured)


class AttentionGroup:
    """Sessions ``rows`` of the batch, laid out ``[len(rows), length]``; ``padding_mask`` is theirs."""

    def __init__(self, rows: torch.Tensor, length: int, padding_mask: torch.Tensor, gather: torch.Tensor | None):
        self.rows, self.length, self.padding_mask = rows, length, padding_mask
        self.gather = gather  # packed row (or the zero row T') of each position; None: the whole batch, unpacked


class Packing:
    """Where the real positions of a ``[B, L]`` padding mask are, to gather and scatter them."""

    def __init__(self, padding_mask: torch.Tensor, group: bool = False):
        """``group``: lay attention out in length groups (:meth:`to_groups`); else one group, the whole batch."""
        self.shape = tuple(padding_mask.shape)
        self.padding_mask = padding_mask
        flat = padding_mask.reshape(-1)
        index = flat.nonzero().squeeze(1)
        self.n_real = index.numel()
        self.scatter: torch.Tensor | None = None
        whole = AttentionGroup(torch.arange(self.shape[0], device=flat.device), self.shape[1], padding_mask, None)
        self.groups = [whole]
        if torch.jit.is_tracing() or torch.compiler.is_compiling():  # exported graphs: sizes are symbolic
            self.index = index
            return
        size = min(flat.numel(), -(-self.n_real // BUCKET) * BUCKET)
        if size > self.n_real:  # then there is a padded position to repeat
            index = torch.cat([index, (~flat).nonzero()[0].expand(size - self.n_real)])
        self.index = index
        if group and self.shape[0] >= 2 * GROUP:
            self._group()

    def _group(self) -> None:
        B, L = self.shape
        device = self.index.device
        span = (self.padding_mask * torch.arange(1, L + 1, device=device)).amax(1)
        order = span.argsort(stable=True)
        spans = span[order].tolist()
        slot = torch.full((B * L,), self.index.numel(), dtype=torch.long, device=device)  # the zero row
        slot[self.index[:self.n_real]] = torch.arange(self.n_real, device=device)
        slot = slot.view(B, L)
        grouped = torch.zeros(B * L, dtype=torch.long, device=device)  # flat position → row of the grouped layout
        self.groups, offset = [], 0
        for start in range(0, B, GROUP):
            rows = order[start:start + GROUP]
            length = max(1, int(spans[min(start + GROUP, B) - 1]))
            n = rows.numel() * length
            grouped[(rows[:, None] * L + torch.arange(length, device=device)).reshape(-1)] = torch.arange(
                offset, offset + n, device=device)
            self.groups.append(AttentionGroup(rows, length, self.padding_mask[rows, :length],
                                              slot[rows, :length].reshape(-1)))
            offset += n
        self.scatter = grouped[self.index]  # filler rows read any position: they are dropped later

    def rows_of(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(packed rows, ``[n', 1]`` 1/0 real or padded) of flat positions ``b * L + l``; a padded position
        gets some row, to be multiplied by its 0 (the unpacked layout has zeros there). Like ``T'``,
        ``n'`` is ``n`` rounded up to ``BUCKET`` (copies of the first row): the caller keeps ``[:n]``."""
        n = positions.numel()
        if n and not (torch.jit.is_tracing() or torch.compiler.is_compiling()):
            positions = torch.cat([positions, positions[:1].expand(-(-n // BUCKET) * BUCKET - n)])
        return self._row_of_position[positions], self.padding_mask.reshape(-1)[positions, None]

    @cached_property
    def _row_of_position(self) -> torch.Tensor:
        """The packed row of each flat position; a padded position gets the real row before it (or 0)."""
        return (self.padding_mask.reshape(-1).cumsum(0) - 1).clamp(min=0)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, L, *rest]`` → ``[T', *rest]``: the real positions, then ``T' - T`` filler rows."""
        return x.reshape(-1, *x.shape[2:]).index_select(0, self.index)

    @cached_property
    def _gather(self) -> tuple[torch.Tensor, list[int]]:
        """Every group's gather end to end, and their sizes: one index_select for all groups, so the
        backward pass is one scatter-add into one zero tensor instead of one per group and their sum."""
        return torch.cat([g.gather for g in self.groups]), [g.gather.numel() for g in self.groups]

    def to_groups(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``[T', *rest]`` → one ``[len(rows), length, *rest]`` per group, zeros at padded positions."""
        if self.scatter is None:
            return [self.unpack(x)]
        index, sizes = self._gather
        parts = torch.cat([x, x.new_zeros(1, *x.shape[1:])]).index_select(0, index).split(sizes)
        return [y.view(g.rows.numel(), g.length, *x.shape[1:]) for y, g in zip(parts, self.groups)]

    def from_groups(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`to_groups`: ``[T', *rest]``."""
        if self.scatter is None:
            return self.pack(xs[0])
        return torch.cat([x.reshape(-1, *x.shape[2:]) for x in xs]).index_select(0, self.scatter)

    @cached_property
    def _head_maps(self) -> tuple[torch.Tensor, list[int], torch.Tensor]:
        """:attr:`_gather` where a padded position reads a packed row instead of a zero row (attention masks
        it out anyway), and each packed row's position in the groups' layout."""
        if self.scatter is None:  # one group: the whole batch, flat positions
            return self._row_of_position, [self._row_of_position.numel()], self.index
        index, sizes = self._gather
        return index.clamp(max=self.index.numel() - 1), sizes, self.scatter

    def to_head_groups(self, x: torch.Tensor, n_split: int) -> list[torch.Tensor]:
        """``[T', n_split * dh]`` → one ``[n_split, len(rows) * length, dh]`` per group: split-major, so a
        split's (head's) ``[len(rows), length, dh]`` block is contiguous and batched products take it as is.
        Padded positions hold other rows' values: only masked attention may read them."""
        index, sizes, _ = self._head_maps
        # whole rows gathered, then transposed: a gather of dh-wide rows is 5x slower backward (scatter-add)
        return [y.view(y.shape[0], n_split, -1).transpose(0, 1).contiguous() for y in x.index_select(0, index).split(sizes)]

    def from_head_groups(self, xs: list[torch.Tensor]) -> torch.Tensor:
        """Inverse of :meth:`to_head_groups`: ``[T', n_split * dh]``."""
        x = torch.cat(xs, 1).transpose(0, 1)
        return x.reshape(x.shape[0], -1).index_select(0, self._head_maps[2])

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """``[T', *rest]`` → ``[B, L, *rest]`` with zeros at the padded positions."""
        out = x.new_zeros(self.shape[0] * self.shape[1], *x.shape[1:])
        n = self.n_real
        return out.index_copy(0, self.index[:n], x[:n]).view(*self.shape, *x.shape[1:])
