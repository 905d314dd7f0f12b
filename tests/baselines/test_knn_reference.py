"""The vectorised kNN methods give the same scores as a loop-by-loop reference on random sessions."""

import numpy as np
import pytest

from sessrec.baselines import knn
from sessrec.baselines.sessions import encode
from sessrec.data.loader import SessionTensors
from tests.baselines.conftest import DAY, batch, learner, scores
from tests.baselines.reference_knn import reference_scores

N_ITEMS = 40


@pytest.fixture(scope="module")
def random_data():
    rng = np.random.default_rng(3)
    pop = 1 / np.arange(1, N_ITEMS) ** 0.8  # item 39 is never drawn often; some are unseen

    def session():
        return [int(x) for x in rng.choice(np.arange(1, N_ITEMS - 3), size=rng.integers(1, 9), p=pop[:-3] / pop[:-3].sum())]

    train = [session() for _ in range(160)]
    times = list(rng.uniform(0, 10 * DAY, size=len(train)))
    queries = [session() for _ in range(40)]
    qtimes = list(rng.uniform(10 * DAY, 12 * DAY, size=len(queries)))
    return train, times, queries, qtimes


CASES = [
    ("vsknn", {"k": 1000, "sample_size": 0, "weighting": "div", "weighting_score": "div"}),
    ("vsknn", {"k": 1000, "sample_size": 25, "weighting": "quadratic", "weighting_score": "quadratic", "remind": False}),
    ("vsknn", {"k": 1000, "sample_size": 60, "weighting": "linear", "weighting_score": "linear", "push_reminders": True}),
    ("vsknn", {"k": 1000, "sample_size": 40, "weighting": "log", "weighting_score": "log", "idf_weighting": 10}),
    ("vsknn", {"k": 1000, "sample_size": 40, "weighting": "same", "weighting_score": "same", "normalize": False,
               "idf_weighting": 0.5, "push_reminders": True}),
    ("vsknn", {"k": 1000, "sample_size": 50, "weighting": "div", "weighting_score": "div", "last_n_clicks": 2,
               "push_reminders": True, "remind": False}),
    ("stan", {"k": 1000, "sample_size": 0, "lambda_spw": 1.02, "lambda_snh": 5, "lambda_inh": 2.05, "remind": True}),
    ("stan", {"k": 7, "sample_size": 30, "lambda_spw": 0.5, "lambda_snh": 1, "lambda_inh": 0.7, "remind": False}),
    ("vstan", {"k": 1000, "sample_size": 50, "lambda_spw": 2.0, "lambda_snh": 3, "lambda_inh": 1.3, "lambda_ipw": 0.8,
               "lambda_idf": 5, "remind": True}),
    ("vstan", {"k": 9, "sample_size": 0, "lambda_spw": 5.49, "lambda_snh": 80, "lambda_inh": 2.745, "lambda_ipw": 5.49,
               "lambda_idf": 1, "remind": False}),
]


@pytest.mark.parametrize("model,params", CASES)
def test_matches_the_reference(random_data, model, params):
    train, times, queries, qtimes = random_data
    half = len(train) // 2  # two windows: the second is added incrementally
    lrn = learner(model, params, train[:half], times[:half], n_items=N_ITEMS)
    lrn.fit_window(SessionTensors(batch(train[half:], times[half:]), "item"), 2)
    got = scores(lrn, queries, qtimes)[:, 1:]
    for q, (query, qtime) in enumerate(zip(queries, qtimes)):
        want = reference_scores(model, {"remind": True, **params}, train, times, query, qtime, N_ITEMS)
        np.testing.assert_allclose(got[q], want, rtol=1e-9, atol=1e-15, err_msg=f"query {q}: {query}")


def test_random_sampling_is_seeded_and_bounded(random_data):
    train, times, queries, qtimes = random_data
    params = {"k": 1000, "sample_size": 10, "sampling": "random", "normalize": False}

    def run(seed):
        lrn = learner("vsknn", params, train, times, n_items=N_ITEMS, seed=seed)
        return lrn, scores(lrn, queries, qtimes)

    lrn, a = run(1)
    _, b = run(1)
    _, c = run(2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # a query draws the same sample whatever was scored before it (a resumed run skips the evaluations it refits over)
    again = scores(lrn, queries[::-1], qtimes[::-1])[::-1]
    np.testing.assert_array_equal(again, a)
    # the sample of each query: min(10, #candidates) distinct sessions among its candidates
    q = encode(batch(queries)["item"], N_ITEMS)
    every = knn.candidates(lrn.store, q, 0, "recent", 0)
    sample = knn.candidates(lrn.store, q, 10, "random", 0)
    recent = knn.candidates(lrn.store, q, 10, "recent", 0)
    differs = 0
    for r in range(len(queries)):
        pool, got = set(every.session[every.row == r]), sample.session[sample.row == r]
        assert len(set(got)) == len(got) == min(10, len(pool)) and set(got) <= pool
        differs += set(got) != set(recent.session[recent.row == r])
    assert differs > len(queries) // 2
