"""Speed and peak memory of ``sessrec prepare rees46`` on generated REES46-format CSV files.

    python bench/prepare_rees46.py                   # 1M and 5M rows
    python bench/prepare_rees46.py --rows 1 5 20     # millions of rows
    python bench/prepare_rees46.py --keep DIR        # keep the CSVs and outputs in DIR

The CSVs mimic October 2019: 31 days, ~5 events per session, a skewed catalog of 200k products
(the catalog does not grow with the row count, as in the real data), 30 % consecutive repeats,
empty category_code / brand values. Each prepare runs in its own process; its peak RSS is read
from ``wait4`` so it is that process's alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

OCT_2019 = 1569888000  # 2019-10-01 00:00 UTC
CATALOG = 200_000
CHUNK = 1_000_000


def _chunk(rng: np.random.Generator, n: int, first_session: int) -> pl.DataFrame:
    n_sessions = max(1, n // 5)
    lengths = rng.geometric(1 / 5, n_sessions)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n) + 1]
    lengths[-1] -= lengths.sum() - n
    sess = np.repeat(np.arange(lengths.size), lengths)
    start = rng.integers(0, 31 * 86400, lengths.size)
    gaps = rng.exponential(60, n).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    offset = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first], lengths)  # 0 at a session's first event
    ts = OCT_2019 + np.repeat(start, lengths) + offset
    rank = (CATALOG * rng.random(n) ** 8).astype(np.int64)
    repeat = rng.random(n) < 0.3
    repeat[first] = False
    for _ in range(3):  # consecutive repeats of the previous item
        rank[1:] = np.where(repeat[1:], rank[:-1], rank[1:])
    codes = np.array([f"cat{i % 13}.sub{i}" for i in range(120)])
    return pl.DataFrame({
        "event_time": pl.from_epoch(pl.Series(ts), "s").dt.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "event_type": np.array(["view", "cart", "purchase"])[rng.choice(3, n, p=[0.9, 0.07, 0.03])],
        "product_id": 1_000_000 + rank * 7,
        "category_id": 2_053_013_550_000_000_000 + rank % 1500,
        "category_code": pl.Series(codes[rank % 120]).set(pl.Series(rng.random(n) < 0.3), None),
        "brand": pl.Series([f"brand{b}" for b in rank % 3000]).set(pl.Series(rng.random(n) < 0.15), None),
        "price": np.round(1 + (rank % 997) * 1.37, 2),
        "user_id": 500_000_000 + (sess + first_session) // 3,
        "user_session": [f"{s:08x}-8bb3-4e00-8c23-a032dfed738c" for s in sess + first_session],
    })


def generate_csv(path: Path, n_rows: int, seed: int = 0) -> None:
    """Write an ``n_rows``-event REES46-format CSV (with its header), a million rows at a time."""
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        done = sessions = 0
        while done < n_rows:
            df = _chunk(rng, min(CHUNK, n_rows - done), sessions)
            sessions = int(df["user_session"].str.slice(0, 8).str.to_integer(base=16).max()) + 1
            df.write_csv(f, include_header=done == 0)
            done += df.height


def measure(csv: Path, out: Path) -> tuple[float, int, dict]:
    """(seconds, peak RSS bytes, Table 1 statistics) of one ``sessrec prepare rees46`` process."""
    cmd = [sys.executable, "-m", "sessrec.cli", "prepare", "rees46", "--input", str(csv), "--output", str(out),
           "--overwrite", "--quiet"]
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"prepare failed:\n{err.read()}")
    return seconds, usage.ru_maxrss * 1024, json.loads((out / "stats.json").read_text())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, nargs="+", default=[1, 5], help="sizes in millions of rows")
    ap.add_argument("--keep", type=Path, help="folder for the CSVs and outputs (default: a temporary one, removed)")
    a = ap.parse_args(argv)
    root = a.keep or Path(tempfile.mkdtemp(prefix="bench_rees46_"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"{'rows':>10} {'CSV MB':>8} {'seconds':>8} {'rows/s':>10} {'peak RSS MB':>12}  output")
    try:
        for millions in a.rows:
            n = int(millions * 1_000_000)
            csv = root / f"rees46_{n}.csv"
            if not csv.exists():
                generate_csv(csv, n)
            seconds, rss, stats = measure(csv, root / f"out_{n}")
            print(f"{n:>10,} {csv.stat().st_size / 2**20:>8.0f} {seconds:>8.1f} {n / seconds:>10,.0f} "
                  f"{rss / 2**20:>12.0f}  {stats['windows']} days, {stats['items']:,} items, {stats['sessions']:,} "
                  f"sessions, {stats['interactions']:,} interactions", flush=True)
    finally:
        if a.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
