"""Last-item evaluation over the full catalog, the same code path for every model and baseline."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from sessrec.data.loader import SessionTensors, iterate_batches, split_last_item
from sessrec.learners import Learner
from sessrec.metrics import MetricAccumulator


def evaluate(learner: Learner, data: SessionTensors, batch_size: int, top_ks: Sequence[int],
             max_batches: int | None = None, each_n_batches: int = 1) -> dict[str, float]:
    """Predict the last item of every session (of >= 2 items) from the items before it.

    Returns mean metrics (``ndcg_at_k``, ``recall_at_k``, ``mrr_at_k``, and ``loss`` for models
    that score with logits), plus ``n_sessions``, ``runtime`` and ``samples_per_second``.
    """
    data = data.min_length(2)
    acc = MetricAccumulator(top_ks)
    steps = 0
    start = time.perf_counter()
    for b, batch in enumerate(iterate_batches(data, batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        if b % each_n_batches:
            continue
        steps += 1
        prefix, targets = split_last_item(batch, data.item_key)
        scores = learner.score(prefix)
        targets = targets.to(scores.device) - 1  # column j scores item j + 1
        acc.update(scores, targets)
        if learner.scores_are_logits:
            acc.update_loss(float(F.cross_entropy(scores.float(), targets, reduction="sum")), int(targets.numel()))
    runtime = time.perf_counter() - start
    res = acc.result()
    res.update(n_sessions=float(acc.count), runtime=runtime, samples_per_second=acc.count / max(runtime, 1e-9),
               steps_per_second=steps / max(runtime, 1e-9))
    return res


def prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """Original Transformers4Rec keys: ``eval_/next-item/ndcg_at_20``, ``eval_/loss``, ``eval_runtime``."""
    out = {}
    for k, v in metrics.items():
        if k == "loss":
            out[f"{prefix}_/loss"] = v
        elif k in ("runtime", "samples_per_second", "steps_per_second", "n_sessions"):
            out[f"{prefix}_{k}"] = v
        else:
            out[f"{prefix}_/next-item/{k}"] = v
    return out


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
