"""The bundled sample data set: synthetic e-commerce sessions in the REES46 layout.

Daily windows ``0001..0006`` with ``train/valid/test.parquet`` (an 80/10/10 random split of
each day's sessions, as the paper did for REES46) and a REES46-style ``schema.pbtxt``.

How sessions are generated, so that sequence models have something to learn and side
information matters:

* items belong to a sub-category (``sess_csid_seq``), sub-categories to categories
  (``sess_ccid_seq``); each item has a brand (``sess_bid_seq``, from a pool of brands that sell
  in its category) and a price (a sub-category price level times an item factor);
* popularity is Zipf-like and drifts from day to day; new items are launched every day and are
  popular while fresh (their ids are unseen in earlier windows, but their category, brand and
  price are known, and ``sess_prod_recency_days_log_norm_seq`` says they are new);
* each category has a peak hour: a session's sub-category is drawn by popularity times the
  appeal of its category at the session's hour (``sess_et_hour_*``);
* a session stays in its sub-category with high probability: the next item is a successor of
  the current one in a sparse item-to-item transition chain (half of each item's successors
  share its sub-category), or a popular item of the sub-category with a price close to the
  session's first item and, more often than not, the brand of the current item, or sometimes
  any popular item;
* no consecutive repeats (removed by the paper's e-commerce preprocessing), 2..20 items.

So the side features carry what an item-id model has to learn item by item: the sub-category,
brand and price of rare and new items, and the time of day.

The files shipped in the package were written by ``python -m sessrec.data.sample OUT_DIR``
with the defaults below; ``tests/data/test_sample.py`` checks they still match.
"""

from __future__ import annotations

import argparse
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sessrec.errors import SessrecError
from sessrec.io import atomic_replace_dir
from sessrec.schema import CATEGORICAL, CONTINUOUS, ITEM_ID, LIST, TIME, FeatureSpec, Schema

MAX_LEN = 20
DAY0 = 1569888000  # 2019-10-01 00:00 UTC, the first day of the REES46 data
DEFAULTS = {"n_days": 6, "sessions_per_day": 4000, "n_items": 4500, "seed": 2021}

ITEM, CCID, CSID, BRAND = "sess_pid_seq", "sess_ccid_seq", "sess_csid_seq", "sess_bid_seq"
CONTINUOUS_COLUMNS = (
    "sess_price_log_norm_seq",
    "sess_relative_price_to_avg_category_seq",
    "sess_prod_recency_days_log_norm_seq",
    "sess_et_hour_sin_seq",
    "sess_et_hour_cos_seq",
    "sess_et_dayofweek_sin_seq",
    "sess_et_dayofweek_cos_seq",
)
TIME_COLUMN = "sess_etime_seq"


def sample_schema(n_items: int, n_ccid: int, n_csid: int, n_brands: int) -> Schema:
    """REES46-style schema for the sample data (categorical maxima set to the sample's cardinalities)."""
    vc = {"value_count_min": 2, "value_count_max": MAX_LEN}
    feats = [
        FeatureSpec(ITEM, "int", (ITEM_ID, LIST, CATEGORICAL, "item"), 1, n_items - 1, **vc),
        FeatureSpec(CCID, "int", (LIST, CATEGORICAL, "item"), 1, n_ccid - 1, **vc),
        FeatureSpec(CSID, "int", (LIST, CATEGORICAL, "item"), 1, n_csid - 1, **vc),
        FeatureSpec(BRAND, "int", (LIST, CATEGORICAL, "item"), 1, n_brands - 1, **vc),
    ]
    for name in CONTINUOUS_COLUMNS:
        lo, hi = (-1.0, 1.0) if "_et_" in name else (-10000.0, 10000.0)
        tags = (LIST, CONTINUOUS) if "_et_" in name else ("item", LIST, CONTINUOUS)
        feats.append(FeatureSpec(name, "float", tags, lo, hi, **vc))
    feats.append(FeatureSpec(TIME_COLUMN, "float", (TIME, LIST), 0.0, 0.0, **vc))
    return Schema(feats, source="sample")


class _Catalog:
    """Items with their category, brand, price, launch day and successor lists."""

    def __init__(self, rng: np.random.Generator, n_items: int, n_days: int):
        self.n = n_items  # ids 2..n_items-1 are items (0 = padding, 1 = "unknown" as in REES46)
        ids = np.arange(n_items)
        self.n_csid, self.n_ccid, self.n_brands = 121, 21, 201
        self.csid = np.where(ids >= 2, rng.integers(2, self.n_csid, n_items), 0)
        self.csid_to_ccid = rng.integers(2, self.n_ccid, self.n_csid)
        self.ccid = np.where(ids >= 2, self.csid_to_ccid[self.csid], 0)
        # each category sells a Zipf-distributed pool of 12 brands
        pools = np.stack([rng.choice(np.arange(2, self.n_brands), 12, replace=False) for _ in range(self.n_ccid)])
        brand_p = 1.0 / np.arange(1, 13)
        rank = rng.choice(12, n_items, p=brand_p / brand_p.sum())
        self.brand = np.where(ids >= 2, pools[self.ccid, rank], 0)
        cat_price = np.exp(rng.normal(3.5, 1.0, self.n_csid))
        self.price = cat_price[self.csid] * np.exp(rng.normal(0.0, 0.5, n_items))
        self.log_price = np.log(self.price)
        self.peak_hour = rng.uniform(8.0, 22.0, self.n_ccid)
        # 30 % of the items are launched during the period, the rest exist from day 0
        self.launch = np.where(rng.random(n_items) < 0.3, rng.integers(1, n_days + 1, n_items), -rng.integers(5, 200, n_items))
        base = 1.0 / (np.arange(1, n_items + 1) + 10.0) ** 0.9  # Zipf-Mandelbrot: no single item dominates
        self.base_pop = rng.permutation(base)
        self.base_pop[:2] = 0.0
        self.by_csid = [np.nonzero(self.csid == c)[0] for c in range(self.n_csid)]
        self.successors = np.zeros((n_items, 6), dtype=np.int64)
        self.succ_p = np.zeros((n_items, 6))
        for i in range(2, n_items):
            same = self.by_csid[self.csid[i]]
            same = same[same != i]
            k_same = min(3, same.size)
            picks = list(rng.choice(same, k_same, replace=False)) if k_same else []
            while len(picks) < 6:
                j = int(rng.integers(2, n_items))
                if j != i and j not in picks:
                    picks.append(j)
            self.successors[i] = picks
            self.succ_p[i] = rng.dirichlet(np.full(6, 0.6))

    def popularity(self, day: int, drift: np.ndarray) -> np.ndarray:
        age = day - self.launch
        alive = age >= 0
        fresh = 1.0 + 2.0 * np.exp(-np.maximum(age, 0) / 2.0) * (self.launch > 0)
        p = self.base_pop * drift * fresh * alive
        return p / p.sum()

    def hour_appeal(self, hour: float) -> np.ndarray:
        """Per sub-category: how much its category appeals at ``hour`` (peaks at the category's peak hour)."""
        return 1.0 + 0.9 * np.cos(2 * np.pi * (hour - self.peak_hour[self.csid_to_ccid]) / 24.0)


def _sessions_for_day(rng: np.random.Generator, cat: _Catalog, n_sessions: int,
                      pop: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
    """Item sequences and the start hour of each session."""
    sessions = []
    hours = np.clip(rng.normal(15.0, 4.5, n_sessions), 0.0, 23.9)
    csid_pop = np.bincount(cat.csid, weights=pop, minlength=cat.n_csid)
    for hour in hours:
        length = int(min(MAX_LEN, 2 + rng.geometric(0.22) - 1))
        home_p = csid_pop * cat.hour_appeal(hour)
        home = int(rng.choice(cat.n_csid, p=home_p / home_p.sum()))
        home_items = cat.by_csid[home]
        home_pop = pop[home_items]
        # sessions land anywhere in the sub-category (search, ads, links), popular items or not
        landing = home_pop ** 0.3
        s = [int(rng.choice(home_items, p=landing / landing.sum()))]
        price_fit = home_pop * np.exp(-np.abs(cat.log_price[home_items] - cat.log_price[s[0]]) / 0.3)
        while len(s) < length:
            cur = s[-1]
            u = rng.random()
            if u < 0.3:
                nxt = int(rng.choice(cat.successors[cur], p=cat.succ_p[cur]))
            elif u < 0.9:
                w = price_fit * np.where(cat.brand[home_items] == cat.brand[cur], 4.0, 1.0)
                w = w * np.where(np.isin(home_items, s), 0.15, 1.0)  # revisits happen, but less often
                nxt = int(rng.choice(home_items, p=w / w.sum()))
            else:
                nxt = int(rng.choice(cat.n, p=pop))
            if nxt != cur and pop[nxt] > 0:
                s.append(nxt)
        sessions.append(s)
    return sessions, hours


def _features(rng: np.random.Generator, cat: _Catalog, day: int, sessions: list[list[int]], hours: np.ndarray,
              price_stats) -> dict[str, list]:
    cols: dict[str, list] = {c: [] for c in (ITEM, CCID, CSID, BRAND, *CONTINUOUS_COLUMNS, TIME_COLUMN)}
    mu, sd, cat_avg = price_stats
    day_start = DAY0 + (day - 1) * 86400
    for s, hour in zip(sessions, hours):
        items = np.asarray(s)
        t = day_start + hour * 3600 + np.cumsum(np.r_[0.0, rng.exponential(70.0, len(s) - 1)])
        h = (t - DAY0) % 86400 / 3600.0
        wd = ((t - DAY0) // 86400 + 1) % 7 + 1  # 2019-10-01 was a Tuesday
        recency = np.maximum(day - cat.launch[items], 0)
        cols[ITEM].append(items.tolist())
        cols[CCID].append(cat.ccid[items].tolist())
        cols[CSID].append(cat.csid[items].tolist())
        cols[BRAND].append(cat.brand[items].tolist())
        cols["sess_price_log_norm_seq"].append(((np.log1p(cat.price[items]) - mu) / sd).tolist())
        cols["sess_relative_price_to_avg_category_seq"].append(((cat.price[items] - cat_avg[cat.csid[items]]) / cat_avg[cat.csid[items]]).tolist())
        cols["sess_prod_recency_days_log_norm_seq"].append(((np.log1p(recency) - 3.0) / 1.5).tolist())
        cols["sess_et_hour_sin_seq"].append(np.sin(2 * np.pi * (h + 1e-8) / 24).tolist())
        cols["sess_et_hour_cos_seq"].append(np.cos(2 * np.pi * (h + 1e-8) / 24).tolist())
        cols["sess_et_dayofweek_sin_seq"].append(np.sin(2 * np.pi * (wd + 1e-8) / 7).tolist())
        cols["sess_et_dayofweek_cos_seq"].append(np.cos(2 * np.pi * (wd + 1e-8) / 7).tolist())
        cols[TIME_COLUMN].append(t.tolist())
    return cols


def _table(cols: dict[str, list], rows: np.ndarray, first_id: int) -> pa.Table:
    arrays = {"session_id": pa.array(np.arange(first_id, first_id + rows.size), pa.int64())}
    arrays["session_start_ts"] = pa.array([int(cols[TIME_COLUMN][r][0]) for r in rows], pa.int64())
    for name, values in cols.items():
        # unix seconds need float64: float32 would round them to 128 s
        vtype = pa.int64() if name in (ITEM, CCID, CSID, BRAND) else pa.float64() if name == TIME_COLUMN else pa.float32()
        arrays[name] = pa.array([values[r] for r in rows], pa.list_(vtype))
    return pa.table(arrays)


def generate_sample(out_dir: str | Path, n_days: int = 6, sessions_per_day: int = 4000, n_items: int = 4500,
                    seed: int = 2021) -> Schema:
    """Write the sample data set to ``out_dir`` (replaced atomically) and return its schema."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    rng = np.random.default_rng(seed)
    cat = _Catalog(rng, n_items, n_days)
    lp = np.log1p(cat.price[2:])
    cat_avg = np.bincount(cat.csid, weights=cat.price, minlength=cat.n_csid) / np.maximum(np.bincount(cat.csid, minlength=cat.n_csid), 1)
    price_stats = (lp.mean(), lp.std(), np.maximum(cat_avg, 1e-6))
    drift = np.ones(n_items)
    next_id = 1
    for day in range(1, n_days + 1):
        drift = drift * np.exp(rng.normal(0.0, 0.15, n_items))
        sessions, hours = _sessions_for_day(rng, cat, sessions_per_day, cat.popularity(day, drift))
        cols = _features(rng, cat, day, sessions, hours, price_stats)
        order = rng.permutation(len(sessions))
        n_train, n_valid = int(0.8 * len(order)), int(0.1 * len(order))
        splits = {"train": order[:n_train], "valid": order[n_train:n_train + n_valid], "test": order[n_train + n_valid:]}
        folder = tmp / f"{day:04d}"
        folder.mkdir(parents=True)
        for split, rows in splits.items():
            rows = rows[np.argsort([cols[TIME_COLUMN][r][0] for r in rows], kind="stable")]
            pq.write_table(_table(cols, rows, next_id), folder / f"{split}.parquet")
            next_id += rows.size
    schema = sample_schema(n_items, cat.n_ccid, cat.n_csid, cat.n_brands)
    schema.save(tmp / "schema.pbtxt")
    atomic_replace_dir(tmp, out_dir)
    return schema


RAW_ITEM_OFFSET = 1_000_000  # sample_event_log: original item id = RAW_ITEM_OFFSET + 7 * id


def sample_event_log(data_dir: str | Path, path: str | Path) -> Path:
    """Write the sessions of a sample data folder as a raw event log, one row per interaction:
    ``session``, ``item`` (an original id, ``RAW_ITEM_OFFSET + 7 * id``, so that it differs from
    the id ``sessrec prepare`` gives it), ``category`` and ``brand`` (text), ``price`` and ``time``
    (epoch seconds); the input of ``sessrec prepare events``."""
    frames = []
    for f in sorted(Path(data_dir).glob("*/*.parquet")):
        try:
            t = pq.read_table(f, columns=["session_id", ITEM, CSID, BRAND, "sess_price_log_norm_seq", TIME_COLUMN])
        except (pa.ArrowInvalid, OSError) as e:
            raise SessrecError(f"{f}: not a window of the sample data set ({str(e).splitlines()[0]}); give a folder "
                               "written by `sessrec sample-data`") from None
        flat = {name: pc.list_flatten(t.column(name)) for name in t.column_names if name != "session_id"}
        frames.append(pa.table({
            "session": pc.take(t.column("session_id"), pc.list_parent_indices(t.column(ITEM))),
            "item": pc.add(pc.multiply(flat[ITEM], 7), RAW_ITEM_OFFSET),
            "category": pc.binary_join_element_wise("c", pc.cast(flat[CSID], pa.string()), ""),
            "brand": pc.binary_join_element_wise("b", pc.cast(flat[BRAND], pa.string()), ""),
            "price": flat["sess_price_log_norm_seq"], "time": flat[TIME_COLUMN]}))
    if not frames:
        raise SessrecError(f"no sample windows (*/*.parquet) in {data_dir}; write them with `sessrec sample-data DIR`")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.concat_tables(frames), path)
    return path


def bundled_sample_path() -> Path:
    """Folder of the sample data set shipped inside the package."""
    return Path(str(resources.files("sessrec") / "data" / "sample"))


def copy_sample(out_dir: str | Path) -> Path:
    """Copy the bundled sample data set to ``out_dir`` (``sessrec sample-data``)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        from sessrec.errors import SessrecError

        raise SessrecError(f"output folder {out_dir} is not empty")
    shutil.copytree(bundled_sample_path(), out_dir, dirs_exist_ok=True)
    return out_dir


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Regenerate the synthetic sample data set.", allow_abbrev=False)
    ap.add_argument("out_dir")
    for k, v in DEFAULTS.items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=int, default=v)
    a = ap.parse_args(argv)
    generate_sample(a.out_dir, a.n_days, a.sessions_per_day, a.n_items, a.seed)


if __name__ == "__main__":
    main()
