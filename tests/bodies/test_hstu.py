"""HSTU: the layer checked against a forward pass written out here by hand; its time bias."""

import math

import pytest
import torch
import torch.nn.functional as F

from sessrec.bodies import build_body
from sessrec.bodies.hstu import time_buckets
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
from sessrec.model import SessionModel
from sessrec.schema import CATEGORICAL, ITEM_ID, LIST, TIME, FeatureSpec, Schema


def hstu(timed=True, **kw):
    torch.manual_seed(0)
    cfg = {"model_type": "hstu", "task": "clm", "d_model": 8, "n_layer": 1, "n_head": 2, "dropout": 0.0,
           "layer_norm_eps": 1e-8, "session_seq_length_max": 5, **kw}
    body = build_body(ExperimentConfig.from_dict(cfg)).eval()
    if timed:
        assert body.use_timestamps()
    return body


def layer_norm(x, ln):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def reference(body, x, real, t):
    """The input positions, then the HSTU layers (Zhai et al. 2024, eq. 1-3), each with its own relative attention
    bias as in the reference, one session, pair by pair."""
    L, d = x.shape
    N = body.max_len
    x = (x * math.sqrt(d) + body.input_pos.weight[:L]) * real[:, None]
    for layer in body.layers:
        H, dh = layer.n_head, d // layer.n_head
        uvqk = F.silu(layer_norm(x, layer.norm) @ layer.uvqk.weight.T + layer.uvqk.bias)
        u, v, q, k = uvqk[:, :d], uvqk[:, d:2 * d], uvqk[:, 2 * d:3 * d], uvqk[:, 3 * d:]
        av = torch.zeros(L, d)
        for i in range(L):
            for head in range(H):
                sl = slice(head * dh, (head + 1) * dh)
                for j in range(i + 1):
                    if not real[j]:
                        continue
                    rab = layer.pos_bias[N - 1 + i - j]
                    if t is not None:
                        rab = rab + layer.time_bias[min(int(math.log(max(abs(float(t[i] - t[j])), 1.0)) / 0.301), 128)]
                    av[i, sl] += F.silu(q[i, sl] @ k[j, sl] / math.sqrt(dh) + rab) / N * v[j, sl]
        x = x + (u * layer_norm(av, layer.attn_norm)) @ layer.out.weight.T + layer.out.bias
    return layer_norm(x, body.final_norm)


def session():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 8, generator=g)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    t = 1.7e9 + torch.tensor([[0.0, 3.0, 40.0, 4000.0, 90000.0], [0.0, 700.0, 701.0, 0.0, 0.0]], dtype=torch.float64)
    return x, mask, t


@pytest.mark.parametrize("timed,n_layer", [(True, 1), (False, 1), (True, 2)])
def test_hstu_matches_the_hand_written_layers(timed, n_layer):
    body = hstu(timed, n_layer=n_layer)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in body.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    x, mask, t = session()
    with torch.no_grad():
        got = body(x, mask, timestamps=t if timed else None)
        for b in range(2):
            want = reference(body, x[b], mask[b], t[b] if timed else None)
            n = int(mask[b].sum())
            assert torch.allclose(got[b, :n], want[:n], atol=1e-5)


def test_time_buckets_are_log_time_differences():
    t = torch.tensor([[100.0, 100.5, 102.0, 1100.0]], dtype=torch.float64)
    got = time_buckets(t, 128)[0]
    assert got[0, 0] == 0 and got[1, 0] == 0  # under a second: bucket 0
    assert got[2, 0] == int(math.log(2.0) / 0.301) and got[3, 0] == int(math.log(1000.0) / 0.301)
    assert torch.equal(got, got.T)
    assert time_buckets(torch.tensor([[0.0, 1e30]], dtype=torch.float64), 128).max() == 128  # clamped


def test_hstu_uses_the_time_bias_when_the_data_has_timestamps():
    body = hstu()
    x, mask, t = session()
    with torch.no_grad():
        body.layers[0].time_bias.normal_(0.0, 1.0)
        base = body(x, mask, timestamps=t)
        moved = t.clone()
        moved[0, 3] += 1e6  # the time of item 3 only: outputs from position 3 on change
        other = body(x, mask, timestamps=moved)
        assert not torch.allclose(base[0, 3:], other[0, 3:], atol=1e-6)
        assert torch.allclose(base[0, :3], other[0, :3], atol=1e-6)
        assert torch.allclose(base[1], other[1])
    with pytest.raises(SessrecError, match="needs the interactions' timestamps"):
        body(x, mask)
    with pytest.raises(SessrecError, match="hstu is a causal model"):
        body(x, mask, causal=False, timestamps=t)


def test_session_model_feeds_the_time_column_to_hstu_only_when_there_is_one():
    item = FeatureSpec("item", "int", (ITEM_ID, CATEGORICAL), 1, 29)
    timed = Schema([item, FeatureSpec("ts", "float", (LIST, TIME))])
    cfg = ExperimentConfig.from_dict({"model_type": "hstu", "task": "clm", "d_model": 8, "n_head": 2, "n_layer": 1})
    model = SessionModel(timed, cfg)
    assert model.input_names == ["item", "ts"] and model.body.layers[0].time_bias is not None
    untimed = SessionModel(Schema([item]), cfg)
    assert untimed.input_names == ["item"] and untimed.body.layers[0].time_bias is None
    off = ExperimentConfig.from_dict({**cfg.to_dict(), "model_config": {"time_bias": False}})
    assert SessionModel(timed, off).input_names == ["item"]
    gpt2 = ExperimentConfig.from_dict({**cfg.to_dict(), "model_type": "gpt2"})
    assert SessionModel(timed, gpt2).input_names == ["item"]
    batch = {"item": torch.tensor([[3, 4, 5, 0], [7, 8, 0, 0]]),
             "ts": torch.tensor([[10.0, 20.0, 5000.0, 0.0], [1.0, 2.0, 0.0, 0.0]], dtype=torch.float64)}
    model.eval()
    with torch.no_grad():
        scores = model.next_item_scores(batch)
        later = model.next_item_scores({**batch, "ts": batch["ts"] * torch.tensor([1.0, 1.0, 100.0, 1.0], dtype=torch.float64)})
    assert scores.shape == (2, 29)
    assert not torch.allclose(scores[0], later[0]) and torch.allclose(scores[1], later[1])
    with pytest.raises(SessrecError, match="time_buckets"):
        hstu(model_config={"time_buckets": 0})
    assert isinstance(hstu(model_config={"final_norm": False}).final_norm, torch.nn.Identity)
    plain = hstu(model_config={"input_positions": False, "qk_scale": False})
    assert plain.input_pos is None and plain.layers[0].alpha == 1.0


def test_each_hstu_layer_learns_its_own_relative_attention_bias():
    body = hstu(n_layer=2)
    names = {n for n, _ in body.named_parameters() if "bias" in n and ("pos_" in n or "time_" in n)}
    assert names == {"layers.0.pos_bias", "layers.0.time_bias", "layers.1.pos_bias", "layers.1.time_bias"}
    assert not torch.equal(body.layers[0].pos_bias, body.layers[1].pos_bias)
