"""A raw click log with the habits of real e-commerce browsing, for ``sessrec prepare events``.

    python bench/click_log.py OUT.csv [--days 14] [--sessions-per-day 6000] [--items 20000] [--seed 0]
    sessrec prepare events --input OUT.csv --session-col session --item-col item --time-col ts \\
        --categorical-cols category --output DATA

Unlike the bundled sample (whose sessions follow a tidy item-to-item chain), these sessions have
what makes real clicks hard: a steep long tail (Zipf popularity over 20,000 items, most seen a
handful of times), items launched every day (unseen in earlier windows, popular while fresh),
repeated views (the same item again, consecutively or after a detour), short sessions (half have
two or three items after consecutive repeats are removed) with a long tail of long ones, and a
next click that is only partly predictable from the current item (its neighbours in the same
category), partly a return to an earlier item, partly a jump to anything popular.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import polars as pl

DAY = 86400
T0 = 1569888000  # 2019-10-01 UTC


def click_log(days: int = 14, sessions_per_day: int = 6000, n_items: int = 20000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n_cat = max(10, n_items // 60)
    category = rng.integers(0, n_cat, n_items)
    # each day launches ~2 % of the catalogue; the rest exists from day 0
    launch = np.where(rng.random(n_items) < 0.3, rng.integers(1, days, n_items), 0)
    base = 1.0 / np.arange(1, n_items + 1) ** 1.05
    rng.shuffle(base)
    members = [np.flatnonzero(category == c) for c in range(n_cat)]
    # 8 neighbours per item, mostly from its category, by popularity
    neighbours = np.empty((n_items, 8), dtype=np.int64)
    for m in members:
        p = base[m] / base[m].sum()
        neighbours[m] = rng.choice(m, size=(m.size, 8), p=p)
    stray = rng.random((n_items, 8)) < 0.2
    neighbours[stray] = rng.integers(0, n_items, int(stray.sum()))

    rows_session, rows_item, rows_ts = [], [], []
    sid = 0
    for day in range(days):
        age = day - launch
        fresh = np.where(age >= 0, 1.0 + 6.0 * np.exp(-age / 2.0), 0.0)  # new items are popular for a few days
        pop = base * fresh * rng.lognormal(0.0, 0.3, n_items)  # daily drift
        pop /= pop.sum()
        cum = np.cumsum(pop)
        starts = rng.choice(n_items, sessions_per_day, p=pop)
        lengths = np.minimum(1 + rng.geometric(0.22, sessions_per_day), 60)
        jumps = np.searchsorted(cum, rng.random(int(lengths.sum()) * 2)).clip(max=n_items - 1)
        j = 0
        begin = T0 + day * DAY + rng.integers(0, DAY - 3600, sessions_per_day)
        for s in range(sessions_per_day):
            items = [int(starts[s])]
            for _ in range(int(lengths[s]) - 1):
                cur = items[-1]
                u = rng.random()
                if u < 0.22:
                    nxt = cur  # refresh / view again
                elif u < 0.37 and len(items) > 1:
                    nxt = items[int(rng.integers(0, len(items)))]  # back to an earlier item
                elif u < 0.77:
                    nxt = int(neighbours[cur, rng.integers(0, 8)])  # a similar item
                else:
                    nxt, j = int(jumps[j]), j + 1  # anything popular
                if launch[nxt] > day:  # not launched yet: stay
                    nxt = cur
                items.append(nxt)
            gaps = np.cumsum(rng.exponential(45.0, len(items)).astype(np.int64))
            rows_session.extend([sid] * len(items))
            rows_item.extend(items)
            rows_ts.extend((begin[s] + gaps).tolist())
            sid += 1
    item = np.asarray(rows_item)
    return pl.DataFrame({"session": rows_session, "item": item + 1000, "category": category[item] + 1,
                         "ts": np.asarray(rows_ts)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--sessions-per-day", type=int, default=6000)
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    df = click_log(args.days, args.sessions_per_day, args.items, args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    df.write_csv(args.out)
    print(f"wrote {df.height:,} clicks of {df['session'].n_unique():,} sessions, {df['item'].n_unique():,} items to {args.out}")


if __name__ == "__main__":
    main()
