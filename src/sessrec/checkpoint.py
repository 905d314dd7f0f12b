"""Checkpoints written after each window, and the state a resumed run continues from.

``RUN_DIR/checkpoint-0003/`` holds the run after training on window 3 (and evaluating window 4):

* ``config.yaml``, ``schema.pbtxt``: the resolved config and the schema, enough to rebuild the learner
* ``model.safetensors``: the learner's weights (``state_dict()["model"]``), all that ``recommend`` and
  ``export`` read; a plain safetensors file of named tensors
* ``model_state.safetensors``: the rest of the learner's training state (optimizer moments, the
  ``torch.Generator`` used for shuffling and masking, step counter); absent for a learner without
  ``state_dict()``, which a resumed run refits instead (see :mod:`sessrec.learners`)
* ``pop.safetensors``: the counts of the most-popular comparison
* ``rng.safetensors``: the global RNG states (torch CPU and CUDA, numpy, python ``random``)
* ``ranks.safetensors``: in a distributed run, every process's own random states (its global RNG
  states and the learner's ``rank_state()``), by rank
* ``experiment.json``: the window index, the per-window results so far, the size of
  ``history.jsonl`` at that point (a resumed run cuts off what a crashed window appended)
* ``catalog.json``, ``catalog-*.parquet``: when the data was made by ``sessrec prepare``, its
  catalog (original ids ↔ ids, the item table; :mod:`sessrec.data.catalog`), so that the folder
  alone serves recommendations in original ids. A run copies it once into ``RUN_DIR/catalog/``
  when it starts and links it from there into each checkpoint
* ``manifest.json``: the size and SHA-256 of every other file, checked before a checkpoint is
  used, so that a truncated or altered file is named instead of loaded

``RUN_DIR/checkpoint-last/`` is the newest one (hard links to the same files, so no extra disk).
A run stopped by a signal saves its state inside a window there only (``experiment.json`` then
has ``in_window``); numbered checkpoints are always window boundaries. A checkpoint is written to
a temporary folder and renamed into place, so a crash never leaves a half-written one. Loading
never unpickles: tensors come from safetensors, everything else from JSON and YAML.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import re
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import safetensors.torch
import torch

from sessrec.config import ExperimentConfig
from sessrec.data.catalog import catalog_files
from sessrec.errors import SessrecError
from sessrec.io import _umask, atomic_replace_dir, reading, writing
from sessrec.schema import Schema, load_schema

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: manifest.json, and checkpoints inside a window
LAST = "checkpoint-last"
CATALOG = "catalog"  # RUN_DIR/catalog/: the data's catalog as the run found it when it started
RANKS = "ranks.safetensors"
MANIFEST = "manifest.json"
DAMAGED = ".damaged"  # suffix of the checkpoints a resumed run set aside
_NUMBERED = re.compile(r"checkpoint-\d+")
_TREE_KEY = "sessrec_tree"  # safetensors metadata entry holding the JSON skeleton of a state


class DamagedCheckpoint(SessrecError):
    """A file of a checkpoint is missing, unreadable, or differs from what its manifest recorded."""

    def __init__(self, folder: Path, file: str, problem: str):
        super().__init__(f"checkpoint {folder} is damaged: {file} {problem}")
        self.folder, self.file, self.problem = folder, file, problem


def checkpoint_name(window: int) -> str:
    return f"checkpoint-{window:04d}"


# ---- nested states in one safetensors file ----------------------------------------------------------
def write_state(path: Path, tree: Mapping[str, Any]) -> None:
    """Save a nested state (dicts, lists, tuples, numbers, strings, None, tensors) as one safetensors file.

    Tensors are stored under their dotted path; the structure around them is JSON in the file's
    metadata. A tensor reached twice (tied weights) is stored once and referenced twice.
    """
    tensors: dict[str, torch.Tensor] = {}
    by_identity: dict[tuple, str] = {}
    storages: set[tuple] = set()

    def encode(x: Any, where: str) -> Any:
        if isinstance(x, torch.Tensor):
            ident = (x.device, x.untyped_storage().data_ptr(), x.storage_offset(), x.dtype, tuple(x.shape), x.stride())
            if ident in by_identity:
                return {"__tensor__": by_identity[ident]}
            name = where or "tensor"
            t = x.detach().cpu().contiguous()
            storage = (t.untyped_storage().data_ptr(), t.device)
            if storage in storages and t.numel():  # another view of a saved tensor: safetensors needs its own copy
                t = t.clone()
            storages.add((t.untyped_storage().data_ptr(), t.device))
            tensors[name] = t
            by_identity[ident] = name
            return {"__tensor__": name}
        if isinstance(x, Mapping):
            items = [(k, encode(v, f"{where}.{k}" if where else str(k))) for k, v in x.items()]
            if all(isinstance(k, str) for k in x):
                if len(x) == 1 and next(iter(x)).startswith("__"):
                    raise SessrecError(f"cannot checkpoint a dict whose only key is reserved: {where}")
                return dict(items)
            if not all(isinstance(k, int) for k in x):
                raise SessrecError(f"cannot checkpoint {where}: dict keys must be all strings or all integers")
            return {"__intdict__": [[k, v] for k, v in items]}
        if isinstance(x, tuple):
            return {"__tuple__": [encode(v, f"{where}.{i}") for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [encode(v, f"{where}.{i}") for i, v in enumerate(x)]
        if isinstance(x, np.generic):
            return x.item()
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        raise SessrecError(f"cannot checkpoint {where or 'state'}: unsupported type {type(x).__name__}")

    skeleton = encode(dict(tree), "")
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            safetensors.torch.save_file(tensors, str(path), metadata={_TREE_KEY: json.dumps(skeleton)})
        except safetensors.SafetensorError as e:
            code = re.search(r"\(os error (\d+)\)", str(e))  # the Rust writer's I/O errors come as text only
            if code is None:
                raise
            raise OSError(int(code[1]), os.strerror(int(code[1]))) from None


def read_state(path: Path) -> dict[str, Any]:
    """The nested state saved by :func:`write_state` (tensors on the CPU)."""
    try:
        with safetensors.safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    except (OSError, safetensors.SafetensorError) as e:
        raise SessrecError(f"cannot read checkpoint file {path}: {e}") from None
    if _TREE_KEY not in metadata:  # a plain safetensors file: name -> tensor
        return tensors

    def decode(x: Any) -> Any:
        if isinstance(x, dict):
            if "__tensor__" in x and len(x) == 1:
                return tensors[x["__tensor__"]]
            if "__tuple__" in x and len(x) == 1:
                return tuple(decode(v) for v in x["__tuple__"])
            if "__intdict__" in x and len(x) == 1:
                return {int(k): decode(v) for k, v in x["__intdict__"]}
            return {k: decode(v) for k, v in x.items()}
        if isinstance(x, list):
            return [decode(v) for v in x]
        return x

    return decode(json.loads(metadata[_TREE_KEY]))


# ---- global RNG states -------------------------------------------------------------------------------
def rng_state() -> dict[str, Any]:
    """The process-wide random states: torch (CPU, and CUDA when in use), numpy and python ``random``."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


# ---- learners ----------------------------------------------------------------------------------------
def save_learner(folder: Path, name: str, learner: Any) -> bool:
    """Write ``name.safetensors`` (weights) and ``name_state.safetensors`` (the rest); False if it cannot."""
    if not hasattr(learner, "state_dict"):
        return False
    state = dict(learner.state_dict())
    weights = state.pop("model", None)
    if weights is not None:
        write_state(folder / f"{name}.safetensors", weights)
    if state:
        write_state(folder / f"{name}_state.safetensors", state)
    return True


def load_learner_state(folder: Path, name: str, weights_only: bool = False) -> dict[str, Any]:
    """The state saved by :func:`save_learner`; with ``weights_only`` just ``{"model": weights}``."""
    state: dict[str, Any] = {}
    rest = folder / f"{name}_state.safetensors"
    if not weights_only and rest.is_file():
        state.update(read_state(rest))
    weights = folder / f"{name}.safetensors"
    if weights.is_file():
        state["model"] = read_state(weights)
    if not state:
        raise SessrecError(f"checkpoint {folder} has no saved state for '{name}'")
    return state


# ---- whole checkpoints -------------------------------------------------------------------------------
def snapshot_catalog(data_path: Path, run_dir: Path) -> list[Path]:
    """Copy the data's catalog (if it has one) into ``RUN_DIR/catalog/``, replacing an earlier copy;
    return its files, which :func:`save_checkpoint` puts into every checkpoint. Copied when the run
    starts, so that a data folder prepared again during the run cannot pair its ids with this model."""
    names = catalog_files(data_path)
    target = run_dir / CATALOG
    if not names:
        if target.is_dir():
            with writing(target):
                shutil.rmtree(target)
        return []
    tmp = run_dir / f".{CATALOG}.tmp"
    with writing(tmp):
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        for name in names:
            shutil.copy2(data_path / name, tmp / name)
    atomic_replace_dir(tmp, target)
    return [target / name for name in names]


def save_checkpoint(run_dir: Path, window: int, cfg: ExperimentConfig, schema: Schema,
                    learners: Mapping[str, Any], experiment: dict[str, Any], ranks: list[dict[str, Any]] | None = None,
                    files: Iterable[Path] = ()) -> Path:
    """Write ``checkpoint-<window>`` and ``checkpoint-last`` atomically; prune old numbered ones.

    ``learners`` maps a file name (``model``, ``pop``) to a learner; ``experiment`` is the JSON-safe
    state of the loop; ``ranks`` the states of each process of a distributed run; ``files`` are linked
    (or copied) in as they are (the catalog). With
    ``in_window`` in ``experiment`` (a run stopped inside window ``window + 1``) only
    ``checkpoint-last`` is written. On any error nothing half-written is left and the previous
    checkpoint is untouched. Returns the folder of the newest checkpoint.
    """
    tmp = run_dir / f".{checkpoint_name(window)}.tmp"
    last_tmp = run_dir / f".{LAST}.tmp"
    try:
        with writing(tmp):
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        saved = {name: save_learner(tmp, name, lrn) for name, lrn in learners.items() if lrn is not None}
        for f in files:
            _link_or_copy(f, tmp / f.name)
        write_state(tmp / "rng.safetensors", rng_state())
        if ranks is not None:
            write_state(tmp / RANKS, {"ranks": ranks})
        _write_text(tmp / "config.yaml", cfg.to_yaml())
        _write_text(tmp / "schema.pbtxt", schema.to_pbtxt() + "\n")
        meta = {"format_version": FORMAT_VERSION, "trained_window": window, "learners": saved, **experiment}
        _write_text(tmp / "experiment.json", json.dumps(meta, indent=1))
        _write_manifest(tmp)
        _fsync_files(tmp)
        if cfg.keep_checkpoints == 0 or "in_window" in experiment:
            atomic_replace_dir(tmp, run_dir / LAST)
            if cfg.keep_checkpoints == 0:  # numbered ones of a run resumed with --keep-checkpoints 0 go too
                _keep_newest(run_dir, 0)
            return run_dir / LAST
        numbered = run_dir / checkpoint_name(window)
        atomic_replace_dir(tmp, numbered)
        with writing(last_tmp):
            if last_tmp.exists():
                shutil.rmtree(last_tmp)
            _link_copy(numbered, last_tmp)
        atomic_replace_dir(last_tmp, run_dir / LAST)
        if cfg.keep_checkpoints > 0:
            _keep_newest(run_dir, cfg.keep_checkpoints)
    except BaseException:  # a full disk, a second signal: leave no half-written folder behind
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(last_tmp, ignore_errors=True)
        raise
    log.debug("saved checkpoint %s", numbered)
    return numbered


def _keep_newest(run_dir: Path, keep: int) -> None:
    """Remove the numbered checkpoints but the newest ``keep``."""
    numbered = sorted(_numbered(run_dir))
    for old in numbered[: len(numbered) - keep]:
        shutil.rmtree(run_dir / checkpoint_name(old))


def _numbered(run_dir: Path) -> list[int]:
    return [int(p.name.split("-")[1]) for p in run_dir.glob("checkpoint-*") if _NUMBERED.fullmatch(p.name) and p.is_dir()]


def _write_text(path: Path, text: str) -> None:
    with writing(path):
        path.write_text(text)


def _fsync_files(folder: Path) -> None:
    """Flush every file to disk, with the permissions of the other result files (safetensors makes them 0600)."""
    mode = 0o666 & ~_umask()
    for p in folder.iterdir():
        with writing(p):
            os.chmod(p, mode)
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _link_copy(src: Path, dst: Path) -> None:
    """``dst`` with the files of ``src``: hard links where the file system allows, copies otherwise."""
    dst.mkdir()
    for p in src.iterdir():
        _link_or_copy(p, dst / p.name)


def _link_or_copy(src: Path, dst: Path) -> None:
    with writing(dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


# ---- verification --------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _write_manifest(folder: Path) -> None:
    files = {p.name: {"bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in sorted(folder.iterdir())}
    _write_text(folder / MANIFEST, json.dumps({"files": files}, indent=1))


def verify_checkpoint(folder: Path, only: Iterable[str] | None = None) -> None:
    """Check every file of a checkpoint (or those named in ``only``) against the size and SHA-256
    in its manifest; raise :class:`DamagedCheckpoint` naming the first that differs. A checkpoint
    of format 1 (before manifests) cannot be checked and passes."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        try:
            version = json.loads((folder / "experiment.json").read_text()).get("format_version", 0)
        except (OSError, ValueError, AttributeError):
            raise DamagedCheckpoint(folder, "experiment.json", "is missing or unreadable") from None
        if version >= 2:
            raise DamagedCheckpoint(folder, MANIFEST, "is missing")
        log.info("checkpoint %s predates manifests: its files are not verified", folder)
        return
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        wanted = {name: (int(f["bytes"]), str(f["sha256"])) for name, f in files.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise DamagedCheckpoint(folder, MANIFEST, "is unreadable") from None
    names = wanted if only is None else [n for n in only if n in wanted]
    for name in names:
        size, digest = wanted[name]
        path = folder / name
        if not path.is_file():
            raise DamagedCheckpoint(folder, name, "is missing")
        actual = path.stat().st_size
        if actual != size:
            raise DamagedCheckpoint(folder, name, f"has {actual:,} bytes, {size:,} when it was saved (truncated or overwritten)")
        if file_sha256(path) != digest:
            raise DamagedCheckpoint(folder, name, "has changed since it was saved (its SHA-256 differs from the manifest's)")


def remove_checkpoints(run_dir: Path, stale_only: bool = False) -> None:
    """Delete the checkpoints of an earlier run in this folder (a fresh run over it), or with
    ``stale_only`` just the half-written folders a crash left behind."""
    patterns = [".checkpoint-*.tmp"] + ([] if stale_only else ["checkpoint-*", ".checkpoint-*.old", f".checkpoint-*{DAMAGED}"])
    for pattern in patterns:
        for p in run_dir.glob(pattern):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)


# Config fields a resumed run may change: they leave the results alone (a later final window extends them;
# another device changes floating-point rounding, so results are then close but not identical).
RESUMABLE_CHANGES = {"output_dir", "overwrite_output_dir", "resume", "quiet", "device", "num_threads", "logging_steps",
                     "save_checkpoints", "keep_checkpoints", "final_time_window_index", "report_to", "logging_dir",
                     "run_name", "experiments_group", "ddp_timeout"}


def model_window(meta: Mapping[str, Any]) -> int:
    """The last window a checkpoint's model trained on to its end: ``trained_window``, or the window the run was
    stopped in when its training had ended (a stop during that window's evaluation)."""
    inside = meta.get("in_window")
    return int(inside["window"]) if inside and inside.get("fit") is not None else int(meta["trained_window"])


def is_bundled_sample(path: str | Path) -> bool:
    """Whether ``path`` is the sample data set inside a sessrec package (of this install or another one)."""
    return Path(path).parts[-3:] == ("sessrec", "data", "sample")


def config_differences(saved: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """``key: saved -> new`` for every result-changing field in which ``new`` departs from ``saved``."""
    a, b = saved.to_dict(), new.to_dict()
    out = []
    for key in a:
        if key in RESUMABLE_CHANGES or a[key] == b[key]:
            continue
        if key == "data_path" and a[key] and b[key] and (Path(a[key]).resolve() == Path(b[key]).resolve()
                                                         or is_bundled_sample(a[key]) and is_bundled_sample(b[key])):
            continue  # one folder; or the bundled sample of two installs (its files are compared by size on resume)
        if key == "baseline_params" and _same_baseline_params(saved.model_type, a[key], b[key]):
            continue  # one configuration written two ways ({layers: "24"} and {layers: 24}, a default given or not)
        out.append(f"{key}: {a[key]!r} -> {b[key]!r}")
    return out


def _same_baseline_params(model_type: str, a: dict, b: dict) -> bool:
    """Whether two ``baseline_params`` give ``model_type`` the same parameters, once parsed (False where either is
    refused, as a model without baseline parameters refuses any: the run then says why)."""
    from sessrec.baselines import parse_baseline_params

    try:
        return parse_baseline_params(model_type, a) == parse_baseline_params(model_type, b)
    except SessrecError:
        return False


def checkpoint_folders(run_dir: Path) -> list[Path]:
    """The checkpoints of a run, newest first (``checkpoint-last``, the copy an interrupted
    replacement left as ``.checkpoint-last.old``, the numbered ones). One whose ``experiment.json``
    cannot be read comes first: it is damaged, and verifying it says how."""
    ranked = []
    for i, folder in enumerate([run_dir / LAST, run_dir / f".{LAST}.old",
                                *sorted(p for p in run_dir.glob("checkpoint-*") if _NUMBERED.fullmatch(p.name))]):
        if not folder.is_dir():
            continue
        try:
            meta = json.loads((folder / "experiment.json").read_text())
            position = (int(meta["trained_window"]), int("in_window" in meta))
        except (OSError, ValueError, KeyError, TypeError):
            position = (1 << 62, 0)
        ranked.append((position, -i, folder))
    return [folder for *_, folder in sorted(ranked, reverse=True)]


def find_checkpoint(run_dir: Path) -> Path | None:
    """The newest checkpoint of a run, not verified (see :func:`latest_good_checkpoint`), or None."""
    folders = checkpoint_folders(run_dir)
    return folders[0] if folders else None


def nothing_to_resume(run_dir: Path, damaged: list[DamagedCheckpoint]) -> SessrecError:
    """The error of a ``--resume`` of a folder without a checkpoint that verifies."""
    if damaged:
        more = f" (and {len(damaged) - 1} older checkpoint(s) too)" if len(damaged) > 1 else ""
        return SessrecError(f"cannot resume {run_dir}: {damaged[0]}{more}; restore that file from a copy if you have one, "
                            "else start the run again with --overwrite-output-dir (--keep-checkpoints N keeps older "
                            "checkpoints to fall back on)")
    if not run_dir.is_dir():
        return SessrecError(f"cannot resume: {run_dir} not found (--output-dir is the folder of the run to continue)")
    return SessrecError(f"cannot resume: no checkpoint in {run_dir} (the run stopped before its first window ended, or "
                        "ran with --no-save-checkpoints); start it again with --overwrite-output-dir")


def latest_good_checkpoint(run_dir: Path, only: Iterable[str] | None = None) -> tuple[Path | None, list[DamagedCheckpoint]]:
    """The newest checkpoint of a run that passes :func:`verify_checkpoint` (or None), and the
    damaged ones newer than it, newest first."""
    damaged = []
    for folder in checkpoint_folders(run_dir):
        try:
            verify_checkpoint(folder, only)
            return folder, damaged
        except DamagedCheckpoint as e:
            damaged.append(e)
    return None, damaged


def set_aside(folder: Path) -> Path:
    """Rename a damaged checkpoint to ``NAME.damaged`` (replacing an older one), out of a resumed run's way."""
    target = folder.with_name(folder.name + DAMAGED)
    with writing(target):
        if target.exists():
            shutil.rmtree(target)
        os.replace(folder, target)
    return target


def model_checkpoint(model_dir: Path) -> tuple[Path, Path | None]:
    """(the checkpoint to load, its run folder or None) for a model folder a user names: a run folder means its
    newest checkpoint that verifies (a damaged newer one is warned about), anything else a checkpoint folder."""
    model_dir = Path(model_dir)
    if (model_dir / LAST).is_dir() or any(model_dir.glob("checkpoint-[0-9]*")):
        folder, damaged = latest_good_checkpoint(model_dir)
        if folder is None:
            why = f": {damaged[0]}" if damaged else ""
            raise SessrecError(f"no usable checkpoint in run folder {model_dir}{why}")
        for bad in damaged:
            log.warning("%s; using the older %s", bad, folder.name)
        return folder, model_dir
    if not model_dir.is_dir():
        what = "is not a folder" if model_dir.exists() else "does not exist"
        raise SessrecError(f"--model-dir {model_dir} {what}: give a run folder or one of its checkpoint folders")
    return model_dir, None


def read_checkpoint(folder: Path, verify: bool = True) -> tuple[ExperimentConfig, Schema, dict[str, Any]]:
    """(config, schema, ``experiment.json``) of a checkpoint folder, with a clear error if it is not
    one or (with ``verify``) if it is damaged."""
    folder = Path(folder)
    if not folder.exists():
        raise SessrecError(f"{folder} does not exist: give a run's checkpoint folder (RUN_DIR/checkpoint-last)")
    if not (folder / "config.yaml").is_file() or not (folder / "experiment.json").is_file():
        if (folder / LAST).is_dir():  # a run folder has a config.yaml too: "no config.yaml" would be wrong
            raise SessrecError(f"{folder} is a run folder, not one of its checkpoints: give {folder / LAST} (its "
                               "newest model) or a checkpoint-N folder")
        raise SessrecError(f"{folder} is not a sessrec checkpoint (no config.yaml / experiment.json)")
    if verify:
        verify_checkpoint(folder)
    with reading(folder / "experiment.json"):
        meta = json.loads((folder / "experiment.json").read_text())
        if not isinstance(meta, dict) or not isinstance(meta.get("learners"), dict):
            raise TypeError("a checkpoint's state is a mapping that names its learners")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise SessrecError(f"checkpoint {folder} was written by a newer sessrec (format {meta['format_version']})")
    return ExperimentConfig.from_yaml(folder / "config.yaml"), load_schema(folder / "schema.pbtxt"), meta
