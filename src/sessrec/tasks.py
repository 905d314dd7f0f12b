"""Training objectives (CLM, MLM, PLM, RTD) and how each one represents "the next item" of a session.

An objective has two jobs: ``loss(model, batch)`` for training, and ``next_item_hidden(model,
prefix)``, the hidden state from which the item following ``prefix`` is predicted. Evaluation
and recommendation both use ``next_item_hidden`` on the session without its last item, so an
evaluation metric is exactly what a user gets from ``recommend`` (no label can leak: the target
is not in the input).

* ``clm``: every position predicts the next item under causal attention; the next item of a prefix
  is read at its last item.
* ``mlm``: items masked with ``mlm_probability`` are replaced by a trainable [MASK] embedding and
  predicted bidirectionally; the next item of a prefix is a [MASK] appended after its last item.
* ``plm`` (XLNet only): span-based permutation LM, the algorithm of ``transformers``'
  ``DataCollatorForPermutationLanguageModeling`` that the original system used, through XLNet's
  two-stream attention (``perm_mask`` / ``target_mapping``); the next item is a slot after the
  last item that no position may see, predicted by its query stream from the whole prefix.
* ``rtd``: ELECTRA-style replaced-item detection on top of MLM (see :class:`ReplacedTokenDetection`);
  recommendations use the MLM path, as in the paper.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from sessrec.config import ExperimentConfig
from sessrec.data.loader import Batch
from sessrec.errors import SessrecError
from sessrec.features import InputProjection, activation
from sessrec.losses import CHUNK_ELEMENTS


def uniform(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """U[0, 1) noise on ``device``, reproducible from the (CPU) ``generator``.

    Small tensors are drawn on the CPU; large ones on an accelerator are drawn there from a seed
    taken from ``generator``, so that no catalog-sized noise crosses the bus.
    """
    if device.type == "cpu" or generator is None or torch.Size(shape).numel() < 65536:
        return torch.rand(shape, generator=generator).to(device)
    seed = int(torch.randint(2**62, (1,), generator=generator))
    return torch.rand(shape, generator=torch.Generator(device).manual_seed(seed), device=device)


def random_choice_per_row(eligible: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Index of one uniformly chosen True column per row of ``eligible`` (rows need one True)."""
    return uniform(eligible.shape, generator, eligible.device).masked_fill(~eligible, -1.0).argmax(dim=1)


def mlm_mask(items: torch.Tensor, probability: float, generator: torch.Generator | None) -> torch.Tensor:
    """The original system's MLM targets: each real item with probability ``p``, plus one random real item of every
    session; where that makes every item a target, one random target is visible again. A session of ``n >= 2``
    items gets about ``1 + p (n - 1)`` targets, at least one, and keeps one item visible; a single item is never
    a target (nothing would be left to predict it from)."""
    real = items != 0
    rows = torch.arange(items.shape[0], device=items.device)
    masked = (uniform(items.shape, generator, items.device) < probability) & real
    nonempty = real.any(1)
    pick = random_choice_per_row(real, generator)
    masked[rows[nonempty], pick[nonempty]] = True
    all_masked = (masked.sum(1) == real.sum(1)) & nonempty
    if all_masked.any():
        keep = random_choice_per_row(masked, generator)
        masked[rows[all_masked], keep[all_masked]] = False
    return masked


def at_least_one(masked: torch.Tensor, real: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Mask one random real item of every non-empty session that has none masked."""
    none_masked = (masked.sum(1) == 0) & real.any(1)
    if none_masked.any():
        rows = torch.arange(masked.shape[0], device=masked.device)
        pick = random_choice_per_row(real, generator)
        masked[rows[none_masked], pick[none_masked]] = True
    return masked


def flat_positions(mask: torch.Tensor) -> torch.Tensor:
    """Flat positions ``b * L + l`` of the True entries of a ``[B, L]`` mask, in the order of ``h[mask]``."""
    return mask.reshape(-1).nonzero().squeeze(1)


def row_positions(cols: torch.Tensor, length: int) -> torch.Tensor:
    """Flat position of column ``cols[b]`` (negative: from the end, as in indexing) of each row ``b``."""
    return torch.arange(cols.shape[0], device=cols.device) * length + cols % length


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


def sequence_config(cfg: ExperimentConfig) -> ExperimentConfig:
    """The config of the sequence model that predicts items: ``cfg`` itself, except for RTD with an
    untied generator, where the predicting (MLM) model is the smaller generator, of hidden size
    ``round(electra_generator_hidden_size * d_model)`` (as in the original system)."""
    if cfg.task != "rtd" or cfg.rtd_tied_generator:
        return cfg
    d = int(round(cfg.d_model * cfg.electra_generator_hidden_size))
    if d < 1 or d % cfg.n_head:
        raise SessrecError(f"the untied RTD generator has hidden size round(electra_generator_hidden_size * d_model) = {d}, "
                           f"which must be a positive multiple of n_head={cfg.n_head}; change electra_generator_hidden_size "
                           "or use rtd_tied_generator")
    gen = copy.copy(cfg)
    gen.d_model, gen.item_embedding_dim = d, cfg.item_dim
    return gen


class CausalLM(nn.Module):
    """CLM: every position predicts the next item under causal attention."""

    causal = True

    def __init__(self, cfg: ExperimentConfig, input_dim: int):
        super().__init__()
        self.last_only = cfg.train_on_last_item_seq_only

    def loss(self, model, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        items = batch[model.item_key]
        labels = items[:, 1:]
        valid = labels != 0
        if self.last_only:
            last = valid.sum(1) - 1
            valid = torch.zeros_like(valid)
            has = last >= 0
            valid[has.nonzero().squeeze(1), last[has]] = True
        h = model.embed_encode(batch, causal=True, outputs=flat_positions(F.pad(valid, (0, 1))))
        return model.head.loss(h, labels[valid])

    def next_item_hidden(self, model, prefix: Batch) -> torch.Tensor:
        items = prefix[model.item_key]
        last = (items != 0).sum(1) - 1
        return model.embed_encode(prefix, causal=True, outputs=row_positions(last, items.shape[1]))


class MaskedLM(nn.Module):
    """MLM: masked items are replaced by a trainable [MASK] embedding and predicted bidirectionally."""

    causal = False

    def __init__(self, cfg: ExperimentConfig, input_dim: int):
        super().__init__()
        self.probability = cfg.mlm_probability
        self.mask_embedding = nn.Parameter(torch.empty(sequence_config(cfg).d_model).normal_(0.0, 0.001))

    def mask_inputs(self, x: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
        return torch.where(masked.unsqueeze(-1), self.mask_embedding.to(x.dtype), x)

    def loss(self, model, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        items = batch[model.item_key]
        masked = mlm_mask(items, self.probability, generator)
        h = model.encode(self.mask_inputs(model.embed(batch), masked), items != 0, causal=False, outputs=flat_positions(masked))
        return model.head.loss(h, items[masked])

    def next_item_inputs(self, model, prefix: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs with a [MASK] after each session's last item, their padding mask, the [MASK] positions)."""
        prefix, slot = make_room_for_next(prefix, model.item_key)
        items = prefix[model.item_key]
        rows = torch.arange(items.shape[0], device=items.device)
        x = model.embed(prefix)
        x[rows, slot] = self.mask_embedding.to(x.dtype)
        real = items != 0
        real[rows, slot] = True
        return x, real, slot

    def next_item_hidden(self, model, prefix: Batch) -> torch.Tensor:
        x, real, slot = self.next_item_inputs(model, prefix)
        return model.encode(x, real, causal=False, outputs=row_positions(slot, x.shape[1]))


def plm_targets(items: torch.Tensor, probability: float, max_span: int, permute_all: bool,
                generator: torch.Generator | None) -> torch.Tensor:
    """``[B, L]`` bool: the items to predict, by the span algorithm of ``transformers``'
    ``DataCollatorForPermutationLanguageModeling``, vectorised over sessions.

    From the start of the session, repeatedly: draw a span length ``s ~ U{1..max_span}``, take a
    context of ``int(s / probability)`` positions, mask ``s`` consecutive positions at a random
    offset inside it, move on to the next context. Padding is never a target; a session without
    any target gets one random target. ``permute_all``: every real item is a target.
    """
    real = items != 0
    if permute_all:
        return real.clone()
    B, L = items.shape
    device = items.device
    # At most L contexts fit in a session (each is >= 1 position long).
    span = 1 + (uniform((B, L), generator, device) * max_span).long()
    context = (span.double() / probability).floor().long()  # float64: the same int(s / p) as the original's Python
    context_start = context.cumsum(1) - context
    start = context_start + (uniform((B, L), generator, device) * (context - span + 1)).long()
    pos = torch.arange(L, device=device)
    covered = ((pos >= start[..., None]) & (pos < (start + span)[..., None])).any(dim=1)
    return at_least_one(covered & real, real, generator)


def plm_perm_mask(targets: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """``[B, L, L]`` XLNet ``perm_mask`` (1 = query i may not see key j) of a uniformly random factorisation order
    per session, as the original system drew it (``torch.randperm`` over the positions): non-target items come
    first (everyone sees them), and a target is seen only by positions later in the order (never by itself).
    """
    rank = uniform(targets.shape, generator, targets.device).argsort(dim=1).masked_fill(~targets, -1)
    return ((rank[:, :, None] <= rank[:, None, :]) & targets[:, None, :]).float()


class PermutationLM(nn.Module):
    """PLM (XLNet): predict span-sampled items in a random factorisation order with two-stream attention.

    With ``plm_mask_input`` the target items' inputs are also replaced by the [MASK] embedding (the
    content of a target is otherwise visible to the targets after it in the order, as in XLNet).
    """

    causal = False
    needs_permutation = True

    def __init__(self, cfg: ExperimentConfig, input_dim: int):
        super().__init__()
        self.probability = cfg.plm_probability
        self.max_span = cfg.plm_max_span_length
        self.permute_all = cfg.plm_permute_all
        self.mask_input = cfg.plm_mask_input
        self.mask_embedding = nn.Parameter(torch.empty(cfg.d_model).normal_(0.0, 0.001))

    def loss(self, model, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        items = batch[model.item_key]
        B, L = items.shape
        targets = plm_targets(items, self.probability, self.max_span, self.permute_all, generator)
        perm_mask = plm_perm_mask(targets, generator)
        x = model.embed(batch)
        if self.mask_input:
            x = torch.where(targets.unsqueeze(-1), self.mask_embedding.to(x.dtype), x)
        mapping = torch.eye(L, device=items.device, dtype=x.dtype).expand(B, L, L)
        h = model.encode(x, items != 0, causal=False, perm_mask=perm_mask.to(x.dtype), target_mapping=mapping)
        return model.head.loss(h[targets], items[targets])

    def next_item_hidden(self, model, prefix: Batch) -> torch.Tensor:
        prefix, slot = make_room_for_next(prefix, model.item_key)
        items = prefix[model.item_key]
        B, L = items.shape
        rows = torch.arange(B, device=items.device)
        x = model.embed(prefix)
        x[rows, slot] = self.mask_embedding.to(x.dtype)  # never seen (perm_mask below): any value would do
        real = items != 0
        real[rows, slot] = True
        perm_mask = torch.zeros(B, L, L, device=x.device, dtype=x.dtype)
        perm_mask[rows, :, slot] = 1.0  # the prefix is context for everyone; nobody sees the slot
        mapping = F.one_hot(slot, L).to(x.dtype).unsqueeze(1)  # predict the slot only
        return model.encode(x, real, causal=False, perm_mask=perm_mask, target_mapping=mapping)[:, 0]


def gumbel_max(logits: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One sample per row from ``softmax(logits)``: ``argmax(logits + Gumbel noise)``."""
    u = uniform(logits.shape, generator, logits.device).clamp_min(1e-20)
    return (logits.float() - torch.log(-torch.log(u))).argmax(dim=-1)


class ReplacedTokenDetection(MaskedLM):
    """RTD (ELECTRA, Clark et al. 2020), as the original system's unreleased version did it.

    1. Generator = the MLM model: items are masked with ``mlm_probability`` and predicted (MLM loss).
    2. Each masked item is replaced by a sample of the generator (Gumbel-max over its logits, no
       gradient): over the whole catalog, or with ``rtd_sample_from_batch`` over the batch's
       masked items. A sample equal to the original item counts as not replaced.
    3. The corrupted sessions are embedded again (side features unchanged) or, with
       ``rtd_use_batch_interaction`` (needs ``rtd_sample_from_batch``), each replaced interaction
       takes the detached feature embeddings of the sampled interaction (side features included).
    4. Discriminator: the same sequence model (``rtd_tied_generator``) or a separate one of size
       ``d_model`` with its own input projection, then ``Linear → tf_out_activation → Linear(1)``
       per position; BCE-with-logits of "was replaced" over all non-padded positions.
    5. Loss = ``rtd_discriminator_loss_weight * BCE + rtd_generator_loss_weight * MLM``.

    Recommendations come from the MLM path of the generator, as in the paper; with an untied
    generator that is the smaller model (the discriminator then only shapes the shared item
    embeddings, as in the original).
    """

    def __init__(self, cfg: ExperimentConfig, input_dim: int):
        super().__init__(cfg, input_dim)
        self.disc_weight = cfg.rtd_discriminator_loss_weight
        self.gen_weight = cfg.rtd_generator_loss_weight
        self.from_batch = cfg.rtd_sample_from_batch
        self.batch_interaction = cfg.rtd_use_batch_interaction
        self.tied = cfg.rtd_tied_generator
        if not self.tied:
            from sessrec.bodies import BODIES

            self.disc_merge = InputProjection(input_dim, cfg)
            self.disc_body = BODIES[cfg.model_type](cfg)
        d = cfg.d_model
        self.disc_head = nn.Sequential(nn.Linear(d, d), activation(cfg.tf_out_activation), nn.Linear(d, 1))

    def loss(self, model, batch: Batch, generator: torch.Generator | None = None) -> torch.Tensor:
        loss, _ = self.loss_parts(model, batch, generator)
        return loss

    def loss_parts(self, model, batch: Batch, generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict]:
        """(total loss, the pieces: ``mlm``, ``disc`` losses, ``masked``, ``replaced`` [B, L] masks, ``corrupted`` items)."""
        items = batch[model.item_key]
        real = items != 0
        masked = mlm_mask(items, self.probability, generator)
        feats = model.features(batch)
        h = model.encode(self.mask_inputs(model.merge(feats), masked), real, causal=False)
        hidden, originals = h[masked], items[masked]
        mlm_loss = model.head.loss(hidden, originals)

        with torch.no_grad():
            if self.from_batch:  # candidates: the batch's masked interactions
                picked = gumbel_max(model.head(hidden, originals - 1), generator)
                sampled = originals[picked]
            else:  # a few rows at a time: [masked x catalog] logits and noise would be GBs for a large catalog
                rows = max(1, CHUNK_ELEMENTS // model.head.output_weight.shape[0])
                sampled = torch.cat([gumbel_max(model.head(part), generator) for part in hidden.split(rows)]) + 1
        corrupted = items.clone()
        corrupted[masked] = sampled
        replaced = corrupted != items

        if self.batch_interaction:
            fake = feats.detach().clone()
            fake[masked] = feats.detach()[masked][picked]
        else:
            fake = model.features({**batch, model.item_key: corrupted})
        if self.tied:
            hd = model.encode(model.merge(fake), real, causal=False)
        else:
            hd = self.disc_body(self.disc_merge(fake), real, causal=False)
        disc_logits = self.disc_head(hd[real]).squeeze(-1)
        disc_loss = F.binary_cross_entropy_with_logits(disc_logits.float(), replaced[real].float())
        total = self.disc_weight * disc_loss + self.gen_weight * mlm_loss
        return total, {"mlm": mlm_loss, "disc": disc_loss, "masked": masked, "replaced": replaced, "corrupted": corrupted}


ObjectiveBuilder = Callable[[ExperimentConfig, int], nn.Module]
"""``builder(cfg, input_dim)``; ``input_dim`` = width of the interaction features before the input projection."""

OBJECTIVES: dict[str, ObjectiveBuilder] = {
    "clm": CausalLM, "mlm": MaskedLM, "plm": PermutationLM, "rtd": ReplacedTokenDetection,
}


def build_objective(cfg: ExperimentConfig, body: nn.Module, input_dim: int) -> nn.Module:
    return check_objective(cfg, body)(cfg, input_dim)


def check_objective(cfg: ExperimentConfig, body: nn.Module) -> type[nn.Module]:
    """The objective class of ``cfg.task``, refused where ``body`` cannot run it."""
    if cfg.task not in OBJECTIVES:
        raise SessrecError(f"task '{cfg.task}' is not available (choose from {', '.join(OBJECTIVES)})")
    objective_class = OBJECTIVES[cfg.task]
    if getattr(objective_class, "needs_permutation", False) and not getattr(body, "supports_permutation", False):
        raise SessrecError(f"task {cfg.task} needs XLNet's permutation attention (perm_mask/target_mapping): "
                           f"use model_type xlnet, not '{cfg.model_type}'")
    if objective_class.causal and not getattr(body, "supports_causal", True):
        raise SessrecError(f"model_type '{cfg.model_type}' cannot run causally: it does not support task '{cfg.task}'")
    if not objective_class.causal and not getattr(body, "supports_bidirectional", True):
        raise SessrecError(f"model_type '{cfg.model_type}' is causal only: use task clm, not '{cfg.task}'")
    return objective_class
