import pytest
import torch

from sessrec.config import ExperimentConfig
from sessrec.data.loader import split_last_item
from sessrec.model import SessionModel
from sessrec.schema import CATEGORICAL, ITEM_ID, FeatureSpec, Schema
from sessrec.tasks import make_room_for_next, mlm_mask

SCHEMA = Schema([FeatureSpec("item", "int", (ITEM_ID, CATEGORICAL), 1, 49)])


def test_mlm_mask_keeps_one_masked_and_one_visible():
    g = torch.Generator().manual_seed(0)
    items = torch.randint(1, 50, (500, 8))
    items[:, 5:] = 0
    items[:100, 2:] = 0  # sessions of length 2
    for p in (0.01, 0.5, 0.99):
        m = mlm_mask(items, p, g)
        assert not (m & (items == 0)).any()
        assert (m.sum(1) >= 1).all()
        assert ((~m & (items != 0)).sum(1) >= 1).all()
    rate = mlm_mask(torch.randint(1, 50, (2000, 20)), 0.3, g).float().mean().item()
    assert 0.27 < rate < 0.33


def test_make_room_for_next_shifts_full_sessions():
    batch = {"item": torch.tensor([[1, 2, 3], [4, 5, 0]])}
    shifted, slot = make_room_for_next(batch, "item")
    assert shifted["item"].tolist() == [[2, 3, 0], [4, 5, 0]]
    assert slot.tolist() == [2, 2]


@pytest.mark.parametrize("model_type,task", [("xlnet", "mlm"), ("xlnet", "clm"), ("gpt2", "clm")])
def test_prediction_never_sees_the_target(model_type, task):
    torch.manual_seed(0)
    cfg = ExperimentConfig.from_dict({"model_type": model_type, "task": task, "d_model": 16, "n_layer": 1, "n_head": 2, "dropout": 0.0})
    model = SessionModel(SCHEMA, cfg).eval()
    items = torch.randint(1, 50, (6, 10))
    items[:3, 6:] = 0
    batch = {"item": items}
    prefix, _ = split_last_item(batch, "item")
    # scramble the targets: the scores computed from the prefix cannot change
    scrambled = items.clone()
    last = (items != 0).sum(1) - 1
    scrambled[torch.arange(6), last] = torch.randint(1, 50, (6,))
    prefix2, _ = split_last_item({"item": scrambled}, "item")
    with torch.no_grad():
        assert torch.equal(model.next_item_scores(prefix), model.next_item_scores(prefix2))
        # causal bodies: what follows a position cannot change its hidden state
        if task == "clm":
            longer = prefix["item"].clone()
            longer[:, -1] = 7
            a = model.next_item_scores({"item": prefix["item"][:, :4]})
            b = model.next_item_scores({"item": longer[:, :4]})
            assert torch.allclose(a, b)


def test_clm_causality_at_every_position():
    torch.manual_seed(0)
    cfg = ExperimentConfig.from_dict({"model_type": "xlnet", "task": "clm", "d_model": 16, "n_layer": 2, "n_head": 2, "dropout": 0.0})
    model = SessionModel(SCHEMA, cfg).eval()
    items = torch.randint(1, 50, (2, 8))
    changed = items.clone()
    changed[:, 5:] = torch.randint(1, 50, (2, 3))
    with torch.no_grad():
        x1, x2 = model.embed({"item": items}), model.embed({"item": changed})
        mask = torch.ones(2, 8, dtype=torch.bool)
        h1, h2 = model.encode(x1, mask, causal=True), model.encode(x2, mask, causal=True)
    assert torch.allclose(h1[:, :5], h2[:, :5], atol=1e-6)
    assert not torch.allclose(h1[:, 5:], h2[:, 5:])
