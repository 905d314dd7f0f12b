"""A slow, obviously-correct reference of V-SkNN / STAN / VSTAN: one query at a time, plain loops
over sets and dicts, following the published algorithms step by step (as session-rec does).
Ties between neighbours go to the more recent session, as in the vectorised implementation."""

from __future__ import annotations

from collections import Counter, defaultdict
from math import exp, log, log10, sqrt

DAY = 86400.0


def position_weight(name: str, i: int, n: int) -> float:
    return {"linear": (1 - 0.1 * (n - i)) if i <= 10 else 0.0, "same": 1.0, "div": i / n,
            "log": 1 / log10(n - i + 1.7), "quadratic": (i / n) ** 2}[name]


def step_weight(name: str, i: int) -> float:
    return {"linear": (1 - 0.1 * i) if i <= 100 else 0.0, "same": 1.0, "div": 1 / i,
            "log": 1 / log10(i + 1.7), "quadratic": 1 / (i * i)}[name]


def reference_scores(method: str, p: dict, train: list[list[int]], times: list[float], query: list[int],
                     qtime: float, n_items: int) -> list[float]:
    """Scores of items 1..n_items-1 (unseen items: -inf)."""
    freq = Counter(i for s in train for i in s)
    idf = {i: log(len(train) / f) for i, f in freq.items()}
    full = query
    order = sorted(range(len(train)), key=lambda s: (times[s], s))  # oldest first
    cands = [s for s in order if set(train[s]) & set(full)]  # from every item of the prefix
    if p.get("last_n_clicks"):  # V-SkNN: similarity, decay and reminders from the last n clicks only
        query = query[-p["last_n_clicks"]:]
    qset = set(query)
    last = {item: pos for pos, item in enumerate(query, 1)}
    n = len(query)
    if p["sample_size"] and len(cands) > p["sample_size"]:
        cands = cands[-p["sample_size"]:]
    rank = {s: r for r, s in enumerate(order)}
    sims = []
    for s in cands:
        nset = set(train[s])
        if method == "vsknn":
            w = {i: position_weight(p["weighting"], last[i], n) for i in last}
            sim = sum(w[i] for i in qset & nset) / len(w) if qset & nset else 0.0
            if sim <= 0:
                continue
        else:
            w = {i: exp((last[i] - n) / p["lambda_spw"]) for i in last}
            sim = sum(w[i] for i in qset & nset) / (sqrt(sum(v * v for v in w.values())) * sqrt(len(nset)))
            sim *= exp(-(qtime - times[s]) / (p["lambda_snh"] * DAY))
        sims.append((sim, rank[s], s))
    neighbours = sorted(sims, reverse=True)[: p["k"]]
    scores: dict[int, float] = defaultdict(float)
    for sim, _, s in neighbours:
        items = train[s]
        nset = set(items)
        if method == "vsknn":
            step = next(st for st, it in enumerate(reversed(query), 1) if it in nset)
            pair = sim * step_weight(p["weighting_score"], step)
        else:
            pos_last = {it: pos for pos, it in enumerate(items, 1)}
            anchor = max(pos for pos, it in enumerate(items, 1) if it in qset)
            pair = sim
            if method == "vstan":
                pair *= exp((max(last[i] for i in nset & qset) - n) / p["lambda_ipw"])
        for j in nset:
            if not p["remind"] and j in qset:
                continue
            v = pair
            if method != "vsknn":
                v *= exp(-abs(pos_last[j] - anchor) / p["lambda_inh"])
            factor = p.get("idf_weighting", 0) if method == "vsknn" else p.get("lambda_idf", 0)
            scores[j] += v * (1 + factor * idf[j])
    out = [scores.get(j, 0.0) if j in freq else float("-inf") for j in range(1, n_items)]
    if method == "vsknn" and p.get("push_reminders"):
        counts = Counter(full)
        out = [v * (counts[j] + 1) if j in counts and j in freq else v for j, v in zip(range(1, n_items), out)]
    if method == "vsknn" and p.get("normalize", True):
        top = max(out)
        if top > 0:
            out = [v / top for v in out]
    return out
