"""Training a session model window by window: AdamW, a learning-rate schedule restarted each
window, gradient clipping, optional mixed precision, progress and loss history."""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sessrec.config import ExperimentConfig
from sessrec.data.loader import Batch, SessionTensors, iterate_batches, n_batches
from sessrec.evaluation import to_device
from sessrec.losses import release_workspace
from sessrec.model import SessionModel
from sessrec.optim import FusedAdamW, clip_grad_norm_
from sessrec.schema import Schema

log = logging.getLogger(__name__)


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning(message)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from sessrec.errors import SessrecError

        raise SessrecError(f"device '{name}' requested but CUDA is not available; use --device cpu")
    return torch.device(name)


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


class NeuralLearner:
    """A :class:`SessionModel` plus its optimizer, fine-tuned on each window in turn."""

    scores_are_logits = True

    def __init__(self, cfg: ExperimentConfig, schema: Schema):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        seed_everything(cfg.seed)
        self.model = SessionModel(schema, cfg).to(self.device)
        self.input_names = self.model.input_names
        # one fused kernel for all parameters: 7x faster on CPU than the per-tensor loop (measured)
        self.optimizer = FusedAdamW(decay_groups(self.model, cfg.weight_decay), lr=cfg.learning_rate,
                                    betas=(cfg.adam_beta1, cfg.adam_beta2), eps=cfg.adam_epsilon)
        self.generator = torch.Generator().manual_seed(cfg.seed)  # shuffling and masking
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.global_step = 0
        self.history: list[dict] = []  # {"step", "window", "loss", "lr"} every logging_steps

    def _amp_dtype(self) -> torch.dtype | None:
        if self.cfg.fp16:
            if self.device.type == "cuda":
                return torch.float16
            _warn_once(f"fp16 needs a CUDA device; training in float32 on {self.device}")
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

    def steps_for(self, n_sessions: int) -> int:
        per_epoch = n_batches(n_sessions, self.cfg.per_device_train_batch_size, self.cfg.dataloader_drop_last)
        if self.cfg.max_steps > 0:
            return self.cfg.max_steps
        return max(1, int(math.ceil(self.cfg.num_train_epochs * per_epoch)))

    def fit_window(self, data: SessionTensors, window: int) -> dict[str, float]:
        """Train on the window's sessions of 2 items or more. A single click gives no target: nothing
        precedes it (CLM), and the original's masking unmasks a session's only item (MLM/PLM/RTD)."""
        cfg = self.cfg
        data = data.min_length(2)
        total = self.steps_for(len(data))
        if n_batches(len(data), cfg.per_device_train_batch_size, cfg.dataloader_drop_last) == 0:
            why = (f"fewer sessions of 2 items or more ({len(data)}) than one batch with drop_last" if len(data)
                   else "no session has 2 items or more")
            log.warning("window %d: %s; nothing to train", window, why)
            return {"train_steps": 0.0}
        self._set_lr(window_lr(cfg, 0, total))
        self.model.train()
        losses: list[float] = []
        n_seen, step = 0, 0
        start = time.perf_counter()
        bar = tqdm(total=total, desc=f"window {window:>4} train", unit="step", disable=cfg.quiet, leave=False, dynamic_ncols=True)
        while step < total:
            for batch in iterate_batches(data, cfg.per_device_train_batch_size, shuffle=True,
                                         drop_last=cfg.dataloader_drop_last, generator=self.generator):
                loss = self._train_step(to_device(batch, self.device))
                losses.append(loss)
                step += 1
                self.global_step += 1
                n_seen += int(batch[data.item_key].shape[0])
                self._set_lr(window_lr(cfg, step, total))
                if cfg.logging_steps > 0 and self.global_step % cfg.logging_steps == 0:
                    self.history.append({"step": self.global_step, "window": window, "loss": loss,
                                         "lr": self.optimizer.param_groups[0]["lr"]})
                bar.update(1)
                if step % 10 == 0 or step == total:
                    elapsed = time.perf_counter() - start
                    bar.set_postfix(loss=f"{loss:.3f}", sess_s=f"{n_seen / max(elapsed, 1e-9):.0f}")
                if step >= total:
                    break
        bar.close()
        runtime = time.perf_counter() - start
        release_workspace()  # for evaluation: GPT-2-CLM runs peaked ~20 MB lower, measured
        return {"train_loss": float(np.mean(losses)), "train_runtime": runtime,
                "train_samples_per_second": n_seen / max(runtime, 1e-9), "train_steps": float(step)}

    def _set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _train_step(self, batch: Batch) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            loss = self.model.loss(batch, self.generator)
        self.scaler.scale(loss).backward()
        if self.cfg.max_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        """Weights under ``"model"``; optimizer, AMP scaler, shuffling/masking generator and step count
        besides. The LR schedule restarts each window, so at a window boundary it has no state."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "generator": self.generator.get_state(),
                "global_step": self.global_step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output; a state with only ``"model"`` loads the weights alone."""
        self.model.load_state_dict(state["model"])
        if "optimizer" in state:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
            self.generator.set_state(state["generator"])
            self.global_step = int(state["global_step"])

    @torch.no_grad()
    def score(self, prefix: Batch) -> torch.Tensor:
        self.model.eval()
        with self._autocast():
            scores = self.model.next_item_scores(to_device(prefix, self.device))
        return scores.float()
