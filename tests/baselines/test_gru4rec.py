"""GRU4Rec: session-parallel batches, the optimizer and losses by hand, overfitting a pattern."""

from math import exp, log, sqrt

import numpy as np
import pytest
import torch

from sessrec.baselines.gru4rec import LOSSES, AdagradMomentum, GRU4RecParams, Reset, session_parallel
from sessrec.data.loader import SessionTensors
from tests.baselines.conftest import batch, learner, scores


def sig(x: float) -> float:
    return 1 / (1 + exp(-x))


# ---- session-parallel mini-batches ----------------------------------------------------------

def test_session_parallel_batches():
    # sessions [a b c] [d e] [f g h i] at flat positions 0-2, 3-4, 5-8; two lanes
    offsets, order = np.array([0, 3, 5, 9]), np.array([0, 1, 2])
    events = list(session_parallel(offsets, order, batch_size=2, stop_below_two=False))
    steps = [(list(e[0]), list(e[1])) if not isinstance(e, Reset) else ("reset", list(e.finished), list(e.valid))
             for e in events]
    assert steps == [
        ([0, 3], [1, 4]),  # a->b, d->e
        ("reset", [False, True], [True, True]),  # lane 2 finished [d e]: takes [f g h i]
        ([1, 5], [2, 6]),  # b->c, f->g
        ("reset", [True, False], [False, True]),  # lane 1 finished, nothing left: dropped
        ([6], [7]), ([7], [8]),  # g->h, h->i
    ]
    # without extra negatives a lone lane has no negative: the original stops there
    short = list(session_parallel(offsets, order, batch_size=2, stop_below_two=True))
    assert len(short) == 3
    # the order decides which session comes next
    first = next(iter(session_parallel(offsets, np.array([2, 0, 1]), batch_size=2, stop_below_two=False)))
    assert list(first[0]) == [5, 0]


# ---- optimizer --------------------------------------------------------------------------------

def test_adagrad_momentum_dense_update_by_hand():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = AdagradMomentum([w], lr=0.1, momentum=0.5, lmbd=0.1, grad_cap=0.0, adagrad=True)
    g = [0.5, 1.0]
    w0 = [1.0, -2.0]
    v1 = [-0.1 * (g[i] / sqrt(g[i] ** 2 + 1e-6) + 0.1 * w0[i]) for i in range(2)]
    w1 = [w0[i] + v1[i] for i in range(2)]
    v2 = [0.5 * v1[i] - 0.1 * (g[i] / sqrt(2 * g[i] ** 2 + 1e-6) + 0.1 * w1[i]) for i in range(2)]
    w2 = [w1[i] + v2[i] for i in range(2)]
    for want in (w1, w2):
        w.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        assert w.detach().tolist() == pytest.approx(want, rel=1e-12)


def test_adagrad_sparse_rows_and_grad_cap_by_hand():
    emb = torch.nn.Embedding(4, 1, sparse=True)
    torch.nn.init.zeros_(emb.weight)
    opt = AdagradMomentum(emb.parameters(), lr=0.5, momentum=0.0, lmbd=0.0, grad_cap=0.0, adagrad=True)
    emb(torch.tensor([1, 1, 3])).sum().mul(3.0).backward()  # row 1 gets 6 (twice 3), row 3 gets 3
    opt.step()
    assert emb.weight.detach().squeeze(1).tolist() == pytest.approx([0.0, -0.5 * 6 / sqrt(36 + 1e-6), 0.0,
                                                                     -0.5 * 3 / sqrt(9 + 1e-6)])
    assert opt.state[emb.weight]["acc"].squeeze(1).tolist() == [0.0, 36.0, 0.0, 9.0]  # untouched rows stay 0
    w = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    sgd = AdagradMomentum([w], lr=1.0, momentum=0.0, lmbd=0.0, grad_cap=1.0, adagrad=False)
    w.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)  # norm 5 > 1: scaled to [0.6, 0.8]
    sgd.step()
    assert w.detach().tolist() == pytest.approx([-0.6, -0.8])


# ---- losses -----------------------------------------------------------------------------------

def test_losses_by_hand():
    # two lanes, one extra negative: the positive of row i is column i
    r = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    p = GRU4RecParams()
    # *-max: softmax over each row's negatives (both 0 here: weights 1/2, 1/2)
    assert float(LOSSES["top1-max"](r, p)) == pytest.approx(sig(-2) + 0.5 + sig(-1) + 0.5)
    assert float(LOSSES["bpr-max"](r, p)) == pytest.approx(-log(sig(2)) - log(sig(1)))
    assert float(LOSSES["cross-entropy"](r, p)) == pytest.approx(-log(exp(2) / (exp(2) + 2)) - log(exp(1) / (exp(1) + 2)))
    assert float(LOSSES["bpr"](r, p)) == pytest.approx(-log(sig(0)) * 2 - 2 * log(sig(2)) - 2 * log(sig(1)))
    top1 = (sig(0) + sig(4) + 2 * (sig(-2) + sig(0))) / 3 - sig(4) / 3 + (2 * (sig(-1) + sig(0)) + sig(0) + sig(1)) / 3 - sig(1) / 3
    assert float(LOSSES["top1"](r, p)) == pytest.approx(top1)
    # bpr-max score regularisation: bpreg * sum_j r_j^2 s_j
    r2 = torch.tensor([[1.0, 2.0, 2.0], [2.0, 1.0, 2.0]], dtype=torch.float64)
    assert float(LOSSES["bpr-max"](r2, GRU4RecParams(bpreg=0.5))) == pytest.approx(2 * (-log(sig(-1)) + 0.5 * 4))
    # label smoothing (cross-entropy): (1 - C/(C-1) e) * nll + e/(C-1) * sum of all nll
    e = 0.3
    probs = torch.softmax(r, 1)
    nll = -torch.log(torch.diagonal(probs))
    want = ((1 - 1.5 * e) * nll + e / 2 * (-torch.log(probs)).sum(1)).sum()
    assert float(LOSSES["cross-entropy"](r, GRU4RecParams(loss="cross-entropy", smoothing=e))) == pytest.approx(float(want))


# ---- learning ---------------------------------------------------------------------------------

N_CYCLE, N_ITEMS = 40, 44  # items 41..43 never occur


def cycle_sessions(n: int, seed: int, n_cycle: int = N_CYCLE) -> list[list[int]]:
    """Sessions walking a cycle 1 -> 2 -> ... -> 40 -> 1 from a random start: the next item is fixed.

    The cycle is long enough that the other lanes' targets (the in-batch negatives) rarely equal
    the positive, so the loss can approach 0."""
    rng = np.random.default_rng(seed)
    return [[int((s + i) % n_cycle) + 1 for i in range(rng.integers(3, 7))] for s in rng.integers(0, n_cycle, n)]


SMALL = {"layers": 24, "batch_size": 8, "n_epochs": 5, "n_sample": 16, "learning_rate": 0.1, "momentum": 0.1,
         "constrained_embedding": True}


@pytest.mark.parametrize("loss,final_act", [("cross-entropy", "linear"), ("bpr-max", "linear"), ("top1-max", "tanh")])
def test_overfits_a_repeating_pattern(loss, final_act):
    lrn = learner("gru4rec", {**SMALL, "loss": loss, "final_act": final_act}, cycle_sessions(240, seed=1), n_items=N_ITEMS)
    losses = [h["loss"] for h in lrn.history]  # one mean per epoch; the *-max losses have a floor > 0
    assert losses[-1] < 0.97 * losses[0]
    test = cycle_sessions(60, seed=2)
    s = scores(lrn, [t[:-1] for t in test])
    recall_at_1 = np.mean([np.nanargmax(row) == t[-1] for row, t in zip(s, test)])
    assert recall_at_1 >= 0.9
    assert np.isneginf(s[:, N_CYCLE + 1:]).all()  # never seen: lowest score


def test_embedding_and_one_hot_inputs_learn_too():
    for extra in ({"constrained_embedding": False, "embedding": 16, "dropout_p_embed": 0.1},
                  {"constrained_embedding": False, "embedding": 0, "layers": "24/16", "dropout_p_hidden": 0.1}):
        lrn = learner("gru4rec", {**SMALL, "loss": "cross-entropy", "n_epochs": 4, **extra}, cycle_sessions(160, seed=1),
                      n_items=N_ITEMS)
        test = cycle_sessions(60, seed=2)
        s = scores(lrn, [t[:-1] for t in test])
        assert np.mean([np.nanargmax(row) == t[-1] for row, t in zip(s, test)]) >= 0.8, extra


def test_same_seed_same_model_other_seed_differs():
    data = cycle_sessions(80, seed=4)
    params = {**SMALL, "n_epochs": 2, "dropout_p_hidden": 0.2, "train_random_order": True}
    a = scores(learner("gru4rec", params, data, n_items=N_ITEMS, seed=5), [[1, 2], [3]])
    b = scores(learner("gru4rec", params, data, n_items=N_ITEMS, seed=5), [[1, 2], [3]])
    c = scores(learner("gru4rec", {**params, "seed": 6}, data, n_items=N_ITEMS, seed=5), [[1, 2], [3]])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[:, 1:N_CYCLE + 1], c[:, 1:N_CYCLE + 1])


def test_unknown_prefix_items_are_skipped():
    lrn = learner("gru4rec", {**SMALL, "n_epochs": 1}, cycle_sessions(40, seed=4), n_items=N_ITEMS)
    s = scores(lrn, [[1, 2], [1, 42, 2], [42, 43]])
    np.testing.assert_allclose(s[0], s[1])  # 42 never trained on: as if absent
    seen = np.isfinite(s[0, 1:])
    assert (s[2, 1:][seen] == 0).all()  # nothing known: constant scores, a miss under pessimistic ranking,
    assert np.isneginf(s[2, 1:][~seen]).all() and (~seen).any()  # and an item never trained on a miss whatever k


def test_items_of_single_click_sessions_are_scored_and_sampled():
    """As both official versions: every event's item is in the catalog and the sampling support, though a single click
    is no training pair (an item seen only there scores like the others, not -inf)."""
    lrn = learner("gru4rec", {**SMALL, "n_epochs": 1}, [*cycle_sessions(40, seed=4), [42]], n_items=N_ITEMS)
    assert lrn.seen[42] and not lrn.seen[43]
    s = scores(lrn, [[1, 2]])
    assert np.isfinite(s[0, 42]) and np.isneginf(s[0, 43])


def test_fine_tunes_across_windows_without_no_incremental_training():
    lrn = learner("gru4rec", {**SMALL, "n_epochs": 1}, cycle_sessions(40, seed=4), n_items=N_ITEMS)
    net = lrn.net
    assert np.isneginf(scores(lrn, [[1]])[0, 41:44]).all()
    lrn.fit_window(SessionTensors(batch([[41, 42, 43], [42, 43, 41]]), "item"), 2)
    assert lrn.net is net and len(lrn.history) == 2
    assert np.isfinite(scores(lrn, [[1]])[0, 41:44]).all()  # items of window 2 are now known


@pytest.mark.parametrize("input_kind", [{}, {"embedding": 8}, {"constrained_embedding": True}])
def test_a_saved_and_loaded_learner_scores_and_trains_on_as_the_original(tmp_path, input_kind):
    """The weights and seen items make the same scores (what recommending and serving load); with the optimizer's
    accumulators and the generators, the next window trains to the same model (what a resumed run needs)."""
    from sessrec.baselines.gru4rec import GRU4Rec
    from sessrec.checkpoint import read_state, write_state
    from sessrec.errors import SessrecError

    params = {**SMALL, "n_epochs": 2, "dropout_p_hidden": 0.2, "train_random_order": True, **input_kind}
    fitted = learner("gru4rec", params, cycle_sessions(40, seed=4), n_items=N_ITEMS, seed=3)
    write_state(tmp_path / "model.safetensors", fitted.state_dict()["model"])
    rest = {k: v for k, v in fitted.state_dict().items() if k != "model"}
    write_state(tmp_path / "state.safetensors", rest)
    queries = [[1, 2], [3], [5, 42, 6]]
    fresh = learner("gru4rec", params, [[7, 8]], n_items=N_ITEMS, seed=9)  # another model, replaced by the saved one
    fresh.load_state_dict({"model": read_state(tmp_path / "model.safetensors")})
    np.testing.assert_array_equal(scores(fresh, queries), scores(fitted, queries))
    resumed = learner("gru4rec", params, [[7, 8]], n_items=N_ITEMS, seed=9)
    resumed.load_state_dict({"model": read_state(tmp_path / "model.safetensors"), **read_state(tmp_path / "state.safetensors")})
    more = SessionTensors(batch(cycle_sessions(24, seed=8)), "item")
    torch.manual_seed(0)  # dropout draws from the global generator, which a resumed run restores
    fitted.fit_window(more, 2)
    torch.manual_seed(0)
    resumed.fit_window(more, 2)
    np.testing.assert_array_equal(scores(resumed, queries), scores(fitted, queries))
    assert resumed.epochs_done == fitted.epochs_done == 4
    assert fitted.generator.device.type == "cpu"  # the negatives' stream: a checkpoint resumes on another device
    untrained = GRU4Rec.__new__(GRU4Rec)  # nothing trained yet (a first window without a session of 2): no network
    untrained.__dict__.update(fresh.__dict__, net=None, optimizer=None)
    empty = learner("gru4rec", params, [[7, 8]], n_items=N_ITEMS)
    empty.load_state_dict({"model": untrained.state_dict()["model"]})
    assert empty.net is None and (scores(empty, queries)[:, 1:] == 0).all() and not empty.known_items.any()
    other = learner("gru4rec", params, [[7, 8]], n_items=N_ITEMS + 5)
    with pytest.raises(SessrecError, match="the saved GRU4Rec is over 43 items, this schema's over 48"):
        other.load_state_dict(fitted.state_dict())
