"""Optional experiment loggers, looked up by name: Weights & Biases and TensorBoard.

``--report-to`` picks them: ``none`` (the default of ``sessrec run``), ``all`` (every installed
one: the HuggingFace 4.x default the paper's scripts ran with), or a comma-separated list such as
``wandb,tensorboard``. Both packages are optional extras (``pip install "sessrec[loggers]"``).

W&B never needs the network unless asked to: it runs offline (upload later with ``wandb sync``)
unless ``WANDB_MODE=online``; ``WANDB_MODE=offline`` or its old name ``dryrun`` keep it offline;
``WANDB_MODE=disabled`` or ``WANDB_DISABLED=true`` turn it off. ``WANDB_PROJECT`` names the
project (default ``sessrec``). TensorBoard event files go to ``--logging-dir`` (default
``OUTPUT_DIR/runs``).

A logger gets the resolved config when the run starts, the training-loss points (every
``logging_steps`` steps), each evaluated window's metrics, and the averages over time (AOT).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError

log = logging.getLogger(__name__)


class RunLogger(Protocol):
    def log_history(self, records: list[dict[str, Any]]) -> None:
        """Training-loss points ``{"step", "window", "loss", "lr"}`` (step = global optimizer step)."""
        ...

    def log_window(self, index: int, metrics: dict[str, float], info: dict[str, Any]) -> None:
        """Metrics of evaluated window ``index`` (original keys, e.g. ``eval_/next-item/ndcg_at_20``)."""
        ...

    def finish(self, aot: dict[str, float]) -> None:
        """Averages over time; the logger closes its files or run."""
        ...


def window_scalars(metrics: dict[str, float], info: dict[str, Any]) -> dict[str, float]:
    """Everything numeric about one window: its metrics, the most-popular ranking's, training statistics."""
    out = dict(metrics)
    out.update({f"pop/{k}": v for k, v in info.get("pop", {}).items()})
    out.update({f"info/{k}": float(v) for k, v in info.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return out


# ---- Weights & Biases -----------------------------------------------------------------------------
def wandb_mode() -> str | None:
    """``offline`` unless ``WANDB_MODE=online``; None when W&B is disabled by the environment."""
    if os.environ.get("WANDB_DISABLED", "").lower() in ("true", "1", "yes"):
        return None
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode == "disabled":
        return None
    return "online" if mode == "online" else "offline"


class WandbLogger:
    def __init__(self, cfg: ExperimentConfig, out_dir: Path):
        import wandb

        mode = wandb_mode()
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "sessrec"), name=cfg.run_name,
                              group=cfg.experiments_group, dir=str(out_dir), config=cfg.to_dict(), mode=mode)
        # Two x-axes: the optimizer step for the training loss, the window index for everything else.
        self.run.define_metric("train/global_step")
        self.run.define_metric("train/*", step_metric="train/global_step")
        self.run.define_metric("window")
        for pattern in ("eval_*", "train_*", "pop/*", "info/*"):
            self.run.define_metric(pattern, step_metric="window")
        if mode == "offline":
            log.info("W&B logs offline to %s/wandb (upload with `wandb sync`; WANDB_MODE=online logs online)", out_dir)

    def log_history(self, records: list[dict[str, Any]]) -> None:
        for r in records:
            self.run.log({"train/global_step": r["step"], "train/loss": r["loss"], "train/learning_rate": r["lr"],
                          "train/window": r["window"]})

    def log_window(self, index: int, metrics: dict[str, float], info: dict[str, Any]) -> None:
        self.run.log({"window": index, **window_scalars(metrics, info)})

    def finish(self, aot: dict[str, float]) -> None:
        self.run.summary.update({f"{k}_AOT": v for k, v in aot.items()})
        self.run.finish()


# ---- TensorBoard ----------------------------------------------------------------------------------
class TensorBoardLogger:
    def __init__(self, cfg: ExperimentConfig, out_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=cfg.logging_dir or str(out_dir / "runs"))
        self.writer.add_text("config", "```\n" + cfg.to_yaml() + "```")
        self.last_index = 0

    def log_history(self, records: list[dict[str, Any]]) -> None:
        for r in records:
            self.writer.add_scalar("train/loss", r["loss"], r["step"])
            self.writer.add_scalar("train/learning_rate", r["lr"], r["step"])

    def log_window(self, index: int, metrics: dict[str, float], info: dict[str, Any]) -> None:
        for k, v in window_scalars(metrics, info).items():
            self.writer.add_scalar(k, v, index)
        self.writer.flush()
        self.last_index = index

    def finish(self, aot: dict[str, float]) -> None:
        for k, v in aot.items():
            self.writer.add_scalar(f"{k}_AOT", v, self.last_index)
        self.writer.close()


# ---- registry -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoggerSpec:
    package: str  # what must be importable
    build: Callable[[ExperimentConfig, Path], RunLogger]
    disabled: Callable[[], str | None] = lambda: None  # why the environment turns it off, if it does


LOGGERS: dict[str, LoggerSpec] = {
    "wandb": LoggerSpec("wandb", WandbLogger, lambda: None if wandb_mode() else "disabled by WANDB_MODE/WANDB_DISABLED"),
    "tensorboard": LoggerSpec("tensorboard", TensorBoardLogger),
}


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def resolve_report_to(report_to: str) -> list[str]:
    """Names of the loggers to use; an unknown or uninstalled logger asked for by name is an error."""
    asked = [n.strip().lower() for n in report_to.split(",") if n.strip()]
    if asked in ([], ["none"]):
        return []
    if asked == ["all"]:
        names = [n for n, s in LOGGERS.items() if _installed(s.package)]
    else:
        for n in asked:
            if n not in LOGGERS:
                raise SessrecError(f"report_to: unknown logger '{n}' (choose from {', '.join(LOGGERS)}, all, none)")
            if not _installed(LOGGERS[n].package):
                raise SessrecError(f"report_to: {n} is not installed (pip install {LOGGERS[n].package}, or the sessrec[loggers] extra)")
        names = list(dict.fromkeys(asked))
    active = []
    for n in names:
        reason = LOGGERS[n].disabled()
        if reason:
            log.info("%s logging is %s", n, reason)
        else:
            active.append(n)
    return active


class Loggers:
    """The loggers of one run, called by the experiment loop; no logger means every call is a no-op."""

    def __init__(self, names: list[str]):
        self.names = names
        self.active: list[RunLogger] = []

    @classmethod
    def from_config(cls, cfg: ExperimentConfig) -> Loggers:
        """Check ``report_to`` before anything is written; nothing starts until :meth:`start`."""
        return cls(resolve_report_to(cfg.report_to))

    def start(self, cfg: ExperimentConfig, out_dir: Path) -> None:
        self.active = [LOGGERS[n].build(cfg, out_dir) for n in self.names]

    def log_history(self, records: list[dict[str, Any]]) -> None:
        for lg in self.active:
            lg.log_history(records)

    def log_window(self, index: int, metrics: dict[str, float], info: dict[str, Any]) -> None:
        for lg in self.active:
            lg.log_window(index, metrics, info)

    def finish(self, aot: dict[str, float]) -> None:
        for lg in self.active:
            lg.finish(aot)
