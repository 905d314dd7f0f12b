"""HSTU (Zhai et al., "Actions Speak Louder than Words: Trillion-Parameter Sequential Transducers
for Generative Recommendations", ICML 2024), in plain PyTorch after the authors' reference layer
(github.com/facebookresearch/generative-recommenders, ``SequentialTransductionUnitJagged``).

Inputs, as the reference's input preprocessor: ``X0 = dropout(x * sqrt(d_model) + P)``, ``P`` a
learned absolute position embedding (``model_config: {input_positions: false}``: ``dropout(x)``
alone), padded positions zeroed. Each layer, with ``X`` its input and ``N = session_seq_length_max``::

    U, V, Q, K = split(SiLU(Linear(LN(X))))                          # one projection, four parts
    A = SiLU(alpha Q Kᵀ + rab) / N   (causal: 0 where key j > query i, or j is padding)
    Y = X + Linear(dropout(U ⊙ LN(A V)))

per head (``n_head`` heads of ``d_head = d_model / n_head``), ``alpha = 1 / sqrt(d_head)`` as in
the reference's current attention kernels (``qk_scale: false``: ``alpha = 1``, its first release).
The attention is point-wise: no softmax, the SiLU weights divided by the (maximum) sequence
length, as in the reference. ``rab`` is each layer's relative attention bias: a learned bias per distance
``i - j``, plus, when the data has a time column (the schema's first feature tagged ``time``), a
learned bias per bucket ``floor(log(max(|t_i - t_j|, 1)) / 0.301)`` (at most ``time_buckets``,
default 128) of the time between the two interactions. One deviation from the reference: it
takes the time of the query's *next* interaction (``t_{i+1} - t_j``), which an evaluation here
never gives a model (the target's time is not in the prefix); HSTU here uses the query's own time
``t_i``. ``model_config: {time_bias: false}`` leaves timestamps out. A final LayerNorm
(``final_norm: false`` drops it) stands for the reference's L2-normalised output embedding.

Chosen on validation windows only (NDCG@20 at d_model 64, 1 layer, 3 epochs, seeds 100-101; test
data never read): the final LayerNorm (sample 0.092 → 0.096, click log 0.1725 → 0.1736), then
the input positions and ``alpha`` (sample 0.090 → 0.108, click log 0.1742 → 0.1774; GPT-2 0.1185
and 0.1709). On the bundled sample, whose timestamps are random, the time bias costs ~0.005.

Causal only (task clm), as HSTU is trained in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sessrec.bodies.attention import allowed_keys
from sessrec.bodies.registry import check_heads, model_options, register
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError

LOG_BUCKET_WIDTH = 0.301  # the reference's bucketisation: int(log(max(|dt|, 1)) / 0.301)


def time_buckets(timestamps: torch.Tensor, n_buckets: int) -> torch.Tensor:
    """``[B, L, L]`` bucket of the time between the interactions of query i and key j: ``floor(log(max(|t_i - t_j|, 1))
    / 0.301)``, at most ``n_buckets``. In float64: float32 would round epoch seconds to minutes."""
    t = timestamps.double()
    dt = (t[:, :, None] - t[:, None, :]).abs().clamp(min=1.0)
    return (dt.log() / LOG_BUCKET_WIDTH).long().clamp(0, n_buckets)


class HSTULayer(nn.Module):
    """One HSTU block with its own relative attention bias, as each of the reference's layers has."""

    def __init__(self, d: int, n_head: int, dropout: float, eps: float, alpha: float, max_len: int, std: float):
        super().__init__()
        self.std = std
        self.pos_bias = nn.Parameter(torch.empty(2 * max_len - 1).normal_(0.0, std))  # by distance i - j
        self.time_bias: nn.Parameter | None = None
        self.n_head = n_head
        self.alpha = alpha
        self.norm = nn.LayerNorm(d, eps=eps)
        self.uvqk = nn.Linear(d, 4 * d)
        self.attn_norm = nn.LayerNorm(d, eps=eps)
        self.out = nn.Linear(d, d)
        self.dropout = nn.Dropout(dropout)
        nn.init.xavier_uniform_(self.uvqk.weight)
        nn.init.zeros_(self.uvqk.bias)
        nn.init.xavier_uniform_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def add_time_bias(self, n_buckets: int) -> None:
        self.time_bias = nn.Parameter(torch.empty(n_buckets + 1).normal_(0.0, self.std))

    def forward(self, x: torch.Tensor, distance: torch.Tensor, buckets: torch.Tensor | None, keep: torch.Tensor,
                n: int) -> torch.Tensor:
        """``x [B, L, d]``; ``distance [L, L]`` index of ``i - j`` in ``pos_bias``; ``buckets [B, L, L]`` time buckets
        (with a time bias); ``keep [B, 1, L, L]`` 1.0 where query i may attend to key j; ``n``: the length the
        attention is divided by."""
        bias = self.pos_bias[distance].unsqueeze(0)  # [1, L, L]
        if self.time_bias is not None:
            bias = bias + self.time_bias[buckets]
        bias = bias.to(x.dtype)
        B, L, d = x.shape
        u, v, q, k = F.silu(self.uvqk(self.norm(x))).split(d, dim=-1)
        q, k, v = (t.view(B, L, self.n_head, d // self.n_head).transpose(1, 2) for t in (q, k, v))
        weights = F.silu(q @ k.transpose(-1, -2) * self.alpha + bias.unsqueeze(1)) / n * keep  # [B, H, L, L]
        attended = (weights @ v).transpose(1, 2).reshape(B, L, d)
        return x + self.out(self.dropout(u * self.attn_norm(attended)))


class HSTU(nn.Module):
    """HSTU over ``inputs_embeds``; always causal. Reads the data's timestamps once
    :meth:`use_timestamps` is called (the session model does when the schema has a time column)."""

    supports_causal = True
    supports_bidirectional = False

    def __init__(self, cfg: ExperimentConfig):
        super().__init__()
        opts = model_options(cfg, {"time_bias": True, "time_buckets": 128, "final_norm": True,
                                   "input_positions": True, "qk_scale": True})
        check_heads(cfg)
        if int(opts["time_buckets"]) < 1:
            raise SessrecError(f"model_config: hstu time_buckets must be >= 1 (got {opts['time_buckets']})")
        self.wants_time = bool(opts["time_bias"])
        self.n_time_buckets = int(opts["time_buckets"])
        self.max_len = cfg.session_seq_length_max
        self.uses_time = False
        alpha = (cfg.d_model // cfg.n_head) ** -0.5 if opts["qk_scale"] else 1.0
        self.layers = nn.ModuleList(HSTULayer(cfg.d_model, cfg.n_head, cfg.dropout, cfg.layer_norm_eps, alpha,
                                              self.max_len, cfg.initializer_range) for _ in range(cfg.n_layer))
        self.input_pos: nn.Embedding | None = None
        if opts["input_positions"]:
            self.input_pos = nn.Embedding(self.max_len, cfg.d_model)
            nn.init.trunc_normal_(self.input_pos.weight, 0.0, cfg.d_model ** -0.5)
        self.dropout = nn.Dropout(cfg.dropout)
        self.final_norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps) if opts["final_norm"] else nn.Identity()

    def use_timestamps(self) -> bool:
        """Add the time bias (unless ``time_bias: false``); True when the body then reads timestamps."""
        if self.wants_time and not self.uses_time:
            for layer in self.layers:
                layer.add_time_bias(self.n_time_buckets)
            self.uses_time = True
        return self.uses_time

    def forward(self, x: torch.Tensor, padding_mask: torch.Tensor, causal: bool = True,
                timestamps: torch.Tensor | None = None, **kwargs) -> torch.Tensor:
        if not causal:
            raise SessrecError("hstu is a causal model: use it with task clm")
        B, L, _ = x.shape
        if L > self.max_len:
            raise SessrecError(f"hstu: sessions of {L} positions, longer than session_seq_length_max={self.max_len}")
        if (timestamps is None) == self.uses_time:
            raise SessrecError("hstu: the time bias needs the interactions' timestamps" if timestamps is None
                               else "hstu: timestamps given to a model built without a time bias")
        pos = torch.arange(L, device=x.device)
        distance = pos[:, None] - pos[None, :] + self.max_len - 1
        buckets = time_buckets(timestamps, self.n_time_buckets) if self.uses_time else None
        keep = allowed_keys(padding_mask).to(x.dtype)
        if self.input_pos is not None:
            x = (x * x.shape[-1] ** 0.5 + self.input_pos.weight[:L]) * padding_mask[..., None].to(x.dtype)
        h = self.dropout(x)
        for layer in self.layers:
            h = layer(h, distance, buckets, keep, self.max_len)
        return self.final_norm(h)


register("hstu")(HSTU)
