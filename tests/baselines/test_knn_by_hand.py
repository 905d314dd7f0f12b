"""V-SkNN, STAN and VSTAN on four hand-made training sessions, every number computed by hand.

Training sessions, oldest first (last click on day 1..4):
    A = [1, 2, 3]   B = [2, 4]   C = [3, 5, 2]   D = [6, 7]
Items 8 and 9 never occur in training: they get the lowest score. Interaction counts:
1:1, 2:3, 3:2, 4:1, 5:1, 6:1, 7:1 over 4 sessions, so idf(j) = log(4 / count(j)).
"""

from math import exp, log, sqrt

import numpy as np
import pytest

from sessrec.errors import SessrecError
from tests.baselines.conftest import DAY, learner, schema, scores

A, B, C, D = [1, 2, 3], [2, 4], [3, 5, 2], [6, 7]
TRAIN = [A, B, C, D]
DAYS = [1 * DAY, 2 * DAY, 3 * DAY, 4 * DAY]
UNSEEN = [8, 9]


def vsknn(params, prefixes, **kw):
    return scores(learner("vsknn", {"k": 100, **params}, TRAIN, DAYS, **kw), prefixes, [5 * DAY] * len(prefixes))


def close(got, want: dict):
    for item, value in want.items():
        assert got[item] == pytest.approx(value, rel=1e-9, abs=1e-12), item


# ---- V-SkNN ---------------------------------------------------------------------------------

def test_vsknn_neighbours_similarities_and_scores():
    # prefix [1, 3]: div weights w(1) = 1/2, w(3) = 2/2; 2 distinct items.
    # candidates: A (shares 1, 3), C (shares 3): sim(A) = (0.5 + 1) / 2 = 0.75, sim(C) = 1 / 2 = 0.5.
    # the last prefix item (3) is in both, so the div score decay is 1/1 for both.
    # raw: 1 -> .75, 2 -> .75 + .5 = 1.25, 3 -> 1.25, 5 -> .5; normalised by 1.25.
    s = vsknn({}, [[1, 3]])[0]
    close(s, {1: 0.6, 2: 1.0, 3: 1.0, 5: 0.4, 4: 0.0, 6: 0.0, 7: 0.0})
    assert np.isneginf(s[UNSEEN]).all()


def test_vsknn_k_keeps_the_most_similar():
    s = vsknn({"k": 1}, [[1, 3]])[0]  # only A (0.75): items 1, 2, 3 at 0.75, normalised to 1
    close(s, {1: 1.0, 2: 1.0, 3: 1.0, 5: 0.0})


def test_vsknn_recent_sampling_keeps_the_latest_sessions():
    s = vsknn({"sample_size": 1}, [[1, 3]])[0]  # candidates A (day 1), C (day 3): C only
    close(s, {1: 0.0, 2: 1.0, 3: 1.0, 5: 1.0})


def test_vsknn_step_decay_and_ties_go_to_the_more_recent_session():
    # prefix [3, 4]: w(3) = 1/2, w(4) = 1. candidates A (3), B (4), C (3).
    # sim A = .5/2 = .25, B = 1/2 = .5, C = .25. The most recent shared item is the last one (step 1)
    # for B, the first one (step 2, decay 1/2) for A and C.
    # raw: 1 -> .125, 2 -> .125 + .5 + .125 = .75, 3 -> .25, 4 -> .5, 5 -> .125
    s = vsknn({}, [[3, 4]])[0]
    close(s, {1: 0.125 / 0.75, 2: 1.0, 3: 0.25 / 0.75, 4: 0.5 / 0.75, 5: 0.125 / 0.75})
    # k = 2: B, then A and C tie at .25: the more recent one, C, is kept.
    # raw: 2 -> .5 + .125, 4 -> .5, 3 -> .125, 5 -> .125, 1 -> 0
    s = vsknn({"k": 2}, [[3, 4]])[0]
    close(s, {1: 0.0, 2: 1.0, 4: 0.5 / 0.625, 3: 0.125 / 0.625, 5: 0.125 / 0.625})


def test_vsknn_remind_push_reminders_idf_and_no_normalize():
    s = vsknn({"remind": False}, [[1, 3]])[0]  # items of the prefix get 0: 2 -> 1.25, 5 -> .5
    close(s, {1: 0.0, 3: 0.0, 2: 1.0, 5: 0.4})
    s = vsknn({"push_reminders": True}, [[1, 3]])[0]  # 1 and 3 (once each) times 2: 1.5, 2.5
    close(s, {1: 1.5 / 2.5, 3: 1.0, 2: 1.25 / 2.5, 5: 0.5 / 2.5})
    s = vsknn({"normalize": False, "idf_weighting": "2"}, [[1, 3]])[0]  # the string form of a flag value
    close(s, {1: 0.75 * (1 + 2 * log(4)), 2: 1.25 * (1 + 2 * log(4 / 3)), 3: 1.25 * (1 + 2 * log(2)),
              5: 0.5 * (1 + 2 * log(4))})


def test_vsknn_weighting_functions():
    # prefix [4, 1, 3] (L = 3), quadratic weights: w(4) = 1/9, w(1) = 4/9, w(3) = 1; 3 distinct items.
    # sim A = (4/9 + 1)/3 = 13/27 (step 1), B = (1/9)/3 = 1/27 (step 3), C = 1/3 (step 1).
    # quadratic score decay: 1/step^2. raw (no normalisation):
    #   A: 1, 2, 3 += 13/27;  B: 2, 4 += 1/27 / 9;  C: 3, 5, 2 += 1/3
    s = vsknn({"weighting": "quadratic", "weighting_score": "quadratic", "normalize": False}, [[4, 1, 3]])[0]
    close(s, {1: 13 / 27, 2: 13 / 27 + 1 / 243 + 1 / 3, 3: 13 / 27 + 1 / 3, 4: 1 / 243, 5: 1 / 3})
    # 'same' weights are all 1: sim A = 2/3, B = 1/3, C = 1/3; 'linear' score decay 1 - 0.1 * step
    s = vsknn({"weighting": "same", "weighting_score": "linear", "normalize": False}, [[4, 1, 3]])[0]
    close(s, {1: 2 / 3 * 0.9, 4: 1 / 3 * 0.7, 5: 1 / 3 * 0.9, 2: 2 / 3 * 0.9 + 1 / 3 * 0.7 + 1 / 3 * 0.9})


def test_vsknn_weighting_time_decays_older_neighbours():
    # prefix [1, 3] at day 5: A is 4 days old (7/8)^4, C 2 days (7/8)^2
    s = vsknn({"weighting_time": True, "normalize": False}, [[1, 3]])[0]
    a, c = 0.75 * (7 / 8) ** 4, 0.5 * (7 / 8) ** 2
    close(s, {1: a, 2: a + c, 3: a + c, 5: c})
    # a query before the store (a served session dated in the past): the sessions after it count as just ended; one
    # 40 years after it: the days from the newest candidate, where (7/8)^days underflowed and no neighbour was left
    lrn = learner("vsknn", {"k": 100, "weighting_time": True, "normalize": False}, TRAIN, DAYS)
    close(scores(lrn, [[1, 3]], [0.0])[0], {1: 0.75, 2: 1.25, 3: 1.25, 5: 0.5})
    close(scores(lrn, [[1, 3]], [40 * 365 * DAY])[0], {1: 0.75 * (7 / 8) ** 2, 2: 0.75 * (7 / 8) ** 2 + 0.5, 5: 0.5})
    # whole days are taken off: the rounded days of each neighbour keep their differences (the ranking of any time)
    lrn = learner("vsknn", {"k": 100, "weighting_time": True, "normalize": False}, TRAIN, [DAY, 2 * DAY, 3.5 * DAY, 4 * DAY])
    soon, late = (scores(lrn, [[1, 3]], [at])[0][1:8] for at in (5.8 * DAY, (5.8 + 9000) * DAY))  # A 5 days, C 2
    np.testing.assert_allclose(late / late.max(), soon / soon.max(), rtol=1e-12)


# ---- STAN / VSTAN ---------------------------------------------------------------------------

def stan_expected(prefix_first: int):
    """sim(A), sim(C) for a prefix at day 5 with lambda_spw = lambda_snh = 1 (see the tests)."""
    norm = sqrt(1 + exp(-2))  # weights e^-1 (position 1 of 2) and 1 (position 2)
    shared_c = 1.0 if prefix_first == 1 else exp(-1)  # C shares item 3 only
    sim_a = (exp(-1) + 1) / (norm * sqrt(3)) * exp(-4)  # A shares both; 4 days old
    sim_c = shared_c / (norm * sqrt(3)) * exp(-2)  # 2 days old
    return sim_a, sim_c


def test_stan_similarity_time_decay_and_position_weights():
    # prefix [1, 3]. A = [1, 2, 3]: its last item shared with the prefix is 3 at position 3, so
    # item weights exp(-|pos - 3|): 1 -> e^-2, 2 -> e^-1, 3 -> 1.
    # C = [3, 5, 2]: last shared item 3 at position 1: 3 -> 1, 5 -> e^-1, 2 -> e^-2.
    lrn = learner("stan", {"k": 100, "lambda_spw": 1, "lambda_snh": 1, "lambda_inh": 1}, TRAIN, DAYS)
    s = scores(lrn, [[1, 3]], [5 * DAY])[0]
    a, c = stan_expected(prefix_first=1)
    close(s, {1: a * exp(-2), 2: a * exp(-1) + c * exp(-2), 3: a + c, 5: c * exp(-1), 4: 0.0, 6: 0.0})
    assert np.isneginf(s[UNSEEN]).all()
    # k = 1: C (less overlap but more recent: e^-2 / ... > A's (1 + e^-1) e^-4 / ...) is the neighbour
    assert c > a
    s = scores(learner("stan", {"k": 1, "lambda_spw": 1, "lambda_snh": 1, "lambda_inh": 1}, TRAIN, DAYS), [[1, 3]], [5 * DAY])[0]
    close(s, {1: 0.0, 2: c * exp(-2), 3: c, 5: c * exp(-1)})


def test_stan_a_stored_session_after_the_query_counts_as_just_ended():
    """A served session dated before the stored ones (or a warm-up at time 0): no overflow, no inf; each neighbour's
    decay is that of a session ended at the query's time (exp(0) = 1), as without the decay."""
    import warnings

    params = {"k": 100, "lambda_spw": 1, "lambda_inh": 1}
    without = scores(learner("stan", {**params, "lambda_snh": None}, TRAIN, DAYS), [[1, 3]], [5 * DAY])[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warning fails the test
        for at in (0.0, 2.5 * DAY):
            s = scores(learner("stan", {**params, "lambda_snh": 1}, TRAIN, DAYS), [[1, 3]], [at])[0]
            assert np.isfinite(s[1:8]).all()
            if at == 0.0:
                np.testing.assert_allclose(s[1:8], without[1:8], rtol=1e-12)
    a, c = stan_expected(prefix_first=1)  # at 2.5 days: A (day 1) decays by e^-1.5, C (day 3, after) by 1
    close(s, {3: a * exp(4) * exp(-1.5) + c * exp(2)})


def test_stan_a_query_years_after_the_store_ranks_as_one_soon_after():
    """A recommendation "now" from data years old: the formula's decays all underflow to 0 (every score 0, an arbitrary
    ranking); decayed from the newest candidate instead, the row's scores are one factor apart from those of a query
    soon after the store, the same ranking."""
    params = {"k": 100, "lambda_spw": 1, "lambda_snh": 1, "lambda_inh": 1}
    soon = scores(learner("stan", params, TRAIN, DAYS), [[1, 3], [2, 4]], [5 * DAY] * 2)
    late = scores(learner("stan", params, TRAIN, DAYS), [[1, 3], [2, 4]], [5 * DAY + 4000 * 365 * DAY] * 2)
    for a, b in zip(soon, late):
        finite = np.isfinite(a[1:8])
        assert (b[1:8][finite] > 0).sum() >= 3 and finite.all()
        np.testing.assert_allclose(b[1:8] / b[1:8].max(), a[1:8] / a[1:8].max(), rtol=1e-9)
    a, c = stan_expected(prefix_first=1)  # newest candidate C (day 3): the decays are counted from day 3
    close(late[0], {3: (a + c) * exp(2)})


def test_stan_without_factors_is_plain_cosine_knn():
    # all lambdas off: sim = |shared| / (sqrt(|prefix|) sqrt(|n|)); each neighbour votes sim for its items
    lrn = learner("stan", {"lambda_spw": None, "lambda_snh": "None", "lambda_inh": False, "remind": False}, TRAIN, DAYS)
    s = scores(lrn, [[1, 3]], [5 * DAY])[0]
    a, c = 2 / (sqrt(2) * sqrt(3)), 1 / (sqrt(2) * sqrt(3))
    close(s, {1: 0.0, 3: 0.0, 2: a + c, 5: c})


def test_vstan_adds_prefix_position_and_idf_factors():
    # prefix [3, 1]: weights 3 -> e^-1, 1 -> 1. A shares both (latest shared prefix position 2: ipw 1),
    # C shares 3 at prefix position 1: ipw e^-1. Item weights inside A and C as in the STAN test.
    params = {"k": 100, "lambda_spw": 1, "lambda_snh": 1, "lambda_inh": 1, "lambda_ipw": 1, "lambda_idf": 1}
    s = scores(learner("vstan", params, TRAIN, DAYS), [[3, 1]], [5 * DAY])[0]
    a, c = stan_expected(prefix_first=3)
    c_ipw = c * exp(-1)
    close(s, {1: a * exp(-2) * (1 + log(4)),
              2: (a * exp(-1) + c_ipw * exp(-2)) * (1 + log(4 / 3)),
              3: (a + c_ipw) * (1 + log(2)),
              5: c_ipw * exp(-1) * (1 + log(4))})


def test_vstan_lambda_idf_false_is_off():
    base = {"k": 100, "lambda_spw": 1, "lambda_snh": 1, "lambda_inh": 1, "lambda_ipw": 1}
    off = scores(learner("vstan", {**base, "lambda_idf": "False"}, TRAIN, DAYS), [[3, 1]], [5 * DAY])[0]
    a, c = stan_expected(prefix_first=3)
    close(off, {1: a * exp(-2), 3: a + c * exp(-1)})


@pytest.mark.parametrize("model, params, reads_time", [
    ("vsknn", {}, False), ("vsknn", {"weighting_time": True}, True), ("stan", {}, True),
    ("stan", {"lambda_snh": False}, False), ("vstan", {}, True), ("vstan", {"lambda_snh": None}, False)])
def test_a_knn_method_that_ignores_the_query_time_scores_from_item_ids_alone(model, params, reads_time):
    """V-SkNN without weighting_time never reads the query's time, yet a session had to come with timestamps to be
    recommended for (QA helper-66); the times still order the stored sessions."""
    lrn = learner(model, {"k": 100, **params}, TRAIN, DAYS)
    assert lrn.input_names == ["item", "t"]
    assert getattr(lrn, "scoring_names", lrn.input_names) == (["item", "t"] if reads_time else ["item"])
    if not reads_time:  # the same scores with and without the query's time
        np.testing.assert_array_equal(scores(lrn, [[2, 3]], [5 * DAY]), scores(lrn, [[2, 3]]))
        # a session that still carries the time (the form these models needed before) is taken, its time ignored
        from sessrec.recommend import Recommender

        rec = Recommender(lrn, schema(), max_len=5)
        plain = rec.recommend([[2, 3]], k=3)
        assert rec.recommend([{"item": [2, 3], "t": [1.0, 2.0]}], k=3).ids == plain.ids
        assert rec.encode({"items": [2, 3], "features": {"t": [1.0, 2.0]}}).ids.tolist() == [2, 3]


def test_repeated_items_use_their_last_position():
    # prefix [3, 1, 3] (L = 3): 3 last at position 3, 1 at 2. V-SkNN div weights 3 -> 1, 1 -> 2/3,
    # 2 distinct items: sim A = (1 + 2/3)/2 = 5/6, C = 1/2; step 1 for both (3 is last).
    s = vsknn({"normalize": False, "push_reminders": True}, [[3, 1, 3]])[0]
    # push_reminders: 3 occurs twice (x3), 1 once (x2)
    close(s, {1: 5 / 6 * 2, 2: 5 / 6 + 1 / 2, 3: (5 / 6 + 1 / 2) * 3, 5: 1 / 2})


def test_incremental_windows_and_idf():
    """A second window adds to the store: earlier windows stay candidates, IDF counts both."""
    lrn = learner("vsknn", {"normalize": False, "idf_weighting": 1}, [A, B], DAYS[:2])
    from sessrec.data.loader import SessionTensors
    from tests.baselines.conftest import batch

    lrn.fit_window(SessionTensors(batch([C, D], DAYS[2:]), "item"), 2)
    s = scores(lrn, [[1, 3]], [5 * DAY])[0]
    close(s, {1: 0.75 * (1 + log(4)), 2: 1.25 * (1 + log(4 / 3)), 5: 0.5 * (1 + log(4))})


def test_without_a_time_feature_recent_means_later_rows():
    # no time column: A, B, C, D are in that order; sample_size 1 keeps C among {A, C}
    lrn = learner("vsknn", {"k": 100, "sample_size": 1}, TRAIN)
    s = scores(lrn, [[1, 3]])[0]
    close(s, {1: 0.0, 2: 1.0, 3: 1.0, 5: 1.0})


def test_unknown_prefix_items_give_no_evidence():
    s = vsknn({}, [[8, 9]])[0]
    assert (s[1:8] == 0).all() and np.isneginf(s[UNSEEN]).all()


def test_finish_masks_unseen_items_in_place_without_copying_the_scores():
    """The scores are [batch, catalog] float64: a copy is another such array per batch (GBs on a large catalog)."""
    from sessrec.baselines.knn import finish

    scores = np.array([[0.0, 2.0, 0.0, 1.0], [0.0, 0.0, 3.0, 1.0]])
    out = finish(scores, np.array([False, True, False, True]))
    assert np.shares_memory(out.numpy(), scores)
    assert out.tolist() == [[2.0, -np.inf, 1.0], [0.0, -np.inf, 1.0]]


@pytest.mark.parametrize("model", ["vsknn", "stan", "vstan"])
def test_a_knn_learner_saved_and_loaded_scores_and_learns_on_as_the_original(tmp_path, model):
    """The state (stored sessions, item counts, how times are read) makes the same scores, and the same ones after
    one more window: a checkpoint resumes without refitting, and is recommended from and served."""
    from sessrec.checkpoint import read_state, write_state
    from sessrec.data.loader import SessionTensors
    from tests.baselines.conftest import batch

    sessions, days = [[1, 2, 3], [2, 3, 4], [5, 6], [1, 3, 5, 7]], [DAY, 2 * DAY, 2.5 * DAY, 3 * DAY]
    fitted = learner(model, {}, sessions, days)
    write_state(tmp_path / "knn.safetensors", fitted.state_dict()["model"])
    loaded = learner(model, {}, [[8, 9]], [DAY])  # another store, replaced by the saved one
    loaded.load_state_dict({"model": read_state(tmp_path / "knn.safetensors")})
    queries, at = [[1, 2], [3], [5, 6, 1]], [4 * DAY] * 3
    np.testing.assert_array_equal(scores(loaded, queries, at), scores(fitted, queries, at))
    more = SessionTensors(batch([[2, 7, 8], [9, 1]], [5 * DAY, 5.5 * DAY]), "item")
    for lrn in (fitted, loaded):
        lrn.fit_window(more, 2)
    np.testing.assert_array_equal(scores(loaded, queries, [6 * DAY] * 3), scores(fitted, queries, [6 * DAY] * 3))
    other = learner(model, {}, [[1, 2]], [DAY], n_items=20)
    with pytest.raises(SessrecError, match="the saved sessions are over 9 items, this schema's over 19"):
        other.load_state_dict(fitted.state_dict())
