"""The model a server answers with: a checkpoint loaded into a scoring backend, and its refresh.

A served model is immutable once loaded. A refresh loads the newer checkpoint beside it and then
replaces the reference in one assignment: a request keeps the model it was encoded with (its ids
are that model's catalog's) until its answer is written, so a swap never fails a request.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import logging
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from sessrec.checkpoint import LAST, MANIFEST, model_window, read_checkpoint
from sessrec.errors import SessrecError
from sessrec.recommend import Recommender, Scorer

log = logging.getLogger(__name__)

BACKENDS = ("eager", "torchscript", "onnx")


@dataclass
class ServedModel:
    """One loaded checkpoint: the recommender (catalog, schema), the scoring backend, and what
    ``/metadata`` says about it."""

    rec: Recommender
    scorer: Scorer
    backend: str
    version: int  # 1 for the model the server started with, +1 at each refresh
    source: Path  # the checkpoint folder it was loaded from
    trained_window: int
    digest: str  # SHA-256 of the checkpoint's manifest.json: what a refresh compares
    config: dict[str, Any]
    loaded_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def metadata(self) -> dict[str, Any]:
        cfg = self.config
        catalog = self.rec.catalog
        from sessrec.baselines import BASELINES, parse_baseline_params

        if cfg["model_type"] in BASELINES:  # its own parameters (the defaults too), not the neural options' defaults
            given = cfg.get("baseline_params") or {}
            params = dataclasses.asdict(parse_baseline_params(cfg["model_type"], given)) if cfg["model_type"] != "pop" else {}
            model = {"model_type": cfg["model_type"], "baseline_params": params}
        else:
            model = {"model_type": cfg["model_type"], "task": cfg.get("task"), "d_model": cfg.get("d_model"),
                     "n_layer": cfg.get("n_layer"), "use_side_information_features": cfg.get("use_side_information_features")}
        return {
            "model": model,
            "window": self.trained_window, "version": self.version, "checkpoint": str(self.source),
            "loaded_at": self.loaded_at, "backend": self.backend,
            "catalog": {"items": self.rec.schema.n_items - 1 if catalog is None else catalog.n_items,
                        "original_ids": catalog is not None},
            "inputs": {name: (catalog.source(name) if catalog is not None else "the request (model ids)")
                       for name in self.rec.input_names},
            "max_session_length": self.rec.max_len,
        }


def manifest_digest(folder: Path) -> str | None:
    """SHA-256 of a checkpoint's manifest (it lists every file's hash), or None while it is missing."""
    try:
        return hashlib.sha256((folder / MANIFEST).read_bytes()).hexdigest()
    except OSError:
        return None


def _files_state(folder: Path) -> tuple:
    """(name, size, modification time) of each file of a checkpoint folder: what tells a copy that went on."""
    try:
        return tuple(sorted((p.name, st.st_size, st.st_mtime_ns) for p in folder.iterdir() if p.is_file()
                            for st in (p.stat(),)))
    except OSError:
        return ()


def load_served(folder: Path, backend: str, version: int, device: str = "cpu", num_threads: int = 0) -> ServedModel:
    """Load a checkpoint into ``backend``. The folder is first copied aside (and checked against its
    manifest there), so that a run replacing ``checkpoint-last`` meanwhile cannot mix two checkpoints."""
    if backend not in BACKENDS:
        raise SessrecError(f"--backend must be one of {', '.join(BACKENDS)} (got '{backend}')")
    if backend != "eager" and device != "cpu":
        raise SessrecError(f"--backend {backend} runs on the CPU; --device {device} is for --backend eager")
    with tempfile.TemporaryDirectory(prefix="sessrec-serve-") as tmp:
        copy = Path(tmp) / folder.name
        try:
            shutil.copytree(folder, copy)
        except (OSError, shutil.Error) as e:
            raise SessrecError(f"cannot read checkpoint {folder}: {e}") from None
        digest = manifest_digest(copy) or ""
        try:
            cfg, schema, meta = read_checkpoint(copy)
            rec = Recommender.from_checkpoint(copy, cfg, schema, meta, device, shown=folder)
        except SessrecError as e:
            raise SessrecError(str(e).replace(str(copy), str(folder))) from None  # name the folder, not the copy
        if num_threads > 0:
            torch.set_num_threads(num_threads)  # after loading: a learner applies the num_threads it was trained with
        scorer = _scorer(rec, backend, Path(tmp))
    served = ServedModel(rec, scorer, backend, version, folder, model_window(meta), digest, cfg.to_dict())
    warm_up(served)
    return served


def _scorer(rec: Recommender, backend: str, tmp: Path) -> Scorer:
    names = rec.input_names
    if backend == "eager":
        return rec.learner.score
    from sessrec.export import export_recommender

    if backend == "torchscript":
        path = tmp / "model.pt"
        export_recommender(rec, "torchscript", path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated upstream; it still works
            module = torch.jit.load(str(path))

        def score_torchscript(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return module(*(batch[n] for n in names))

        return score_torchscript
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        raise SessrecError("--backend onnx needs onnxruntime: pip install 'sessrec[export]'")
    import onnxruntime

    path = tmp / "model.onnx"
    export_recommender(rec, "onnx", path)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def score_onnx(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {n: batch[n].numpy() for n in names})[0])

    return score_onnx


def warm_up(served: ServedModel) -> None:
    """One forward pass before the first request: the first call of a backend allocates and plans."""
    rec = served.rec
    batch = {name: torch.zeros(1, rec.max_len, dtype=torch.int64 if rec.schema[name].is_categorical else torch.float32)
             for name in rec.input_names}
    batch[rec.item_key][0, 0] = 1
    with torch.no_grad():
        served.scorer(batch)


def settle_memory() -> None:
    """Collect garbage once, then move every object left to the collector's permanent generation
    (``gc.freeze``): the loaded model, torch and transformers are some 220,000 objects that each
    full collection would walk again, pausing every request (up to 270 ms under load, measured;
    under 20 ms frozen). Called when a model is loaded and again once a replaced one is no longer
    in use, after unfreezing, so that reference cycles of the old model are collected too."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelWatcher:
    """Polls a run's ``checkpoint-last`` every ``interval`` seconds and, when its manifest changed,
    loads it (in this thread, while the current model answers) and hands it to ``swap``."""

    def __init__(self, run_dir: Path, current: Callable[[], ServedModel], swap: Callable[[ServedModel], None],
                 backend: str, device: str, num_threads: int, interval: float):
        self.run_dir, self.current, self.swap = run_dir, current, swap
        self.backend, self.device, self.num_threads, self.interval = backend, device, num_threads, interval
        self._stop = threading.Event()
        # a checkpoint that did not load, as its manifest and its files' sizes and times (said once; tried again when
        # a file changes: a copy that was caught half-way and then completed has the same manifest)
        self._failed: tuple | None = None
        self._replaced = False  # a model was swapped out at the last check: settle memory at the next
        self._thread = threading.Thread(target=self._run, name="sessrec-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def check(self) -> bool:
        """Load and swap in ``checkpoint-last`` if it changed; True when it did."""
        folder = self.run_dir / LAST
        digest = manifest_digest(folder)
        if digest is None or digest == self.current().digest:
            return False
        state = _files_state(folder)
        if (digest, state) == self._failed:
            return False
        began = time.perf_counter()
        try:
            new = load_served(folder, self.backend, self.current().version + 1, self.device, self.num_threads)
        except SessrecError as e:
            if manifest_digest(folder) == digest:  # not a checkpoint being replaced: say it once
                self._failed = (digest, state)
                log.warning("not serving the new %s: %s", folder, e)
            return False
        self.swap(new)
        self._replaced = True
        log.info("serving %s (window %d) as version %d, loaded in %.1f s", folder, new.trained_window, new.version,
                 time.perf_counter() - began)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if self._replaced:  # the requests of the old model have been answered by now
                    self._replaced = False
                    settle_memory()
                self.check()
            except Exception:  # a refresh must never stop the server
                log.exception("checking %s for a new model failed", self.run_dir / LAST)
