"""Next-item evaluation over the full catalog, the same code path for every model and baseline.

By default the last item of each session is predicted from the items before it (the paper's
``eval_on_last_item_seq_only``). Otherwise every next-item position is: a session of n items gives
n - 1 examples, the prefix of its first j items predicting item j + 1. Either way each prediction
is made from a truncated session, exactly as :func:`sessrec.recommend.recommend` would make it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Protocol

import torch

from sessrec.data.loader import Batch, SessionTensors, iterate_batches, split_last_item
from sessrec.distributed import SINGLE, Group
from sessrec.metrics import MetricAccumulator
from sessrec.stopping import StopRequested


class Scorer(Protocol):
    """What evaluation needs of a model or baseline: the scoring half of :class:`sessrec.learners.Learner`."""

    scores_are_logits: bool  # True: scores are logits (an evaluation loss is reported)

    def score(self, prefix: Batch) -> torch.Tensor:
        """``[B, n_items - 1]`` scores (column j = item j + 1) of the item following each prefix."""
        ...


def evaluate(learner: Scorer, data: SessionTensors, batch_size: int, top_ks: Sequence[int],
             max_batches: int | None = None, each_n_batches: int = 1, last_item_only: bool = True,
             interruptible: bool = False, group: Group = SINGLE) -> dict[str, float]:
    """Predict the last item (or, with ``last_item_only=False``, every item after the first) of
    every session of >= 2 items from the items before it.

    Returns mean metrics (``ndcg_at_k``, ``recall_at_k``, ``mrr_at_k``, and ``loss`` for models
    that score with logits), plus ``n_sessions`` (the number of predictions scored: sessions, or
    positions with ``last_item_only=False``), ``runtime``, ``samples_per_second`` and
    ``steps_per_second`` (model calls). With no session to score, the metrics are NaN (undefined).
    ``max_batches`` and ``each_n_batches`` count batches of ``batch_size`` sessions. With
    ``interruptible``, a requested stop (:mod:`sessrec.stopping`) raises :class:`StopRequested`
    between batches.

    In a distributed run (``group``) the batches are dealt out in turn to the processes, each
    scores its own, and the sums of every batch are gathered and added up in batch order: the
    metrics are those one process computes on the same weights, to the last bit on the CPU (a
    batch is scored by the same kernels whichever process scores it).
    """
    data = data.min_length(2)
    acc = MetricAccumulator(top_ks)
    parts: list[tuple[int, int, dict[str, float], int, float]] = []  # (batch, first example, sums, count, loss sum)
    steps = 0
    start = time.perf_counter()
    turn = 0
    for b, batch in enumerate(iterate_batches(data, batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        if b % each_n_batches:
            continue
        mine = turn % group.size == group.rank
        if interruptible and turn % group.size == 0 and (signum := group.stop_signal()) is not None:
            raise StopRequested("during evaluation", signum)
        turn += 1
        if not mine:
            continue
        prefixes, all_targets = next_item_examples(batch, data.item_key, last_item_only)
        for lo in range(0, len(all_targets), batch_size):
            steps += 1
            prefix = {k: v[lo:lo + batch_size] for k, v in prefixes.items()}
            scores = learner.score(prefix)
            targets = all_targets[lo:lo + batch_size].to(scores.device) - 1  # column j scores item j + 1
            loss = float(cross_entropy_sum(scores.float(), targets)) if learner.scores_are_logits else 0.0
            parts.append((b, lo, acc.sums_of(scores, targets), int(targets.numel()), loss))
    if group.distributed:
        gathered = group.all_gather((parts, steps))
        parts = sorted(p for ps, _ in gathered for p in ps)
        steps = sum(n for _, n in gathered)
    for _, _, sums, count, loss in parts:
        acc.add(sums, count)
        if learner.scores_are_logits:
            acc.update_loss(loss, count)
    runtime = time.perf_counter() - start
    res = acc.result()
    if learner.scores_are_logits and "loss" not in res:
        res["loss"] = math.nan  # nothing scored: undefined, as the ranking metrics
    res.update(n_sessions=float(acc.count), runtime=runtime, samples_per_second=acc.count / max(runtime, 1e-9),
               steps_per_second=steps / max(runtime, 1e-9))
    return res


def cross_entropy_sum(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy(logits, targets, reduction="sum")`` without writing the ``[B, C]`` log-softmax."""
    return (torch.logsumexp(logits, dim=1) - logits.gather(1, targets.view(-1, 1)).squeeze(1)).sum()


def next_item_examples(batch: Batch, item_key: str, last_item_only: bool = True) -> tuple[Batch, torch.Tensor]:
    """(truncated sessions, the item following each). With ``last_item_only``: each session without
    its last item. Otherwise, for a session of n items, its prefixes of 1..n-1 items (every feature
    truncated alike), session by session, with items 2..n as targets."""
    if last_item_only:
        return split_last_item(batch, item_key)
    items = batch[item_key]
    n = ((items != 0).sum(1) - 1).clamp(min=0)  # examples per session
    rows = torch.repeat_interleave(torch.arange(items.shape[0]), n)
    first = torch.repeat_interleave(n.cumsum(0) - n, n)
    cut = torch.arange(int(n.sum())) - first + 1  # prefix length = position of the target
    keep = torch.arange(items.shape[1])[None, :] < cut[:, None]
    prefixes = {k: torch.where(keep, v[rows], torch.zeros((), dtype=v.dtype)) for k, v in batch.items()}
    return prefixes, items[rows, cut]


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

