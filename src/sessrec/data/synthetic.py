"""Random but valid time windows for any schema: test data in a data set's exact column layout.

``write_synthetic_windows(out_dir, schema)`` writes ``0001/ ... /NNNN/{train,valid,test}.parquet``
with one list column per schema feature (plus a ``session_id`` column), so a pipeline can be run
on the layout of REES46, YOOCHOOSE, G1, ADRESSA or your own schema before the real data is at
hand. The values respect the schema (ids in ``1..cardinality-1``, continuous values inside their
``float_domain``, increasing timestamps) and carry a little signal for models to pick up: item
popularity is Zipf-like, half of the transitions follow a fixed successor of the previous item,
and categorical features tagged ``item`` are a function of the item. The bundled sample data set
(``sessrec.data.sample``) is the realistic one; this generator is for layouts.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sessrec.schema import FeatureSpec, Schema

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
