"""Cost of the data check a run makes before it writes or trains anything.

``sessrec run`` passes every file it will read (training split of the training windows, evaluated
split of the evaluated windows) through the loader's checks, one column at a time, before it
creates the output folder. This prints, for the bundled sample and for a larger generated data
set in the same layout, the seconds the check takes, the seconds the loader takes to read the
same files into tensors (what the run does anyway, window by window), and each one's peak
resident memory above the process's resident memory after its imports, each in its own process.
Run: ``python bench/check_data.py [--days 4 --sessions-per-day 100000 --n-items 50000 --data DIR]``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe  # bench/machine.py: python puts the script's folder on sys.path


def _memory_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process from /proc (Linux). Not ``ru_maxrss``: on
    Linux it keeps the parent's peak across fork and exec, so a child would report its parent's."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(mode: str, data: str) -> None:
    """One measurement in this process: ``check`` (the run's check) or ``load`` (the loader)."""
    from sessrec.config import ExperimentConfig
    from sessrec.data.loader import load_sessions
    from sessrec.data.windows import resolve_window_range
    from sessrec.experiment import check_data, data_files, resolve_data

    cfg = ExperimentConfig(data_path=data)
    data_path, schema = resolve_data(cfg)
    start, final = resolve_window_range(data_path, 1, None)
    files = data_files(cfg, data_path, start, final)
    features = list(schema.features)  # every column: a model with side information reads them all
    base = _memory_mb("VmRSS")
    began = time.perf_counter()
    if mode == "check":
        check_data(files, schema, features)
    else:
        for w, path in files:
            load_sessions(path, schema, cfg.session_seq_length_max, features, window=w)
    seconds = time.perf_counter() - began
    sessions = sum(__import__("pyarrow.parquet").parquet.ParquetFile(p).metadata.num_rows for _, p in files)
    print(json.dumps({"seconds": seconds, "peak_mb": _memory_mb("VmHWM") - base, "files": len(files), "sessions": sessions,
                      "columns": len(features)}))


def measure(mode: str, data: Path, repeats: int) -> dict:
    runs = [json.loads(subprocess.run([sys.executable, __file__, "--child", mode, str(data)], check=True,
                                      capture_output=True, text=True).stdout) for _ in range(repeats)]
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "peak_mb": max(r["peak_mb"] for r in runs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    ap.add_argument("--days", type=int, default=4)
    ap.add_argument("--sessions-per-day", type=int, default=100_000)
    ap.add_argument("--n-items", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3, help="runs of each measurement; the fastest is shown")
    ap.add_argument("--data", type=Path, help="keep the generated data set in this folder, or reuse it if it is there")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "DATA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    from sessrec.data.sample import bundled_sample_path, generate_sample

    print(f"machine: {describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        big = args.data or Path(tmp) / "data"
        if not big.is_dir():
            began = time.perf_counter()
            generate_sample(big, n_days=args.days, sessions_per_day=args.sessions_per_day, n_items=args.n_items, seed=1)
            print(f"generated {args.days} days x {args.sessions_per_day:,} sessions in {time.perf_counter() - began:.0f} s")
        print(f"{'data':<28} {'files':>5} {'sessions':>9} {'cols':>4} {'check s':>8} {'load s':>7} {'check/load':>10} "
              f"{'check MB':>8} {'load MB':>7}")
        for name, data in (("bundled sample", bundled_sample_path()), (f"generated ({args.days} days)", big)):
            c, ld = measure("check", data, args.repeats), measure("load", data, args.repeats)
            print(f"{name:<28} {c['files']:>5} {c['sessions']:>9,} {c['columns']:>4} {c['seconds']:>8.3f} {ld['seconds']:>7.3f} "
                  f"{c['seconds'] / ld['seconds']:>10.2f} {c['peak_mb']:>8.0f} {ld['peak_mb']:>7.0f}")


if __name__ == "__main__":
    main()
