"""Training a session model window by window: AdamW, a learning-rate schedule restarted each
window, gradient clipping, optional mixed precision, progress and loss history, and data
parallelism over the processes of a torchrun launch (``DistributedDataParallel``)."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from sessrec.config import ExperimentConfig
from sessrec.data.loader import Batch, SessionTensors, iterate_batches, n_batches
from sessrec.distributed import SINGLE, Echo, Group, rank_seed
from sessrec.errors import SessrecError, warn_once
from sessrec.losses import release_workspace
from sessrec.model import SessionModel
from sessrec.optim import FusedAdamW, clip_grad_norm_
from sessrec.progress import bar_disabled
from sessrec.runtime import load_weights, resolve_device, seed_everything, to_device
from sessrec.schema import Schema
from sessrec.stopping import StopRequested

log = logging.getLogger(__name__)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: no weight decay on biases and normalisation weights."""
    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d)) or "Norm" in type(module).__name__:
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            no_decay.add(id(p))
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if id(p) not in no_decay], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) in no_decay], "weight_decay": 0.0},
    ]


def lr_factor(schedule: str, step: int, warmup: int, total_steps: int, cycles: float = 0.5) -> float:
    """The learning-rate multiplier at ``step``: linear warm-up, then constant, linear decay to 0 or cosine.

    The formulas of ``transformers``' ``get_{constant,linear,cosine}_schedule_with_warmup`` (tested
    equal), written here so that training does not import ``transformers`` (+70 MB resident).
    """
    if step < warmup:
        return step / max(1, warmup)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total_steps - warmup)
    if schedule == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * cycles * 2.0 * progress)))
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup))


def window_lr(cfg: ExperimentConfig, step: int, total_steps: int) -> float:
    """The learning rate at ``step`` of a window of ``total_steps`` (the schedule restarts each window)."""
    warmup = cfg.warmup_steps or int(math.ceil(cfg.warmup_ratio * total_steps))
    cycles = cfg.learning_rate_num_cosine_cycles_by_epoch * cfg.num_train_epochs
    return cfg.learning_rate * lr_factor(cfg.schedule, step, warmup, total_steps, cycles)


@dataclass
class WindowProgress:
    """Where training stands inside a window: with the model, optimizer and generator states, what
    continues the window exactly after a stop between two steps."""

    window: int
    total: int  # steps of the window
    step: int = 0  # steps done
    order: torch.Tensor | None = None  # the current epoch's permutation (None: draw the next one first)
    next_batch: int = 0  # the batch of ``order`` the next step trains on
    losses: list[float] = field(default_factory=list)
    n_seen: int = 0
    runtime: float = 0.0  # seconds spent on the window before the stop

    def state(self) -> dict[str, Any]:
        return {"window": self.window, "total": self.total, "step": self.step, "order": self.order,
                "next_batch": self.next_batch, "losses": torch.tensor(self.losses, dtype=torch.float64),
                "n_seen": self.n_seen, "runtime": self.runtime}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> WindowProgress:
        return cls(**{**state, "losses": state["losses"].tolist()})


class _LossOf(nn.Module):
    """A model's training loss as its ``forward``: what ``DistributedDataParallel`` wraps (it
    prepares the gradient all-reduce in ``forward``, so the loss must be computed through it)."""

    def __init__(self, model: SessionModel):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        return self.model.loss(batch, generator)


class NeuralLearner:
    """A :class:`SessionModel` plus its optimizer, fine-tuned on each window in turn.

    In a distributed run (``group``) each process holds the whole model and optimizer; a step
    trains on ``per_device_train_batch_size`` sessions per process, the processes' shares of
    one batch of ``size`` times as many drawn from one permutation (the same generator, seeded
    alike, on every process), and ``DistributedDataParallel`` averages their gradients. Masking,
    dropout and SSE draw from streams of each process's own (seeded from the seed and the rank).
    """

    scores_are_logits = True

    def __init__(self, cfg: ExperimentConfig, schema: Schema, group: Group = SINGLE):
        self.cfg = cfg
        self.group = group
        self.device = resolve_device(cfg.device)
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        seed_everything(cfg.seed)
        self.model = SessionModel(schema, cfg).to(self.device)
        self.input_names = self.model.input_names
        # one fused kernel for all parameters: 7x faster on CPU than the per-tensor loop (measured)
        self.optimizer = FusedAdamW(decay_groups(self.model, cfg.weight_decay), lr=cfg.learning_rate,
                                    betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # shuffling (and masking, in one process)
        self.mask_generator = self.generator
        self.loss_of: Any = self.model.loss
        if group.distributed:
            own = rank_seed(cfg.seed, group.rank)
            self.mask_generator = torch.Generator().manual_seed(own)
            if self.model.generator_states():
                self.model.set_generator_states({"sse": torch.Generator().manual_seed(rank_seed(own, 1)).get_state()})
            seed_everything(own)  # dropout
            # find_unused_parameters (HF's default too): most bodies have parameters no step uses (BERT-family
            # word embeddings, XLNet's mask_emb and segment terms), which DDP would wait for; for one that has
            # none (GPT-2) torch's C++ reducer prints a notice per process (not a Python warning: it cannot be
            # filtered here); deciding per body would risk DDP's error where a batch leaves a parameter unused
            self.loss_of = DistributedDataParallel(
                _LossOf(self.model), device_ids=[self.device.index] if self.device.type == "cuda" else None,
                forward_sync_buffers=False, find_unused_parameters=True)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.global_step = 0
        self.history: list[dict] = []  # {"step", "window", "loss", "lr"} every logging_steps
        self.progress: WindowProgress | None = None  # set while stopped inside a window

    def _amp_dtype(self) -> torch.dtype | None:
        if self.cfg.fp16:
            if self.device.type == "cuda":
                return torch.float16
            warn_once(f"fp16 needs a CUDA device; training in float32 on {self.device}")
        if self.cfg.bf16:
            return torch.bfloat16
        return None

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    @property
    def batch_size(self) -> int:
        """Sessions per step, over every process: the effective batch."""
        return self.cfg.per_device_train_batch_size * self.group.size

    def batches_per_epoch(self, n_sessions: int) -> int:
        """Steps of one epoch; in a distributed run a last batch of fewer sessions than processes is left out."""
        return n_batches(n_sessions, self.batch_size, self.cfg.dataloader_drop_last, self.group.size)

    def steps_for(self, n_sessions: int) -> int:
        if self.cfg.max_steps > 0:
            return self.cfg.max_steps
        return max(1, int(math.ceil(self.cfg.num_train_epochs * self.batches_per_epoch(n_sessions))))

    def fit_window(self, data: SessionTensors, window: int) -> dict[str, float]:
        """Train on the window's sessions of 2 items or more. A single click gives no target: nothing
        precedes it (CLM), and the original's masking unmasks a session's only item (MLM/PLM/RTD).

        Continues where a stop left it when :meth:`load_state_dict` brought back a state saved inside
        this window. Once a stop is requested (a signal, see :mod:`sessrec.stopping`) it raises
        :class:`StopRequested` before the next step, with :meth:`state_dict` holding everything
        needed to continue."""
        cfg, group = self.cfg, self.group
        data = data.min_length(2)
        total = self.steps_for(len(data))
        if self.batches_per_epoch(len(data)) == 0:
            why = ("no session has 2 items or more" if not len(data) else
                   f"fewer sessions of 2 items or more ({len(data)}) than one batch with drop_last" if cfg.dataloader_drop_last
                   else f"fewer sessions of 2 items or more ({len(data)}) than processes ({group.size})")
            log.warning("window %d: %s; nothing to train", window, why)
            return {"train_steps": 0.0}
        p, self.progress = self.progress, None
        if p is None or p.window != window:
            p = WindowProgress(window, total)
            self._set_lr(window_lr(cfg, 0, total))  # a continued window has its rate in the optimizer's state
        elif p.total != total:
            raise SessrecError(f"cannot continue window {window}: it has {total} training steps now, {p.total} when the "
                               "run was stopped (did its training data change?)")
        self.model.train()
        start = time.perf_counter()
        bar = tqdm(total=total, initial=p.step, desc=f"window {window:>4} train", unit="step",
                   disable=bar_disabled(cfg.quiet or not group.is_main), leave=False, dynamic_ncols=True)
        size = self.batch_size
        signum = group.stop_signal()  # then after each step, with the loss: every process stops at the same step
        while p.step < total:
            if p.order is None:
                p.order, p.next_batch = torch.randperm(len(data), generator=self.generator), 0
            for batch in iterate_batches(data, size, drop_last=cfg.dataloader_drop_last, order=p.order,
                                         start=p.next_batch, part=(group.rank, group.size)):
                if signum is not None:
                    p.runtime += time.perf_counter() - start
                    self.progress = p
                    bar.close()
                    raise StopRequested(f"after step {p.step} of {total}", signum)
                seen = min(size, len(data) - p.next_batch * size)  # sessions of this step over every process
                loss, signum = group.mean_and_stop(self._train_step(to_device(batch, self.device)))
                if not math.isfinite(loss):  # the mean over the processes: every one of them stops here
                    bar.close()
                    said_by = SessrecError if group.is_main else Echo  # rank 0 says it for all
                    raise said_by(f"the training loss is {loss} in window {window} at step {p.step + 1} of {total} "
                                  f"(global step {self.global_step + 1}): lower the learning rate (learning_rate "
                                  f"{cfg.learning_rate:g}) or clip gradients (max_grad_norm), and check the inputs "
                                  "for extreme values")
                p.losses.append(loss)
                p.next_batch += 1
                p.step += 1
                self.global_step += 1
                p.n_seen += seen
                self._set_lr(window_lr(cfg, p.step, total))
                if cfg.logging_steps > 0 and self.global_step % cfg.logging_steps == 0:
                    self.history.append({"step": self.global_step, "window": window, "loss": loss,
                                         "lr": self.optimizer.param_groups[0]["lr"]})
                bar.update(1)
                if p.step % 10 == 0 or p.step == total:
                    elapsed = p.runtime + time.perf_counter() - start
                    bar.set_postfix(loss=f"{loss:.3f}", sess_s=f"{p.n_seen / max(elapsed, 1e-9):.0f}")
                if p.step >= total:
                    break
            else:
                p.order = None  # the epoch is done
        bar.close()
        runtime = p.runtime + time.perf_counter() - start
        release_workspace()  # for evaluation: GPT-2-CLM runs peaked ~20 MB lower, measured
        return {"train_loss": float(np.mean(p.losses)), "train_runtime": runtime,
                "train_samples_per_second": p.n_seen / max(runtime, 1e-9), "train_steps": float(p.step)}

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _train_step(self, batch: Batch) -> torch.Tensor:
        """One optimizer step; returns the loss (of this process's share of the batch)."""
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.loss_of(batch, self.mask_generator)
        self.scaler.scale(loss).backward()
        if self.cfg.max_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach()

    def state_dict(self) -> dict[str, Any]:
        """Weights under ``"model"``; optimizer, AMP scaler, shuffling/masking generator, the model's
        own generators (SSE) and step count besides, and the :class:`WindowProgress` when stopped
        inside a window. The LR schedule
        restarts each window and is a function of the step, so it has no state of its own.
        In a distributed run this is rank 0's state (the same on every process but for the
        streams of :meth:`rank_state`)."""
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict(), "generator": self.generator.get_state(),
                 "model_generators": self.model.generator_states(), "global_step": self.global_step}
        if self.progress is not None:
            state["window_progress"] = self.progress.state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; a state with only ``"model"`` loads the weights alone."""
        load_weights(self.model, state["model"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
            self.generator.set_state(state["generator"])
            self.model.set_generator_states(state.get("model_generators", {}))  # not in format-1 checkpoints
            self.global_step = int(state["global_step"])
            progress = state.get("window_progress")
            self.progress = None if progress is None else WindowProgress.from_state(progress)

    def rank_state(self) -> dict[str, Any]:
        """This process's own random streams in a distributed run (masking, SSE): a checkpoint keeps
        every process's, so that a resumed run draws what an uninterrupted one would."""
        return {"mask_generator": self.mask_generator.get_state(), "model_generators": self.model.generator_states()}

    def load_rank_state(self, state: dict[str, Any]) -> None:
        self.mask_generator.set_state(state["mask_generator"])
        self.model.set_generator_states(state["model_generators"])

    @torch.no_grad()
    def score(self, prefix: Batch) -> torch.Tensor:
        self.model.eval()
        with self._autocast():
            hidden = self.model.next_item_hidden(to_device(prefix, self.device))
        # The head in float32, outside mixed precision: bf16/fp16 logits tie many items with the target (8 bits of
        # mantissa), and the pessimistic ranking counts every tie against it (-1.7 % NDCG@20 at 5,000 items).
        return self.model.head(hidden.float()).float()
