import subprocess
import sys

import pytest
import torch

from sessrec.optim import FusedAdamW, clip_grad_norm_


def _model_and_groups(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.LayerNorm(7), torch.nn.Linear(7, 3))
    decay = [model[0].weight, model[2].weight]
    no_decay = [model[0].bias, model[1].weight, model[1].bias, model[2].bias]
    return model, [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]


def _train(model, opt, steps, start=0):
    g = torch.Generator().manual_seed(1)
    for step in range(start + steps):
        x, y = torch.randn(8, 5, generator=g), torch.randn(8, 3, generator=g)
        if step < start:
            continue
        for group in opt.param_groups:
            group["lr"] = 0.01 * (1 - step / 20)  # the schedule changes lr between steps
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()


def test_same_updates_as_torch_fused_adamw():
    ours_model, ours_groups = _model_and_groups()
    ref_model, ref_groups = _model_and_groups()
    ours = FusedAdamW(ours_groups, lr=0.01, betas=(0.8, 0.99), eps=1e-7)
    ref = torch.optim.AdamW(ref_groups, lr=0.01, betas=(0.8, 0.99), eps=1e-7, fused=True)
    _train(ours_model, ours, 6)
    _train(ref_model, ref, 6)
    for a, b in zip(ours_model.parameters(), ref_model.parameters()):
        assert torch.equal(a, b)
    mine, theirs = ours.state_dict(), ref.state_dict()
    assert mine["state"].keys() == theirs["state"].keys()
    for i in mine["state"]:
        for k in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(mine["state"][i][k], theirs["state"][i][k]), (i, k)
    assert [g["params"] for g in mine["param_groups"]] == [g["params"] for g in theirs["param_groups"]]


def test_weight_decay_only_where_asked():
    model, groups = _model_and_groups()
    before = [p.detach().clone() for p in model.parameters()]
    opt = FusedAdamW(groups, lr=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # zero gradient: only decoupled decay moves a weight
    opt.step()
    moved = [not torch.equal(p, b) for p, b in zip(model.parameters(), before)]
    assert moved == [True, False, False, False, True, False]  # the two Linear weights
    assert torch.allclose(model[0].weight, before[0] * (1 - 0.5 * 0.1))


@pytest.mark.parametrize("source", ["ours", "torch"])
def test_resume_from_a_state_dict_continues_exactly(source):
    straight_model, straight_groups = _model_and_groups()
    straight = FusedAdamW(straight_groups, lr=0.01)
    _train(straight_model, straight, 7)

    first_model, first_groups = _model_and_groups()
    first = FusedAdamW(first_groups, lr=0.01) if source == "ours" else torch.optim.AdamW(first_groups, lr=0.01, fused=True)
    _train(first_model, first, 4)
    resumed_model, resumed_groups = _model_and_groups(seed=5)
    resumed_model.load_state_dict(first_model.state_dict())
    resumed = FusedAdamW(resumed_groups, lr=123.0)
    resumed.load_state_dict(first.state_dict())
    _train(resumed_model, resumed, 3, start=4)
    for a, b in zip(resumed_model.parameters(), straight_model.parameters()):
        assert torch.equal(a, b)


def test_state_of_a_different_model_is_refused():
    _, groups = _model_and_groups()
    other = FusedAdamW([{"params": [torch.nn.Parameter(torch.zeros(2))]}], lr=0.1)
    with pytest.raises(ValueError, match="different parameter groups"):
        FusedAdamW(groups, lr=0.1).load_state_dict(other.state_dict())


def test_training_does_not_import_dynamo():
    """The reason this optimizer exists: torch.optim imports torch._dynamo (+72 MB resident)."""
    code = ("import sys, torch; from sessrec.optim import FusedAdamW; p = torch.nn.Parameter(torch.ones(3)); "
            "o = FusedAdamW([{'params': [p]}], lr=0.1); p.grad = torch.ones(3); o.step(); o.zero_grad(); "
            "o.load_state_dict(o.state_dict()); print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("ratio", [0.5, 2.0])  # max_norm below the gradients' norm (clipped), above (untouched)
def test_clip_grad_norm_equals_torch(ratio):
    def model_with_grads():
        model, _ = _model_and_groups()
        x = torch.randn(8, 5, generator=torch.Generator().manual_seed(2))
        torch.nn.functional.mse_loss(model(x), torch.ones(8, 3)).backward()
        return model

    before = [p.grad.clone() for p in model_with_grads().parameters()]
    norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in before]))
    results = []
    for clip in (torch.nn.utils.clip_grad_norm_, clip_grad_norm_):
        model = model_with_grads()
        total = clip(model.parameters(), float(norm) * ratio)
        results.append((total, [p.grad for p in model.parameters()]))
    (t_torch, g_torch), (t_ours, g_ours) = results
    assert torch.equal(t_torch, t_ours)
    assert all(torch.equal(a, b) for a, b in zip(g_torch, g_ours))
    assert torch.allclose(torch.linalg.vector_norm(torch.cat([g.flatten() for g in g_ours])), min(norm, norm * ratio))
    assert all(torch.equal(a, b) for a, b in zip(before, g_ours)) == (ratio > 1)


def test_clip_grad_norm_nan_spreads_like_torch():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.tensor([1.0, float("nan"), 2.0])
    clip_grad_norm_([p], 1.0)
    assert p.grad.isnan().all()


@pytest.mark.parametrize("how", ["missing", "raises"])
def test_public_fallback_gives_the_same_updates(monkeypatch, how):
    """Where a private kernel is missing or fails, public per-tensor operations make the same update."""
    from sessrec import runtime

    fused_model, fused_groups = _model_and_groups()
    fused = FusedAdamW(fused_groups, lr=0.01, betas=(0.8, 0.99), eps=1e-7)
    _train(fused_model, fused, 6)
    ref_model, ref_groups = _model_and_groups()
    _train(ref_model, torch.optim.AdamW(ref_groups, lr=0.01, betas=(0.8, 0.99), eps=1e-7, foreach=False), 6)

    monkeypatch.setattr(runtime, "_unusable", set())
    for name in ("_fused_adamw_", "_foreach_add_"):
        if how == "missing":
            monkeypatch.delattr(torch, name)
        else:
            monkeypatch.setattr(torch, name, lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no kernel")))
    public_model, public_groups = _model_and_groups()
    public = FusedAdamW(public_groups, lr=0.01, betas=(0.8, 0.99), eps=1e-7)
    _train(public_model, public, 6)
    assert runtime._unusable == {"torch._fused_adamw_", "torch._foreach_add_"}
    initial = _model_and_groups()[0].parameters()
    for a, b, c, a0 in zip(public_model.parameters(), fused_model.parameters(), ref_model.parameters(), initial):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-7) and torch.allclose(a, c, rtol=1e-6, atol=1e-7)
        assert not torch.allclose(a, a0)  # it did train
    mine, theirs = public.state_dict()["state"], fused.state_dict()["state"]
    for i in mine:
        assert torch.equal(mine[i]["step"], theirs[i]["step"])
        for k in ("exp_avg", "exp_avg_sq"):
            assert torch.allclose(mine[i][k], theirs[i][k], rtol=1e-5, atol=1e-8), (i, k)  # float32 rounding


def test_clip_grad_norm_public_fallback(monkeypatch):
    from sessrec import runtime

    def grads():
        model, _ = _model_and_groups()
        torch.nn.functional.mse_loss(model(torch.randn(8, 5, generator=torch.Generator().manual_seed(2))),
                                     torch.ones(8, 3)).backward()
        return list(model.parameters())

    expected = grads()
    expected_total = torch.nn.utils.clip_grad_norm_(expected, 0.1)
    monkeypatch.setattr(runtime, "_unusable", set())
    monkeypatch.delattr(torch, "_foreach_norm")
    monkeypatch.delattr(torch, "_foreach_mul_")
    got = grads()
    total = clip_grad_norm_(got, 0.1)
    assert runtime._unusable == {"torch._foreach_norm", "torch._foreach_mul_"}
    assert torch.allclose(total, expected_total, rtol=1e-6)
    assert all(torch.allclose(a.grad, b.grad, rtol=1e-6, atol=1e-9) for a, b in zip(got, expected))
