import pytest
import torch
import torch.nn.functional as F

from sessrec.config import ExperimentConfig
from sessrec.data.loader import split_last_item
from sessrec.errors import SessrecError
from sessrec.model import SessionModel
from sessrec.schema import CATEGORICAL, ITEM_ID, FeatureSpec, Schema
from sessrec.tasks import gumbel_max, make_room_for_next, mlm_mask, plm_perm_mask, plm_targets
from tests.bodies.pairs import ALL_PAIRS, TINY

SCHEMA = Schema([FeatureSpec("item", "int", (ITEM_ID, CATEGORICAL), 1, 49)])


def model_for(model_type: str, task: str, **kw) -> SessionModel:
    torch.manual_seed(0)
    cfg = ExperimentConfig.from_dict({"model_type": model_type, "task": task, **TINY, "dropout": 0.0, **kw}).validate()
    return SessionModel(SCHEMA, cfg)


def batch_of_items(B=6, L=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    items = torch.randint(1, 50, (B, L), generator=g)
    items[: B // 2, 6:] = 0
    return items


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
    single = torch.tensor([[5, 0, 0], [7, 0, 0]])
    assert not mlm_mask(single, 0.99, g).any()  # a lone item has nothing to be predicted from


def test_mlm_mask_draws_as_many_targets_as_the_original():
    """The original (hf4rec recsys_tasks.mask_tokens, Transformers4Rec MaskedLanguageModeling): Bernoulli(p) targets
    plus one random item per session, then one unmasked where all are targets. Its expectation, computed by hand:
    a target is an item drawn (p) or, if not drawn, the extra one (1/n): p + (1 - p) / n per item, for n = 20
    and p = 0.3: 0.335 (the all-masked correction is negligible at n = 20)."""
    g = torch.Generator().manual_seed(0)
    rate = mlm_mask(torch.randint(1, 50, (4000, 20)), 0.3, g).float().mean().item()
    assert abs(rate - (0.3 + 0.7 / 20)) < 0.005
    # n = 2, p = 0.5: the extra target makes both targets with probability 1/2 (both drawn: 1/4, one drawn and the
    # extra the other: 2 * 1/4 * 1/2, none drawn: 0); then one is visible again: always exactly one target
    two = mlm_mask(torch.randint(1, 50, (2000, 2)), 0.5, g)
    assert (two.sum(1) == 1).all()


def test_make_room_for_next_shifts_full_sessions():
    batch = {"item": torch.tensor([[1, 2, 3], [4, 5, 0]])}
    shifted, slot = make_room_for_next(batch, "item")
    assert shifted["item"].tolist() == [[2, 3, 0], [4, 5, 0]]
    assert slot.tolist() == [2, 2]


@pytest.mark.parametrize("model_type,task", ALL_PAIRS)
def test_training_lowers_the_loss_and_prediction_never_sees_the_target(model_type, task):
    model = model_for(model_type, task)
    items = batch_of_items()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        opt.zero_grad()
        loss = model.loss({"item": items}, torch.Generator().manual_seed(0))  # the same masks every step
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]

    model.eval()
    prefix, _ = split_last_item({"item": items}, "item")
    # scramble the targets: the scores computed from the prefix cannot change
    scrambled = items.clone()
    last = (items != 0).sum(1) - 1
    scrambled[torch.arange(6), last] = torch.randint(1, 50, (6,))
    prefix2, _ = split_last_item({"item": scrambled}, "item")
    with torch.no_grad():
        scores = model.next_item_scores(prefix)
        assert scores.shape == (6, 49)
        assert torch.equal(scores, model.next_item_scores(prefix2))
        if task == "clm":  # causal: what follows a prefix cannot change its prediction
            longer = prefix["item"].clone()
            longer[:, 4:] = 7
            assert torch.allclose(model.next_item_scores({"item": prefix["item"][:, :4]}),
                                  model.next_item_scores({"item": longer[:, :4]}), atol=1e-5)


# ---- PLM ----------------------------------------------------------------------------------------

def test_plm_spans_hand_computed():
    g = torch.Generator().manual_seed(0)
    items = torch.randint(1, 50, (200, 20))
    items[:50, 9:] = 0
    # span length 1, context int(1 / 0.5) = 2: exactly one target in every pair of positions
    t = plm_targets(items, 0.5, 1, False, g)
    assert (t.view(200, 10, 2).sum(-1)[50:] == 1).all()
    assert not (t & (items == 0)).any()
    # span length 1, p = 1: contexts of one position, all of them a target
    assert torch.equal(plm_targets(items, 1.0, 1, False, g), items != 0)
    assert torch.equal(plm_targets(items, 0.3, 4, True, g), items != 0)  # permute_all
    t = plm_targets(items, 0.25, 3, False, g)
    assert (t.sum(1) >= 1).all()
    assert 0.15 < t[50:].float().mean() < 0.35  # about span / context = 0.25 of the items


def test_plm_perm_mask_is_a_factorisation_order():
    g = torch.Generator().manual_seed(1)
    targets = torch.zeros(50, 8, dtype=torch.bool)
    targets[:, [1, 2, 5, 6]] = True
    pm = plm_perm_mask(targets, g)
    assert pm.shape == (50, 8, 8)
    assert (pm[:, :, ~targets[0]] == 0).all()  # non-targets are seen by everyone
    assert (pm[:, [1, 2, 5, 6], [1, 2, 5, 6]] == 1).all()  # a target never sees itself
    pair = pm[:, [1, 2, 5, 6]][:, :, [1, 2, 5, 6]]
    off = ~torch.eye(4, dtype=torch.bool)
    assert ((pair + pair.transpose(1, 2))[:, off] == 1).all()  # of two targets, exactly one sees the other
    assert len({tuple(r.flatten().tolist()) for r in pm}) > 1  # the order is random
    # one uniformly random order over all positions (the original's torch.randperm): any target comes before
    # any other in half of the orders, whatever their places (a two-halves order put position 1 before 5 always)
    many = plm_perm_mask(targets.repeat(80, 1), g)
    for i, j in ((1, 5), (1, 2), (2, 6)):
        assert 0.42 < many[:, j, i].float().mean().item() < 0.58  # j sees i: i comes first
    assert plm_perm_mask(torch.ones(3, 7, dtype=torch.bool), g).shape == (3, 7, 7)  # odd lengths


def test_plm_target_prediction_does_not_see_its_own_item():
    model = model_for("xlnet", "plm", n_layer=2).eval()
    items = batch_of_items()
    targets = plm_targets(items, 0.5, 2, False, torch.Generator().manual_seed(0))
    pm = plm_perm_mask(targets, torch.Generator().manual_seed(0))
    L = items.shape[1]
    mapping = torch.eye(L).expand(6, L, L)

    def query_stream(it):
        with torch.no_grad():
            return model.encode(model.embed({"item": it}), items != 0, causal=False, perm_mask=pm, target_mapping=mapping)

    base = query_stream(items)
    seen_by_later = 0
    for t in targets[0].nonzero().squeeze(1).tolist():
        changed = items.clone()
        changed[0, t] = items[0, t] % 49 + 1
        out = query_stream(changed)
        assert torch.allclose(out[0, t], base[0, t], atol=1e-5)  # the target's own item is invisible to it
        others = targets[0].clone()
        others[t] = False
        seen_by_later += int(not torch.allclose(out[0, others], base[0, others], atol=1e-5))
    assert seen_by_later > 0  # but visible to the targets after it in the factorisation order


@pytest.mark.parametrize("session", [[7, 9], [3, 8, 3, 5]])
def test_plm_target_that_may_see_no_item_is_predicted_from_nothing(session):
    """Every item a target (a 2-item session with both covered, or plm_permute_all): the first one
    in the factorisation order may see no item. Its query stream must attend to nothing: softmax
    over -1e30 scores (transformers' XLNet) spreads evenly over every key, its own item included."""
    model = model_for("xlnet", "plm", n_layer=2).eval()
    items = torch.zeros(1, 6, dtype=torch.int64)
    items[0, :len(session)] = torch.tensor(session)
    targets = items != 0
    pm = plm_perm_mask(targets, torch.Generator().manual_seed(3))
    mapping = torch.eye(6).expand(1, 6, 6)

    def query_stream(it):
        with torch.no_grad():
            return model.encode(model.embed({"item": it}), targets, causal=False, perm_mask=pm, target_mapping=mapping)

    base = query_stream(items)
    for t in range(len(session)):
        changed = items.clone()
        changed[0, t] = items[0, t] % 49 + 1
        assert torch.allclose(query_stream(changed)[0, t], base[0, t], atol=1e-5), t


def test_plm_needs_xlnet():
    with pytest.raises(SessrecError, match="xlnet"):
        model_for("bert", "plm")


# ---- RTD ----------------------------------------------------------------------------------------

def test_gumbel_max_samples_the_softmax():
    probs = torch.tensor([0.7, 0.2, 0.1])
    draws = gumbel_max(probs.log().expand(20000, 3), torch.Generator().manual_seed(0))
    freq = torch.bincount(draws, minlength=3).float() / 20000
    assert torch.allclose(freq, probs, atol=0.015)


@pytest.mark.parametrize("from_batch", [False, True])
def test_rtd_loss_pieces(from_batch):
    model = model_for("electra", "rtd", rtd_sample_from_batch=from_batch, rtd_discriminator_loss_weight=3.0,
                      rtd_generator_loss_weight=0.5, rtd_tied_generator=True, mlm_probability=0.5)
    items = batch_of_items()
    loss, p = model.objective.loss_parts(model, {"item": items}, torch.Generator().manual_seed(0))
    assert torch.allclose(loss, 3.0 * p["disc"] + 0.5 * p["mlm"])
    masked, replaced, corrupted = p["masked"], p["replaced"], p["corrupted"]
    assert torch.equal(corrupted[~masked], items[~masked])  # only masked items are replaced
    assert torch.equal(replaced, corrupted != items) and not (replaced & ~masked).any()
    assert replaced.any()
    if from_batch:
        assert set(corrupted[masked].tolist()) <= set(items[masked].tolist())
    # BCE over the real positions only: the mean of per-position losses over non-padded items
    real = items != 0
    hd = model.encode(model.merge(model.features({"item": corrupted})), real, causal=False)
    logits = model.objective.disc_head(hd).squeeze(-1)
    expected = F.binary_cross_entropy_with_logits(logits[real], replaced[real].float())
    assert torch.allclose(p["disc"], expected, atol=1e-6)
    assert not torch.allclose(p["disc"], F.binary_cross_entropy_with_logits(logits, replaced.float()), atol=1e-4)


@pytest.mark.parametrize("from_batch", [False, True])
def test_rtd_samples_without_masked_by_catalog_logits(monkeypatch, from_batch):
    """The generator's samples are drawn a few rows at a time (or from the batch's columns only), with the
    same draws on the CPU as one [masked x catalog] product: a 170k-item catalog made that product GBs."""
    import sessrec.tasks

    model = model_for("electra", "rtd", rtd_sample_from_batch=from_batch, mlm_probability=0.5)
    items = batch_of_items()
    whole = model.objective.loss_parts(model, {"item": items}, torch.Generator().manual_seed(1))[1]["corrupted"]
    monkeypatch.setattr(sessrec.tasks, "CHUNK_ELEMENTS", 2 * 49)  # two rows of the 49-item catalog at a time
    widths = []
    model.head.register_forward_hook(lambda _m, _i, out: widths.append(tuple(out.shape)))
    parts = model.objective.loss_parts(model, {"item": items}, torch.Generator().manual_seed(1))[1]
    assert torch.equal(parts["corrupted"], whole)
    n_masked = int(parts["masked"].sum())
    assert widths == ([(n_masked, n_masked)] if from_batch else [(2, 49)] * (n_masked // 2) + [(1, 49)] * (n_masked % 2))


def test_rtd_untied_generator_is_smaller_and_predicts():
    model = model_for("xlnet", "rtd", d_model=32, rtd_tied_generator=False, electra_generator_hidden_size=0.25)
    assert model.body.d_model == 8  # the generator (it also recommends)
    assert model.objective.disc_body.d_model == 32
    assert model.merge.proj[0].out_features == 8 and model.objective.disc_merge.proj[0].out_features == 32
    loss = model.loss({"item": batch_of_items()}, torch.Generator().manual_seed(0))
    loss.backward()
    assert model.objective.disc_body.layer[0].ff.layer_1.weight.grad.abs().sum() > 0
    with pytest.raises(SessrecError, match="multiple of n_head"):
        model_for("xlnet", "rtd", d_model=24, n_head=4, electra_generator_hidden_size=0.25)


def test_rtd_batch_interaction():
    model = model_for("electra", "rtd", rtd_sample_from_batch=True, rtd_use_batch_interaction=True)
    model.loss({"item": batch_of_items()}, torch.Generator().manual_seed(0)).backward()
    assert model.objective.disc_head[2].weight.grad.abs().sum() > 0
    with pytest.raises(SessrecError, match="needs rtd_sample_from_batch"):
        model_for("electra", "rtd", rtd_use_batch_interaction=True)
