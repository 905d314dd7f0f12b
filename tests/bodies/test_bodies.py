import logging
import re

import pytest
import torch

from sessrec.bodies import BODIES, build_body
from sessrec.bodies.transfo_xl import TransfoXLBody
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
from sessrec.model import SessionModel
from sessrec.schema import CATEGORICAL, ITEM_ID, FeatureSpec, Schema
from sessrec.tasks import OBJECTIVES
from tests.bodies.pairs import ALL_PAIRS, TINY

NAMES = sorted(BODIES) + ["hf:LlamaModel"]
SCHEMA = Schema([FeatureSpec("item", "int", (ITEM_ID, CATEGORICAL), 1, 29)])


def body(name: str, **kw):
    torch.manual_seed(0)
    return build_body(ExperimentConfig.from_dict({"model_type": name, **TINY, "dropout": 0.0, **kw})).eval()


def inputs(B=3, L=6, d=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, d, generator=g)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, 4:] = False
    return x, mask


@pytest.mark.parametrize("name", NAMES)
def test_shapes_causality_and_padding(name):
    b = body(name)
    x, mask = inputs()
    later = x.clone()
    later[:, 3:] = inputs(seed=1)[0][:, 3:]  # change positions 3..5
    padded = x.clone()
    padded[1, 4:] = inputs(seed=2)[0][1, 4:]  # change only the padding of session 1
    with torch.no_grad():
        for causal in (True, False):
            if (causal and not b.supports_causal) or (not causal and not b.supports_bidirectional):
                with pytest.raises(SessrecError):
                    b(x, mask, causal=causal)
                continue
            h = b(x, mask, causal=causal)
            assert h.shape == (3, 6, 16)
            h_later = b(later, mask, causal=causal)
            assert torch.allclose(h[:, :3], h_later[:, :3], atol=1e-5) == causal  # only causal ignores the future
            assert not torch.allclose(h[:, 3:], h_later[:, 3:], atol=1e-5)
            assert torch.allclose(h[1, :4], b(padded, mask, causal=causal)[1, :4], atol=1e-5)  # padding is invisible


def test_supported_pairs_are_exactly_the_documented_ones():
    for name in NAMES:
        for task in OBJECTIVES:
            cfg = ExperimentConfig.from_dict({"model_type": name, "task": task, **TINY})
            if (name, task) in ALL_PAIRS:
                SessionModel(SCHEMA, cfg)
            else:
                with pytest.raises(SessrecError, match=name):
                    SessionModel(SCHEMA, cfg)


def layer_params(groups: int, inner: int = 1, n_layer: int = 4) -> int:
    b = body("albert", n_layer=n_layer, num_hidden_groups=groups, inner_group_num=inner)
    return sum(p.numel() for p in b.parameters())


def test_albert_parameter_sharing():
    # One ALBERT layer at d=16, feed-forward 64: attention q,k,v,dense 4*(16*16+16), two LayerNorms 2*32,
    # feed-forward 16*64+64 + 64*16+16.
    one_layer = 4 * (16 * 16 + 16) + 2 * 32 + (16 * 64 + 64) + (64 * 16 + 16)
    shared = layer_params(1)
    assert layer_params(-1) - shared == 3 * one_layer  # -1: four distinct layers (BERT)
    assert layer_params(4) == layer_params(-1)
    assert layer_params(2) - shared == one_layer
    assert layer_params(1, inner=2) - shared == one_layer
    with pytest.raises(SessrecError, match="num_hidden_groups"):
        body("albert", n_layer=2, num_hidden_groups=3)


def test_transfoxl_segment_memory_equals_full_causal_attention():
    """Causal attention over cached layer inputs of earlier segments is full causal attention,
    as long as the memory reaches back to the session start: this checks the memory and the
    relative distances across segments."""
    x, mask = inputs(L=12)
    full = body("transfoxl", n_layer=2)
    with torch.no_grad():
        h = full(x, mask, causal=True)
        for seg, mem in ((4, 12), (3, 9), (5, 10)):
            seg_body = body("transfoxl", n_layer=2, model_config={"segment_len": seg, "mem_len": mem})
            seg_body.load_state_dict(full.state_dict())
            assert torch.allclose(seg_body(x, mask, causal=True), h, atol=1e-5)
        short = body("transfoxl", n_layer=2, model_config={"segment_len": 4, "mem_len": 2})
        short.load_state_dict(full.state_dict())
        h_short = short(x, mask, causal=True)
    assert torch.allclose(h_short[:, :4], h[:, :4], atol=1e-5)  # the first segment needs no memory
    assert not torch.allclose(h_short[:, 4:], h[:, 4:], atol=1e-5)  # later ones cannot reach the session start


def test_transfoxl_biases_are_per_layer_and_positions_relative():
    b = body("transfoxl", n_layer=2)
    assert isinstance(b, TransfoXLBody) and not any(n.startswith("pos") for n, _ in b.named_parameters())
    assert b.layers[0].attn.r_w_bias is not b.layers[1].attn.r_w_bias
    assert not torch.equal(b.layers[0].attn.r_r_bias, b.layers[1].attn.r_r_bias)
    with pytest.raises(SessrecError, match="tgt_len"):
        body("transfoxl", model_config={"tgt_len": 4})


@pytest.mark.parametrize("model_type, options, message", [
    ("hstu", {"final_norm": "no"}, "hstu final_norm must be true or false (got 'no')"),
    ("hstu", {"time_buckets": "64"}, "hstu time_buckets must be a whole number (got '64')"),
    ("sasrec", {"d_inner": 2.5}, "sasrec d_inner must be a whole number (got 2.5)"),
    ("transfoxl", {"dropatt": "1e-3"}, "transfoxl dropatt must be a number (got '1e-3')"),
])
def test_model_options_of_the_wrong_kind_are_named(model_type, options, message):
    with pytest.raises(SessrecError, match=re.escape(message)):
        body(model_type, task="clm", model_config=options)
    body("transfoxl", model_config={"dropatt": 0, "mem_len": 3})  # an int for a rate; None takes any value


def test_hf_any_model_by_class_name():
    b = body("hf:LlamaModel", hidden_act="silu", model_config={"intermediate_size": 24, "num_key_value_heads": 1})
    cfg = b.model.config
    assert (cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (16, 1, 2, 24)
    assert cfg.num_key_value_heads == 1 and cfg.hidden_act == "silu" and cfg.rms_norm_eps == 1e-12
    assert b.supports_causal and b.supports_bidirectional
    with pytest.raises(SessrecError, match="did you mean hf:LlamaModel"):
        body("hf:LlamaModle")
    with pytest.raises(SessrecError, match="not a field of LlamaConfig"):
        body("hf:LlamaModel", model_config={"intermediate_sise": 8})


def test_model_config_typos_are_errors():
    with pytest.raises(SessrecError, match="d_iner"):
        body("xlnet", model_config={"d_iner": 8})
    with pytest.raises(SessrecError, match="model_config"):
        body("gru", model_config={"bidirectional": True})
    assert body("bert", model_config={"intermediate_size": 8}).model.config.intermediate_size == 8
    with pytest.raises(SessrecError, match="set by d_model"):
        body("xlnet", model_config={"hidden_size": 32})


def test_xlnet_attn_type_never_lets_a_model_see_its_target(caplog):
    with caplog.at_level(logging.WARNING):
        b = body("xlnet", task="clm", attn_type="bi")
    assert "OVERRIDDEN" in caplog.text
    x, mask = inputs()
    later = x.clone()
    later[:, 3:] = inputs(seed=1)[0][:, 3:]
    with torch.no_grad():
        assert torch.allclose(b(x, mask, causal=True)[:, :3], b(later, mask, causal=True)[:, :3], atol=1e-5)
    with pytest.raises(SessrecError, match="attn_type uni"):
        body("xlnet", task="mlm", attn_type="uni")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        body("gpt2", task="clm", attn_type="uni")
    assert "ignored for model_type 'gpt2'" in caplog.text
