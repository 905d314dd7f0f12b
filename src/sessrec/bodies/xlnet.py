"""XLNet (Yang et al., "XLNet: Generalized Autoregressive Pretraining for Language Understanding",
NeurIPS 2019), the encoder the Transformers4Rec paper ran most of its experiments with.

The same computation, parameter names and shapes as ``transformers.XLNetModel`` (relative
positional attention with ``r_w``/``r_r`` biases, two-stream attention for permutation LM,
post-LayerNorm blocks), so a state dict moves between the two and ``tests/bodies/test_native_equivalence.py``
checks that both give the same hidden states. Why our own: ``transformers`` runs XLNet
sequence-first with einsum contractions, projects the relative position encodings once per
sequence of the batch, and builds its masks as float tensors every call; here the layout is
batch-first, the position keys are projected once per batch and attention (:mod:`.attention`)
takes the position scores as its additive mask, per group of sessions of similar length
(:mod:`.packing`). ``bench/`` shows
the difference (see the README's speed section). Projections, feed-forward layers and LayerNorms
of the content stream run on the real (non-padded) positions only (:mod:`.packing`); padded
positions come out as zeros. What is not carried over: memories
(``mems``), segment embeddings and ``bi_data`` — the session models never use them.
"""

from __future__ import annotations

import torch
from torch import nn

from sessrec.bodies.attention import attention
from sessrec.bodies.packing import Packing
from sessrec.bodies.registry import check_heads, model_options, register
from sessrec.config import ExperimentConfig
from sessrec.features import activation


def _neg(dtype: torch.dtype) -> float:
    """Additive score of a hidden key: -1e30 as in ``transformers``' XLNet, the dtype's minimum below float32."""
    return -1e30 if torch.finfo(dtype).bits >= 32 else torch.finfo(dtype).min


class RelativeAttention(nn.Module):
    """One XLNet attention block (content stream, and the query stream when ``g`` is given)."""

    def __init__(self, d_model: int, n_head: int, dropout: float, eps: float):
        super().__init__()
        self.n_head, self.d_head = n_head, d_model // n_head
        self.scale = self.d_head**-0.5
        for name in ("q", "k", "v", "o", "r"):
            setattr(self, name, nn.Parameter(torch.empty(d_model, n_head, self.d_head)))
        for name in ("r_r_bias", "r_s_bias", "r_w_bias"):
            setattr(self, name, nn.Parameter(torch.empty(n_head, self.d_head)))
        self.seg_embed = nn.Parameter(torch.empty(2, n_head, self.d_head))  # kept for state-dict compatibility
        self.layer_norm = nn.LayerNorm(d_model, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """``[B, L, d_model]`` → ``[B, n_head, L, d_head]``."""
        B, L, _ = x.shape
        return (x @ w.flatten(1)).view(B, L, self.n_head, self.d_head).transpose(1, 2)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_r: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Relative attention of queries ``q [B, n, Lq, dh]`` over keys ``[B, n, L, dh]``; ``mask`` is additive ``[B|1, 1, Lq, L]``."""
        L = k.shape[2]
        bd = (q + self.r_r_bias[:, None]) @ k_r.transpose(-1, -2)  # [B, n, Lq, 2L]
        bd = _rel_shift(bd, L)
        p = self.dropout.p if self.training else 0.0
        return attention(q + self.r_w_bias[:, None], k, v, bd * self.scale + mask, p, self.scale)

    def _post(self, residual: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
        """Output projection, residual and LayerNorm; ``attn`` is ``[..., n_head * d_head]`` like ``residual``."""
        return self.layer_norm(self.dropout(attn @ self.o.flatten(1).t()) + residual)

    def forward(self, h: torch.Tensor, g: torch.Tensor | None, packing: Packing, masks_h: list[torch.Tensor],
                mask_g: torch.Tensor | None, positions: list[torch.Tensor], target_mapping: torch.Tensor | None,
                rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``h``: packed content stream ``[T, d_model]``; ``g``: query stream ``[B, M, d_model]`` or None
        (then ``packing`` has a single group). ``masks_h`` and ``positions``: one per attention group.
        ``rows``: the packed rows of ``h`` whose output is wanted (None: all)."""
        qkv = h @ torch.cat([self.q.flatten(1), self.k.flatten(1), self.v.flatten(1)], dim=1)
        outs = []
        for x, mask, pos in zip(packing.to_groups(qkv), masks_h, positions):
            n, L = x.shape[:2]
            q, k, v = (t.transpose(1, 2) for t in x.view(n, L, 3, self.n_head, self.d_head).unbind(2))
            k_r = (pos @ self.r.flatten(1)).view(pos.shape[0], self.n_head, self.d_head).transpose(0, 1)  # [n, 2L, dh]
            outs.append(_merge_heads(self._attend(q, k, v, k_r, mask)))
        attn = packing.from_groups(outs)
        out_h = self._post(h, attn) if rows is None else self._post(h[rows], attn[rows])
        if g is None:
            return out_h, None
        q_g = self._heads(g, self.q)  # [B, n, M, dh]
        if target_mapping is not None:  # queries at the mapped positions: [B, n, L, dh]
            q_g = target_mapping.transpose(1, 2)[:, None] @ q_g
        # A query that may see no key (the first target of a factorisation order in which every item is a
        # target) is predicted from nothing: its attention is empty. Softmax over -1e30 scores, as in
        # transformers' XLNet, would spread it evenly over every key, the query's own item included.
        attn_g = self._attend(q_g, k, v, k_r, mask_g) * (mask_g == 0).any(-1, keepdim=True)
        if target_mapping is not None:
            attn_g = target_mapping[:, None] @ attn_g
        return out_h, self._post(g, _merge_heads(attn_g))


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``[B, n_head, L, d_head]`` → ``[B, L, n_head * d_head]``."""
    B, n, L, dh = x.shape
    return x.transpose(1, 2).reshape(B, L, n * dh)


def _rel_shift(x: torch.Tensor, klen: int) -> torch.Tensor:
    """XLNet's relative shift on ``[B, n, Lq, 2L]`` scores: column j of row i becomes relative position i - j."""
    B, n, q, r = x.shape
    return x.reshape(B, n, r, q)[:, :, 1:, :].reshape(B, n, q, r - 1)[..., :klen]


class FeedForward(nn.Module):
    def __init__(self, d_model: int, d_inner: int, hidden_act: str, dropout: float, eps: float):
        super().__init__()
        self.layer_norm = nn.LayerNorm(d_model, eps=eps)
        self.layer_1 = nn.Linear(d_model, d_inner)
        self.layer_2 = nn.Linear(d_inner, d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation_function = activation(hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dropout(self.activation_function(self.layer_1(x)))
        return self.layer_norm(self.dropout(self.layer_2(y)) + x)


class Layer(nn.Module):
    def __init__(self, cfg: ExperimentConfig, d_inner: int):
        super().__init__()
        d = cfg.d_model
        self.rel_attn = RelativeAttention(d, cfg.n_head, cfg.dropout, cfg.layer_norm_eps)
        self.ff = FeedForward(d, d_inner, cfg.hidden_act, cfg.dropout, cfg.layer_norm_eps)


class XLNet(nn.Module):
    """XLNet encoder over ``inputs_embeds``; ``forward`` follows :class:`transformers.XLNetModel`'s masks."""

    supports_causal = True
    supports_bidirectional = True
    supports_permutation = True
    selects_outputs = True

    def __init__(self, cfg: ExperimentConfig):
        super().__init__()
        opts = model_options(cfg, {"d_inner": 4 * cfg.d_model})
        check_heads(cfg)
        self.d_model = cfg.d_model
        self.mask_emb = nn.Parameter(torch.empty(1, 1, cfg.d_model))
        self.layer = nn.ModuleList(Layer(cfg, int(opts["d_inner"])) for _ in range(cfg.n_layer))
        self.dropout = nn.Dropout(cfg.dropout)
        self._init(cfg.initializer_range)

    def _init(self, std: float) -> None:
        """``transformers``' XLNet initialisation: Normal(0, std) weights, zero biases, unit LayerNorms."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, RelativeAttention):
                for p in (m.q, m.k, m.v, m.o, m.r, m.r_r_bias, m.r_s_bias, m.r_w_bias, m.seg_embed):
                    nn.init.normal_(p, 0.0, std)
        nn.init.normal_(self.mask_emb, 0.0, std)

    def _positions(self, L: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """Sinusoidal encodings of the relative distances L, L-1, ..., -L+1 (``attn_type='bi'``): ``[2L, d_model]``."""
        inv_freq = 1.0 / torch.pow(10000, torch.arange(0, self.d_model, 2.0, device=device) / self.d_model)
        seq = torch.arange(L, -L, -1.0, device=device)[:, None] * inv_freq
        return torch.cat([torch.sin(seq), torch.cos(seq)], dim=-1).to(dtype)

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor, causal: bool = False,
                perm_mask: torch.Tensor | None = None, target_mapping: torch.Tensor | None = None,
                outputs: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, L, d]`` hidden states (the query stream's ``[B, M, d]`` with ``target_mapping``), or with
        ``outputs`` (flat positions ``b * L + l``) theirs only, ``[n, d]``: the last layer then projects,
        normalises and feeds forward those positions alone."""
        if outputs is not None and target_mapping is not None:
            raise ValueError("outputs selects content-stream positions; with target_mapping the query stream is returned")
        B = x.shape[0]
        packing = Packing(padding_mask, group=perm_mask is None and target_mapping is None)
        zero, neg = torch.zeros((), dtype=x.dtype, device=x.device), _neg(x.dtype)
        masks_h, positions, blocked = [], [], None
        for group in packing.groups:  # one group (the whole batch) with perm_mask or target_mapping
            L = group.length
            blocked = ~group.padding_mask[:, None, :].expand(-1, L, L)  # [n, query, key]: padded keys are hidden
            if causal and perm_mask is None:
                blocked = blocked | torch.ones(L, L, dtype=torch.bool, device=x.device).triu(1)
            if perm_mask is not None:
                blocked = blocked | (perm_mask > 0)
            eye = torch.eye(L, dtype=torch.bool, device=x.device)
            masks_h.append(torch.where(blocked & ~eye, neg, zero)[:, None])  # the content stream always sees itself
            positions.append(self.dropout(self._positions(L, x.device, x.dtype)))
        h = self.dropout(x)
        g = mask_g = None
        if target_mapping is not None:  # two-stream attention (permutation LM)
            mask_g = torch.where(blocked, neg, zero)[:, None]
            g = self.dropout(self.mask_emb.to(x.dtype).expand(B, target_mapping.shape[1], -1))
        h = packing.pack(h)
        rows, real = packing.rows_of(outputs) if outputs is not None else (None, None)
        for i, layer in enumerate(self.layer):
            h, g = layer.rel_attn(h, g, packing, masks_h, mask_g, positions, target_mapping,
                                  rows if i == len(self.layer) - 1 else None)
            if g is not None:
                g = layer.ff(g)
            h = layer.ff(h)
        if g is not None:
            return self.dropout(g)
        return self.dropout(packing.unpack(h) if outputs is None else (h * real)[:outputs.numel()])


register("xlnet")(XLNet)
