import math

import numpy as np
import pytest
import torch

from sessrec.metrics import MetricAccumulator, metrics_from_ranks, target_ranks


def test_hand_computed_ranking():
    # item scores for one example; target = column 2 (score 0.7): two items score higher -> rank 3
    scores = torch.tensor([[0.9, 0.1, 0.7, 0.8, 0.2]])
    ranks = target_ranks(scores, torch.tensor([2]))
    assert ranks.tolist() == [3.0]
    m = metrics_from_ranks(ranks, [1, 2, 3, 5])
    assert m["recall_at_2"].item() == 0.0 and m["recall_at_3"].item() == 1.0
    assert m["ndcg_at_3"].item() == pytest.approx(0.5)  # 1 / log2(3 + 1)
    assert m["ndcg_at_2"].item() == 0.0
    assert m["mrr_at_5"].item() == pytest.approx(1 / 3)
    assert m["mrr_at_1"].item() == 0.0


def test_top_item_scores_one():
    m = metrics_from_ranks(target_ranks(torch.tensor([[0.1, 5.0, 0.3]]), torch.tensor([1])), [1])
    assert m["ndcg_at_1"].item() == 1.0 and m["mrr_at_1"].item() == 1.0 and m["recall_at_1"].item() == 1.0


def test_ties_are_pessimistic():
    # target tied with two other items: counted below both of them
    scores = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert target_ranks(scores, torch.tensor([0])).item() == 3.0
    # a constant scorer never hits at k smaller than the catalog
    const = torch.zeros(1, 100)
    m = metrics_from_ranks(target_ranks(const, torch.tensor([42])), [10, 20])
    assert m["recall_at_20"].item() == 0.0


def test_a_target_the_model_cannot_score_is_never_a_hit():
    """A diverged model scores NaN, a baseline -inf for an item it never saw: the target counts as missed, not as
    rank 0 (NDCG = inf), and not as a hit where k reaches the catalog size."""
    inf = float("inf")
    scores = torch.tensor([[0.5, float("nan"), 0.1], [float("nan")] * 3, [0.5, -inf, 0.1], [-inf] * 3])
    assert target_ranks(scores, torch.tensor([1, 0, 1, 2])).tolist() == [inf] * 4
    acc = MetricAccumulator([1, 2, 3, 10])
    acc.update(scores, torch.tensor([1, 0, 1, 2]))
    assert all(v == 0.0 for v in acc.result().values())


def test_another_item_scored_nan_counts_as_ranked_above_the_target():
    """A partly diverged model (some logits NaN, the target's finite) gains no rank from its NaNs."""
    nan = float("nan")
    scores = torch.tensor([[nan, 0.5, nan, 0.1, 0.9]])
    assert target_ranks(scores, torch.tensor([1])).item() == 4.0  # 0.9 and both NaNs above, 0.1 below
    assert target_ranks(scores, torch.tensor([4])).item() == 3.0


def test_nothing_scored_gives_undefined_metrics():
    assert {k: math.isnan(v) for k, v in MetricAccumulator([5]).result().items()} == \
        {"mrr_at_5": True, "ndcg_at_5": True, "recall_at_5": True}


def test_accumulator_means_over_examples_not_batches():
    acc = MetricAccumulator([1])
    acc.update(torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]), torch.tensor([0, 0, 1]))  # 2 hits of 3
    acc.update(torch.tensor([[0.0, 1.0]]), torch.tensor([0]))  # 0 hits of 1
    assert acc.result()["recall_at_1"] == pytest.approx(2 / 4)


def _reference(scores: np.ndarray, targets: np.ndarray, k: int) -> dict[str, float]:
    """Independent formula: sort the catalog (stable, ties ranked against the target) and read the position."""
    ndcg, hr, mrr = [], [], []
    for s, t in zip(scores, targets):
        # lexsort by (-score, is_target): among equal scores the target comes last (pessimistic)
        order = np.lexsort((np.arange(len(s)) == t, -s))
        rank = int(np.nonzero(order == t)[0][0]) + 1
        hit = rank <= k
        hr.append(float(hit))
        ndcg.append(1 / math.log2(rank + 1) if hit else 0.0)
        mrr.append(1 / rank if hit else 0.0)
    return {f"ndcg_at_{k}": np.mean(ndcg), f"recall_at_{k}": np.mean(hr), f"mrr_at_{k}": np.mean(mrr)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_independent_reference(seed):
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 30, size=(64, 200)).astype(np.float32)  # many ties
    targets = rng.integers(0, 200, size=64)
    acc = MetricAccumulator([5, 20])
    acc.update(torch.from_numpy(scores), torch.from_numpy(targets))
    got = acc.result()
    for k in (5, 20):
        for name, value in _reference(scores, targets, k).items():
            assert got[name] == pytest.approx(value, abs=1e-12)
