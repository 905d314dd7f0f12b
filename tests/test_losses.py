import math

import pytest
import torch
import torch.nn.functional as F

from sessrec.losses import (
    full_cross_entropy,
    log_uniform_expected_counts,
    sample_log_uniform,
    sampled_softmax_loss,
)


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("smoothing,temperature", [(0.0, 1.0), (0.3, 1.0), (0.5, 0.7)])
def test_fused_cross_entropy_equals_torch_with_its_gradients(smoothing, temperature, chunked, with_bias, monkeypatch):
    import sessrec.losses as L

    if chunked:  # 300 items per chunk for 7 rows: several chunks, a ragged last one
        monkeypatch.setattr(L, "FULL_LOGITS_LIMIT", 100)
        monkeypatch.setattr(L, "CHUNK_ELEMENTS", 7 * 300)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(1000, 5, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(1000, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 5, 299, 300, 601, 999, 42])
    inputs = (x, w, b) if with_bias else (x, w)
    ref = F.cross_entropy(F.linear(x, w, b if with_bias else None) / temperature, t, label_smoothing=smoothing)
    gref = torch.autograd.grad(ref, inputs)
    got = full_cross_entropy(x, w, b if with_bias else None, t, smoothing, temperature)
    ggot = torch.autograd.grad(got, inputs)
    assert got.item() == pytest.approx(ref.item(), rel=1e-5)
    for a, e in zip(ggot, gref):
        assert torch.allclose(a.double(), e, atol=1e-6)


def test_log_uniform_sampler_matches_its_distribution():
    torch.manual_seed(0)
    n_items, n_draws = 50, 200
    counts = torch.zeros(n_items)
    reps = 2000
    for _ in range(reps):
        counts[sample_log_uniform(n_items, n_draws, torch.device("cpu"))] += 1
    expected = log_uniform_expected_counts(torch.arange(n_items), n_items, n_draws)
    assert torch.allclose(counts / reps, expected.float(), atol=0.03)
    assert expected[0].item() == pytest.approx(1 - (1 - math.log(2) / math.log(51)) ** 200)


def test_sampled_softmax_by_hand(monkeypatch):
    import sessrec.losses as L

    monkeypatch.setattr(L, "sample_log_uniform", lambda n, k, d: torch.tensor([1, 3]))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    w = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = torch.zeros(4)
    t = torch.tensor([2, 1])  # row 1's target is also sampled: an accidental hit
    q = lambda ids: L.log_uniform_expected_counts(torch.tensor(ids), 4, 5).log().float()  # noqa: E731
    loss = sampled_softmax_loss(x, w, b, t, n_samples=5)
    # row 0: positive item 2 (logit 0), negatives 1 (logit 1) and 3 (logit 1)
    z0 = torch.tensor([0.0, 1.0, 1.0]) - q([2, 1, 3])
    # row 1: positive item 1 (logit 0); negative 1 is the target itself (removed), negative 3 (logit 1)
    z1 = torch.tensor([0.0, 1.0]) - q([1, 3])
    expected = (-torch.log_softmax(z0, 0)[0] - torch.log_softmax(z1, 0)[0]) / 2
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_reused_logits_buffer_gives_the_same_loss_and_gradients_each_time():
    g = torch.Generator().manual_seed(3)
    w = torch.randn(50, 8, generator=g, requires_grad=True)
    b = torch.randn(50, generator=g, requires_grad=True)
    targets = torch.randint(0, 50, (12,), generator=g)
    results = []
    for n in (12, 12, 5, 12):  # the buffer is reused, also after a smaller batch
        x = torch.randn(12, 8, generator=torch.Generator().manual_seed(1))[:n].requires_grad_()
        with torch.no_grad():  # a forward pass without backward hands the buffer back too
            full_cross_entropy(x, w, b, targets[:n])
        loss = full_cross_entropy(x, w, b, targets[:n], label_smoothing=0.1)
        loss.backward()
        expected = F.cross_entropy(x.detach() @ w.detach().t() + b.detach(), targets[:n], label_smoothing=0.1)
        assert torch.allclose(loss, expected, atol=1e-6)
        results.append((n, loss.item(), x.grad.clone()))
        w.grad = b.grad = None
    assert results[0][1] == results[1][1] == results[3][1] and torch.equal(results[0][2], results[3][2])


def test_fused_cross_entropy_when_the_target_probability_underflows():
    """Logits 200 apart: the target's softmax probability is 0 in float32, its loss ~200 (not inf)."""
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], requires_grad=True)
    w = torch.tensor([[200.0, 0.0], [0.0, 0.0], [0.0, 200.0], [1.0, 1.0]], requires_grad=True)
    t = torch.tensor([1, 1, 3])  # row 0: loss 200; row 1: loss log 2 + ...; row 2: loss ~398
    for smoothing in (0.0, 0.5):
        got = full_cross_entropy(x, w, None, t, smoothing)
        ref = F.cross_entropy(x.double() @ w.double().t(), t, label_smoothing=smoothing)
        assert torch.isfinite(got) and got.item() == pytest.approx(ref.item(), rel=1e-6)
        gx, gw = torch.autograd.grad(got, (x, w))
        rx, rw = torch.autograd.grad(ref, (x, w))
        assert torch.allclose(gx, rx, atol=1e-6) and torch.allclose(gw, rw, atol=1e-6)


def test_public_softmax_fallback_gives_the_same_loss_and_gradients(monkeypatch):
    """Where the private ``aten._softmax.out`` is missing or fails, public operations give the same results."""
    from sessrec import runtime
    from sessrec.losses import softmax_

    g = torch.Generator().manual_seed(3)
    z = torch.randn(6, 50, generator=g) * 5
    x = torch.randn(9, 4, generator=g, requires_grad=True)
    w = torch.randn(40, 4, generator=g, requires_grad=True)
    t = torch.randint(0, 40, (9,), generator=g)

    def loss_and_grads():
        loss = full_cross_entropy(x, w, None, t, 0.2, 0.8)
        return (loss, *torch.autograd.grad(loss, (x, w)))

    private = softmax_(z.clone()), loss_and_grads()
    monkeypatch.setattr(runtime, "_unusable", {"torch.ops.aten._softmax.out"})  # as after a failure
    public = softmax_(z.clone()), loss_and_grads()
    assert torch.allclose(public[0], torch.softmax(z, 1), rtol=1e-6, atol=1e-7)
    assert torch.allclose(public[0], private[0], rtol=1e-6, atol=1e-7)
    for a, b in zip(public[1], private[1]):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
