"""Full-catalog top-k ranking metrics for next-item prediction (one relevant item per example).

For an example whose target item is ranked ``r`` (1 = best) among every item of the catalog:

* HitRate@k = Recall@k = 1 if r <= k else 0
* NDCG@k    = 1 / log2(r + 1) if r <= k else 0   (the ideal DCG of one relevant item is 1)
* MRR@k     = 1 / r if r <= k else 0

Ties are broken pessimistically: ``r = #{items not scored below the target}`` (``>=`` it, or NaN),
so an item tied with the target counts as ranked above it, and a constant scorer gets no credit. Scores of items
that must never be recommended (padding) are expected to be ``-inf`` already. The rank is found
by comparing with the target's score, without sorting the catalog. A mean over no example (an
evaluation window without a session of 2 items) is NaN: undefined, not 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

METRIC_NAMES = ("ndcg", "recall", "mrr")


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based pessimistic rank of ``targets[i]`` in ``scores[i]`` (shape ``[B, C]``), as float.
    A target the model cannot score (NaN: a diverged model; -inf: an item a baseline never saw) is never a hit,
    whatever k: its rank is infinite. Another item's NaN score counts as ranked above the target (a partly
    diverged model gains nothing from it): the rank is C less the items scored strictly below the target."""
    target_scores = scores.gather(1, targets.view(-1, 1)).view(-1)
    below = (scores < target_scores[:, None]).sum(dim=1, dtype=torch.int32)  # int32: half the bytes of the default int64
    ranks = (scores.shape[1] - below).to(torch.float64)
    return ranks.masked_fill(target_scores.isnan() | (target_scores == float("-inf")), float("inf"))


def metrics_from_ranks(ranks: torch.Tensor, top_ks: Sequence[int]) -> dict[str, torch.Tensor]:
    """Per-example metric values, keyed ``ndcg_at_k``, ``recall_at_k``, ``mrr_at_k``."""
    out = {}
    for k in top_ks:
        hit = ranks <= k
        out[f"ndcg_at_{k}"] = torch.where(hit, 1.0 / torch.log2(ranks + 1.0), 0.0)
        out[f"recall_at_{k}"] = hit.to(torch.float64)
        out[f"mrr_at_{k}"] = torch.where(hit, 1.0 / ranks, 0.0)
    return out


class MetricAccumulator:
    """Streaming sums of per-example metrics; ``result()`` is the mean over all examples seen."""

    def __init__(self, top_ks: Sequence[int]):
        self.top_ks = list(top_ks)
        self.sums: dict[str, float] = {}
        self.count = 0
        self.loss_sum = 0.0
        self.loss_count = 0

    def update(self, scores: torch.Tensor, targets: torch.Tensor) -> None:
        self.add(self.sums_of(scores, targets), int(targets.numel()))

    def sums_of(self, scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """The sum of each metric over one batch, what :meth:`update` adds (a distributed evaluation
        gathers these and adds them in batch order, as one process would)."""
        ranks = target_ranks(scores, targets)
        return {name: float(values.sum()) for name, values in metrics_from_ranks(ranks, self.top_ks).items()}

    def add(self, sums: dict[str, float], count: int) -> None:
        for name, value in sums.items():
            self.sums[name] = self.sums.get(name, 0.0) + value
        self.count += count

    def update_loss(self, loss_sum: float, n: int) -> None:
        self.loss_sum += loss_sum
        self.loss_count += n

    def result(self) -> dict[str, float]:
        """Means over the examples; NaN (undefined) for every metric when there was none."""
        names = sorted(f"{m}_at_{k}" for k in self.top_ks for m in METRIC_NAMES)
        res = {name: self.sums.get(name, 0.0) / self.count if self.count else math.nan for name in names}
        if self.loss_count:
            res["loss"] = self.loss_sum / self.loss_count
        return res
