import torch
import torch.nn.functional as F

from sessrec.evaluation import cross_entropy_sum


def test_cross_entropy_sum_equals_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 50, generator=g) * 5
    logits[0, 3] = float("-inf")  # an excluded item that is not the target
    targets = torch.tensor([1, 0, 49, 7, 7, 20])
    expected = F.cross_entropy(logits, targets, reduction="sum")
    assert torch.allclose(cross_entropy_sum(logits, targets), expected, atol=1e-5)
