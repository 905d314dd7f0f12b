"""Our XLNet and GPT-2 compute what ``transformers``' models compute, given the same weights."""

import pytest
import torch
import transformers

from sessrec.bodies import packing
from sessrec.bodies.gpt2 import GPT2
from sessrec.bodies.hf import NO_TOKENS, hf_config
from sessrec.bodies.packing import BUCKET, Packing
from sessrec.bodies.xlnet import XLNet
from sessrec.config import ExperimentConfig

D, B, L = 32, 3, 7


def _cfg(**kw):
    return ExperimentConfig.from_dict(dict(d_model=D, n_layer=2, n_head=4, dropout=0.0, hidden_act="gelu", **kw))


def _batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(B, L, D, generator=g)
    pad = torch.ones(B, L, dtype=torch.bool)
    pad[0, 5:] = False
    pad[1, 3:] = False
    return x, pad


def _xlnet_pair():
    torch.manual_seed(0)
    ours = XLNet(_cfg()).eval()
    ref = transformers.XLNetModel(hf_config(transformers.XLNetConfig, dict(
        d_model=D, n_layer=2, n_head=4, d_inner=4 * D, ff_activation="gelu", dropout=0.0, layer_norm_eps=1e-12,
        mem_len=None, attn_type="bi", **NO_TOKENS), {}, "xlnet")).eval()
    result = ref.load_state_dict(ours.state_dict(), strict=False)
    assert result.missing_keys == ["word_embedding.weight"] and not result.unexpected_keys
    return ours, ref


@pytest.mark.parametrize("mode", ["bidirectional", "causal", "permutation"])
def test_xlnet_matches_transformers(mode):
    ours, ref = _xlnet_pair()
    x, pad = _batch()
    kw = {}
    if mode == "causal":
        kw = {"perm_mask": torch.ones(L, L).triu(1).expand(B, L, L)}
    elif mode == "permutation":
        perm = (torch.rand(B, L, L, generator=torch.Generator().manual_seed(2)) > 0.5).float()
        mapping = torch.zeros(B, 2, L)
        mapping[:, 0, 2] = mapping[:, 1, 4] = 1.0
        kw = {"perm_mask": perm, "target_mapping": mapping}
    with torch.no_grad():
        expected = ref(inputs_embeds=x, attention_mask=pad.float(), use_mems=False, **kw).last_hidden_state
        got = ours(x, pad, causal=True) if mode == "causal" else ours(x, pad, **kw)
    if mode == "permutation":
        assert torch.allclose(got, expected, atol=1e-5)
    else:
        assert torch.allclose(got[pad], expected[pad], atol=1e-5)
        assert (got[~pad] == 0).all()  # padded positions are not computed


def test_gpt2_matches_transformers():
    torch.manual_seed(0)
    ours = GPT2(_cfg()).eval()
    ref = transformers.GPT2Model(hf_config(transformers.GPT2Config, dict(
        n_embd=D, n_layer=2, n_head=4, n_inner=4 * D, activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, layer_norm_epsilon=1e-12, n_positions=21, **NO_TOKENS), {}, "gpt2")).eval()
    result = ref.load_state_dict(ours.state_dict(), strict=False)
    assert result.missing_keys == ["wte.weight"] and not result.unexpected_keys
    x, pad = _batch()
    with torch.no_grad():
        expected = ref(inputs_embeds=x, attention_mask=pad.float(), use_cache=False).last_hidden_state
        got = ours(x, pad)
    assert torch.allclose(got[pad], expected[pad], atol=1e-5)


def test_packing_round_trip():
    pad = torch.tensor([[True, True, False], [True, False, False]])
    p = Packing(pad)
    x = torch.arange(6.0).view(2, 3, 1)
    # the real positions, then copies of a padded one up to a whole bucket (here the 6 positions)
    assert p.pack(x).flatten().tolist() == [0.0, 1.0, 3.0, 2.0, 2.0, 2.0]
    assert p.unpack(p.pack(x)).flatten().tolist() == [0.0, 1.0, 0.0, 3.0, 0.0, 0.0]


def test_packed_sizes_come_in_buckets():
    pad = torch.zeros(8, 20, dtype=torch.bool)
    pad[:, :9] = True  # 72 real positions of 160
    p = Packing(pad)
    assert p.pack(torch.ones(8, 20, 4)).shape == (2 * BUCKET, 4)
    pad[:] = True  # no padding: nothing to add
    assert Packing(pad).pack(torch.ones(8, 20, 4)).shape == (160, 4)


def test_selected_rows_come_in_buckets():
    """Selected outputs of varying counts would fragment the heap like exact packed sizes do."""
    pad = torch.zeros(8, 20, dtype=torch.bool)
    pad[:, :9] = True
    rows, real = Packing(pad).rows_of(torch.tensor([0, 8, 20, 42, 19]))  # 19 is padding
    assert rows.shape == (BUCKET,) and real.shape == (BUCKET, 1)
    assert rows[:5].tolist() == [0, 8, 9, 9 + 9 + 2, 8] and real[:5, 0].tolist() == [True, True, True, True, False]


def _ragged(batch: int, length: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (batch,), generator=g)
    lengths[:3] = torch.tensor([length, 1, 2])
    return torch.randn(batch, length, D, generator=g), torch.arange(length) < lengths[:, None]


def test_attention_groups_round_trip(monkeypatch):
    monkeypatch.setattr(packing, "GROUP", 4)
    x, pad = _ragged(11, 6, 3)
    pad[5, :2] = False  # a left-padded session spans the whole window
    p = Packing(pad, group=True)
    spans = [int(g.padding_mask.shape[1]) for g in p.groups]
    assert len(p.groups) == 3 and spans == sorted(spans) and spans[-1] == 6
    assert sorted(torch.cat([g.rows for g in p.groups]).tolist()) == list(range(11))
    packed = p.pack(x)
    for g, part in zip(p.groups, p.to_groups(packed)):
        expected = (x * pad[..., None])[g.rows, :g.length]
        assert torch.equal(part, expected)
    assert torch.equal(p.from_groups(p.to_groups(packed))[:p.n_real], packed[:p.n_real])


@pytest.mark.parametrize("group", [1000, 4])
def test_head_groups_round_trip(group, monkeypatch):
    """Split-major groups: split s of session i's position l is the packed row's s-th slice."""
    monkeypatch.setattr(packing, "GROUP", group)
    x, pad = _ragged(11, 6, 3)
    pad[5, :2] = False  # a left-padded session
    p = Packing(pad, group=True)
    packed = p.pack(x)
    parts = p.to_head_groups(packed, 4)
    assert len(parts) == len(p.groups) == (1 if group == 1000 else 3)
    for g, part in zip(p.groups, parts):
        n, length = g.rows.numel(), g.padding_mask.shape[1]
        got = part.view(4, n, length, D // 4).permute(1, 2, 0, 3).reshape(n, length, D)
        mask = g.padding_mask
        assert torch.equal(got[mask], x[g.rows, :length][mask])
    assert torch.equal(p.from_head_groups(parts)[:p.n_real], packed[:p.n_real])


@pytest.mark.parametrize("select", [False, True])
def test_gpt2_takes_packed_rows(select, monkeypatch):
    """Packed input (``packing``): the values and gradients of the ``[B, L, d]`` input."""
    monkeypatch.setattr(packing, "GROUP", 5)
    torch.manual_seed(0)
    body = GPT2(_cfg())
    x, pad = _ragged(37, 9, 4)
    outputs = pad.reshape(-1).nonzero().squeeze(1)[::3] if select else None
    results = []
    for packed in (False, True):
        body.zero_grad()
        xi = (x * pad[..., None]).requires_grad_()
        if packed:
            p = Packing(pad, group=True)
            out = body(p.pack(xi), pad, outputs=outputs, packing=p)
        else:
            out = body(xi, pad, outputs=outputs)
        (out * torch.linspace(-1, 1, D)).sum().backward()
        results.append((out, xi.grad, [q.grad.clone() for q in body.parameters()]))
    (ref, gx1, gp1), (got, gx2, gp2) = results
    assert torch.allclose(ref, got, atol=1e-5)
    assert torch.allclose(gx1[pad], gx2[pad], atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(gp1, gp2))


@pytest.mark.parametrize("model", ["xlnet-bi", "xlnet-causal", "gpt2"])
def test_attention_groups_give_the_same_outputs_and_gradients(model, monkeypatch):
    """Sessions attend in groups of similar length: the same values as one padded batch."""
    torch.manual_seed(0)
    body = GPT2(_cfg()) if model == "gpt2" else XLNet(_cfg())
    x, pad = _ragged(37, 9, 4)
    causal = model != "xlnet-bi"
    results = []
    for group in (1000, 5):  # 1000: one group (the whole batch); 5: eight groups
        monkeypatch.setattr(packing, "GROUP", group)
        body.zero_grad()
        xi = x.clone().requires_grad_()
        out = body(xi, pad, causal=causal)
        (out[pad] * torch.linspace(-1, 1, D)).sum().backward()
        results.append((out, xi.grad, [p.grad.clone() for p in body.parameters() if p.grad is not None]))
    (one, gx1, gp1), (grouped, gx2, gp2) = results
    assert torch.allclose(one, grouped, atol=1e-5) and (grouped[~pad] == 0).all()
    assert torch.allclose(gx1, gx2, atol=1e-5)
    assert len(gp1) == len(gp2) and all(torch.allclose(a, b, atol=1e-4) for a, b in zip(gp1, gp2))


@pytest.mark.parametrize("group", [1000, 5])
@pytest.mark.parametrize("model", ["xlnet-bi", "xlnet-causal", "gpt2"])
def test_selected_outputs_equal_the_full_outputs_at_those_positions(model, group, monkeypatch):
    """``outputs``: the last layer runs on the wanted positions only; same values and gradients as
    indexing the full output (a padded position included: zeros, as in the full output)."""
    monkeypatch.setattr(packing, "GROUP", group)
    torch.manual_seed(0)
    body = GPT2(_cfg()) if model == "gpt2" else XLNet(_cfg())
    x, pad = _ragged(37, 9, 4)
    causal = model != "xlnet-bi"
    real, padded = pad.reshape(-1).nonzero().squeeze(1), (~pad).reshape(-1).nonzero().squeeze(1)
    wanted = torch.cat([real[::7], padded[3:4]])  # some real positions of many sessions, then a padded one
    weight = torch.linspace(-1, 1, D)
    results = []
    for select in (False, True):
        body.zero_grad()
        xi = x.clone().requires_grad_()
        if select:
            out = body(xi, pad, causal=causal, outputs=wanted)
        else:
            out = body(xi, pad, causal=causal).reshape(-1, D)[wanted]
        (out * weight).sum().backward()
        results.append((out, xi.grad, [p.grad.clone() for p in body.parameters() if p.grad is not None]))
    (full, gx1, gp1), (sel, gx2, gp2) = results
    assert sel.shape == (len(wanted), D) and torch.allclose(full, sel, atol=1e-5) and (sel[-1] == 0).all()
    assert torch.allclose(gx1, gx2, atol=1e-5)
    assert len(gp1) == len(gp2) and all(torch.allclose(a, b, atol=1e-4) for a, b in zip(gp1, gp2))
