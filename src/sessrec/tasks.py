"""Training objectives (CLM, MLM, ...) and how each one represents "the next item" of a session.

An objective has two jobs: ``loss(model, batch)`` for training, and ``next_item_hidden(model,
prefix)``, the hidden state from which the item following ``prefix`` is predicted. Evaluation
and recommendation both use ``next_item_hidden`` on the session without its last item, so an
evaluation metric is exactly what a user gets from ``recommend`` (no label can leak: the target
is not in the input).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from sessrec.config import ExperimentConfig
from sessrec.data.loader import Batch
from sessrec.errors import SessrecError


def random_choice_per_row(eligible: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Index of one uniformly chosen True column per row of ``eligible`` (rows need one True)."""
    noise = torch.rand(eligible.shape, generator=generator).to(eligible.device)
    return noise.masked_fill(~eligible, -1.0).argmax(dim=1)


def mlm_mask(items: torch.Tensor, probability: float, generator: torch.Generator | None) -> torch.Tensor:
    """Bernoulli(p) mask over real items, with at least one masked and one unmasked item per session of length >= 2."""
    real = items != 0
    rows = torch.arange(items.shape[0], device=items.device)
    masked = (torch.rand(items.shape, generator=generator).to(items.device) < probability) & real
    all_masked = (masked.sum(1) == real.sum(1)) & (real.sum(1) >= 2)
    if all_masked.any():
        keep = random_choice_per_row(masked, generator)
        masked[rows[all_masked], keep[all_masked]] = False
    none_masked = (masked.sum(1) == 0) & real.any(1)
    if none_masked.any():
        pick = random_choice_per_row(real, generator)
        masked[rows[none_masked], pick[none_masked]] = True
    return masked


def make_room_for_next(prefix: Batch, item_key: str) -> tuple[Batch, torch.Tensor]:
    """Free the position after each session's last item (dropping the first item of full sessions).

    Returns the shifted batch and, per row, the free position where the next item goes.
    """
    items = prefix[item_key]
    L = items.shape[1]
    lengths = (items != 0).sum(1)
    full = lengths >= L
    # No data-dependent branch here: torch.export (ONNX) cannot trace one, and torch.jit.trace would bake one in.
    prefix = {k: torch.where(full.view(-1, 1), torch.nn.functional.pad(v[:, 1:], (0, 1)), v) for k, v in prefix.items()}
    return prefix, lengths - full.long()


class CausalLM(nn.Module):
    """CLM: every position predicts the next item under causal attention."""

    causal = True

    def __init__(self, cfg: ExperimentConfig):
        super().__init__()
        self.last_only = cfg.train_on_last_item_seq_only

    def loss(self, model, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        items = batch[model.item_key]
        h = model.encode(model.embed(batch), items != 0, causal=True)
        labels = items[:, 1:]
        valid = labels != 0
        if self.last_only:
            last = valid.sum(1) - 1
            valid = torch.zeros_like(valid)
            has = last >= 0
            valid[has.nonzero().squeeze(1), last[has]] = True
        return model.head.loss(h[:, :-1][valid], labels[valid])

    def next_item_hidden(self, model, prefix: Batch) -> torch.Tensor:
        items = prefix[model.item_key]
        h = model.encode(model.embed(prefix), items != 0, causal=True)
        last = (items != 0).sum(1) - 1
        return h[torch.arange(items.shape[0], device=items.device), last]


class MaskedLM(nn.Module):
    """MLM: masked items are replaced by a trainable [MASK] embedding and predicted bidirectionally."""

    causal = False

    def __init__(self, cfg: ExperimentConfig):
        super().__init__()
        self.probability = cfg.mlm_probability
        self.mask_embedding = nn.Parameter(torch.empty(cfg.d_model).normal_(0.0, 0.001))

    def loss(self, model, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        items = batch[model.item_key]
        masked = mlm_mask(items, self.probability, generator)
        x = model.embed(batch)
        x = torch.where(masked.unsqueeze(-1), self.mask_embedding.to(x.dtype), x)
        h = model.encode(x, items != 0, causal=False)
        return model.head.loss(h[masked], items[masked])

    def next_item_hidden(self, model, prefix: Batch) -> torch.Tensor:
        prefix, slot = make_room_for_next(prefix, model.item_key)
        items = prefix[model.item_key]
        rows = torch.arange(items.shape[0], device=items.device)
        x = model.embed(prefix)
        x[rows, slot] = self.mask_embedding.to(x.dtype)
        real = items != 0
        real[rows, slot] = True
        h = model.encode(x, real, causal=False)
        return h[rows, slot]


ObjectiveBuilder = Callable[[ExperimentConfig], nn.Module]
OBJECTIVES: dict[str, ObjectiveBuilder] = {"clm": CausalLM, "mlm": MaskedLM}


def build_objective(cfg: ExperimentConfig, body: nn.Module) -> nn.Module:
    if cfg.task not in OBJECTIVES:
        raise SessrecError(f"task '{cfg.task}' is not available (choose from {', '.join(OBJECTIVES)})")
    objective = OBJECTIVES[cfg.task](cfg)
    if objective.causal and not getattr(body, "supports_causal", True):
        raise SessrecError(f"model_type '{cfg.model_type}' cannot run causally: it does not support task '{cfg.task}'")
    if not objective.causal and not getattr(body, "supports_bidirectional", True):
        raise SessrecError(f"model_type '{cfg.model_type}' is causal only: use task clm, not '{cfg.task}'")
    return objective
