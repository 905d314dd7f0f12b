"""Random but valid time windows for any schema: test data in a data set's exact column layout.

``write_synthetic_windows(out_dir, schema)`` writes ``0001/ ... /NNNN/{train,valid,test}.parquet``
with one list column per schema feature (plus a ``session_id`` column), so a pipeline can be run
on the layout of REES46, YOOCHOOSE, G1, ADRESSA or your own schema before the real data is at
hand. The values respect the schema (ids in ``1..cardinality-1``, continuous values inside their
``float_domain``, increasing timestamps) and carry a little signal for models to pick up: item
popularity is Zipf-like, half of the transitions follow a fixed successor of the previous item,
and categorical features tagged ``item`` are a function of the item. The bundled sample data set
(``sessrec.data.sample``) is the realistic one; this generator is for layouts.

``write_realistic_windows(out_dir)`` writes small windows with the awkward properties of real click
logs, for testing every model end to end on them (see its docstring): repeated items, length-1
sessions and sessions longer than ``session_seq_length_max``, items first seen in a later window
(the catalog's largest id among them), a long-tailed popularity, a window smaller than one batch,
side features with an "unknown" value, rare values and outliers, and timestamps.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sessrec.schema import CATEGORICAL, CONTINUOUS, ITEM_ID, LIST, TIME, FeatureSpec, Schema

DAY = 86400


def small_cardinalities(schema: Schema, max_cardinality: int) -> Schema:
    """The same schema with every categorical cardinality capped (``int_domain.max <= max_cardinality - 1``)."""
    feats = [replace(f, max_value=min(f.max_value, max_cardinality - 1)) if f.dtype == "int" and f.max_value is not None else f
             for f in schema.features]
    return Schema(feats, source=f"{schema.source} (cardinalities <= {max_cardinality})")


def _column(f: FeatureSpec, items: np.ndarray, offsets: np.ndarray, window: int, rng: np.random.Generator) -> np.ndarray:
    n = items.size
    if f.is_item_id:
        return items
    if f.dtype == "int":
        card = f.cardinality or 100
        if "item" in f.tags:  # an item attribute (category, brand, ...): fixed per item
            return (items * 7919 % (card - 1)) + 1
        return rng.integers(1, card, n)
    if f.is_time:
        starts = (window - 1) * DAY + rng.uniform(0, DAY - 3600, offsets.size - 1)
        gaps = rng.exponential(60.0, n)
        first = np.zeros(n, dtype=bool)
        first[offsets[:-1]] = True
        t = np.cumsum(np.where(first, 0.0, gaps))
        t -= np.repeat(t[offsets[:-1]], np.diff(offsets))  # restart the clock at each session
        return 1569888000.0 + np.repeat(starts, np.diff(offsets)) + t
    lo = f.min_value if f.min_value is not None and f.min_value > -1e3 else -3.0
    hi = f.max_value if f.max_value is not None and f.max_value < 1e3 else 3.0
    return rng.uniform(lo, hi, n) if hi > lo else np.full(n, lo)


def write_synthetic_windows(out_dir: str | Path, schema: Schema, n_windows: int = 4, sessions_per_window: int = 200,
                            seed: int = 0, pad_digits: int = 4, max_length: int = 20) -> Path:
    """Write ``n_windows`` windows of random sessions in ``schema``'s columns; each window is split 80/10/10."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    n_items = schema.n_items
    ids = np.arange(1, n_items)
    successor = rng.permutation(ids)  # successor of item i is successor[i - 1]
    pop = 1.0 / np.arange(1, n_items) ** 0.8
    rng.shuffle(pop)
    for w in range(1, n_windows + 1):
        p = pop * np.exp(rng.normal(0.0, 0.3, pop.size))  # popularity drifts between windows
        p /= p.sum()
        lengths = np.minimum(2 + rng.geometric(0.3, sessions_per_window) - 1, max_length)
        offsets = np.r_[0, np.cumsum(lengths)]
        items = rng.choice(ids, offsets[-1], p=p)
        follow = rng.random(offsets[-1]) < 0.5
        follow[offsets[:-1]] = False
        for pos in np.nonzero(follow)[0]:  # sequential: a position may follow a successor chain
            items[pos] = successor[items[pos - 1] - 1]
        columns = {f.name: _column(f, items, offsets, w, rng) for f in schema.features}
        order = rng.permutation(sessions_per_window)
        n_train, n_valid = int(0.8 * order.size), max(1, int(0.1 * order.size))
        splits = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid], "test": order[n_train + n_valid:]}
        folder = out_dir / str(w).zfill(pad_digits)
        folder.mkdir(parents=True, exist_ok=True)
        for split, rows in splits.items():
            rows = np.sort(rows)
            table = {"session_id": pa.array(w * 1_000_000 + rows, pa.int64())}
            for f in schema.features:
                vtype = pa.int64() if f.dtype == "int" else (pa.float64() if f.is_time else pa.float32())
                values = columns[f.name]
                table[f.name] = pa.array([values[offsets[r]:offsets[r + 1]] for r in rows], pa.list_(vtype))
            pq.write_table(pa.table(table), folder / f"{split}.parquet")
    return out_dir


# ---- realistic click logs ---------------------------------------------------------------------

REALISTIC_SIZES = (150, 7, 450, 150)  # sessions per window: a normal one, a tiny one, a large one, a normal one
REALISTIC_ITEMS = 300  # largest item id (cardinality 301)


def realistic_schema(n_items: int = REALISTIC_ITEMS, n_categories: int = 12, max_length: int = 20) -> Schema:
    """The columns of :func:`write_realistic_windows`: ``item_id`` (ids ``1..n_items``), ``category`` (an item
    attribute, 1 = unknown), ``device`` (per session, 1 = empty), ``price`` (standardised, with outliers),
    ``item_age_days`` (not normalised) and ``timestamp`` (unix seconds)."""
    vc = {"value_count_min": 1, "value_count_max": max_length}
    return Schema([
        FeatureSpec("item_id", "int", (ITEM_ID, LIST, CATEGORICAL), 1, n_items, **vc),
        FeatureSpec("category", "int", (LIST, CATEGORICAL, "item"), 1, n_categories, **vc),
        FeatureSpec("device", "int", (LIST, CATEGORICAL), 1, 4, **vc),
        FeatureSpec("price", "float", (LIST, CONTINUOUS, "item"), -60.0, 60.0, **vc),
        FeatureSpec("item_age_days", "float", (LIST, CONTINUOUS, "item"), 0.0, 1000.0, **vc),
        FeatureSpec("timestamp", "float", (LIST, TIME), 0.0, 0.0, **vc),
    ], source="realistic")


def _realistic_length(rng: np.random.Generator, max_length: int) -> int:
    """Mostly 2-3 items; 12 % single clicks; a geometric tail; 4 % longer than ``max_length``."""
    u = rng.random()
    if u < 0.12:
        return 1
    if u < 0.50:
        return 2
    if u < 0.72:
        return 3
    if u < 0.96:
        return int(min(3 + rng.geometric(0.25), max_length))
    return int(rng.integers(max_length + 1, max_length + 16))


def _realistic_session(rng: np.random.Generator, length: int, pop: np.ndarray, successors: np.ndarray) -> list[int]:
    """Items of one session: popular items, successor chains, consecutive and earlier repeats."""
    s = [int(rng.choice(pop.size, p=pop))]
    while len(s) < length:
        u = rng.random()
        if u < 0.12:
            s.append(s[-1])  # a reload / a second look: consecutive repeat
        elif u < 0.24 and len(s) >= 2:
            s.append(s[int(rng.integers(0, len(s) - 1))])  # back to an earlier item
        elif u < 0.60:
            nxt = int(rng.choice(successors[s[-1]]))
            s.append(nxt if pop[nxt] > 0 else int(rng.choice(pop.size, p=pop)))
        else:
            s.append(int(rng.choice(pop.size, p=pop)))
    return s


def write_realistic_windows(out_dir: str | Path, sizes: tuple[int, ...] = REALISTIC_SIZES, n_items: int = REALISTIC_ITEMS,
                            seed: int = 0, max_length: int = 20) -> Schema:
    """Write windows ``0001..`` of click-log-like sessions and ``schema.pbtxt``; returns the schema.

    Window ``w`` has ``sizes[w - 1]`` sessions: valid and test get ``max(2, n // 10)`` each, train the
    rest (the default tiny window 2 trains on 3 sessions, fewer than one batch). What makes them
    realistic, and hard:

    * sessions: 12 % single clicks, most of 2-3 items, a geometric tail, 4 % longer than
      ``max_length`` (up to 15 more); consecutive repeats and returns to an earlier item;
    * items: Zipf popularity (exponent 1.1) that drifts between windows; 12 % of the catalog is
      launched in windows 2.. (ids in increasing launch order, so the newest are the largest), popular
      while new; the largest id ``n_items`` is launched in the last window, so it is never trained
      on: the last window's valid and test files each have a session ending with it and one with it
      before the end, plus one session longer than ``max_length``;
    * ``category``: an item attribute, 1 (unknown) for 10 % of the items, the largest value for one
      item only; ``device``: per session, 1 (empty) for 20 % of them, value 4 for 2 %;
    * ``price``: standardised log price, 2 % of items 20-60 standard deviations away;
      ``item_age_days``: days since launch, not normalised (up to 1000);
    * ``timestamp``: seconds, increasing within a session (exponential gaps, some of an hour).
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    n_windows = len(sizes)
    schema = realistic_schema(n_items, max_length=max_length)
    n_cat = schema["category"].cardinality - 1
    n_new = max(n_windows - 1, int(0.12 * n_items))
    launch = np.ones(n_items + 1, dtype=np.int64)
    launch[n_items - n_new + 1:] = np.sort(rng.integers(2, n_windows + 1, n_new))
    launch[n_items] = n_windows
    base = np.zeros(n_items + 1)
    base[1:] = rng.permutation(1.0 / np.arange(1, n_items + 1) ** 1.1)
    successors = rng.integers(1, n_items + 1, (n_items + 1, 3))
    category = rng.integers(2, n_cat, n_items + 1)  # n_cat itself is kept for one rare item
    category[rng.random(n_items + 1) < 0.1] = 1
    category[int(rng.integers(1, n_items))] = n_cat
    price = rng.normal(0.0, 1.0, n_items + 1)
    outliers = rng.random(n_items + 1) < 0.02
    price[outliers] = rng.choice([-1.0, 1.0], int(outliers.sum())) * rng.uniform(20.0, 60.0, int(outliers.sum()))
    first_day = -rng.integers(0, 1000 - n_windows, n_items + 1)
    first_day[launch > 1] = launch[launch > 1]
    for w, n in enumerate(sizes, start=1):
        age = w - launch
        pop = base * np.exp(rng.normal(0.0, 0.3, base.size)) * (age >= 0) * np.where((age <= 1) & (launch > 1), 5.0, 1.0)
        pop[0] = 0.0
        pop[n_items] = 0.0  # the newest item only appears where placed below
        pop /= pop.sum()
        sessions = [_realistic_session(rng, _realistic_length(rng, max_length), pop, successors) for _ in range(n)]
        n_eval = max(2, n // 10)
        order = rng.permutation(n)
        splits = {"train": order[: n - 2 * n_eval], "valid": order[n - 2 * n_eval: n - n_eval], "test": order[n - n_eval:]}
        if w == n_windows:
            for rows in (splits["valid"], splits["test"]):
                sessions[rows[0]] = sessions[rows[0]][:2] + [n_items] if len(sessions[rows[0]]) >= 2 else [sessions[rows[0]][0], n_items]
                sessions[rows[1]] = [n_items] + sessions[rows[1]] + [sessions[rows[1]][-1] % (n_items - 1) + 1]
                if len(rows) > 2:
                    sessions[rows[2]] = _realistic_session(rng, max_length + 4, pop, successors)
        starts = DAY * (w - 1) + rng.uniform(0, DAY - 7200, n)
        device = rng.choice([1, 2, 3, 4], n, p=[0.2, 0.5, 0.28, 0.02])
        folder = out_dir / str(w).zfill(4)
        folder.mkdir(parents=True, exist_ok=True)
        for split, rows in splits.items():
            rows = rows[np.argsort(starts[rows], kind="stable")]
            cols: dict[str, list] = {name: [] for name in ("item_id", "category", "device", "price", "item_age_days", "timestamp")}
            for r in rows:
                items = np.asarray(sessions[r])
                gaps = np.where(rng.random(items.size) < 0.05, 3600.0, 1.0) * rng.exponential(40.0, items.size)
                gaps[0] = 0.0
                cols["item_id"].append(items)
                cols["category"].append(category[items])
                cols["device"].append(np.full(items.size, device[r]))
                cols["price"].append(price[items])
                cols["item_age_days"].append((w - first_day[items]).astype(np.float64))
                cols["timestamp"].append(1569888000.0 + starts[r] + np.cumsum(gaps))
            types = {"item_id": pa.int64(), "category": pa.int64(), "device": pa.int64(), "price": pa.float32(),
                     "item_age_days": pa.float32(), "timestamp": pa.float64()}
            table = {"session_id": pa.array(w * 100_000 + rows, pa.int64())}
            table.update({k: pa.array(v, pa.list_(types[k])) for k, v in cols.items()})
            pq.write_table(pa.table(table), folder / f"{split}.parquet")
    schema.save(out_dir / "schema.pbtxt")
    return schema
