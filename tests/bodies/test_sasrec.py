"""SASRec: the authors' block, checked against a forward pass written out here by hand."""

import math

import pytest
import torch

from sessrec.bodies import build_body
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError


def sasrec(**kw):
    torch.manual_seed(0)
    cfg = {"model_type": "sasrec", "task": "clm", "d_model": 8, "n_layer": 1, "n_head": 2, "dropout": 0.0,
           "layer_norm_eps": 1e-8, "session_seq_length_max": 5, **kw}
    return build_body(ExperimentConfig.from_dict(cfg)).eval()


def layer_norm(x, ln):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def reference(body, x, real):
    """One SASRec block as in kang205/SASRec, one session at a time, position by position."""
    blk = body.blocks[0]
    L, d = x.shape
    H, dh = blk.n_head, d // blk.n_head
    h = (x * math.sqrt(d) + body.pos.weight[:L]) * real[:, None]
    q_in = layer_norm(h, blk.attn_norm)
    q = q_in @ blk.q.weight.T + blk.q.bias
    k = h @ blk.k.weight.T + blk.k.bias  # keys and values from the un-normalised sequence
    v = h @ blk.v.weight.T + blk.v.bias
    att = torch.zeros(L, d)
    for i in range(L):
        for head in range(H):
            sl = slice(head * dh, (head + 1) * dh)
            keys = [j for j in range(i + 1) if real[j]]
            scores = torch.stack([q[i, sl] @ k[j, sl] / math.sqrt(dh) for j in keys])
            w = torch.softmax(scores, 0)
            att[i, sl] = sum(w[n] * v[j, sl] for n, j in enumerate(keys))
    h = q_in + att * real[:, None]
    f_in = layer_norm(h, blk.ffn_norm)
    ff = torch.relu(f_in @ blk.fc1.weight.T + blk.fc1.bias) @ blk.fc2.weight.T + blk.fc2.bias
    h = (f_in + ff) * real[:, None]
    return layer_norm(h, body.final_norm)


def test_sasrec_matches_the_hand_written_block():
    body = sasrec()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in body.parameters():  # non-trivial LayerNorm and bias values too
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    x = torch.randn(2, 5, 8, generator=g)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    with torch.no_grad():
        got = body(x, mask)
        for b in range(2):
            want = reference(body, x[b], mask[b])
            n = int(mask[b].sum())
            assert torch.allclose(got[b, :n], want[:n], atol=1e-5)
        outputs = torch.tensor([2, 5 + 1])  # flat positions: only their hidden states
        assert torch.allclose(body(x, mask, outputs=outputs), got.reshape(10, 8)[outputs], atol=1e-6)


def test_sasrec_never_sees_the_future_and_is_causal_only():
    body = sasrec(n_layer=2)
    x = torch.randn(1, 5, 8)
    later = x.clone()
    later[:, 3:] = torch.randn(1, 2, 8)
    mask = torch.ones(1, 5, dtype=torch.bool)
    with torch.no_grad():
        assert torch.allclose(body(x, mask)[:, :3], body(later, mask)[:, :3], atol=1e-6)
    with pytest.raises(SessrecError, match="sasrec is a causal model"):
        body(x, mask, causal=False)
    with pytest.raises(SessrecError, match="does not know"):
        sasrec(model_config={"n_inner": 4})


def test_sasrec_feed_forward_width_and_input_scaling_are_options():
    assert sasrec(model_config={"d_inner": 32}).blocks[0].fc1.out_features == 32
    assert sasrec().scale == pytest.approx(math.sqrt(8))
    assert sasrec(model_config={"scale_inputs": False}).scale == 1.0
