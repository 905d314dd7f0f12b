"""STAN (Garg et al., SIGIR 2019) and VSTAN (Latifi et al., 2021), as session-rec's ``STAN`` and
``VSKNN_STAN``.

For a session prefix ``s = (s_1..s_L)`` (repeats counted) with last click at time ``t``:

* item weights ``w(i) = exp((p_i - L) / lambda_spw)``, ``p_i`` = last position of ``i`` in ``s``
  (all 1 when ``lambda_spw`` is off);
* candidates: the ``sample_size`` most recent training sessions sharing an item with ``s``;
* ``sim(s, n) = sum_{i in s & n} w(i) / (sqrt(sum_{i in s} w(i)^2) * sqrt(|distinct items of n|))``
  times ``exp(-(t - t_n) / (lambda_snh days))``, ``t_n`` = last click of ``n``; the ``k`` most
  similar are the neighbours (no ``sim > 0`` filter, as in the original). A stored session that ended
  after ``t`` (never in the protocol's evaluation, whose queries come after the stored windows; a
  served session dated in the past) counts as just ended: ``t - t_n`` is taken as 0, where the
  formula would weigh it up without bound (``exp`` overflows to inf beyond ~700 decays). A query more
  than ``knn.FAR_DECAYS`` decays after its newest candidate (a recommendation "now" from data years old) is
  decayed from that candidate's time instead (:func:`knn.time_gaps`): every score of the row divided
  by one factor, the same ranking, where the formula's scores all underflow to 0 (an arbitrary ranking);
* ``score(j) = sum_n sim(s, n) * exp(-|q_n(j) - q_n*| / lambda_inh)`` over neighbours containing
  ``j``, where ``q_n(j)`` is the last position of ``j`` in ``n`` and ``q_n*`` the last position in
  ``n`` of any item of ``s``; without ``remind`` items of ``s`` get 0.

VSTAN multiplies each neighbour's vote by ``(1 + lambda_idf * idf(j))`` and by
``exp((p* - L) / lambda_ipw)``, ``p*`` = last position in ``s`` of an item shared with ``n``. IDF is
``log(#training sessions / #interactions of the item)`` over all windows so far (the paper's
incremental IDF). A ``lambda_*`` of ``None`` (or ``False``) switches that factor off.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sessrec.baselines import knn
from sessrec.baselines.params import at_least, parse_params
from sessrec.baselines.sessions import Encoded, time_feature
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError, warn_once
from sessrec.schema import Schema

DAY = 86400.0


@dataclass
class STANParams:
    """``STAN`` constructor arguments (session-rec / hf4rec), same names and defaults.

    ``k`` has no default in the original constructor; 100 is its docstring's default.
    """

    k: int = 100
    sample_size: int = 5000
    sampling: str = "recent"
    remind: bool = True
    extend: bool = False
    lambda_spw: float | bool | None = 1.02
    lambda_snh: float | bool | None = 5.0
    lambda_inh: float | bool | None = 2.05

    model = "stan"

    def check(self) -> None:
        knn.check_neighbourhood(self.model, self.k, self.sample_size, self.sampling, self.extend)
        for name in ("lambda_spw", "lambda_snh", "lambda_inh", "lambda_ipw"):
            value = getattr(self, name, None)
            if value is True:
                raise _not_a_number(self.model, name)
            if value is not None and value is not False:
                at_least(self.model, name, value, 0.0, strict=True)

    def on(self, name: str) -> float | None:
        """The value of a ``lambda_*`` factor, or ``None`` when it is switched off."""
        value = getattr(self, name)
        return None if value is None or value is False else float(value)


@dataclass
class VSTANParams(STANParams):
    """``VSKNN_STAN`` constructor arguments: STAN's plus ``similarity``, ``lambda_ipw``, ``lambda_idf``."""

    similarity: str = "cosine"
    lambda_ipw: float | bool | None = 1.02
    lambda_idf: float | bool | None = 5.0

    model = "vstan"

    def check(self) -> None:
        super().check()
        if self.lambda_idf is True:
            raise _not_a_number(self.model, "lambda_idf")
        if self.lambda_idf is not None and self.lambda_idf is not False:
            at_least(self.model, "lambda_idf", self.lambda_idf, 0.0)
        if self.similarity != "cosine":
            warn_once(f"vstan: similarity={self.similarity!r} is ignored, as in the paper's hf4rec VSKNN_STAN (always the "
                      "weighted cosine)")


def _not_a_number(model: str, name: str) -> SessrecError:
    return SessrecError(f"baseline_params: {model} parameter '{name}' must be a number, or False/None to switch it off")


@dataclass
class STAN:
    """The STAN / VSTAN scorer (VSTAN when ``p`` is :class:`VSTANParams`)."""

    p: STANParams
    seed: int  # of the random sampling of candidates (knn.candidates)

    @property
    def name(self) -> str:
        return self.p.model

    @property
    def reads_time(self) -> bool:
        return self.p.on("lambda_snh") is not None

    def item_scores(self, store: knn.SessionStore, q: Encoded, query_time: np.ndarray | None) -> np.ndarray:
        p = self.p
        vstan = isinstance(p, VSTANParams)
        spw = p.on("lambda_spw")
        w = np.exp((q.last_pos - q.length[q.row]) / spw) if spw is not None else np.ones(q.item.size)  # else plain cosine
        cand = knn.candidates(store, q, p.sample_size, p.sampling, self.seed, w if spw is not None else None)
        norm = np.bincount(q.row, weights=w * w, minlength=q.n_rows)
        sim = cand.overlap / (np.sqrt(norm[cand.row]) * np.sqrt(store.n_unique[cand.session]))
        snh = p.on("lambda_snh")
        if snh is not None and query_time is not None:
            gaps = knn.time_gaps(query_time, store.time[cand.session], cand.row, knn.FAR_DECAYS * snh * DAY)
            sim = sim * np.exp(-gaps / (snh * DAY))
        nb = knn.top_k(cand, sim, p.k, q.n_rows)
        ex = knn.expand(store, q, nb)
        pair_weight = nb.sim
        ipw = p.on("lambda_ipw") if vstan else None
        if ipw is not None:
            pair_weight = pair_weight * np.exp((ex.max_per_pair(ex.query_pos) - q.length[nb.row]) / ipw)
        vote = pair_weight[ex.pair]
        inh = p.on("lambda_inh")
        if inh is not None:
            anchor = ex.max_per_pair(np.where(ex.query_pos > 0, ex.neighbour_pos, 0.0))
            vote = vote * np.exp(-np.abs(ex.neighbour_pos - anchor[ex.pair]) / inh)
        if not p.remind:
            vote = np.where(ex.query_pos > 0, 0.0, vote)
        scores = knn.vote(q.n_rows, store.n_items, nb.row[ex.pair], ex.item, vote)
        idf = p.on("lambda_idf") if vstan else None
        if idf:
            scores *= 1.0 + idf * store.idf
        return scores


def _build(cls: type[STANParams], cfg: ExperimentConfig, schema: Schema) -> knn.KnnLearner:
    params = parse_params(cls, cfg.baseline_params, cls.model)
    if params.on("lambda_snh") is not None and time_feature(schema) is None:
        warn_once(f"{cls.model}: the schema has no time feature: the session-recency decay (lambda_snh) is off")
    return knn.KnnLearner(schema, STAN(params, cfg.seed))


def build_stan(cfg: ExperimentConfig, schema: Schema) -> knn.KnnLearner:
    return _build(STANParams, cfg, schema)


def build_vstan(cfg: ExperimentConfig, schema: Schema) -> knn.KnnLearner:
    return _build(VSTANParams, cfg, schema)
