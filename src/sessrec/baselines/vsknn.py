"""V-SkNN: vector multiplication session-kNN (Ludewig & Jannach), session-rec's ``VMContextKNN``.

For a session prefix ``s = (s_1..s_L)`` (repeats counted):

* item weights ``w(i) = weighting(p_i, L)`` with ``p_i`` the last position of item ``i`` in ``s``
  (``idf(i)`` instead with ``idf_weighting_session``);
* candidates: the ``sample_size`` most recent training sessions sharing an item with ``s``;
* ``sim(s, n) = sum_{i in s & n} w(i) / |distinct items of s|`` (``vec`` in session-rec: the
  ``similarity`` argument is ignored there, and here), times ``(7/8)^round(days apart)`` with
  ``weighting_time`` (the days counted as :func:`knn.time_gaps` does: a session after the query is 0
  days old, and a query more than ``FAR_DAYS`` after its newest candidate counts whole days from it,
  since ``(7/8)^days`` underflows to 0 from ~5,300 days on); only ``sim > 0`` counts; the ``k`` most
  similar are the neighbours;
* ``score(j) = sum_n sim(s, n) * (1 + idf_weighting * idf(j)) * weighting_score(step_n)`` over
  neighbours containing ``j``, where ``step_n`` is how far from the end of ``s`` the most recent
  item shared with ``n`` is (1 = the last item); without ``remind`` items of ``s`` get 0;
* ``push_reminders`` multiplies the score of each item of ``s`` by (its count in ``s`` + 1);
  ``normalize`` divides by the maximum score.

IDF is ``log(#training sessions / #interactions of the item)`` over all windows so far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sessrec.baselines import knn
from sessrec.baselines.params import at_least, choice, parse_params, unsupported
from sessrec.baselines.sessions import Encoded, time_feature
from sessrec.config import ExperimentConfig
from sessrec.errors import warn_once
from sessrec.schema import Schema

WEIGHTINGS = ("linear", "same", "div", "log", "quadratic")
NAME = "vsknn"
FAR_DAYS = knn.FAR_DECAYS / math.log(8 / 7)  # 374.4 days: (7/8)^days = e^-FAR_DECAYS


@dataclass
class VSKNNParams:
    """``VMContextKNN`` constructor arguments (session-rec / hf4rec), same names and defaults.

    ``k`` has no default in the original constructor; 100 is its docstring's default.
    """

    k: int = 100
    sample_size: int = 1000
    sampling: str = "recent"
    similarity: str = "cosine"
    weighting: str = "div"
    dwelling_time: bool = False
    last_n_days: int | None = None
    last_n_clicks: int | None = None
    remind: bool = True
    push_reminders: bool = False
    add_reminders: bool = False
    extend: bool = False
    weighting_score: str = "div"
    weighting_time: bool = False
    normalize: bool = True
    idf_weighting: float | bool = False
    idf_weighting_session: bool = False

    def check(self) -> None:
        knn.check_neighbourhood(NAME, self.k, self.sample_size, self.sampling, self.extend)
        choice(NAME, "weighting", self.weighting, WEIGHTINGS)
        choice(NAME, "weighting_score", self.weighting_score, WEIGHTINGS)
        if self.last_n_clicks is not None:
            at_least(NAME, "last_n_clicks", self.last_n_clicks, 1)
        if self.similarity != "cosine":
            warn_once(f"vsknn: similarity={self.similarity!r} is ignored, as in the paper's hf4rec VMContextKNN (the "
                      "similarity is always the position-weighted overlap 'vec')")
        why = "the paper never used it"
        if self.dwelling_time:
            unsupported(NAME, "dwelling_time", True, why)
        if self.last_n_days is not None:
            unsupported(NAME, "last_n_days", self.last_n_days, why + "; use --no-incremental-training with "
                        "--training-time-window-size for a sliding training window")
        if self.add_reminders:
            unsupported(NAME, "add_reminders", True, why)

    @property
    def idf_factor(self) -> float:
        return float(self.idf_weighting) if self.idf_weighting is not False else 0.0


def position_weight(name: str, pos: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Weight of a query item by its position ``pos`` (1-based) in a prefix of ``length`` items."""
    pos, length = pos.astype(np.float64), length.astype(np.float64)
    if name == "linear":  # session-rec: 0 beyond the 10th position, negative far from the end
        return np.where(pos <= 10, 1.0 - 0.1 * (length - pos), 0.0)
    if name == "same":
        return np.ones_like(pos)
    if name == "div":
        return pos / length
    if name == "log":
        return 1.0 / np.log10(length - pos + 1.7)
    return (pos / length) ** 2


def step_weight(name: str, step: np.ndarray) -> np.ndarray:
    """Weight of a neighbour by the distance ``step`` (1 = last item) of its latest shared item."""
    step = step.astype(np.float64)
    if name == "linear":
        return np.where(step <= 100, 1.0 - 0.1 * step, 0.0)
    if name == "same":
        return np.ones_like(step)
    if name == "div":
        return 1.0 / step
    if name == "log":
        return 1.0 / np.log10(step + 1.7)
    return 1.0 / step**2


def last_clicks(q: Encoded, n: int) -> tuple[Encoded, np.ndarray]:
    """The query restricted to its last ``n`` clicks (positions renumbered from 1), and which
    distinct items of ``q`` it keeps. (Counts are only used on the full query.)"""
    cut = np.maximum(q.length - n, 0)
    keep = q.last_pos > cut[q.row]
    return Encoded(q.n_rows, q.row[keep], q.item[keep], q.last_pos[keep] - cut[q.row[keep]], q.count[keep],
                   q.length - cut), keep


@dataclass
class VSKNN:
    """The V-SkNN scorer (see the module docstring)."""

    p: VSKNNParams
    seed: int  # of the random sampling of candidates (knn.candidates)
    name: str = NAME

    @property
    def reads_time(self) -> bool:
        return self.p.weighting_time

    def item_scores(self, store: knn.SessionStore, q: Encoded, query_time: np.ndarray | None) -> np.ndarray:
        p = self.p
        s, inside = (q, None) if p.last_n_clicks is None else last_clicks(q, p.last_n_clicks)
        weights = store.idf[s.item] if p.idf_weighting_session else position_weight(p.weighting, s.last_pos, s.length[s.row])
        if inside is not None:  # items clicked only before the last n clicks find candidates, with weight 0
            weights_in_window = weights
            weights = np.zeros(q.item.size)
            weights[inside] = weights_in_window
        cand = knn.candidates(store, q, p.sample_size, p.sampling, self.seed, weights)  # from every item of the prefix
        sim = cand.overlap / np.maximum(s.n_unique[cand.row], 1)
        if p.weighting_time and query_time is not None:
            gaps = knn.time_gaps(query_time, store.time[cand.session], cand.row, FAR_DAYS * 86400.0, unit=86400.0)
            sim = sim * (7.0 / 8.0) ** np.round(gaps / 86400.0)
        sim = np.where(sim > 0, sim, -np.inf)
        nb = knn.top_k(cand, sim, p.k, q.n_rows)
        ex = knn.expand(store, s, nb)
        step = s.length[nb.row] - ex.max_per_pair(ex.query_pos) + 1
        vote = (nb.sim * step_weight(p.weighting_score, step))[ex.pair]
        if not p.remind:
            vote = np.where(ex.query_pos > 0, 0.0, vote)
        scores = knn.vote(q.n_rows, store.n_items, nb.row[ex.pair], ex.item, vote)
        if p.idf_factor:
            scores *= 1.0 + p.idf_factor * store.idf
        if p.push_reminders:
            known = store.seen[q.item]
            scores[q.row[known], q.item[known]] *= q.count[known] + 1
        if p.normalize:  # session-rec divides by the max even when it is <= 0 (NaN / reversed ranking): not here
            # In place, and unseen items set to -inf first (as knn.finish does anyway): a [rows, catalog]
            # temporary, or a masked max (20x a plain one), cost more than the scoring on a large catalog.
            scores[:, ~store.seen] = -np.inf
            top = scores.max(axis=1, keepdims=True)
            np.divide(scores, top, out=scores, where=top > 0)
        return scores


def build(cfg: ExperimentConfig, schema: Schema) -> knn.KnnLearner:
    params = parse_params(VSKNNParams, cfg.baseline_params, NAME)
    if params.weighting_time and time_feature(schema) is None:
        unsupported(NAME, "weighting_time", True, "the schema has no time-tagged feature")
    return knn.KnnLearner(schema, VSKNN(params, cfg.seed))
