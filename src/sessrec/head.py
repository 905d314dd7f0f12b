"""Next-item head: hidden states at target positions → scores over the item catalog.

With ``mf_constrained_embeddings`` the output layer is the item embedding table (matrix
factorisation scoring) plus a per-item bias, after ``activation(Linear(d_model → item_dim))``;
otherwise a free ``Linear(d_model → n_items)`` after ``activation(Linear(d_model → d_model))``
(the paper's code; ``activation`` is ``tf_out_activation``). With ``compat t4r-23.12``, as the
released library: no bias, and no projection (a plain ``Linear`` only when ``d_model`` differs from
the item dim).
The catalog is item ids ``1..n_items-1``: id 0 is padding and never scored, so column ``j`` of
the logits is item ``j + 1``.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
from sessrec.features import activation
from sessrec.losses import (
    bpr_max_loss,
    full_cross_entropy,
    gbce_loss,
    pair_scores,
    sampled_softmax_loss,
    uniform_negatives,
)

log = logging.getLogger(__name__)


class NextItemHead(nn.Module):
    def __init__(self, cfg: ExperimentConfig, n_items: int, item_table: nn.Embedding):
        super().__init__()
        sampled = f"loss_type {cfg.loss_type}" if cfg.loss_type != "cross_entropy" else \
            "sampled_softmax" if cfg.sampled_softmax else None
        if sampled and n_items - 1 < 2:  # no other item to draw: gBCE divided by zero
            raise SessrecError(f"{sampled} contrasts the target with other items, and the catalog has {n_items - 1} "
                               "item: use loss_type cross_entropy without sampled_softmax")
        self.tied = cfg.mf_constrained_embeddings
        out_dim = cfg.item_dim if self.tied else cfg.d_model
        if cfg.t4r_library and cfg.tf_out_activation != "tanh" and cfg.task != "rtd":
            log.warning("tf_out_activation %s has no effect with compat t4r-23.12 (ReLU input projection, no output activation)",
                        cfg.tf_out_activation)
        if cfg.t4r_library:
            self.proj: nn.Module = nn.Identity() if out_dim == cfg.d_model else nn.Linear(cfg.d_model, out_dim)
        else:
            self.proj = nn.Sequential(nn.Linear(cfg.d_model, out_dim), activation(cfg.tf_out_activation))
        self.item_table = item_table if self.tied else None
        self.weight = None if self.tied else nn.Parameter(torch.empty(n_items - 1, out_dim).normal_(0.0, cfg.initializer_range))
        if cfg.t4r_library:  # a constant zero: the same state-dict keys either way
            self.register_buffer("bias", torch.zeros(n_items - 1))
        else:
            self.bias = nn.Parameter(torch.zeros(n_items - 1))
        self.temperature = cfg.softmax_temperature
        self.label_smoothing = cfg.label_smoothing
        self.sampled_negatives = cfg.sampled_softmax_max_n_samples if cfg.sampled_softmax else 0
        self.loss_type = cfg.loss_type
        self.num_negatives, self.gbce_t, self.bpr_max_reg = cfg.num_negatives, cfg.gbce_t, cfg.bpr_max_reg

    @property
    def output_weight(self) -> torch.Tensor:
        """``[n_items - 1, dim]`` output embeddings of items 1..n_items-1."""
        return self.item_table.weight[1:] if self.tied else self.weight

    @property
    def logit_bias(self) -> torch.Tensor | None:
        """The per-item bias, None without one (adding zeros is a pass over the ``[N, n_items]`` logits)."""
        return self.bias if isinstance(self.bias, nn.Parameter) else None

    def forward(self, hidden: torch.Tensor, columns: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``[N, n_items - 1]`` for hidden states ``[N, d_model]``; with ``columns`` (item ids - 1),
        ``[N, len(columns)]``: those items' logits only, without the catalog-wide product."""
        weight, bias = self.output_weight, self.logit_bias
        if columns is not None:
            weight, bias = weight[columns], None if bias is None else bias[columns]
        logits = F.linear(self.proj(hidden), weight, bias)
        return logits if self.temperature == 1.0 else logits / self.temperature

    def loss(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of predicting ``items`` (ids >= 1) from ``hidden``.

        Full softmax over the catalog (computed in chunks for large catalogs), or, in training with
        ``sampled_softmax``, a sampled softmax with logQ correction. With ``loss_type`` gbce or
        bpr_max, that loss over ``num_negatives`` uniform negatives per item (in training; evaluation
        reports the full cross-entropy of every model alike).
        """
        x = self.proj(hidden)
        if self.training and self.loss_type != "cross_entropy":
            return self.negatives_loss(x, items - 1)
        if self.training and self.sampled_negatives:
            return sampled_softmax_loss(x, self.output_weight, self.bias, items - 1, self.sampled_negatives,
                                        self.label_smoothing, self.temperature)
        return full_cross_entropy(x, self.output_weight, self.logit_bias, items - 1, self.label_smoothing, self.temperature)

    def negatives_loss(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """gBCE or BPR-max of the target columns against uniformly drawn negative columns (scores / temperature)."""
        weight, bias = self.output_weight, self.logit_bias
        negatives = uniform_negatives(targets.shape[0], self.num_negatives, weight.shape[0], x.device)
        pos = pair_scores(x, weight, bias, targets[:, None]).squeeze(1) / self.temperature
        neg = pair_scores(x, weight, bias, negatives) / self.temperature
        if self.loss_type == "gbce":
            return gbce_loss(pos, neg, weight.shape[0], self.gbce_t)
        return bpr_max_loss(pos, neg, self.bpr_max_reg, valid=negatives != targets[:, None])
