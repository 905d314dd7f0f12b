"""The released script's "simulated inference" check, dataset-agnostic and optional.

After the last window the released script truncated the sessions of the final window's
evaluation split by one item, asked the trained model for its top-10 items, computed recall@10
against the removed items and appended it to ``eval_results_over_time.txt``. It read the
hard-coded REES46 column ``sess_pid_seq`` and compared with the evaluation recall@10 of window 2
instead of the final window. Here the item column comes from the schema, the top-10 lists come
from :func:`sessrec.recommend.recommend` (what a user gets) and the comparison is with the
evaluation recall@10 of the same window, which it equals up to score ties (evaluation ranks a
tie pessimistically, a top-10 list picks one of the tied items) when the evaluation predicted the
last items too (``eval_on_last_item_seq_only``, which every paper command passes).
"""

from __future__ import annotations

import math
import sys
from typing import TextIO

from sessrec.config import ExperimentConfig
from sessrec.data.loader import iterate_batches, load_sessions, split_last_item
from sessrec.data.windows import window_file
from sessrec.experiment import ExperimentResult, resolve_data
from sessrec.io import atomic_write_text
from sessrec.learners import Learner
from sessrec.recommend import recommend


def simulated_inference_recall(learner: Learner, cfg: ExperimentConfig, window: int, k: int = 10) -> float:
    """Recall@k of ``recommend`` on the sessions of ``window``'s evaluation split, each without its last item."""
    data_path, schema = resolve_data(cfg)
    split = "test" if cfg.eval_on_test_set else "valid"
    specs = [f for f in schema.features if f.name in set(learner.input_names)]
    path = window_file(data_path, window, split, cfg.time_window_folder_pad_digits)
    data = load_sessions(path, schema, cfg.session_seq_length_max, specs, window=window).min_length(2)
    hits = 0
    for batch in iterate_batches(data, cfg.per_device_eval_batch_size):
        prefix, targets = split_last_item(batch, data.item_key)
        top, _ = recommend(learner, prefix, k)
        hits += int((top.cpu() == targets.view(-1, 1)).any(dim=1).sum())
    return hits / len(data) if len(data) else math.nan  # no session of 2 items: nothing to check


def run_check(result: ExperimentResult, cfg: ExperimentConfig, out: TextIO | None = None, err: TextIO | None = None) -> float:
    """Compute the check, append its line to ``eval_results_over_time.txt`` as the original did, report it."""
    out, err = out or sys.stdout, err or sys.stderr
    last = result.windows[-1]
    recall = simulated_inference_recall(result.learner, cfg, last["index"])
    path = result.output_dir / "eval_results_over_time.txt"
    atomic_write_text(path, path.read_text() + f"\n***** Recall@10 of simulated inference = {recall} *****\n")
    evaluated = last["metrics"].get("eval_/next-item/recall_at_10")
    what = "evaluation" if cfg.eval_on_last_item_seq_only else "evaluation of every next-item position"
    print(f"simulated inference: recall@10 of top-10 recommendations on window {last['index']} = {recall:.4f}"
          + ("" if evaluated is None else f" ({what}: {evaluated:.4f})"), file=out)
    comparable = cfg.eval_on_last_item_seq_only and cfg.compute_metrics_each_n_steps == 1  # the same predictions
    if evaluated is not None and comparable and abs(recall - evaluated) > 1e-9:
        print(f"t4r_paper_repro: warning: simulated-inference recall@10 {recall:.6f} differs from the evaluation's "
              f"{evaluated:.6f} on the same window (only score ties at rank 10 may explain this)", file=err)
    return recall
