"""Our XLNet and GPT-2 compute what ``transformers``' models compute, given the same weights."""

import pytest
import torch
import transformers

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
