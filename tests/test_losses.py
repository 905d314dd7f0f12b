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


# ---- gBCE and BPR-max ---------------------------------------------------------------------------------
def test_gbce_equals_its_formula_by_hand():
    from sessrec.losses import gbce_loss

    pos = torch.tensor([1.5, -0.3])
    neg = torch.tensor([[0.2, -1.0, 2.0], [0.0, 0.5, -0.7]])
    n_items, t, k = 11, 0.75, 3
    alpha = k / (n_items - 1)
    beta = alpha * (t * (1 - 1 / alpha) + 1 / alpha)
    rows = []
    for p, ns in zip(pos.tolist(), neg.tolist()):
        sig = 1 / (1 + math.exp(-p))
        terms = [beta * math.log(sig)] + [math.log(1 - 1 / (1 + math.exp(-s))) for s in ns]
        rows.append(-sum(terms) / (k + 1))
    assert gbce_loss(pos, neg, n_items, t).item() == pytest.approx(sum(rows) / 2, rel=1e-6)
    # t = 0: plain binary cross-entropy over the k + 1 scores
    bce = F.binary_cross_entropy_with_logits(torch.cat([pos[:, None], neg], 1), torch.tensor([[1.0, 0, 0, 0]] * 2))
    assert gbce_loss(pos, neg, n_items, 0.0).item() == pytest.approx(bce.item(), rel=1e-6)


def test_bpr_max_equals_its_formula_by_hand():
    from sessrec.losses import bpr_max_loss

    pos = torch.tensor([1.0, 0.2])
    neg = torch.tensor([[0.5, -0.5, 3.0], [1.0, 0.0, -2.0]])
    valid = torch.tensor([[True, True, True], [True, False, True]])
    reg = 0.7

    def by_hand(r, rs):
        e = [math.exp(x) for x in rs]
        s = [x / sum(e) for x in e]
        ranking = -math.log(sum(sj / (1 + math.exp(-(r - rj))) for sj, rj in zip(s, rs)))
        return ranking + reg * sum(sj * rj**2 for sj, rj in zip(s, rs))

    want = (by_hand(1.0, [0.5, -0.5, 3.0]) + by_hand(0.2, [1.0, -2.0])) / 2  # the invalid negative left out
    assert bpr_max_loss(pos, neg, reg, valid).item() == pytest.approx(want, rel=1e-6)
    # a row whose every negative is an accidental hit is left out of the mean (its -log(0) added ~55), gradient too
    pos3 = torch.cat([pos, torch.tensor([0.4])]).requires_grad_()
    loss = bpr_max_loss(pos3, torch.cat([neg, torch.tensor([[0.1, 0.2, 0.3]])]), reg,
                        torch.cat([valid, torch.tensor([[False, False, False]])]))
    assert loss.item() == pytest.approx(want, rel=1e-6)
    loss.backward()
    assert pos3.grad[2] == 0 and pos3.grad[:2].abs().sum() > 0
    assert bpr_max_loss(pos[:1], neg[:1], reg, torch.zeros(1, 3, dtype=torch.bool)).item() == 0.0  # no row: 0, not NaN


@pytest.mark.parametrize("per_column", [128, 1])  # the full product then a gather; gathered embeddings
def test_pair_scores_two_ways_agree(per_column, monkeypatch):
    from sessrec import losses

    monkeypatch.setattr(losses, "FULL_PRODUCT_PER_COLUMN", per_column)
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(5, 4, generator=g), torch.randn(30, 4, generator=g), torch.randn(30, generator=g)
    for cols in (torch.randint(0, 30, (5, 2), generator=g), torch.randint(0, 30, (5, 10), generator=g)):
        want = torch.stack([torch.stack([x[i] @ w[c] + b[c] for c in row]) for i, row in enumerate(cols)])
        assert torch.allclose(losses.pair_scores(x, w, b, cols), want, atol=1e-5)


def test_head_trains_with_gbce_and_bpr_max_and_evaluates_with_the_full_softmax():
    from sessrec.config import ExperimentConfig
    from sessrec.head import NextItemHead

    torch.manual_seed(0)
    table = torch.nn.Embedding(50, 8)
    x, items = torch.randn(6, 8), torch.randint(1, 50, (6,))
    for loss in ("gbce", "bpr_max"):
        cfg = ExperimentConfig.from_dict({"d_model": 8, "task": "clm", "loss_type": loss, "num_negatives": 16})
        head = NextItemHead(cfg, 50, table)
        torch.manual_seed(1)
        value = head.loss(x, items)
        torch.manual_seed(1)
        assert head.loss(x, items).item() == value.item()  # the negatives come from torch's seeded generator
        value.backward()
        assert head.bias.grad is not None and head.bias.grad.abs().sum() > 0
        head.eval()
        assert head.loss(x, items).item() == pytest.approx(F.cross_entropy(head(x), items - 1).item(), rel=1e-5)


@pytest.mark.parametrize("values, message", [
    ({"loss_type": "gbce", "gbce_t": 1.5}, "gbce_t must be in"),
    ({"loss_type": "gbce", "num_negatives": 0}, "num_negatives must be >= 1"),
    ({"loss_type": "bpr_max", "bpr_max_reg": -1.0}, "bpr_max_reg must be >= 0"),
    ({"loss_type": "gbce", "task": "plm", "model_type": "xlnet"}, "loss_type gbce is for tasks clm and mlm"),
    ({"loss_type": "gbce", "sampled_softmax": True}, "cannot be combined with sampled_softmax"),
    ({"loss_type": "bpr_max", "label_smoothing": 0.1}, "label_smoothing"),
    ({"loss_type": "hinge"}, "loss_type must be one of cross_entropy, gbce, bpr_max"),
])
def test_loss_options_are_validated(values, message):
    from sessrec.config import ExperimentConfig
    from sessrec.errors import SessrecError

    with pytest.raises(SessrecError, match=message):
        ExperimentConfig.from_dict({"task": "clm", **values}).validate()


def test_a_baseline_refuses_a_negatives_loss():
    from sessrec.config import ExperimentConfig
    from sessrec.errors import SessrecError
    from sessrec.learners import build_learner
    from sessrec.schema import CATEGORICAL, ITEM_ID, FeatureSpec, Schema

    schema = Schema([FeatureSpec("item", "int", (ITEM_ID, CATEGORICAL), 1, 29)])
    with pytest.raises(SessrecError, match="baseline 'pop' has no training loss"):
        build_learner(ExperimentConfig.from_dict({"model_type": "pop", "task": "clm", "loss_type": "gbce"}), schema)
