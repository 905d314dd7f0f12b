"""The incremental protocol: for each window t, train on t, evaluate on t + 1; average over time.

As in the paper: the same model and optimizer are fine-tuned window after window (the learning
rate schedule restarts each window), evaluation predicts the last item of each session of window
t + 1 over the full catalog, and the averages over time (AOT) weight every window equally.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sessrec import distributed
from sessrec.baselines import BASELINES
from sessrec.baselines.pop import MostPopular
from sessrec.checkpoint import (
    CATALOG,
    RANKS,
    config_differences,
    find_checkpoint,
    is_bundled_sample,
    latest_good_checkpoint,
    load_learner_state,
    nothing_to_resume,
    read_checkpoint,
    read_state,
    remove_checkpoints,
    rng_state,
    save_checkpoint,
    set_aside,
    set_rng_state,
    snapshot_catalog,
)
from sessrec.config import ExperimentConfig, inert_with_protocol, set_but_inert
from sessrec.data.catalog import Catalog, catalog_files
from sessrec.data.loader import SessionTensors, check_sessions, load_sessions
from sessrec.data.windows import data_folder, resolve_window_range, window_file
from sessrec.distributed import Group
from sessrec.errors import EveryProcessError, SessrecError, listed, warn_once
from sessrec.evaluation import evaluate, prefixed
from sessrec.io import WriteError
from sessrec.launch import launched, resume_command
from sessrec.learners import Learner, baseline_refusal, build_learner
from sessrec.loggers import Loggers
from sessrec.outputs import OutputWriter, prepare_output_dir
from sessrec.runlock import RunLock
from sessrec.runtime import resolve_device, seed_everything
from sessrec.schema import FeatureSpec, Schema, infer_schema, load_schema
from sessrec.stopping import RunInterrupted, StopRequested, signal_name, stop_on_signals

log = logging.getLogger(__name__)


@dataclass
class ExperimentResult:
    """Per-window and averaged-over-time metrics of one run (keys as in the original script). ``windows``: one dict
    per evaluated window (``index``, ``metrics``, ``pop``, ``train_windows``, ``n_train_sessions``,
    ``n_eval_sessions``, and the training figures); ``aot`` / ``pop_aot``: their averages over time for the model and
    the most-popular ranking."""

    output_dir: Path
    windows: list[dict[str, Any]]
    aot: dict[str, float]
    pop_aot: dict[str, float] = field(default_factory=dict)
    learner: Any = field(default=None, repr=False)  # the model as trained on the last window

    def metric(self, name: str = "ndcg_at_20") -> float:
        """AOT of an evaluation metric, e.g. ``result.metric("recall_at_20")`` (or its whole key)."""
        key = name if name in self.aot else f"eval_/next-item/{name}"
        if key not in self.aot:
            known = sorted(k.rsplit("/", 1)[-1] for k in self.aot if k.startswith("eval_/next-item/"))
            raise SessrecError(f"no metric {name!r}: the run has {', '.join(known)}")
        return self.aot[key]


def resolve_data(cfg: ExperimentConfig) -> tuple[Path, Schema]:
    """The data folder (default: the bundled sample) and its schema (given, found next to the data, or inferred)."""
    from sessrec.data.sample import bundled_sample_path

    if cfg.data_path and not (is_bundled_sample(cfg.data_path) and not Path(cfg.data_path).exists()):
        data_path = Path(cfg.data_path)
    else:  # none given, or the sample of a sessrec installed elsewhere before (a run resumed after an upgrade)
        data_path = bundled_sample_path()
        log.info("%s: using the bundled sample data set (%s)",
                 "no --data-path given" if not cfg.data_path else f"{cfg.data_path} is gone", data_path)
    data_folder(data_path)
    if cfg.features_schema_path:
        return data_path, load_schema(cfg.features_schema_path)
    own = _own_schema(data_path)
    if own is not None:
        return data_path, load_schema(own)
    files = sorted(data_path.glob("*/train.parquet"))
    if not files:
        raise SessrecError(f"data path {data_path} holds no window folders with a train.parquet (0001/train.parquet, "
                           "...): give the folder of the window folders, e.g. what `sessrec prepare` wrote")
    log.warning("no schema given and none found in %s: inferring one from the parquet files", data_path)
    return data_path, infer_schema(files)


def _own_schema(data_path: Path) -> Path | None:
    """The schema file a data folder holds (``sessrec prepare`` writes one), if any."""
    return next((data_path / n for n in ("schema.pbtxt", "schema.json") if (data_path / n).is_file()), None)


def check_item_cardinality(cfg: ExperimentConfig, data_path: Path, schema: Schema) -> None:
    """Warn when a given schema (the paper's YAML feature configs keep the original data's 390,000 items) sizes the
    item table far beyond the data's ids: every evaluation then also ranks ids that never occur (lower metrics) and
    the model is sized for them. A larger table is kept (it may leave room for later data), not refused."""
    own_path = _own_schema(data_path)
    if not cfg.features_schema_path or own_path is None:
        return
    try:
        given_n, own_n = schema.n_items, load_schema(own_path).n_items
    except SessrecError:  # no item cardinality to compare; the loader says what is wrong
        return
    if given_n > 2 * own_n:
        log.warning("%s gives the item id a cardinality of %s, the data's own schema %s %s: every evaluation also "
                    "ranks the %s ids that never occur (lowering the metrics) and the model is sized for them; set the "
                    "item's cardinality to %s (a YAML feature config's `cardinality`) or pass the data's schema",
                    cfg.features_schema_path, f"{given_n:,}", own_path, f"{own_n:,}", f"{given_n - own_n:,}", own_n)


FEW_EVALUATED = 10  # evaluated sessions of a window below which its weight in the average over time is said


def check_session_length(cfg: ExperimentConfig, schema: Schema) -> None:
    """Say (once a process) when the data's sessions are longer than the model reads: evaluation then holds out each
    such session's item number ``session_seq_length_max``, not its last (prepared with a larger --max-session-length)."""
    longest = schema.item_id.value_count_max
    if longest is not None and longest > cfg.session_seq_length_max:
        warn_once(f"the data's sessions may hold up to {longest} interactions (its schema's value_count max: the "
                  f"--max-session-length it was prepared with) and session_seq_length_max is "
                  f"{cfg.session_seq_length_max}: a longer session is read as its first {cfg.session_seq_length_max} "
                  f"(evaluation holds out its item number {cfg.session_seq_length_max}, not its last); pass "
                  f"--session-seq-length-max {longest} to read them whole")


def run_label(cfg: ExperimentConfig) -> str:
    """``xlnet-mlm`` for a neural model, the plain name for a baseline (it has no objective)."""
    from sessrec.baselines import BASELINES

    return cfg.model_type if cfg.model_type in BASELINES else f"{cfg.model_type}-{cfg.task}"


def training_windows(cfg: ExperimentConfig, t: int) -> list[int]:
    """Windows trained on before evaluating t + 1: t alone (incremental), else the last w (or all since 1)."""
    if not cfg.no_incremental_training:
        return [t]
    first = 1 if cfg.training_time_window_size == 0 else max(t + 1 - cfg.training_time_window_size, cfg.start_time_window_index)
    return list(range(first, t + 1))


def data_files(cfg: ExperimentConfig, data_path: Path, start: int, final: int) -> list[tuple[int, Path]]:
    """Every (window, file) a run reads: the training split of each window it trains on, and the
    evaluated split (valid, or test with ``eval_on_test_set``) of each window it evaluates."""
    pad = cfg.time_window_folder_pad_digits
    split = "test" if cfg.eval_on_test_set else "valid"
    train = sorted({w for t in range(start, final) for w in training_windows(cfg, t)})
    return ([(w, window_file(data_path, w, "train", pad)) for w in train]
            + [(t, window_file(data_path, t, split, pad)) for t in range(start + 1, final + 1)])


def data_sizes(files: list[tuple[int, Path]], data_path: Path) -> dict[str, int]:
    """The size of every file a run reads, by its path under the data folder: what tells data prepared again
    from the data a checkpoint was trained on, without reading it (as a tuning study tells its data)."""
    return {path.relative_to(data_path).as_posix(): path.stat().st_size for _, path in files}


def check_data(files: list[tuple[int, Path]], schema: Schema, features: list[FeatureSpec]) -> None:
    """The loader's checks on every file, one column at a time, before the run writes or trains
    anything: bad data in the last window fails at once, not after the training of the others."""
    began = time.perf_counter()
    for window, path in files:
        check_sessions(path, schema, features, window=window)
    log.info("data checked: %d files of windows %d..%d in %.2f s", len(files), min(w for w, _ in files),
             max(w for w, _ in files), time.perf_counter() - began)


def run_experiment(cfg: ExperimentConfig, printer=print,
                   on_window: Callable[[int, dict[str, float]], None] | None = None) -> ExperimentResult:
    """Run the protocol described by ``cfg`` and write the result files; returns the metrics.

    After each window a checkpoint is saved (``save_checkpoints``); with ``resume`` the run in
    ``output_dir`` continues from its newest one that verifies and ends with the results of an
    uninterrupted run. While it runs, the output folder is locked (:mod:`sessrec.runlock`), and
    SIGTERM / SIGINT stop it at the next safe point with a checkpoint, raising
    :class:`sessrec.stopping.RunInterrupted` (README "Faults").
    ``on_window(evaluated window, averages over time so far)`` is called after each window (the
    tuner reports to its pruner there; an exception it raises stops the run). ``printer`` takes the
    table's lines; the progress bars (on a terminal) are turned off by ``cfg.quiet``.

    Under torchrun every process calls this (README "Distributed training"): they train one
    model with ``DistributedDataParallel`` on their shares of each batch, evaluate their shares
    of the evaluation batches and gather the results (every process returns the same metrics),
    and rank 0 alone reads and writes the output folder; the run's config is rank 0's.
    """
    cfg = copy.deepcopy(cfg).validate()
    if launched() and cfg.model_type in BASELINES:
        raise EveryProcessError(baseline_refusal(cfg.model_type))
    for line in _inert_options(cfg):
        log.warning(line)
    group = distributed.init(cfg.device, cfg.ddp_timeout)
    out: list[Path] = []  # the output folder, once known: named by a lost-contact error
    callers = rng_state()  # the run seeds the global generators: a notebook's own draws go on as they were
    try:
        with group.failures_said(lambda: str(out[0]) if out and find_checkpoint(out[0]) is not None else None):
            return _run(run_config(group, cfg), group, printer if group.is_main else _silent, on_window, out)
    finally:
        set_rng_state(callers)


_PER_PROCESS = ("device", "num_threads", "quiet")  # options a machine may set for itself


def run_config(group: Group, cfg: ExperimentConfig) -> ExperimentConfig:
    """The run's config, rank 0's, once every process is known to have been started with the same options: a machine
    started with another learning rate or data folder would otherwise be overruled without a word."""
    gathered = group.all_gather(cfg)
    configs = [c.to_dict() for c in gathered]
    for rank, other in enumerate(configs[1:], 1):
        differ = [k for k in configs[0] if k not in _PER_PROCESS and other.get(k) != configs[0][k]]
        if differ:
            shown = listed([f"{k} {configs[0][k]!r} on rank 0, {other.get(k)!r} on rank {rank}" for k in differ], 3, sep="; ")
            raise EveryProcessError(f"the processes of this distributed run were started with different options "
                                    f"({shown}): start every machine with the same command line")
    return gathered[0]


def _inert_options(cfg: ExperimentConfig) -> list[str]:
    """What the config sets that this model cannot use."""
    if cfg.model_type not in BASELINES:
        return cfg.inert_options()
    return set_but_inert(cfg, baseline_inert(cfg))


def baseline_inert(cfg: ExperimentConfig) -> dict[str, str]:
    """{option: why it has no effect} for a baseline's run, beyond the neural models' own options (said by the CLI)."""
    return {"use_side_information_features": f"no effect on the {cfg.model_type} baseline (it reads item ids only)",
            "dataloader_drop_last": f"no effect on the {cfg.model_type} baseline (it reads whole windows)",
            **inert_with_protocol(cfg)}


def _silent(*_: Any) -> None:
    """The printer of the processes of a distributed run but rank 0."""


def _run(cfg: ExperimentConfig, group: Group, printer: Callable[[str], None],
         on_window: Callable[[int, dict[str, float]], None] | None, out: list[Path]) -> ExperimentResult:
    main = group.is_main
    loggers = Loggers.from_config(cfg) if main else Loggers([])
    data_path, schema = resolve_data(cfg)
    if main:
        check_item_cardinality(cfg, data_path, schema)
        check_session_length(cfg, schema)
    cfg.data_path = str(data_path)
    start, final = resolve_window_range(data_path, cfg.start_time_window_index, cfg.final_time_window_index,
                                        cfg.time_window_folder_pad_digits)
    cfg.final_time_window_index = final
    split = "test" if cfg.eval_on_test_set else "valid"
    pad = cfg.time_window_folder_pad_digits
    too_large = sorted({k for k in cfg.top_ks if k >= schema.n_items - 1})
    if schema.n_items - 1 < 2 and group.is_main:  # no k is below it
        log.warning("the catalog has %d item: every target the model can score is a hit at any k (HR = 1)",
                    schema.n_items - 1)
    elif too_large and group.is_main:
        log.warning("top_ks %s: not below the catalog's %d items, where every target the model can score is a hit "
                    "(HR = 1); choose k below %d", ", ".join(map(str, too_large)), schema.n_items - 1, schema.n_items - 1)
    # Built before anything is written: a model the config cannot build (a task the architecture does
    # not support, bad baseline parameters) stops the run with an error and no output folder.
    seed_everything(cfg.seed)
    learner = build_learner(cfg, schema, group)
    pop = MostPopular(cfg, schema) if cfg.compare_with_pop and cfg.model_type != "pop" else None
    names = set(learner.input_names) | (set(pop.input_names) if pop else set())
    specs = [f for f in schema.features if f.name in names]
    files = data_files(cfg, data_path, start, final)
    group.on_main(lambda: check_data(files, schema, specs))  # before anything is written
    group.on_main(lambda: _check_catalog(data_path, schema))
    sizes = data_sizes(files, data_path)

    made = group.on_main(lambda: prepare_output_dir(cfg))
    out_dir = group.broadcast(made[0] if made else None)
    lock = made[1] if made else RunLock(out_dir, None)  # the other processes of a distributed run write nothing
    out.append(out_dir)
    with _run_guard(out_dir, lock, cfg.save_checkpoints):
        resume_from = group.broadcast(group.on_main(lambda: resume_state(out_dir, cfg, schema, group.size))
                                      if cfg.resume else None)
        with group.together():
            catalog: list[Path] = []  # the data's catalog, copied into every checkpoint (rank 0 writes them)
            if main:
                remove_checkpoints(out_dir, stale_only=cfg.resume)
                catalog = snapshot_catalog(data_path, out_dir)
            writer = OutputWriter(out_dir, cfg, {"schema_item_id": schema.item_id.name, "n_items": schema.n_items},
                                  resuming=resume_from is not None, files=main)
            loggers.start(cfg, out_dir)

        def with_history(made: Learner) -> Learner:
            if hasattr(made, "history") and main:
                made.history = writer.history_sink(also=loggers.log_history)
            return made

        def new_learner() -> Learner:
            return with_history(build_learner(cfg, schema, group))

        learner = with_history(learner)

        def load(t: int, which: str) -> SessionTensors:
            return load_sessions(window_file(data_path, t, which, pad), schema, cfg.session_seq_length_max, specs, window=t)

        def train_data(t: int) -> SessionTensors:
            return SessionTensors.concat([load(w, "train") for w in training_windows(cfg, t)])

        def save(t: int, state: dict[str, Any]) -> Path | None:
            """Checkpoint after training window t (rank 0 writes it; every process's own random states are in it)."""
            if not cfg.save_checkpoints:
                return None
            ranks = group.all_gather({"rng": rng_state(), "learner": learner.rank_state()}) if group.distributed else None
            return group.on_main(lambda: save_checkpoint(out_dir, t, cfg, schema, {"model": learner, "pop": pop},
                                                         {**state, "world_size": group.size, "data_files": sizes,
                                                          "cpu_threads": torch.get_num_threads(),
                                                          "pop_counts": "training windows"},
                                                         ranks, catalog))

        n_params = getattr(learner, "n_parameters", None)
        processes = f" | {group.size} processes, {learner.batch_size} sessions a step" if group.distributed else ""
        printer(f"sessrec: {run_label(cfg)} on {data_path} | windows {start}..{final} | eval on {split} | "
                f"{schema.n_items - 1} items" + (f" | {n_params:,} parameters" if n_params else "") + processes
                + f" | output {out_dir}")
        first, in_window = start, None
        if resume_from is not None:
            folder, meta = resume_from["folder"], resume_from["meta"]
            first, in_window = meta["trained_window"] + 1, meta.get("in_window")
            inside = f", and window {first} {in_window['where']}" if in_window else ""
            done = f"trained through window {first - 1}" if first - 1 >= start else "no window trained yet"
            printer(f"resuming from {folder} ({done}{inside})")
            saved = meta["learners"]
            if pop is not None and cfg.no_incremental_training and "pop_counts" not in meta and first > start:
                log.warning("%s was saved by an earlier sessrec, whose most-popular comparison beside "
                            "--no-incremental-training counted every window from the start window on: windows %d..%d "
                            "keep those figures, later ones count the model's own training windows (run again "
                            "without --resume for one way throughout)", folder, start + 1, first)
            for name, lrn in (("model", learner), ("pop", pop)):
                if lrn is not None and saved.get(name):
                    try:
                        lrn.load_state_dict(resume_from["states"][name])
                    except SessrecError as e:
                        raise SessrecError(f"--resume {folder}: {e}") from None
            # A learner without state_dict() is refitted on the windows it had seen, as the loop below would
            # (leaving out evaluation, which uses no randomness); its history records are cut off by restore().
            # With --no-incremental-training the loop builds a fresh model and count for window `first`: no refit.
            refit_model, refit_pop = not saved.get("model"), pop is not None and not saved.get("pop")
            for t in range(start, first) if (refit_model or refit_pop) and not cfg.no_incremental_training else ():
                train = train_data(t)
                if refit_model:
                    log.info("refitting %s on window %d (its checkpoint holds no state of it)", cfg.model_type, t)
                    learner.fit_window(train, t)
                if refit_pop:
                    pop.fit_window(train, t)
            with group.together():
                writer.restore(meta)
            if group.distributed:
                mine = resume_from["ranks"][group.rank]
                set_rng_state(mine["rng"])
                learner.load_rank_state(mine["learner"])
            else:
                set_rng_state(resume_from["rng"])
        printer(_header(cfg.top_ks))
        last_only = cfg.eval_on_last_item_seq_only
        for w in writer.windows:
            printer(_row(w["index"], w["metrics"], w, cfg.top_ks))
        eval_rows = [w["metrics"] for w in writer.windows]
        pop_rows = [w["pop"] for w in writer.windows if "pop" in w]
        # A stop inside a window is checkpointed there only if the learner can save its state (a learner
        # without state_dict() is refitted from the window's start on resume, so it stops at the window's end).
        inside_ok = hasattr(learner, "state_dict")
        for t in range(first, final):
            windows = training_windows(cfg, t)
            train = train_data(t)
            continuing = in_window is not None and t == first
            if cfg.no_incremental_training and t > start and not continuing:
                learner = new_learner()
            fit = in_window["fit"] if continuing else None
            try:
                if fit is None:
                    fit = learner.fit_window(train, t)
                eval_data = load(t + 1, split)
                metrics = prefixed(evaluate(learner, eval_data, cfg.per_device_eval_batch_size, cfg.top_ks,
                                            each_n_batches=cfg.compute_metrics_each_n_steps, last_item_only=last_only,
                                            interruptible=inside_ok, group=group), "eval")
                if cfg.eval_steps_on_train_set > 0:
                    metrics.update(prefixed(evaluate(learner, train, cfg.per_device_eval_batch_size, cfg.top_ks,
                                                     max_batches=cfg.eval_steps_on_train_set, last_item_only=last_only,
                                                     interruptible=inside_ok, group=group), "train"))
            except StopRequested as stop:
                where = "after training, during evaluation" if fit is not None else str(stop)
                saved_to = save(t - 1, {"evaluated_window": t, "in_window": {"window": t, "where": where, "fit": fit},
                                        **writer.state()})
                raise _interrupted(out_dir, f"in window {t} {where}", saved_to, stop.signum, quiet=not main,
                                   processes=group.size) from None
            info: dict[str, Any] = {"train_windows": windows, "n_train_sessions": len(train),
                                    "n_eval_sessions": int(metrics["eval_n_sessions"]), **fit}
            if not info["n_eval_sessions"]:
                log.warning("window %d: no session of its %s file has 2 items or more: nothing to evaluate "
                            "(its metrics are NaN, and it is left out of the averages over time)", t + 1, split)
            if pop is not None:
                if cfg.no_incremental_training:  # counted on the model's own training windows, as --model pop does
                    pop = MostPopular(cfg, schema)
                pop.fit_window(train, t)
                info["pop"] = prefixed(evaluate(pop, eval_data, cfg.per_device_eval_batch_size, cfg.top_ks,
                                                each_n_batches=cfg.compute_metrics_each_n_steps,  # the model's sessions
                                                last_item_only=last_only, group=group), "eval")
                pop_rows.append(info["pop"])
            with group.together():
                writer.add_window(t + 1, metrics, info)
                loggers.log_window(t + 1, metrics, info)
            eval_rows.append(metrics)
            saved_to = save(t, {"evaluated_window": t + 1, **writer.state()})
            printer(_row(t + 1, metrics, info, cfg.top_ks))
            signum = group.stop_signal()
            if signum is not None and t + 1 < final:
                raise _interrupted(out_dir, f"at the end of window {t}", saved_to, signum, quiet=not main,
                                   processes=group.size)
            if on_window is not None:
                on_window(t + 1, _mean(eval_rows))
        aot = _mean(eval_rows)
        pop_aot = _mean(pop_rows)
        elapsed = writer.elapsed_seconds()
        with group.together():
            writer.finish(aot, {"pop_aot": pop_aot, "total_seconds": elapsed})
            loggers.finish({**aot, **{f"pop/{k}": v for k, v in pop_aot.items()}})  # as the windows' pop/ scalars
    printer(_row("AOT", aot, {"pop": pop_aot} if pop_aot else {}, cfg.top_ks))
    k = max(cfg.top_ks)
    if pop_aot and aot:
        printer(f"NDCG@{k} AOT: {run_label(cfg)} {aot[f'eval_/next-item/ndcg_at_{k}']:.4f} | "
                f"most-popular {pop_aot[f'eval_/next-item/ndcg_at_{k}']:.4f}")
    if main:
        _warn_few_evaluated(writer.windows)
    printer(f"done in {elapsed:.1f}s; results in {out_dir}")
    return ExperimentResult(out_dir, writer.windows, aot, pop_aot, learner)


def _warn_few_evaluated(windows: list[dict[str, Any]]) -> None:
    """One warning, under the table, for the windows of fewer than ``FEW_EVALUATED`` evaluated sessions (those of
    a resumed run's earlier invocations too): their metrics move in coarse steps, yet each weighs in the average
    over time as much as a window of thousands."""
    few = [(w["index"], n) for w in windows if 0 < (n := w.get("n_eval_sessions", 0)) < FEW_EVALUATED]
    if few:
        shown = ", ".join(f"{index} ({n} session{'s' * (n > 1)})" for index, n in few[:10]) + (f", ... ({len(few)} in all)" if len(few) > 10 else "")
        log.warning("window(s) with fewer than %d evaluated sessions: %s: their metrics move in steps of 1/n (n "
                    "sessions), and each weighs in the averages over time as much as any window (the paper's "
                    "unweighted mean)", FEW_EVALUATED, shown)


def _check_catalog(data_path: Path, schema: Schema) -> None:
    """Read the data's catalog whole before the output folder is touched: a missing or damaged file stopped an
    overwriting run after its old checkpoints were deleted, or made a model nobody could load from original ids."""
    catalog = Catalog.load(data_path)
    if catalog is not None:
        catalog.check_ids(schema.n_items)


def resume_state(out_dir: Path, cfg: ExperimentConfig, schema: Schema, world_size: int) -> dict[str, Any]:
    """What a resumed run continues from, read from the newest good checkpoint of ``out_dir`` (by
    rank 0 of a distributed run, which passes it on): its folder, ``experiment.json``, the learners'
    states, the RNG states, and every process's own states (``ranks``) of a distributed run."""
    folder, meta = checkpoint_to_resume(out_dir, cfg, schema)
    saved_size = int(meta.get("world_size", 1))
    if saved_size != world_size:
        how = (f"{saved_size} processes (torchrun --nnodes x --nproc-per-node = {saved_size})" if saved_size > 1
               else "one process (without torchrun, or torchrun --nproc-per-node 1)")
        made = f"{saved_size} processes" if saved_size > 1 else "one process"
        raise SessrecError(f"cannot resume {out_dir}: the run was made by {made}, this is {world_size}; "
                           f"the number of processes sets the sessions of a step: resume it with {how}")
    threads, now = int(meta.get("cpu_threads", 0)), cfg.num_threads or torch.get_num_threads()
    if threads and now != threads and resolve_device(cfg.device).type == "cpu":  # checkpoints before 2026-12: unknown
        log.warning("%s was trained with %d CPU threads and resumes with %d: another thread count may sum floats in "
                    "another order, so its results can differ in their last digits from an uninterrupted run "
                    "(--num-threads %d resumes as it ran)", out_dir, threads, now, threads)
    states = {name: load_learner_state(folder, name) for name in ("model", "pop") if meta["learners"].get(name)}
    state: dict[str, Any] = {"folder": folder, "meta": meta, "states": states, "rng": read_state(folder / "rng.safetensors")}
    if world_size > 1:
        state["ranks"] = read_state(folder / RANKS)["ranks"]
    return state


@contextlib.contextmanager
def _run_guard(out_dir: Path, lock: RunLock, checkpoints: bool = True) -> Iterator[None]:
    """A run's lifetime: its folder locked, SIGTERM/SIGINT turned into a stop at the next safe point,
    and a failed write (a full disk) said with what is intact and how to go on."""
    try:
        with lock, stop_on_signals(checkpoints):
            yield
    except WriteError as e:
        folder = find_checkpoint(out_dir)
        then = f"continue with {resume_command(out_dir)}" if folder is not None else "run it again with --overwrite-output-dir"
        cure = "free some space" if e.disk_full else "fix that"
        kept = f"the result files and the newest checkpoint ({folder.name}) are intact" if folder else "the result files are intact"
        raise SessrecError(f"{e}; {kept}: {cure}, then {then}") from None


def _interrupted(out_dir: Path, where: str, saved_to: Path | None, signum: int, quiet: bool = False,
                 processes: int = 1) -> RunInterrupted:
    how = (f"checkpoint saved in {saved_to}; continue with {resume_command(out_dir, processes)}" if saved_to else
           "no checkpoint saved (save_checkpoints is off): this run cannot be continued")
    return RunInterrupted(signum, f"stopped by {signal_name(signum)} {where}; {how}", quiet=quiet)


def checkpoint_to_resume(out_dir: Path, cfg: ExperimentConfig, schema: Schema) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of ``out_dir`` that verifies, and its ``experiment.json``, once the
    config and schema are checked to be those of the interrupted run. Damaged checkpoints newer
    than it are named in a warning and set aside (the run continues from the older state)."""
    folder, damaged = latest_good_checkpoint(out_dir)
    if folder is None:
        raise nothing_to_resume(out_dir, damaged)
    saved_cfg, saved_schema, meta = read_checkpoint(folder, verify=False)
    diffs = config_differences(saved_cfg, cfg)
    if diffs:
        raise SessrecError(f"cannot resume {out_dir} with a different config ({'; '.join(diffs)}); "
                           "the checkpoint's config is in " + str(folder / "config.yaml"))
    if saved_schema.to_pbtxt() != schema.to_pbtxt():
        raise SessrecError(f"cannot resume: the schema of {cfg.data_path} differs from the run's ({folder / 'schema.pbtxt'})")
    _check_same_data(out_dir, Path(cfg.data_path), meta.get("data_files", {}))  # checkpoints before 2026-12 have none
    if (out_dir / CATALOG).is_dir() and not catalog_files(cfg.data_path):  # it would be deleted, the model's ids unnamed
        raise SessrecError(f"cannot resume {out_dir}: its data {cfg.data_path} has lost the catalog the run started with "
                           f"(catalog.json and its files; the run keeps a copy in {out_dir / CATALOG}): copy them back "
                           "into the data folder, or resume with the data it was trained on")
    if meta["trained_window"] >= cfg.final_time_window_index:
        raise SessrecError(f"cannot resume: the checkpoint is past final_time_window_index {cfg.final_time_window_index} "
                           f"(trained through window {meta['trained_window']})")
    for bad in damaged:
        if bad.folder.exists():
            moved = set_aside(bad.folder)
            log.warning("%s; moved it to %s and resuming from the older %s (the results after it are computed again)",
                        bad, moved.name, folder.name)
    return folder, meta


def _check_same_data(out_dir: Path, data_path: Path, saved: dict[str, int]) -> None:
    """Refuse to resume on data that changed since the checkpoint (prepared again, another folder of the same
    schema): the results would mix two data sets."""
    change = data_change(data_path, saved)
    if change:
        raise SessrecError(f"cannot resume {out_dir}: the data changed since its checkpoint ({change}); resume with the "
                           "data it was trained on, or run it again with --overwrite-output-dir")


def data_change(data_path: Path, saved: dict[str, int]) -> str | None:
    """The first data file whose size is not the one a checkpoint saw (``saved``: file -> bytes), said as ``PATH: N
    bytes then, M bytes now``; None when all are the same."""
    for name, size in saved.items():
        path = data_path / name
        now = path.stat().st_size if path.is_file() else None
        if now != size:
            return f"{path}: {size:,} bytes then, " + (f"{now:,} bytes now" if now is not None else "missing now")
    return None


def _mean(rows: list[dict[str, float]]) -> dict[str, float]:
    """Unweighted mean over windows of every metric present in all of them. A window where nothing
    was scored (``eval_n_sessions`` or ``train_n_sessions`` 0: no session of 2 items) has undefined
    metrics of that prefix, and is left out of their means."""
    if not rows:
        return {}
    keys = set(rows[0]).intersection(*rows[1:])
    out = {}
    for k in sorted(keys):
        values = [r[k] for r in rows if r.get(f"{k.split('_', 1)[0]}_n_sessions", 1) > 0]
        if values:
            out[k] = sum(values) / len(values)
    return out


def _header(top_ks: list[int]) -> str:
    cols = [f"NDCG@{k}" for k in top_ks] + [f"HR@{k}" for k in top_ks] + [f"MRR@{max(top_ks)}"]
    return f"{'window':>6} {'train':>7} {'eval':>6} " + " ".join(f"{c:>8}" for c in cols) + f" {'pop NDCG@' + str(max(top_ks)):>14} {'loss':>7} {'sess/s':>7}"


def _row(index: Any, m: dict[str, float], info: dict[str, Any], top_ks: list[int]) -> str:
    k = max(top_ks)
    vals = [m.get(f"eval_/next-item/ndcg_at_{x}", float("nan")) for x in top_ks]
    vals += [m.get(f"eval_/next-item/recall_at_{x}", float("nan")) for x in top_ks]
    vals += [m.get(f"eval_/next-item/mrr_at_{k}", float("nan"))]
    pop = info.get("pop", {}).get(f"eval_/next-item/ndcg_at_{k}")
    loss = info.get("train_loss")
    speed = info.get("train_samples_per_second")
    return (f"{index!s:>6} {info.get('n_train_sessions', ''):>7} {info.get('n_eval_sessions', ''):>6} "
            + " ".join(f"{v:8.4f}" for v in vals)
            + f" {'' if pop is None else f'{pop:.4f}':>14} {'' if loss is None else f'{loss:.3f}':>7} {'' if speed is None else f'{speed:.0f}':>7}")
