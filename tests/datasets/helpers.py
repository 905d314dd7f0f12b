"""Independent re-computation of what ``sessrec prepare`` should write, in plain Python, for the tests."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import polars as pl

from sessrec.cli import main

SCHEMAS = Path(__file__).parents[1] / "data" / "schemas"  # the paper's schema files


def reference(events: list[tuple], repeats: str = "consecutive", max_len: int = 20, min_len: int = 2,
              window_s: int = 86400, min_sessions: int = 3) -> tuple[dict, dict[object, list], Counter]:
    """``events`` = (session, epoch seconds, item) in input order → (Table 1 statistics, kept sessions
    {session: [(t, item), ...]}, item counts). ``min_sessions``: windows with fewer sessions are dropped."""
    by_session = defaultdict(list)
    for order, (s, t, item) in enumerate(events):
        by_session[s].append((t, order, item))
    sessions = {}
    for s, evs in by_session.items():
        evs.sort()
        kept: list[tuple] = []
        for i, (t, _, item) in enumerate(evs):
            if repeats == "consecutive" and i and evs[i - 1][2] == item:
                continue
            if repeats == "session" and item in {k[1] for k in kept}:
                continue
            kept.append((t, item))
        if len(kept) >= min_len:
            sessions[s] = kept[:max_len]
    windows = defaultdict(list)
    for s, kept in sessions.items():
        windows[kept[0][0] // window_s].append(s)
    kept_windows = sorted(w for w, ss in windows.items() if len(ss) >= min_sessions)
    sessions = {s: sessions[s] for w in kept_windows for s in windows[w]}
    counts = Counter(item for kept in sessions.values() for _, item in kept)
    n_inter = sum(counts.values())
    values = list(counts.values())
    mean = n_inter / len(values)
    gini = sum(abs(a - b) for a in values for b in values) / (2 * len(values) ** 2 * mean)  # mean absolute difference
    stats = {"windows": len(kept_windows), "items": len(counts), "sessions": len(sessions), "interactions": n_inter,
             "mean_session_length": round(n_inter / len(sessions), 4), "gini_item_popularity": round(gini, 4)}
    return stats, sessions, counts


def frequency_ids(counts: Counter, first: int = 1) -> dict:
    """Ids by decreasing count, ties by raw value, starting at ``first``."""
    return {v: i for i, v in enumerate(sorted(counts, key=lambda v: (-counts[v], v)), first)}


def prepare(args: list[str], capsys) -> tuple[int, str, str]:
    rc = main(["prepare", *args, "--quiet"])
    out = capsys.readouterr()
    return rc, out.out, out.err


def printed_stats(stdout: str) -> dict:
    """The 'output' row of the printed Table 1."""
    row = next(line for line in stdout.splitlines() if line.startswith("output")).split()
    keys = ("days", "windows", "items", "sessions", "interactions")
    out = {k: int(v.replace(",", "")) for k, v in zip(keys, row[1:6])}
    out["mean_session_length"], out["gini_item_popularity"] = float(row[6]), float(row[7])
    return out


def check_stats(out: Path, stdout: str, expected: dict) -> None:
    """stats.json matches ``expected`` exactly, the printed table to its 2 decimals."""
    saved = json.loads((out / "stats.json").read_text())
    assert {k: saved[k] for k in expected} == expected
    shown = printed_stats(stdout)
    for k, v in expected.items():
        assert shown[k] == (round(v, 2) if isinstance(v, float) else v), k


def all_sessions(out: Path, splits: tuple[str, ...] = ("train", "valid", "test")) -> pl.DataFrame:
    """Every session row written, with its window number."""
    frames = [pl.read_parquet(f).with_columns(pl.lit(int(f.parent.name)).alias("window"), pl.lit(f.stem).alias("split"))
              for f in sorted(out.glob("*/*.parquet")) if f.stem in splits]
    return pl.concat(frames)


def session(out: Path, session_id, split: str = "train") -> dict:
    df = all_sessions(out, (split,)).filter(pl.col("session_id") == session_id)
    assert df.height == 1, f"session {session_id} found {df.height} times"
    return df.row(0, named=True)


def train_run(data: Path, out: Path, side_information: bool = True) -> str:
    """A tiny ``sessrec run`` on the prepared folder (2 steps, d_model 16); returns its stdout."""
    args = ["run", "--data-path", str(data), "--output-dir", str(out), "--d-model", "16", "--n-layer", "1",
            "--n-head", "2", "--max-steps", "2", "--final-time-window-index", "2", "--quiet",
            "--per-device-eval-batch-size", "8", "--no-compare-with-pop"]
    if side_information:
        args.append("--use-side-information-features")
    assert main(args) == 0
    assert (out / "eval_train_results.csv").is_file()
    return (out / "eval_results_avg_over_time.txt").read_text()
