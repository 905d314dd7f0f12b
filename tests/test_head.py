import logging

import pytest
import torch
import torch.nn.functional as F

from sessrec.config import ExperimentConfig
from sessrec.head import NextItemHead

N_ITEMS = 30


def _head(**kw) -> NextItemHead:
    cfg = ExperimentConfig.from_dict({"d_model": 8, "n_layer": 1, "n_head": 2, **kw}).validate()
    torch.manual_seed(0)
    table = torch.nn.Embedding(N_ITEMS, cfg.item_dim)
    return NextItemHead(cfg, N_ITEMS, table).eval()


def test_paper_head_projects_with_tf_out_activation_and_has_a_trained_bias():
    head = _head(tf_out_activation="tanh")
    x = torch.randn(4, 8)
    with torch.no_grad():
        head.bias.uniform_()
    expected = torch.tanh(head.proj[0](x)) @ head.item_table.weight[1:].t() + head.bias
    assert torch.allclose(head(x), expected, atol=1e-6)
    assert any(p is head.bias for p in head.parameters())


@pytest.mark.parametrize("item_dim", [8, 12])
def test_t4r_library_head_is_the_tied_table_without_bias(item_dim):
    head = _head(compat="t4r-23.12", item_embedding_dim=item_dim)
    x = torch.randn(5, 8)
    h = x if item_dim == 8 else head.proj(x)  # a plain Linear when the dims differ, no activation
    if item_dim != 8:
        assert isinstance(head.proj, torch.nn.Linear)
    assert torch.allclose(head(x), h @ head.item_table.weight[1:].t(), atol=1e-6)
    assert not any(p is head.bias for p in head.parameters()) and "bias" in head.state_dict()
    targets = torch.tensor([1, 5, 29, 3, 2])
    expected = F.cross_entropy(head(x), targets - 1, label_smoothing=0.0)
    assert torch.allclose(head.loss(x, targets), expected, atol=1e-5)


def test_t4r_library_head_says_tf_out_activation_is_unused(caplog):
    with caplog.at_level(logging.WARNING):
        _head(compat="t4r-23.12", tf_out_activation="relu")
    assert "tf_out_activation relu has no effect" in caplog.text


def test_unknown_compat_is_a_one_line_error():
    with pytest.raises(Exception, match="compat must be one of recsys2021, t4r-23.12"):
        _head(compat="t4r")


@pytest.mark.parametrize("kw", [{"loss_type": "gbce"}, {"loss_type": "bpr_max"}, {"sampled_softmax": True}])
def test_a_loss_that_draws_other_items_refuses_a_catalog_of_one(kw):
    """gBCE divided by zero (``k / (n_items - 1)``) deep in the first step, leaving a half-written run (QA helper-70)."""
    from sessrec.errors import SessrecError

    cfg = ExperimentConfig(d_model=8, **kw).validate()
    with pytest.raises(SessrecError, match="contrasts the target with other items, and the catalog has 1 item"):
        NextItemHead(cfg, 2, torch.nn.Embedding(2, 8))
    NextItemHead(cfg, 3, torch.nn.Embedding(3, 8))  # two items: one to contrast with
