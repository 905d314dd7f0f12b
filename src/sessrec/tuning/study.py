"""``sessrec tune``: the paper's tuning protocol with Optuna, then the best configuration over seeds.

As in the paper (Online Appendix C): each (data set, algorithm) group is tuned on its own, by
Bayesian optimisation (Optuna's TPE, seeded), maximising NDCG@20 averaged over time on the
**validation** split of the first half of the windows; test files are never opened while tuning.
The best configuration then runs on the test split over all windows with several seeds
(``--final-seeds``), which ``sessrec report`` turns into the paper's table.

A study lives in a database (SQLite in the output folder unless ``--storage`` names another), so
an interrupted ``sessrec tune`` continues where it stopped when the same command is run again:
``--trials N`` is the number of finished (complete or pruned) trials the study should have, and a
trial cut short by a kill is run again with the same parameters. Several processes, on one
machine (``--n-jobs``) or many (``--storage postgresql://...``), can work on one study.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sessrec.config import ExperimentConfig, neural_only_options
from sessrec.errors import SessrecError
from sessrec.io import atomic_write_bytes, atomic_write_text, check_output_folder
from sessrec.progress import bar_disabled
from sessrec.runlock import pid_alive
from sessrec.stopping import RunInterrupted, signal_name
from sessrec.tuning.space import (
    HEAD_CHOICES,
    SearchSpace,
    apply,
    default_space,
    flat_values,
    load_space,
    paper_fixed,
    scalar,
)

log = logging.getLogger(__name__)

# Config keys that do not change what a trial measures: two invocations may differ in them.
_OPERATIONAL = {"output_dir", "overwrite_output_dir", "resume", "quiet", "device", "num_threads", "logging_steps",
                "save_checkpoints", "keep_checkpoints", "report_to", "logging_dir", "run_name", "experiments_group",
                "data_path", "features_schema_path", "per_device_eval_batch_size", "ddp_timeout"}
RETRIES = 2  # a trial interrupted by a kill is run again this many times at most


@dataclass
class TuneOptions:
    """What ``sessrec tune`` takes besides the config of the runs."""

    output_dir: Path
    trials: int = 20
    timeout: float | None = None  # seconds, per invocation
    tune_windows: int | None = None  # windows used (first trained .. last evaluated); default: half
    prune: bool = True
    storage: str | None = None
    study_name: str | None = None
    n_jobs: int = 1
    space_file: str | None = None
    final_seeds: int = 0
    metric: str = "ndcg_at_20"
    warm_start: bool = True
    preset: str | None = None


@dataclass
class Plan:
    """Everything a worker process needs to run trials (picklable)."""

    cfg: ExperimentConfig  # the config of a tuning trial before the drawn values: validation, tuning windows
    base: ExperimentConfig  # the user's config (all windows, their split): best.yaml is this plus the best values
    space: SearchSpace
    storage_url: str
    study_name: str
    trials_dir: Path
    metric_key: str
    target: int
    prune: bool
    timeout: float | None
    signature: dict[str, Any] = field(default_factory=dict)
    warm_starts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    paper_fixed: dict[str, Any] = field(default_factory=dict)  # the appendix's fixed settings applied
    preset_fixed: dict[str, Any] = field(default_factory=dict)  # what --preset sets and no trial tunes


def _optuna():
    try:
        import optuna
    except ImportError:  # pragma: no cover - a dependency, but a clear line if it is missing
        raise SessrecError("sessrec tune needs optuna: pip install optuna") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trials are reported by sessrec's own lines
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


# ---- setting up ----------------------------------------------------------------------------------------
def plan_study(cfg: ExperimentConfig, fixed: set[str], opts: TuneOptions, printer: Callable[[str], None] = print) -> Plan:
    """Check everything that can be checked before a trial runs; one-line errors, nothing written."""
    from sessrec.data.windows import resolve_window_range
    from sessrec.experiment import resolve_data, run_label

    if opts.trials < 1:
        raise SessrecError(f"--trials must be >= 1 (got {opts.trials})")
    if opts.n_jobs < 1:
        raise SessrecError(f"--n-jobs must be >= 1 (got {opts.n_jobs})")
    if opts.final_seeds < 0:
        raise SessrecError(f"--final-seeds must be >= 0 (got {opts.final_seeds})")
    if opts.timeout is not None and opts.timeout <= 0:
        raise SessrecError(f"--timeout must be > 0 (got {opts.timeout})")
    if cfg.resume:
        raise SessrecError("sessrec tune has no --resume: run the same command again and the study continues")
    base = copy.deepcopy(cfg)
    preset_values: dict[str, Any] = {}
    if opts.preset:
        from sessrec.presets import load_preset

        preset_values = load_preset(opts.preset)
    applied = {k: v for k, v in paper_fixed(base).items() if k not in fixed}
    untuned = copy.deepcopy(base).update(applied, "paper's fixed settings")  # the first trial's base: no preset
    base.update({k: v for k, v in {**applied, **preset_values}.items()
                 if k not in fixed and k not in ("eval_on_test_set", "seed")}, opts.preset or "paper's fixed settings")
    for config in (base, untuned):  # n_head is tuned among the choices that divide a fixed d_model (tuning/space.py)
        if "n_head" not in fixed and config.d_model % config.n_head:
            config.n_head = max(c for c in HEAD_CHOICES if config.d_model % c == 0)
    base.validate()
    check_algorithm(base)
    data_path, schema = resolve_data(base)
    base.data_path = str(data_path.resolve())
    start, final = resolve_window_range(data_path, base.start_time_window_index, base.final_time_window_index,
                                        base.time_window_folder_pad_digits)
    available = final - start + 1
    n = opts.tune_windows if opts.tune_windows is not None else max(2, available // 2)
    if not 2 <= n <= available:
        raise SessrecError(f"--tune-windows must be between 2 and {available}, the windows {start}..{final} "
                           f"(one trained, the next evaluated; got {n})")
    metric, _, k = opts.metric.rpartition("_at_")
    if metric not in ("ndcg", "recall", "mrr") or not k.isdigit():
        raise SessrecError(f"--metric must be ndcg_at_K, recall_at_K or mrr_at_K (got '{opts.metric}')")
    if int(k) not in base.top_ks:
        raise SessrecError(f"--metric {opts.metric}: {k} is not among --top-ks {' '.join(map(str, base.top_ks))}")

    tune_cfg = copy.deepcopy(base)
    tune_cfg.final_time_window_index = start + n - 1
    tune_cfg.eval_on_test_set = False  # the paper tuned on validation: test files are never opened
    tune_cfg.save_checkpoints = tune_cfg.compare_with_pop = False
    tune_cfg.quiet, tune_cfg.report_to, tune_cfg.overwrite_output_dir = True, "none", True
    default = ExperimentConfig()  # the final runs' operational settings: a trial would warn that they cannot act
    for name in ("keep_checkpoints", "logging_dir", "run_name", "experiments_group"):
        setattr(tune_cfg, name, getattr(default, name))
    if opts.n_jobs > 1 and tune_cfg.num_threads == 0:
        tune_cfg.num_threads = max(1, (os.cpu_count() or 1) // opts.n_jobs)

    space = _space(tune_cfg, fixed, opts, data_path, schema, start, n, set(cfg.baseline_params))
    out = Path(opts.output_dir)
    url = opts.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    plan = Plan(cfg=tune_cfg, base=base, space=space, storage_url=url,
                study_name=opts.study_name or f"{run_label(base)}", trials_dir=out / "trials",
                metric_key=f"eval_/next-item/{opts.metric}", target=opts.trials, prune=opts.prune, timeout=opts.timeout,
                paper_fixed=applied, preset_fixed=_preset_fixed(preset_values, fixed, space, applied))
    plan.signature = {
        "model": run_label(base), "objective": f"{opts.metric} (validation, averaged over windows "
                                               f"{start + 1}..{start + n - 1})",
        "data": _data_fingerprint(data_path, schema, start, n, tune_cfg.time_window_folder_pad_digits),
        "space": space.fingerprint(),
        "config": {k: v for k, v in tune_cfg.to_dict().items() if k not in _OPERATIONAL},
    }
    if opts.warm_start:
        plan.warm_starts = _warm_starts(base, untuned, space, preset_values, opts.preset)
    return plan


def _preset_fixed(preset_values: dict[str, Any], fixed: set[str], space: SearchSpace,
                  applied: dict[str, Any]) -> dict[str, Any]:
    """The keys a ``--preset`` sets that no flag fixes and the space does not tune: every trial keeps them (the
    algorithm, and the paper's fixed settings it repeats, are said elsewhere)."""
    said = {"baseline_params", "eval_on_test_set", "seed", "model_type", "task"}
    flat = {k: v for k, v in preset_values.items() if k not in said and not (k in applied and applied[k] == v)}
    flat.update({f"baseline_params.{k}": v for k, v in preset_values.get("baseline_params", {}).items()})
    return {k: v for k, v in flat.items() if k not in fixed and k.split(".")[0] not in fixed and k not in space.names}


def check_algorithm(cfg: ExperimentConfig) -> None:
    """What a run refuses as it builds its model, refused before a study is made (else every trial fails): an unknown
    model_type, a task the architecture cannot run, an unknown activation."""
    from sessrec.baselines import BASELINES
    from sessrec.bodies.registry import build_body
    from sessrec.features import activation
    from sessrec.tasks import check_objective

    if cfg.model_type not in BASELINES:
        activation(cfg.hidden_act)
        check_objective(cfg, build_body(cfg))


def _space(cfg: ExperimentConfig, fixed: set[str], opts: TuneOptions, data_path: Path, schema: Any,
           start: int, n: int, user_baseline: set[str]) -> SearchSpace:
    """The study's space; ``user_baseline``: the baseline parameters the user set (a preset's are tuned)."""
    if opts.space_file:
        space = load_space(opts.space_file, cfg)
        both = [p for p in space.names if p in fixed or (p.startswith("baseline_params.") and "baseline_params" in fixed
                                                        and p.split(".", 1)[1] in user_baseline)]
        if both:
            raise SessrecError(f"{opts.space_file}: {', '.join(both)} is both fixed (a flag or --config key) and in the "
                               "search space; remove one of the two")
        return space
    mean_length = _mean_session_length(cfg, data_path, schema, start, n) if cfg.model_type in ("stan", "vstan") else 5.0
    fixed_flat = set(fixed) | {f"baseline_params.{k}" for k in user_baseline}
    space = default_space(cfg, mean_length).without(fixed_flat)
    if "d_model" not in space.names:
        space = space.with_heads_dividing(cfg.d_model)
    if not space.params:
        raise SessrecError("nothing to tune: every key of the default search space is fixed by a flag or --config key "
                           "(give a --space file)")
    return space


def _mean_session_length(cfg: ExperimentConfig, data_path: Path, schema: Any, start: int, n: int) -> float:
    """L of the paper's STAN/VSTAN lambda grids: the mean session length of the tuning windows' training data."""
    from sessrec.data.loader import load_sessions
    from sessrec.data.windows import window_file

    lengths = [load_sessions(window_file(data_path, t, "train", cfg.time_window_folder_pad_digits), schema,
                             cfg.session_seq_length_max, [schema.item_id], window=t).lengths for t in range(start, start + n - 1)]
    total = sum(int(x.sum()) for x in lengths)
    count = sum(int(x.numel()) for x in lengths)
    return total / max(count, 1)


def _data_fingerprint(data_path: Path, schema: Any, start: int, n: int, pad: int) -> dict[str, Any]:
    """What tells one data set from another without reading it: the schema and the tuning files' sizes (the path is
    kept to be shown, not compared: the same data may be reached by another path or copied)."""
    from sessrec.data.windows import window_file
    from sessrec.experiment import data_sizes

    used = [(t, "train") for t in range(start, start + n - 1)] + [(t, "valid") for t in range(start + 1, start + n)]
    sizes = data_sizes([(t, window_file(data_path, t, split, pad)) for t, split in used], data_path)
    files = [f"{name}:{size}" for name, size in sizes.items()]
    digest = hashlib.sha256((schema.to_pbtxt() + "\n" + "\n".join(files)).encode()).hexdigest()[:16]
    return {"path": str(data_path), "windows": [start, start + n - 1], "digest": digest}


def _warm_starts(base: ExperimentConfig, untuned_cfg: ExperimentConfig, space: SearchSpace,
                 preset_values: dict[str, Any], preset: str | None) -> list[tuple[str, dict[str, Any]]]:
    """The first trials of a new study: the untuned configuration (``untuned_cfg``'s values of the tuned keys, so the
    tuned one can only be better on validation) and the paper's best configuration of this algorithm (``--preset``, or
    the REES46 preset of the algorithm's group)."""
    from sessrec.experiment import run_label
    from sessrec.presets import list_presets, load_preset

    untuned = {**flat_values(untuned_cfg), **_baseline_defaults(space, untuned_cfg)}  # baseline values as parsed
    snapped = space.snap(untuned)
    moved = [f"{k} {scalar(untuned[k])} -> {v}" for k, v in snapped.items() if untuned.get(k) not in (v, [v])]
    drawn = [f"{k} {untuned[k]}" for k in space.names if k in untuned and k not in snapped]
    # a default outside the space is moved to its nearest value, or drawn where it has none (GRU4Rec's layers
    # [100, 100]): the label says so (it is not the untuned run then)
    starts = [("untuned configuration" + (f" moved into the space ({', '.join(moved)})" if moved else "")
               + (f" with draws for what the space cannot hold ({', '.join(drawn)})" if drawn else ""), snapped)]
    if not preset:  # the group's preset, else the algorithm's item-only one (a side-information group without its own)
        for candidate in dict.fromkeys([paper_preset(base), f"rees46/{run_label(base)}"]):
            if candidate in list_presets():
                preset, preset_values = candidate, load_preset(candidate)
                break
    if preset:
        keys = {k: v for k, v in preset_values.items() if k not in ("baseline_params", "eval_on_test_set", "seed")}
        paper = copy.deepcopy(base).update(keys, f"preset {preset}")
        paper.baseline_params = {**base.baseline_params, **preset_values.get("baseline_params", {})}
        starts.append((f"preset {preset}", space.snap(flat_values(paper))))
    unique: list[tuple[str, dict[str, Any]]] = []
    defaults = space.snap(_baseline_defaults(space, untuned_cfg))
    for label, params in starts:
        full = {**defaults, **params}
        if full and all(full != p for _, p in unique):
            unique.append((label, full))
    return unique


def paper_preset(cfg: ExperimentConfig) -> str:
    """The name of the paper's REES46 preset of ``cfg``'s experiment group: the algorithm, GRU4Rec's training mode,
    the side information's aggregation (``rees46/xlnet-mlm-concat-sohe``)."""
    from sessrec.experiment import run_label

    name = run_label(cfg)
    if cfg.model_type == "gru4rec":
        name += "-swt" if cfg.training_time_window_size > 0 else "-ft"
    elif cfg.use_side_information_features:
        name += "-concat" if cfg.input_features_aggregation == "concat" else "-elementwise"
        if cfg.numeric_features_soft_one_hot_encoding_num_embeddings > 0:
            name += "-sohe"
    return f"rees46/{name}"


def _baseline_defaults(space: SearchSpace, base: ExperimentConfig) -> dict[str, Any]:
    """Every baseline parameter of ``base`` as the baseline reads it (``layers: "24"`` is ``[24]``; those it leaves at
    the default too), as flat keys."""
    if not any(n.startswith("baseline_params.") for n in space.names):
        return {}
    from sessrec.baselines import parse_baseline_params

    params = dataclasses.asdict(parse_baseline_params(base.model_type, base.baseline_params))
    return {f"baseline_params.{k}": v for k, v in params.items()}


# ---- the study -------------------------------------------------------------------------------------------
def _check_output(out: Path, study_name: str) -> None:
    """``--output-dir`` is new, empty or this study's: the outputs of another study (its tune.json) would be replaced,
    and those of a run mixed with the study's."""
    check_output_folder(out, "--output-dir")
    if not out.is_dir() or not any(out.iterdir()):
        return
    try:
        other = json.loads((out / "tune.json").read_text()).get("study")
    except (OSError, ValueError, AttributeError):
        other = None
    if other is not None and other != study_name:
        raise SessrecError(f"--output-dir {out} holds the tuning of study '{other}' (tune.json), not '{study_name}': "
                           "its files would be replaced; give another --output-dir")
    if other is None and not ((out / "study.db").exists() or (out / "trials").is_dir() or (out / "tune.json").exists()):
        raise SessrecError(f"--output-dir {out} is not empty and holds no sessrec tune study (tune.json, study.db, "
                           "trials/); give a new or empty folder")


def open_study(plan: Plan, sampler_seed: int, create: bool, alone: bool = False):
    """Load the plan's study, checking it was made for this data and algorithm, or create it with ``create``; with
    ``alone`` (the output folder's own study.db) no other study may be in the storage: their files would clash."""
    optuna = _optuna()
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    from sessrec.tuning.storage import StudyStorage

    kwargs: dict[str, Any] = {}
    if plan.storage_url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 60}  # several local workers write to one file
    try:
        storage = StudyStorage(plan.storage_url, engine_kwargs=kwargs, heartbeat_interval=60, grace_period=180,
                               heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=RETRIES))
        names = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    except Exception as e:  # sqlalchemy/driver errors: one line, nothing written
        damaged = plan.storage_url.startswith("sqlite") and ("malformed" in str(e) or "not a database" in str(e))
        then = ("; the file is damaged: restore it from a copy, or tune again into another --output-dir (the finished "
                "trials' values are also in trials.csv)") if damaged else ""
        raise SessrecError(f"cannot open the study storage {_redact(plan.storage_url)}: "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}{then}") from None

    def sampler():
        from sessrec.tuning.sampler import HistorySeededTPE

        return HistorySeededTPE(sampler_seed, multivariate=True, constant_liar=True,
                                n_startup_trials=max(2, min(10, plan.target // 3)))

    pruner = (optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1) if plan.prune
              else optuna.pruners.NopPruner())
    if plan.study_name in names:
        study = optuna.load_study(study_name=plan.study_name, storage=storage, pruner=pruner)
        study.sampler = sampler()
        saved = study.user_attrs.get("sessrec")
        if saved is None:
            raise SessrecError(f"study '{plan.study_name}' in {_redact(plan.storage_url)} was not made by sessrec tune; "
                               "use another --study-name")
        diffs = _differences(saved, json.loads(json.dumps(plan.signature)))
        if diffs:
            raise SessrecError(f"study '{plan.study_name}' in {_redact(plan.storage_url)} was made for another "
                               f"{' and '.join(diffs)}; use another --output-dir (with a shared --storage, also another "
                               "--study-name; the study is unchanged)")
        return study
    if not create:
        raise SessrecError(f"study '{plan.study_name}' not found in {_redact(plan.storage_url)}")
    if alone and names:
        raise SessrecError(f"{_redact(plan.storage_url)} holds the study '{sorted(names)[0]}', not '{plan.study_name}': "
                           "the two would share their output files; give another --output-dir")
    study = optuna.create_study(study_name=plan.study_name, storage=storage, sampler=sampler(), pruner=pruner,
                                direction="maximize")
    study.set_user_attr("sessrec", plan.signature)
    for label, params in plan.warm_starts:
        study.enqueue_trial(params, user_attrs={"start": label}, skip_if_exists=True)
    return study


def _differences(saved: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    if saved.get("model") != new.get("model"):
        out.append(f"algorithm ({saved.get('model')}, not {new.get('model')})")
    old_data, new_data = saved.get("data", {}), new.get("data", {})
    if any(old_data.get(k) != new_data.get(k) for k in ("windows", "digest")):  # not the path: a copy or another spelling
        out.append(f"data set ({old_data.get('path')} windows {old_data.get('windows')}, digest {old_data.get('digest')}; "
                   f"not {new_data.get('path')} windows {new_data.get('windows')}, digest {new_data.get('digest')})")
    if saved.get("objective") != new.get("objective"):
        out.append(f"objective ({saved.get('objective')})")
    if saved.get("space") != new.get("space"):
        out.append("search space")
    old_cfg, new_cfg = saved.get("config", {}), new.get("config", {})
    # a key the study does not know (added by a later sessrec) counts only when set away from its default
    default = json.loads(json.dumps(ExperimentConfig().to_dict()))
    old_cfg = {**{k: v for k, v in default.items() if k in new_cfg}, **old_cfg}
    changed = sorted(k for k in set(old_cfg) | set(new_cfg) if k not in _OPERATIONAL and old_cfg.get(k) != new_cfg.get(k))
    if changed:
        out.append("fixed configuration (" + ", ".join(f"{k}: {old_cfg.get(k)!r} -> {new_cfg.get(k)!r}" for k in changed[:4])
                   + (", ..." if len(changed) > 4 else "") + ")")
    return out


def _redact(url: str) -> str:
    """A storage URL without its password."""
    if "://" in url and "@" in url.split("://", 1)[1]:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url


def recover_interrupted(study) -> list[int]:
    """Trials left RUNNING by a killed process of this machine are marked failed and queued again
    with the same parameters (trials of other machines are recovered by Optuna's heartbeat)."""
    optuna = _optuna()
    from optuna.trial import TrialState

    host, requeued = socket.gethostname(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        if worker.get("host") == host and not pid_alive(int(worker.get("pid", -1))):
            try:
                study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
                study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:  # another process got there first
                continue
            requeue(study, t)
            requeued.append(t.number)
    return requeued


def requeue(study, trial) -> None:
    """Queue an interrupted trial's parameters again (at most ``RETRIES`` times)."""
    first = trial.user_attrs.get("retry_of", trial.number)
    retries = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("retry_of") == first]
    if any(t.state.name == "WAITING" for t in retries):
        return  # queued already
    if len(retries) < RETRIES and trial.params:
        study.enqueue_trial(trial.params, user_attrs={"retry_of": first, **({"start": trial.user_attrs["start"]}
                                                                           if "start" in trial.user_attrs else {})})


# ---- one trial ---------------------------------------------------------------------------------------------
@dataclass
class Objective:
    """A trial: one incremental run on the tuning windows; reports its running average to the pruner."""

    plan: Plan

    def __call__(self, trial) -> float:
        optuna = _optuna()
        plan = self.plan
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        values = plan.space.suggest(trial)
        try:
            cfg = apply(plan.cfg, values, source=f"trial {trial.number}").validate()
        except SessrecError as e:
            trial.set_user_attr("error", str(e))
            raise
        twin = _same_values(trial)
        if twin is not None:  # TPE drew values already run (small spaces): the run is deterministic, so its value stands
            trial.set_user_attr("same_as", twin.number)
            return twin.value
        cfg.output_dir = str(plan.trials_dir / f"trial-{trial.number:04d}")
        start, last = cfg.start_time_window_index, cfg.final_time_window_index

        def report(window: int, aot: dict[str, float]) -> None:
            value = aot.get(plan.metric_key)
            if value is None or not math.isfinite(value):
                return
            trial.report(value, step=window - start)
            if window < last and trial.should_prune():  # at the last window the trial is as good as done
                trial.set_user_attr("pruned_after_window", window)
                raise optuna.TrialPruned(f"pruned after window {window}")

        from sessrec.experiment import run_experiment

        try:
            with _quiet_info():
                result = run_experiment(cfg, printer=lambda *_: None, on_window=report)
        except SessrecError as e:
            trial.set_user_attr("error", str(e))
            raise
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the trial is queued again for the next invocation
            trial.set_user_attr("interrupted", True)
            raise
        value = result.aot.get(plan.metric_key, math.nan)
        if not math.isfinite(value):
            trial.set_user_attr("error", f"{plan.metric_key} is {value}")
        return value


def _same_values(trial) -> Any:
    """A complete trial of the study with exactly ``trial``'s values, if any."""
    from optuna.trial import TrialState

    return next((t for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                 if t.params == trial.params and t.number != trial.number), None)


@contextlib.contextmanager
def _quiet_info() -> Iterator[None]:
    """A trial's run logs warnings only: its info lines (data checked, ...) would repeat every trial."""
    logger = logging.getLogger("sessrec")
    level = logger.level
    if logger.getEffectiveLevel() == logging.INFO:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _worker(plan: Plan, seed: int, parent: int) -> None:
    """Body of a ``--n-jobs`` worker process: run trials until the study has its target. A signal ends it with
    128 + its number and no traceback (the parent says what happened, once). It stops as on SIGTERM when its
    ``parent`` is gone (a ``kill -9`` of ``sessrec tune`` tells the workers nothing: they ran the study on unseen)."""
    _stop_with(parent)
    try:
        study = open_study(plan, seed, create=False)
        _run_trials(study, plan, callbacks=[])
    except KeyboardInterrupt as e:  # its trial was marked interrupted and queued again by _run_trials
        sys.exit(128 + int(getattr(e, "signum", signal.SIGINT)))


def _stop_with(parent: int, interval: float = 1.0) -> None:
    """SIGTERM to this process once ``parent`` is no longer its parent (it died; the process is adopted)."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _run_trials(study, plan: Plan, callbacks: list) -> None:
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    if _finished(study) >= plan.target:
        return
    failures = _FailureGuard()
    started = time.monotonic()
    try:
        while True:
            timeout = None if plan.timeout is None else plan.timeout - (time.monotonic() - started)
            if timeout is not None and timeout <= 0:
                break
            try:
                study.optimize(Objective(plan), timeout=timeout, gc_after_trial=True, catch=(SessrecError,),
                               callbacks=[MaxTrialsCallback(plan.target, states=(TrialState.COMPLETE, TrialState.PRUNED)),
                                          failures, *callbacks])
                break
            except ValueError as e:
                # A trial whose state another process changed first ("Cannot tell a COMPLETE trial", e.g. a
                # heartbeat that failed it): its result is refused, the study is fine. (Two workers taking one
                # queued trial, which SQLite allowed, cannot happen since the take is locked: tuning/storage.py.)
                if not str(e).startswith("Cannot tell a"):
                    raise
                log.info("a queued trial was also run by another worker (%s); going on", e)
                if _finished(study) >= plan.target:
                    break
    except KeyboardInterrupt:
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            if (t.user_attrs.get("worker") or {}).get("pid") == os.getpid() and t.user_attrs.get("interrupted"):
                requeue(study, t)
        raise
    if failures.error:
        raise SessrecError(f"stopped after {failures.limit} failed trials in a row; the last one: {failures.error}")


class _FailureGuard:
    """Stops a study whose trials keep failing (a config the space makes invalid, bad data ...)."""

    limit = 5

    def __init__(self) -> None:
        self.in_a_row = 0
        self.error: str | None = None

    def __call__(self, study, trial) -> None:
        from optuna.trial import TrialState

        if trial.state != TrialState.FAIL:
            self.in_a_row = 0
            return
        self.in_a_row += 1
        if self.in_a_row >= self.limit:
            self.error = trial.user_attrs.get("error", "see the log above")
            study.stop()


def _finished(study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


# ---- the command ----------------------------------------------------------------------------------------------
@dataclass
class TuneResult:
    output_dir: Path
    best_value: float | None
    best_params: dict[str, Any]
    best_config: ExperimentConfig | None
    summary: dict[str, Any]
    final: dict[str, Any] | None = None


def tune(cfg: ExperimentConfig, fixed: set[str], opts: TuneOptions, printer: Callable[[str], None] = print) -> TuneResult:
    """Tune ``cfg``'s algorithm; ``fixed`` are the config keys the user set (they are not tuned)."""
    plan = plan_study(cfg, fixed, opts, printer)
    out = Path(opts.output_dir)
    _check_output(out, plan.study_name)
    with _quiet_info() if cfg.quiet else contextlib.nullcontext():  # "data checked" is an info line
        _check_tuning_data(plan.cfg, plan.base if opts.final_seeds else None)
    made = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        study = open_study(plan, cfg.seed, create=True, alone=opts.storage is None)
    except SessrecError:
        if made and not any(out.iterdir()):  # a storage that cannot be opened leaves no empty folder
            out.rmdir()
        raise
    n_before = len(study.trials)
    requeued = recover_interrupted(study)
    printer(_header(plan, study, requeued))
    pop = _pop_reference(plan, study, out)
    for line in _inert_notes(cfg, fixed, opts):
        printer(f"note: {line}")
    monitor = _Monitor(plan, study, printer, pop, quiet=cfg.quiet, out=out)
    previous = signal.signal(signal.SIGTERM, _interrupt) if threading.current_thread() is threading.main_thread() else None
    failed = True
    try:
        if opts.n_jobs == 1:
            _run_trials(study, plan, callbacks=[monitor])
        else:
            _run_workers(plan, study, opts.n_jobs, cfg.seed + 1000 * n_before, monitor)
        failed = False
    except KeyboardInterrupt as e:  # Ctrl-C, SIGTERM (a RunInterrupted from the trial's run, or from _interrupt)
        signum = getattr(e, "signum", signal.SIGINT)
        raise RunInterrupted(signum, f"tuning stopped by {signal_name(signum)}: the study keeps its {_finished(study)} "
                                     "finished trials and queues the interrupted one again; run the same command to "
                                     "continue") from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        monitor.close()
        try:
            summary = write_outputs(plan, study, out, pop, time.time() - monitor.started)
        except Exception as e:  # noqa: BLE001 - after a failure (a full disk) the first error is the one to say
            if not failed:
                raise
            log.warning("could not update %s's trials.csv, tune.json and plots after the error below: %s", out, e)
    if _finished(study) < plan.target:  # the loop ended early: --timeout
        printer(f"stopped by --timeout after {_finished(study)} of {plan.target} trials; run the same command to "
                "continue the study")
    best = summary.get("best")
    if best is None:
        raise SessrecError(f"no trial of study '{plan.study_name}' finished; see {out / 'trials.csv'}")
    best_cfg = ExperimentConfig.from_yaml(out / "best.yaml")
    printer(f"best: trial {best['number']}, {opts.metric} {best['value']:.4f} on validation"
            + (f" ({best['value'] / pop:.2f}x most-popular {pop:.4f})" if pop else "")
            + f"; wrote {out / 'best.yaml'}, trials.csv, tune.json and plots")
    result = TuneResult(out, best["value"], best["params"], best_cfg, summary)
    if opts.final_seeds:
        from sessrec.multiseed import run_seeds

        seeds = [cfg.seed + i for i in range(opts.final_seeds)]
        printer(f"final: the best configuration on the {'test' if best_cfg.eval_on_test_set else 'validation'} "
                f"split of all windows, seeds {' '.join(map(str, seeds))}")
        result.final = run_seeds(best_cfg, seeds, out / "final", printer=printer, replace_changed=True)  # the study's own
    return result


def _inert_notes(cfg: ExperimentConfig, fixed: set[str], opts: TuneOptions) -> list[str]:
    """What the user asked for that tuning does otherwise, said once per invocation."""
    notes = []
    if "eval_on_test_set" in fixed:
        notes.append("--eval-on-test-set / --no-eval-on-test-set have no effect on tuning: trials are measured on the "
                     "validation split, and best.yaml (and --final-seeds) run on the test split, as in the paper")
    if "overwrite_output_dir" in fixed and cfg.overwrite_output_dir:
        notes.append(f"--overwrite-output-dir has no effect on tuning: running the same command continues the study in "
                     f"{opts.output_dir}; to start a new one, give another --output-dir (with a shared --storage, "
                     "also another --study-name), or remove that folder")
    if opts.preset and not opts.warm_start:
        notes.append(f"--no-warm-start: the preset {opts.preset} is the base (the keys not tuned keep its values), and "
                     "no trial runs its tuned values: the first trial is a draw of the sampler")
    return notes


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM between trials stops tuning like Ctrl-C (inside a trial the run's own handler stops it)."""
    raise RunInterrupted(signum, "stopped")


def _header(plan: Plan, study, requeued: list[int]) -> str:
    done = _finished(study)
    lines = [f"sessrec tune: study '{plan.study_name}' in {_redact(plan.storage_url)}: {done} of {plan.target} trials "
             f"finished; objective {plan.signature['objective']}"]
    lines.append("tuned: " + "; ".join(p.describe() for p in plan.space.params))
    if plan.paper_fixed:
        lines.append("fixed as in the paper's tuning (a flag overrides): "
                     + ", ".join(f"{k}={v}" for k, v in plan.paper_fixed.items()))
    if plan.preset_fixed:
        lines.append("fixed by the preset (not tuned; a flag overrides): "
                     + ", ".join(f"{k}={v}" for k, v in plan.preset_fixed.items()))
    if requeued:
        lines.append(f"trial(s) {', '.join(map(str, requeued))} were interrupted by a killed process: queued again")
    return "\n".join(lines)


def _check_tuning_data(cfg: ExperimentConfig, final: ExperimentConfig | None = None) -> None:
    """The checks of a trial's run on every file the trials read, side features included, before the study is
    opened: bad data would otherwise fail trial after trial, each left FAIL in the study (the most-popular reference
    run checks the item ids only). With ``final`` (the user's config, for --final-seeds), also the test files of the
    final runs, which would otherwise be found bad only after the study."""
    from sessrec.baselines import BASELINES
    from sessrec.data.windows import resolve_window_range
    from sessrec.experiment import check_data, data_files, resolve_data

    data_path, schema = resolve_data(cfg)
    features = [schema.item_id] if cfg.model_type in BASELINES else schema.model_features(cfg.use_side_information_features)
    files = data_files(cfg, data_path, cfg.start_time_window_index, cfg.final_time_window_index)
    if final is not None:
        on_test = copy.deepcopy(final)
        on_test.eval_on_test_set = True
        start, end = resolve_window_range(data_path, final.start_time_window_index, final.final_time_window_index,
                                          final.time_window_folder_pad_digits)
        files += [f for f in data_files(on_test, data_path, start, end) if f not in files]
    check_data(files, schema, features)


def _pop_reference(plan: Plan, study, out: Path) -> float | None:
    """NDCG of the most-popular ranking on the tuning windows (computed once per study), for scale."""
    if plan.cfg.model_type == "pop" or not plan.base.compare_with_pop:  # --no-compare-with-pop: not even for scale
        return None
    saved = study.user_attrs.get("pop_value")
    if saved is not None:
        return float(saved)
    from sessrec.experiment import baseline_inert, run_experiment

    cfg = copy.deepcopy(plan.cfg)
    cfg.model_type, cfg.baseline_params, cfg.output_dir = "pop", {}, str(out / "trials" / "most-popular")
    default = ExperimentConfig()
    for name in [*neural_only_options(), *baseline_inert(cfg)]:  # the study's model options: pop would warn of them
        setattr(cfg, name, getattr(default, name))
    with _quiet_info():
        value = run_experiment(cfg, printer=lambda *_: None).aot.get(plan.metric_key)
    if value is not None:
        study.set_user_attr("pop_value", value)
    return value


class _Monitor:
    """Prints a line per finished trial and a progress bar over trials (from any worker), and rewrites trials.csv,
    tune.json and best.yaml after each (so that they exist when the study is killed)."""

    def __init__(self, plan: Plan, study, printer: Callable[[str], None], pop: float | None, quiet: bool, out: Path):
        from tqdm.auto import tqdm

        self.plan, self.printer, self.pop, self.out, self.started = plan, printer, pop, out, time.time()
        self.seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        self.bar = tqdm(total=plan.target, initial=min(_finished(study), plan.target), desc="trials", unit="trial",
                        disable=bar_disabled(quiet), leave=False, dynamic_ncols=True)

    def __call__(self, study, trial=None) -> None:
        from tqdm.auto import tqdm

        new = False
        for t in study.get_trials(deepcopy=False):
            if t.state.is_finished() and t.number not in self.seen:
                self.seen.add(t.number)
                new = True
                line = format_trial(t, study, self.plan, self.pop)
                tqdm.write(line) if not self.bar.disable else self.printer(line)
        if new:
            write_outputs(self.plan, study, self.out, self.pop, time.time() - self.started, plots=False)
        self.bar.n = min(_finished(study), self.plan.target)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def format_trial(t, study, plan: Plan, pop: float | None) -> str:
    """``trial 7 complete  ndcg_at_20 0.1234 (3.1x pop) best 0.1300 (#3)  41 s  learning_rate=0.0012 ...``."""
    metric = plan.metric_key.rsplit("/", 1)[-1]
    secs = t.duration.total_seconds() if t.duration else 0.0
    state = t.state.name.lower()
    if t.state.name == "COMPLETE" and t.value is not None:
        what = f"{metric} {t.value:.4f}" + (f" ({t.value / pop:.2f}x pop)" if pop else "")
    elif t.state.name == "PRUNED":
        what = f"after window {t.user_attrs.get('pruned_after_window', '?')}"
    else:
        what = "interrupted" if t.user_attrs.get("interrupted") else t.user_attrs.get("error", "failed")
    try:
        best = f"best {study.best_value:.4f} (#{study.best_trial.number})"
    except ValueError:
        best = "best -"
    start = f" [{t.user_attrs['start']}]" if "start" in t.user_attrs else ""
    params = " ".join(f"{k.removeprefix('baseline_params.')}={_short(v)}" for k, v in t.params.items())
    return f"trial {t.number:>3} {state:<8} {what}  {best}  {secs:.0f} s{start}  {params}"


def _short(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _run_workers(plan: Plan, study, n_jobs: int, seed: int, monitor: _Monitor) -> None:
    """``n_jobs`` worker processes on the study; this process prints their trials as they finish."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")  # torch and threads: a fresh interpreter per worker
    procs = [ctx.Process(target=_worker, args=(plan, seed + 7919 * (i + 1), os.getpid()), daemon=False)
             for i in range(n_jobs)]
    for p in procs:
        p.start()
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            monitor(study)
    except BaseException:  # Ctrl-C, or an error here (a full disk): the workers stop too (else the exit waits on them)
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
        raise
    monitor(study)
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad and _finished(study) < plan.target:
        raise SessrecError(f"{len(bad)} of {n_jobs} tuning workers stopped with an error (exit codes {bad}); "
                           "run the command again to continue the study")


# ---- outputs ----------------------------------------------------------------------------------------------------
def write_outputs(plan: Plan, study, out: Path, pop: float | None, seconds: float, plots: bool = True) -> dict[str, Any]:
    """trials.csv, best.yaml, tune.json and (with ``plots``) the plots; rewritten whole (atomically) each time."""
    import csv
    import io

    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    names = plan.space.names
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["number", "state", "value", "duration_s", "pruned_after_window", "start", "retry_of", "note", *names])
    for t in trials:
        note = ("interrupted" if t.user_attrs.get("interrupted") else t.user_attrs.get("error", "")
                or (f"same values as trial {t.user_attrs['same_as']}: not run again" if "same_as" in t.user_attrs else ""))
        params = plan.space.used(t.params)
        writer.writerow([t.number, t.state.name, "" if t.value is None else repr(t.value),
                         "" if t.duration is None else f"{t.duration.total_seconds():.1f}",
                         t.user_attrs.get("pruned_after_window", ""), t.user_attrs.get("start", ""),
                         t.user_attrs.get("retry_of", t.system_attrs.get("failed_trial", "")), note,
                         *(params.get(n, "") for n in names)])
    atomic_write_text(out / "trials.csv", buf.getvalue())

    def durations(state) -> list[float]:
        return [t.duration.total_seconds() for t in trials if t.state == state and t.duration is not None]

    complete, pruned = durations(TrialState.COMPLETE), durations(TrialState.PRUNED)
    summary: dict[str, Any] = {
        "study": plan.study_name, "storage": _redact(plan.storage_url), **plan.signature,
        "target_trials": plan.target,
        "trials": {s.name.lower(): sum(1 for t in trials if t.state == s) for s in TrialState},
        "seconds_per_trial": {"complete": _mean(complete), "pruned": _mean(pruned),
                              "all_finished": _mean(complete + pruned)},
        "seconds_this_invocation": seconds, "most_popular_value": pop,
        "tuned": {p.name: p.to_yaml_dict() for p in plan.space.params},
    }
    try:
        best = study.best_trial
    except ValueError:
        best = None
    if best is not None:
        params = plan.space.used(best.params)
        summary["best"] = {"number": best.number, "value": best.value, "params": params}
        best_cfg = apply(plan.base, params, source="best trial")
        best_cfg.eval_on_test_set = True  # the paper's final runs: test split, all windows
        best_cfg.final_time_window_index = plan.base.final_time_window_index
        best_cfg.output_dir, best_cfg.overwrite_output_dir, best_cfg.resume = None, False, False
        header = (f"# sessrec tune: best of study '{plan.study_name}' (trial {best.number}, "
                  f"{plan.metric_key.rsplit('/', 1)[-1]} {best.value:.4f} on validation, windows "
                  f"{plan.signature['data']['windows'][0]}..{plan.signature['data']['windows'][1]}).\n"
                  "# Run it on the test split of all windows: sessrec run --config best.yaml [--seeds 100 101 102 103 104]\n")
        atomic_write_text(out / "best.yaml", header + yaml.safe_dump(best_cfg.to_dict(), sort_keys=False))
    atomic_write_text(out / "tune.json", json.dumps(summary, indent=2, default=str))
    if plots:
        _plots(study, out)
    return summary


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _plots(study, out: Path) -> None:
    """optimization_history.png and param_importances.png (the latter needs 2+ complete trials)."""
    import io

    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as vis

    from sessrec.report import _pyplot

    plt = _pyplot()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    for name, draw, needed in (("optimization_history.png", vis.plot_optimization_history, 1),
                               ("param_importances.png", vis.plot_param_importances, 2)):
        if len(complete) < needed:
            continue
        try:
            ax = draw(study)
        except (ValueError, RuntimeError) as e:  # e.g. no parameter varies yet
            log.info("no %s: %s", name, e)
            continue
        fig = ax.figure
        fig.set_size_inches(8, 4.5)
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        atomic_write_bytes(out / name, buf.getvalue())
