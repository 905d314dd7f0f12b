"""Result files of a run, with the names, formats and metric keys of the original script.

Every file but ``history.jsonl`` is rewritten atomically after each window (a temporary file,
then a rename), so a crash never leaves a half-written one, and analysis scripts written for
Transformers4Rec keep working:

* ``eval_train_results.csv``: one row per evaluated window (``index`` = window), all metrics
* ``eval_results_over_time.txt`` / ``train_results_over_time.txt``: per-window ``key = value`` blocks
* ``eval_results_avg_over_time.txt``: ``key_AOT = value`` lines
* ``log.json``: DLLogger JSON lines (``DLLL {...}``): parameters, per-window metrics, AOT
* ``results.json``: resolved config, per-window metrics with session counts, AOT, pop baseline
* ``config.yaml``: the resolved config, reusable with ``sessrec run --config``
* ``history.jsonl``: training loss and per-window metrics, appended as the run goes
  (``{"type": "train", "step", "window", "loss", "lr"}`` and ``{"type": "window", "index", "metrics", ...}``);
  an append that fails is cut back off, a process killed in the middle of one can leave a
  half-written last line (``sessrec report`` skips it; ``--resume`` cuts the file back to its
  checkpoint)
* ``.lock``: held by the run while it writes here (:mod:`sessrec.runlock`)
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
from sessrec.io import RESULT_FILES, atomic_write_text, writing
from sessrec.launch import resume_command
from sessrec.runlock import LOCK_NAME, RunLock, check_free


def default_output_dir(cfg: ExperimentConfig) -> Path:
    """A new folder under ``runs/``: ``runs/<date-time>-<model>-<task>`` (``-2``, ``-3`` ... if taken)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path("runs") / f"{stamp}-{cfg.model_type}-{cfg.task}"
    n = 1
    while out.exists():
        n += 1
        out = Path("runs") / f"{stamp}-{cfg.model_type}-{cfg.task}-{n}"
    return out


def prepare_output_dir(cfg: ExperimentConfig) -> tuple[Path, RunLock]:
    """Create and lock the output folder; refuse a non-empty one unless ``overwrite_output_dir`` or
    ``resume``, and one another run is writing into."""
    if cfg.resume:
        out = Path(cfg.output_dir)
        if not out.is_dir():
            raise SessrecError(f"cannot resume: output folder {out} does not exist")
        return out, RunLock.acquire(out, "resume")
    out = Path(cfg.output_dir) if cfg.output_dir else default_output_dir(cfg)
    if out.exists() and not out.is_dir():
        raise SessrecError(f"output path {out} exists and is not a folder")
    if out.is_dir() and not cfg.overwrite_output_dir:
        check_free(out, "write into")  # a running run's folder is not empty either: say which run holds it
        if any(p.name != LOCK_NAME for p in out.iterdir()):
            if (out / "checkpoint-last").is_dir() and finished_results(out) is None:
                how = resume_command(out, _saved_processes(out / "checkpoint-last"))
                raise SessrecError(f"output folder {out} holds a run that was stopped (its checkpoint-last): continue it "
                                   f"with {how}, or pass --overwrite-output-dir to start again (its checkpoints are "
                                   "deleted)")
            raise SessrecError(f"output folder {out} is not empty; pass --overwrite-output-dir to write into it")
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    return out, RunLock.acquire(out)


def finished_results(run_dir: Path) -> dict[str, Any] | None:
    """``results.json`` of a run folder whose run ended (it has the total time, written with the averages over time),
    else None."""
    try:
        results = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return None
    return results if isinstance(results, dict) and "total_seconds" in results else None


def _saved_processes(checkpoint: Path) -> int:
    """The number of processes that made a checkpoint (1 where it cannot be read)."""
    try:
        return int(json.loads((checkpoint / "experiment.json").read_text()).get("world_size", 1))
    except (OSError, ValueError, TypeError, AttributeError):
        return 1


def _fmt(v: Any) -> str:
    return repr(float(v)) if isinstance(v, float) else str(v)


def _json_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_safe(x) for x in v]
    return v


class OutputWriter:
    """Accumulates per-window results in memory and rewrites the result files atomically. With
    ``files=False`` it keeps the results in memory only (the processes of a distributed run but
    rank 0, which alone writes)."""

    def __init__(self, out_dir: Path, cfg: ExperimentConfig, extra: dict[str, Any] | None = None, resuming: bool = False,
                 files: bool = True):
        self.out = out_dir
        self.files = files
        self.cfg = cfg
        self.start = time.time()
        self.windows: list[dict[str, Any]] = []  # {"index", "metrics", "n_train_sessions", ...}
        self.aot: dict[str, float] = {}
        self.extra = extra or {}
        self._log_lines: list[str] = []
        self._dllog("PARAMETER", self._parameters())
        if resuming or not files:
            return  # restore() rewrites every file, and cuts history.jsonl back to the checkpoint
        for name in RESULT_FILES:  # an overwritten run's: they read as this run's results until its first window
            with writing(out_dir / name):
                (out_dir / name).unlink(missing_ok=True)
        atomic_write_text(out_dir / "config.yaml", cfg.to_yaml())
        with writing(out_dir / "history.jsonl"):
            (out_dir / "history.jsonl").write_text("")
        self._write_log()

    # ---- history ----------------------------------------------------------------------------------
    def append_history(self, records: list[dict[str, Any]]) -> None:
        """Append JSON lines (loss points, window results); readable while the run goes on. An append
        that fails (a full disk, a second signal) is cut back off, leaving whole lines only."""
        if not records or not self.files:
            return
        path = self.out / "history.jsonl"
        data = memoryview("".join(json.dumps(_json_safe(r)) + "\n" for r in records).encode())
        with writing(path):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                size = os.fstat(fd).st_size
                try:
                    while data:
                        data = data[os.write(fd, data):]
                except BaseException:
                    os.ftruncate(fd, size)
                    raise
            finally:
                os.close(fd)

    def history_sink(self, also: Callable[[list[dict[str, Any]]], None] | None = None) -> HistorySink:
        """What replaces a learner's ``history`` list so its loss records reach the file (and ``also``) at once."""
        return HistorySink(self, also)

    def elapsed_seconds(self) -> float:
        """Seconds since the run started, over all its resumed parts."""
        return time.time() - self.start

    # ---- checkpoint / resume ----------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """What a resumed run needs to continue writing these files exactly where they were."""
        return {"windows": self.windows, "log_lines": self._log_lines,
                "history_bytes": (self.out / "history.jsonl").stat().st_size if self.files else 0,
                "elapsed_seconds": self.elapsed_seconds()}

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state`: results so far, and ``history.jsonl`` cut back to that point
        (dropping what an interrupted window appended); rewrites every file."""
        self.windows = list(state["windows"])
        self._log_lines = [self._with_parameters(line) for line in state["log_lines"]]
        self.start = time.time() - float(state["elapsed_seconds"])
        if not self.files:
            return
        history = self.out / "history.jsonl"
        size = int(state["history_bytes"])
        if not history.is_file() or history.stat().st_size < size:
            raise SessrecError(f"cannot resume: {history} is missing or shorter than when the checkpoint was saved")
        with writing(history), open(history, "r+b") as f:
            f.truncate(size)
        atomic_write_text(self.out / "config.yaml", self.cfg.to_yaml())
        self._write_all()

    # ---- per window -------------------------------------------------------------------------------
    def add_window(self, index: int, metrics: dict[str, float], info: dict[str, Any]) -> None:
        self.windows.append({"index": index, "metrics": metrics, **info})
        for prefix in ("train", "eval"):  # the original logged the two dicts separately, step = [evaluated window]
            part = {k: v for k, v in metrics.items() if k.startswith(prefix + "_")}
            if part:
                self._dllog([index], part)
        self.append_history([{"type": "window", "index": index, **info, "metrics": metrics}])
        self._write_all()

    def finish(self, aot: dict[str, float], summary: dict[str, Any]) -> None:
        self.aot = aot
        self.extra.update(summary)
        self._dllog([], {f"{k}_AOT": v for k, v in aot.items()})
        self._write_all()
        if not self.files:
            return
        lines = ["", "***** Eval results (avg over time) *****"] + [f"{k}_AOT = {_fmt(v)}" for k, v in sorted(aot.items())]
        atomic_write_text(self.out / "eval_results_avg_over_time.txt", "\n".join(lines) + "\n")

    # ---- files ------------------------------------------------------------------------------------
    def _write_all(self) -> None:
        if not self.files:
            return
        self._write_csv()
        for prefix in ("eval", "train"):
            blocks = []
            for w in self.windows:
                keys = sorted(k for k in w["metrics"] if k.startswith(prefix + "_"))
                blocks.append("\n".join([f"\n***** {prefix} results (time index): {w['index']})*****"]
                                        + [f"{k} = {_fmt(w['metrics'][k])}" for k in keys]))
            atomic_write_text(self.out / f"{prefix}_results_over_time.txt", "\n".join(blocks) + "\n")
        results = {
            "config": self.cfg.to_dict(),
            "windows": self.windows,
            "aot": self.aot,
            **self.extra,
            "elapsed_seconds": self.elapsed_seconds(),
        }
        atomic_write_text(self.out / "results.json", json.dumps(_json_safe(results), indent=2))
        self._write_log()

    def _write_csv(self) -> None:
        keys = sorted({k for w in self.windows for k in w["metrics"]})
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["index", *keys])
        for w in self.windows:
            writer.writerow([w["index"], *(_fmt(w["metrics"][k]) if k in w["metrics"] else "" for k in keys)])
        atomic_write_text(self.out / "eval_train_results.csv", buf.getvalue())

    def _parameters(self) -> dict[str, Any]:
        return {k: v for k, v in self.cfg.to_dict().items() if isinstance(v, (int, float, str, bool, type(None)))}

    def _with_parameters(self, line: str) -> str:
        """A log line of the checkpoint; its PARAMETER record with this run's config (a resume may change some keys:
        --final-time-window-index), its time kept."""
        record = json.loads(line.removeprefix("DLLL "))
        if record.get("step") != "PARAMETER":
            return line
        return "DLLL " + json.dumps({**record, "data": _json_safe(self._parameters())})

    def _dllog(self, step: Any, data: dict[str, Any]) -> None:
        now = time.time()
        record = {
            "timestamp": str(now),
            "datetime": str(datetime.fromtimestamp(now)),
            "elapsedtime": str(now - self.start),
            "type": "LOG",
            "step": step,
            "data": _json_safe(data),
        }
        self._log_lines.append("DLLL " + json.dumps(record))

    def _write_log(self) -> None:
        atomic_write_text(self.out / "log.json", "\n".join(self._log_lines) + "\n")


class HistorySink:
    """Stands in for a learner's ``history`` list: each appended record is written to history.jsonl at
    once, and passed on to ``also`` (the W&B / TensorBoard loggers)."""

    def __init__(self, writer: OutputWriter, also: Callable[[list[dict[str, Any]]], None] | None = None):
        self.writer = writer
        self.also = also

    def append(self, record: dict[str, Any]) -> None:
        self.writer.append_history([{"type": "train", **record}])
        if self.also is not None:
            self.also([record])
