"""Speed and peak memory of ``sessrec prepare`` (rees46, yoochoose, events) on generated files, against the
time polars takes just to read the columns used from the same files.

    python bench/prepare_rees46.py                                   # 1M and 5M rows, the three data sets
    python bench/prepare_rees46.py --rows 1 5 20 --before ../main/src   # also another checkout's code
    python bench/prepare_rees46.py --datasets rees46 --repeat 3 --keep DIR

The REES46 CSVs mimic October 2019: 31 days, ~5 events per session, a skewed catalog of 200k products
(the catalog does not grow with the row count, as in the real data), 30 % consecutive repeats, empty
category_code / brand values. The YOOCHOOSE clicks file and the ``events`` CSV hold the same events in
their formats (``events``: session, item, epoch-seconds time, a categorical and a continuous column).
Every measurement is its own process; its peak RSS is read from ``wait4`` so it is that process's
alone. ``read`` is ``polars.read_csv`` of the columns the command uses; ``ratio`` = prepare time / read
time, then the same ratio of CPU seconds (less sensitive to other jobs on the machine). With ``--before SRC``, the same command also runs with ``PYTHONPATH=SRC`` (e.g. the main
branch's code) on the same files, and the two outputs are compared: ``identical`` (every parquet
value, the schema and the statistics files) or the largest difference of a float feature. With
``--repeat N`` each time is the fastest of N runs, taken in turns (read, before, after) so that a
change of the machine's load hits all three.
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

sys.path.insert(0, str(Path(__file__).parent))
from machine import cpu_model  # noqa: E402

OCT_2019 = 1569888000  # 2019-10-01 00:00 UTC
CATALOG = 200_000
CHUNK = 1_000_000
AFTER_SRC = Path(__file__).resolve().parents[1] / "src"
DATASETS = ("rees46", "yoochoose", "events")
# data set -> (file name, columns polars reads for the baseline, has a header)
FILES = {
    "rees46": ("rees46.csv", ["event_time", "product_id", "category_id", "category_code", "brand", "price", "user_id",
                              "user_session"], True),
    "yoochoose": ("yoochoose-clicks.dat", None, False),
    "events": ("events.csv", ["session", "item", "ts", "category", "price"], True),
}


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
        "_session": sess + first_session,
        "_t": ts,
    })


def _formats(df: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The same events in each data set's file format."""
    ms = (df["_t"] * 7919 % 1000).cast(pl.String).str.zfill(3)
    return {
        "rees46": df.drop("_session", "_t"),
        "yoochoose": df.select(
            (pl.col("_session") + 1).alias("session_id"),
            (pl.from_epoch("_t", "s").dt.strftime("%Y-%m-%dT%H:%M:%S.") + ms + "Z").alias("timestamp"),
            pl.col("product_id").alias("item_id"),
            pl.when(pl.col("category_id") % 5 == 0).then(pl.lit("0")).otherwise((pl.col("category_id") % 1500).cast(pl.String))
            .alias("category")),
        "events": df.select(pl.col("user_session").alias("session"), pl.col("product_id").alias("item"),
                            pl.col("_t").alias("ts"), pl.col("category_code").alias("category"), "price"),
    }


def generate(folder: Path, n_rows: int, datasets: list[str], seed: int = 0) -> dict[str, Path]:
    """Write ``n_rows`` events in each data set's format, a million rows at a time."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {d: folder / FILES[d][0] for d in datasets}
    files = {d: open(p, "wb") for d, p in paths.items()}
    rng = np.random.default_rng(seed)
    try:
        done = sessions = 0
        while done < n_rows:
            df = _chunk(rng, min(CHUNK, n_rows - done), sessions)
            sessions = int(df["_session"].max()) + 1
            for d, frame in _formats(df).items():
                if d in files:
                    frame.write_csv(files[d], include_header=done == 0 and FILES[d][2])
            done += df.height
    finally:
        for f in files.values():
            f.close()
    return paths


def command(dataset: str, path: Path, out: Path) -> list[str]:
    args = {"rees46": [], "yoochoose": [],
            "events": ["--session-col", "session", "--item-col", "item", "--time-col", "ts",
                       "--categorical-cols", "category", "--continuous-cols", "price"]}[dataset]
    return ["-m", "sessrec.cli", "prepare", dataset, "--input", str(path), *args, "--output", str(out), "--overwrite",
            "--quiet"]


def read_command(dataset: str, path: Path) -> list[str]:
    _, columns, header = FILES[dataset]
    return ["-c", f"import polars as pl; pl.read_csv({str(path)!r}, columns={columns!r}, has_header={header})"]


def run(args: list[str], pythonpath: Path | None = None) -> tuple[float, float, int]:
    """(seconds, CPU seconds, peak RSS bytes) of ``python ARGS`` in its own process."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    with tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own resource usage
        seconds = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            sys.exit(f"failed: {' '.join(args)}\n{err.read()}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024


def compare(a: Path, b: Path) -> str:
    """'identical' when every output file has the same contents, else the largest float difference (or what differs)."""
    names = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    if names != sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()):
        return "DIFFERENT files"
    largest = 0.0
    for name in names:
        if name.suffix != ".parquet":
            if (a / name).read_bytes() != (b / name).read_bytes():
                return f"DIFFERENT {name}"
            continue
        x, y = pl.read_parquet(a / name), pl.read_parquet(b / name)
        if x.schema != y.schema:
            return f"DIFFERENT schema of {name}"
        for col in x.columns:
            if x[col].equals(y[col]):
                continue
            inner = x[col].dtype.inner if isinstance(x[col].dtype, pl.List) else x[col].dtype
            same_shape = x[col].list.len().equals(y[col].list.len()) if isinstance(x[col].dtype, pl.List) else True
            if not (inner.is_float() and same_shape):
                return f"DIFFERENT {name}:{col}"
            diff = (x[col].explode() - y[col].explode()).abs().max() if isinstance(x[col].dtype, pl.List) else \
                (x[col] - y[col]).abs().max()
            largest = max(largest, float(diff))
    return "identical" if largest == 0 else f"floats differ by <= {largest:.1e}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=float, nargs="+", default=[1, 5], help="sizes in millions of rows")
    ap.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    ap.add_argument("--before", type=Path, help="a src folder whose code runs too (e.g. the main branch's), to compare")
    ap.add_argument("--repeat", type=int, default=1, help="take the fastest of N runs of each measurement")
    ap.add_argument("--keep", type=Path, help="folder for the inputs and outputs (default: a temporary one, removed)")
    a = ap.parse_args(argv)
    root = a.keep or Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    root.mkdir(parents=True, exist_ok=True)
    print(f"# {cpu_model()}, {os.cpu_count()} cores, polars {pl.__version__}; load average {os.getloadavg()[0]:.1f} at "
          f"the start; times are the fastest of {a.repeat} run(s); cpu = user + system seconds of that run")
    before = "  before s    cpu  RSS MB" if a.before else ""
    print(f"{'data set':<10}{'rows':>11}{'MB':>7}{'read s':>7}{'cpu':>6}{before}{'after s':>8}{'cpu':>6}{'rows/s':>10}"
          f"{'ratio':>6}{'cpu':>5}{'RSS MB':>7}  {'speed-up, outputs' if a.before else 'output'}", flush=True)
    try:
        for millions in a.rows:
            n = int(millions * 1_000_000)
            paths = generate(root / f"{n}", n, a.datasets)
            for dataset in a.datasets:
                path = paths[dataset]
                runs = {"read": (read_command(dataset, path), None),
                        "after": (command(dataset, path, root / f"{n}" / f"{dataset}_after"), AFTER_SRC)}
                if a.before:
                    runs["before"] = (command(dataset, path, root / f"{n}" / f"{dataset}_before"), a.before.resolve())
                best: dict[str, tuple[float, float, int]] = {}
                for _ in range(a.repeat):
                    for name, (args, src) in runs.items():
                        measured = run(args, src)
                        if name not in best or measured[0] < best[name][0]:
                            best[name] = measured
                read, after = best["read"], best["after"]
                stats = json.loads((root / f"{n}" / f"{dataset}_after" / "stats.json").read_text())
                line = f"{dataset:<10}{n:>11,}{path.stat().st_size / 2**20:>7,.0f}{read[0]:>7.1f}{read[1]:>6.1f}"
                if a.before:
                    line += f"{best['before'][0]:>10.1f}{best['before'][1]:>7.1f}{best['before'][2] / 2**20:>8,.0f}"
                line += (f"{after[0]:>8.1f}{after[1]:>6.1f}{n / after[0]:>10,.0f}{after[0] / read[0]:>6.1f}"
                         f"{after[1] / read[1]:>5.1f}{after[2] / 2**20:>7,.0f}  ")
                if a.before:
                    outputs = compare(root / f"{n}" / f"{dataset}_before", root / f"{n}" / f"{dataset}_after")
                    line += f"{best['before'][0] / after[0]:.1f}x, {outputs}"
                else:
                    line += f"{stats['windows']} windows, {stats['sessions']:,} sessions, {stats['interactions']:,} events"
                print(line, flush=True)
            if a.keep is None:
                shutil.rmtree(root / f"{n}")  # the largest sizes take several GB
    finally:
        if a.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
