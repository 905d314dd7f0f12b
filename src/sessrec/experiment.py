"""The incremental protocol: for each window t, train on t, evaluate on t + 1; average over time.

As in the paper: the same model and optimizer are fine-tuned window after window (the learning
rate schedule restarts each window), evaluation predicts the last item of each session of window
t + 1 over the full catalog, and the averages over time (AOT) weight every window equally.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessrec.baselines.pop import MostPopular
from sessrec.checkpoint import (
    config_differences,
    find_checkpoint,
    load_learner_state,
    read_checkpoint,
    read_state,
    remove_checkpoints,
    save_checkpoint,
    set_rng_state,
)
from sessrec.config import ExperimentConfig
from sessrec.data.loader import SessionTensors, load_sessions
from sessrec.data.windows import resolve_window_range, window_file
from sessrec.errors import SessrecError
from sessrec.evaluation import evaluate, prefixed
from sessrec.learners import Learner, build_learner
from sessrec.loggers import Loggers
from sessrec.outputs import OutputWriter, prepare_output_dir
from sessrec.schema import Schema, infer_schema, load_schema
from sessrec.training import seed_everything

log = logging.getLogger(__name__)


@dataclass
class ExperimentResult:
    """Per-window and averaged-over-time metrics of one run (keys as in the original script)."""

    output_dir: Path
    windows: list[dict[str, Any]]
    aot: dict[str, float]
    pop_aot: dict[str, float] = field(default_factory=dict)
    learner: Any = field(default=None, repr=False)  # the model as trained on the last window

    def metric(self, name: str = "ndcg_at_20") -> float:
        """AOT of an evaluation metric, e.g. ``result.metric("recall_at_20")``."""
        return self.aot[f"eval_/next-item/{name}"]


def resolve_data(cfg: ExperimentConfig) -> tuple[Path, Schema]:
    """The data folder (default: the bundled sample) and its schema (given, found next to the data, or inferred)."""
    if cfg.data_path:
        data_path = Path(cfg.data_path)
    else:
        from sessrec.data.sample import bundled_sample_path

        data_path = bundled_sample_path()
        log.info("no --data-path given: using the bundled sample data set (%s)", data_path)
    if not data_path.is_dir():
        raise SessrecError(f"data path not found: {data_path}")
    if cfg.features_schema_path:
        return data_path, load_schema(cfg.features_schema_path)
    for name in ("schema.pbtxt", "schema.json"):
        if (data_path / name).is_file():
            return data_path, load_schema(data_path / name)
    files = sorted(data_path.glob("*/train.parquet"))
    log.warning("no schema given and none found in %s: inferring one from the parquet files", data_path)
    return data_path, infer_schema(files)


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


def run_experiment(cfg: ExperimentConfig, printer=print) -> ExperimentResult:
    """Run the protocol described by ``cfg`` and write the result files; returns the metrics.

    After each window a checkpoint is saved (``save_checkpoints``); with ``resume`` the run in
    ``output_dir`` continues from its newest one and ends with the results of an uninterrupted run.
    """
    cfg = copy.deepcopy(cfg).validate()
    loggers = Loggers.from_config(cfg)
    data_path, schema = resolve_data(cfg)
    cfg.data_path = str(data_path)
    start, final = resolve_window_range(data_path, cfg.start_time_window_index, cfg.final_time_window_index,
                                        cfg.time_window_folder_pad_digits)
    cfg.final_time_window_index = final
    split = "test" if cfg.eval_on_test_set else "valid"
    pad = cfg.time_window_folder_pad_digits
    first_train = min(training_windows(cfg, start))
    for t in range(first_train, final):
        window_file(data_path, t, "train", pad)
    for t in range(start + 1, final + 1):
        window_file(data_path, t, split, pad)

    # Built before anything is written: a model the config cannot build (a task the architecture does
    # not support, bad baseline parameters) stops the run with an error and no output folder.
    seed_everything(cfg.seed)
    learner = build_learner(cfg, schema)
    pop = MostPopular(cfg, schema) if cfg.compare_with_pop and cfg.model_type != "pop" else None

    out_dir = prepare_output_dir(cfg)
    resume_from = checkpoint_to_resume(out_dir, cfg, schema) if cfg.resume else None
    remove_checkpoints(out_dir, stale_only=cfg.resume)
    writer = OutputWriter(out_dir, cfg, {"schema_item_id": schema.item_id.name, "n_items": schema.n_items},
                          resuming=resume_from is not None)
    loggers.start(cfg, out_dir)

    def with_history(made: Learner) -> Learner:
        if hasattr(made, "history"):
            made.history = writer.history_sink(also=loggers.log_history)
        return made

    def new_learner() -> Learner:
        return with_history(build_learner(cfg, schema))

    learner = with_history(learner)
    names = set(learner.input_names) | (set(pop.input_names) if pop else set())
    specs = [f for f in schema.features if f.name in names]

    def load(t: int, which: str) -> SessionTensors:
        return load_sessions(window_file(data_path, t, which, pad), schema, cfg.session_seq_length_max, specs, window=t)

    def train_data(t: int) -> SessionTensors:
        return SessionTensors.concat([load(w, "train") for w in training_windows(cfg, t)])

    def pop_data(t: int, train: SessionTensors) -> SessionTensors:
        return train if not cfg.no_incremental_training else load(t, "train")

    n_params = getattr(learner, "n_parameters", None)
    printer(f"sessrec: {run_label(cfg)} on {data_path} | windows {start}..{final} | eval on {split} | "
            f"{schema.n_items - 1} items" + (f" | {n_params:,} parameters" if n_params else "") + f" | output {out_dir}")
    first = start
    if resume_from is not None:
        folder, meta = resume_from
        first = meta["trained_window"] + 1
        printer(f"resuming from {folder} (trained through window {first - 1})")
        saved = meta["learners"]
        for name, lrn in (("model", learner), ("pop", pop)):
            if lrn is not None and saved.get(name):
                lrn.load_state_dict(load_learner_state(folder, name))
        # A learner without state_dict() is refitted on the windows it had seen, as the loop below would
        # (leaving out evaluation, which uses no randomness); its history records are cut off by restore().
        refit_model, refit_pop = not saved.get("model"), pop is not None and not saved.get("pop")
        for t in range(start, first) if refit_model or refit_pop else ():
            train = train_data(t)
            if refit_model:
                if cfg.no_incremental_training and t > start:
                    learner = new_learner()
                log.info("refitting %s on window %d (it has no state_dict to checkpoint)", cfg.model_type, t)
                learner.fit_window(train, t)
            if refit_pop:
                pop.fit_window(pop_data(t, train), t)
        writer.restore(meta)
        set_rng_state(read_state(folder / "rng.safetensors"))
    printer(_header(cfg.top_ks))
    last_only = cfg.eval_on_last_item_seq_only
    for w in writer.windows:
        printer(_row(w["index"], w["metrics"], w, cfg.top_ks))
    eval_rows = [w["metrics"] for w in writer.windows]
    pop_rows = [w["pop"] for w in writer.windows if "pop" in w]
    for t in range(first, final):
        windows = training_windows(cfg, t)
        train = train_data(t)
        if cfg.no_incremental_training and t > start:
            learner = new_learner()
        fit = learner.fit_window(train, t)
        eval_data = load(t + 1, split)
        metrics = prefixed(evaluate(learner, eval_data, cfg.per_device_eval_batch_size, cfg.top_ks,
                                    each_n_batches=cfg.compute_metrics_each_n_steps, last_item_only=last_only), "eval")
        if cfg.eval_steps_on_train_set > 0:
            metrics.update(prefixed(evaluate(learner, train, cfg.per_device_eval_batch_size, cfg.top_ks,
                                             max_batches=cfg.eval_steps_on_train_set, last_item_only=last_only), "train"))
        info: dict[str, Any] = {"train_windows": windows, "n_train_sessions": len(train),
                                "n_eval_sessions": int(metrics["eval_n_sessions"]), **fit}
        if not info["n_eval_sessions"]:
            log.warning("window %d: no session of its %s file has 2 items or more: nothing to evaluate "
                        "(its metrics are NaN, and it is left out of the averages over time)", t + 1, split)
        if pop is not None:
            pop.fit_window(pop_data(t, train), t)
            info["pop"] = prefixed(evaluate(pop, eval_data, cfg.per_device_eval_batch_size, cfg.top_ks,
                                            last_item_only=last_only), "eval")
            pop_rows.append(info["pop"])
        writer.add_window(t + 1, metrics, info)
        loggers.log_window(t + 1, metrics, info)
        eval_rows.append(metrics)
        if cfg.save_checkpoints:
            save_checkpoint(out_dir, t, cfg, schema, {"model": learner, "pop": pop},
                            {"evaluated_window": t + 1, **writer.state()})
        printer(_row(t + 1, metrics, info, cfg.top_ks))
    aot = _mean(eval_rows)
    pop_aot = _mean(pop_rows)
    elapsed = writer.elapsed_seconds()
    writer.finish(aot, {"pop_aot": pop_aot, "total_seconds": elapsed})
    loggers.finish(aot)
    printer(_row("AOT", aot, {"pop": pop_aot} if pop_aot else {}, cfg.top_ks))
    k = max(cfg.top_ks)
    if pop_aot and aot:
        printer(f"NDCG@{k} AOT: {run_label(cfg)} {aot[f'eval_/next-item/ndcg_at_{k}']:.4f} | "
                f"most-popular {pop_aot[f'eval_/next-item/ndcg_at_{k}']:.4f}")
    printer(f"done in {elapsed:.1f}s; results in {out_dir}")
    return ExperimentResult(out_dir, writer.windows, aot, pop_aot, learner)


def checkpoint_to_resume(out_dir: Path, cfg: ExperimentConfig, schema: Schema) -> tuple[Path, dict[str, Any]]:
    """The newest checkpoint of ``out_dir`` and its ``experiment.json``, once the config and schema
    are checked to be those of the interrupted run."""
    folder = find_checkpoint(out_dir)
    if folder is None:
        raise SessrecError(f"cannot resume: no checkpoint in {out_dir} (the run stopped before its first window "
                           "ended, or ran with --no-save-checkpoints); start it again with --overwrite-output-dir")
    saved_cfg, saved_schema, meta = read_checkpoint(folder)
    diffs = config_differences(saved_cfg, cfg)
    if diffs:
        raise SessrecError(f"cannot resume {out_dir} with a different config ({'; '.join(diffs)}); "
                           "the checkpoint's config is in " + str(folder / "config.yaml"))
    if saved_schema.to_pbtxt() != schema.to_pbtxt():
        raise SessrecError(f"cannot resume: the schema of {cfg.data_path} differs from the run's ({folder / 'schema.pbtxt'})")
    if meta["trained_window"] >= cfg.final_time_window_index:
        raise SessrecError(f"cannot resume: the checkpoint is past final_time_window_index {cfg.final_time_window_index} "
                           f"(trained through window {meta['trained_window']})")
    return folder, meta


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
