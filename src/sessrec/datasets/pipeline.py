"""Raw events → session windows, the steps every data set shares, in bounded memory.

A data set module turns its raw files into batches of *events* with these columns:
``_row`` (int, increasing: the input order, used to break time ties), ``t`` (epoch milliseconds,
UTC), ``item`` (raw item key), ``session`` (raw session key; absent when sessions are cut from a
user's stream by inactivity), ``user`` (when needed), and the raw side columns of its
:class:`Recipe`. Then:

1. **Buckets.** Events are streamed to ``n`` Arrow IPC files by a hash of the session key (or of the
   user, when sessions are cut from a user's stream or repeats are removed per user), so that a
   whole session sits in one file and a file is small whatever the input size.
2. **Sessions.** Per bucket, in memory: sort by time (input order on ties), cut sessions on
   inactivity if asked, remove repeated items, keep the first ``max_session_length`` interactions,
   drop sessions shorter than ``min_session_length``. The kept events go to one file per (time
   window of the session's first event, bucket).
3. **Fit.** Streaming aggregations over the kept events of the kept windows: contiguous ids by
   decreasing frequency for the item and every categorical column, each item's first time seen,
   and the data set's feature statistics.
4. **Windows.** Per window, in memory: encode, compute the features, group into one row per session
   (list columns), split into train/valid/test with a seeded generator and write them.

Memory is that of one input batch, one bucket, the id tables and one window, whatever the input
size. Everything is written under a temporary folder renamed to the output at the very end.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from tqdm import tqdm

from sessrec.data.catalog import age_rule
from sessrec.data.windows import SPLITS, window_dir
from sessrec.datasets.catalog import write_catalog
from sessrec.datasets.features import DAY_MS, HOUR_MS, gini
from sessrec.errors import SessrecError
from sessrec.io import atomic_replace_dir, atomic_write_text
from sessrec.schema import CATEGORICAL, LIST, TIME, FeatureSpec, Schema

WINDOW_MS = {"day": DAY_MS, "hour": HOUR_MS}
REPEATS = ("consecutive", "session", "user", "keep")
SPLIT_RECIPES = ("80-10-10", "all+10-10", "all+50-50")
BUCKET_BYTES = 64 * 2**20  # raw input bytes per bucket: bounds the memory of step 2
WORK_COMPRESSION = "lz4"  # temporary files are Arrow IPC: 2-3x faster to write than parquet, read once


@dataclass(frozen=True)
class Categorical:
    """A raw column encoded as contiguous ids by decreasing frequency (0 = padding)."""

    source: str  # raw column of the events ("item" for the item id)
    name: str  # output list column and schema feature
    tags: tuple[str, ...] = (LIST, CATEGORICAL)
    unknown_slot: bool = False  # id 1 = null, unknown or rare value; known values start at 2
    min_count: int = 1  # values seen fewer times map to the unknown id
    unknown_values: tuple = ()  # raw values that mean "unknown" (YOOCHOOSE category "0")


@dataclass(frozen=True)
class Continuous:
    """An engineered float feature computed by the recipe's ``transform``."""

    name: str
    tags: tuple[str, ...]
    low: float = -10000.0
    high: float = 10000.0


@dataclass(frozen=True)
class Recipe:
    """What a data set writes: its columns, how to fit feature statistics and compute features."""

    name: str
    item: Categorical
    categoricals: tuple[Categorical, ...]
    continuous: tuple[Continuous, ...]
    time_name: str  # output list column of event times
    time_unit_ms: int  # 1000: seconds, 1: milliseconds
    # (kept events, item table [item, id, n, first_t]) -> statistics given to transform
    fit: Callable[[pl.LazyFrame, pl.DataFrame], dict]
    # (events of one window with the item's first_t, statistics) -> events with the continuous columns
    transform: Callable[[pl.DataFrame, dict], pl.DataFrame]
    paper_stats: dict | None = None  # Table 1 of the paper, printed for comparison
    # continuous feature -> how serving rebuilds it from interaction times (sessrec.datasets.features:
    # hour_weekday_rules, age_rule); the other features come from the catalog's item table
    serving: dict[str, dict] = field(default_factory=dict)


@dataclass
class Options:
    """The choices every ``sessrec prepare`` command shares (flags of the same names)."""

    output: Path
    window: str = "day"
    repeats: str = "consecutive"
    split: str = "80-10-10"
    min_session_length: int = 2
    max_session_length: int = 20
    min_sessions_per_window: int = 0
    session_gap_ms: int | None = None  # cut sessions from each user's stream after this inactivity
    seed: int = 0
    overwrite: bool = False
    quiet: bool = False

    def validate(self) -> Options:
        if self.window not in WINDOW_MS:
            raise SessrecError(f"--window must be one of {', '.join(WINDOW_MS)}, got {self.window!r}")
        if self.repeats not in REPEATS:
            raise SessrecError(f"--repeats must be one of {', '.join(REPEATS)}, got {self.repeats!r}")
        if self.split not in SPLIT_RECIPES:
            raise SessrecError(f"--split must be one of {', '.join(SPLIT_RECIPES)}, got {self.split!r}")
        if self.min_session_length < 1 or self.max_session_length < self.min_session_length:
            raise SessrecError("need 1 <= --min-session-length <= --max-session-length, got "
                               f"{self.min_session_length} and {self.max_session_length}")
        if self.session_gap_ms is not None and self.session_gap_ms <= 0:
            raise SessrecError("--session-gap must be positive")
        return self


@dataclass
class PrepareResult:
    output: Path
    schema: Schema
    stats: dict
    windows: list[dict] = field(default_factory=list)


class Progress:
    """Progress lines and bars on stderr (silent with ``--quiet``)."""

    def __init__(self, name: str, quiet: bool) -> None:
        self.name, self.quiet = name, quiet

    def say(self, text: str) -> None:
        if not self.quiet:
            print(f"[prepare {self.name}] {text}", file=sys.stderr, flush=True)

    def warn(self, text: str) -> None:
        print(f"[prepare {self.name}] warning: {text}", file=sys.stderr, flush=True)

    def bar(self, iterable: Iterable | None = None, **kw) -> tqdm:
        return tqdm(iterable, disable=self.quiet, file=sys.stderr, dynamic_ncols=True, leave=False, **kw)


def prepare(recipe: Recipe, events: Iterator[pl.DataFrame], input_bytes: int, opts: Options) -> PrepareResult:
    """Run steps 1-4 and write ``opts.output`` (only complete on success); print the Table 1 statistics."""
    opts.validate()
    out = Path(opts.output)
    _check_output(out, opts.overwrite)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    progress = Progress(recipe.name, opts.quiet)
    try:
        work = tmp / "_work"
        n_buckets = max(1, math.ceil(input_bytes / BUCKET_BYTES))
        buckets = _write_buckets(events, work / "buckets", n_buckets, _bucket_key(opts), progress)
        counts = _build_sessions(buckets, work / "sessions", opts, progress)
        kept = _choose_windows(counts, opts, progress)
        fitted = _fit(recipe, [f for key in kept for f in sorted((work / "sessions" / str(key)).glob("*.arrow"))],
                      progress)
        windows = _write_windows(recipe, fitted, kept, work / "sessions", tmp, opts, progress)
        stats = _statistics(recipe, fitted, windows, opts)
        schema = build_schema(recipe, fitted, opts)
        schema.save(tmp / "schema.pbtxt")
        schema.save(tmp / "schema.json")
        _write_catalog(tmp, recipe, fitted, schema, opts)
        atomic_write_text(tmp / "stats.json", json.dumps(stats, indent=2) + "\n")
        atomic_write_text(tmp / "windows.csv", _windows_csv(windows))
        shutil.rmtree(work)
        atomic_replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(format_stats(stats, recipe.paper_stats))
    print(f"wrote {len(windows)} windows to {out} (train/valid/test.parquet each, schema.pbtxt, stats.json, windows.csv, "
          "catalog: original ids and item features)")
    return PrepareResult(out, schema, stats, windows)


def _check_output(out: Path, overwrite: bool) -> None:
    if out.is_file():
        raise SessrecError(f"--output {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SessrecError(f"output folder {out} is not empty; pass --overwrite to replace it")


def _bucket_key(opts: Options) -> str:
    return "user" if opts.session_gap_ms is not None or opts.repeats == "user" else "session"


# ---- step 1: buckets -----------------------------------------------------------------------------
def _write_buckets(events: Iterator[pl.DataFrame], folder: Path, n_buckets: int, key: str,
                   progress: Progress) -> list[Path]:
    folder.mkdir(parents=True)
    writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
    schemas: dict[int, pa.Schema] = {}
    n_rows = n_dropped = 0
    bar = progress.bar(unit=" events", unit_scale=True, desc="reading")
    try:
        for batch in events:
            if key not in batch.columns:
                raise SessrecError(f"sessions are cut from each user's stream here, but the events have no user column ({key})")
            keep = pl.col(key).is_not_null() & pl.col("item").is_not_null()
            n_before = batch.height
            batch = batch.filter(keep)
            n_dropped += n_before - batch.height
            n_rows += batch.height
            bar.update(n_before)
            if n_buckets == 1:
                parts = {0: batch}
            else:
                hashed = batch.with_columns(_bucket=(pl.col(key).hash(seed=0) % n_buckets).cast(pl.Int64))
                parts = {k[0]: df.drop("_bucket") for k, df in hashed.partition_by("_bucket", as_dict=True).items()}
            for b, df in parts.items():
                table = df.to_arrow()
                if b not in writers:
                    writers[b] = pa.ipc.new_file(folder / f"{b:05d}.arrow", table.schema,
                                                 options=pa.ipc.IpcWriteOptions(compression=WORK_COMPRESSION))
                    schemas[b] = table.schema
                writers[b].write_table(table.cast(schemas[b]))
    finally:
        bar.close()
        for w in writers.values():
            w.close()
    if n_rows == 0:
        raise SessrecError("the input has no events" + (f" with a {key} and an item" if n_dropped else ""))
    progress.say(f"read {n_rows + n_dropped:,} events into {len(writers)} bucket(s)"
                 + (f"; dropped {n_dropped:,} without a {key} or an item" if n_dropped else ""))
    return sorted(folder.glob("*.arrow"))


# ---- step 2: sessions ----------------------------------------------------------------------------
def sessionize(df: pl.DataFrame, opts: Options) -> pl.DataFrame:
    """Sessions of one bucket: ``session``, ``pos`` (0-based, after repeat removal and truncation),
    ``start`` (the session's first kept event time) and ``wkey`` (its time window: UTC day or hour
    number since 1970) on each kept event, in session order."""
    if opts.session_gap_ms is not None:
        df = df.sort("user", "t", "_row")
        new = ((pl.col("user") != pl.col("user").shift(1)) | ((pl.col("t") - pl.col("t").shift(1)) > opts.session_gap_ms))
        df = df.with_columns(session=pl.when(new.fill_null(True)).then(pl.col("_row")).forward_fill())
    if opts.repeats == "user":
        df = df.sort("user", "t", "_row").filter(pl.struct("user", "item").is_first_distinct())
    df = df.sort("session", "t", "_row")
    if opts.repeats == "consecutive":
        same = (pl.col("item") == pl.col("item").shift(1)) & (pl.col("session") == pl.col("session").shift(1))
        df = df.filter(~same.fill_null(False))
    elif opts.repeats == "session":
        df = df.filter(pl.struct("session", "item").is_first_distinct())
    # positions from the runs of the sorted session column: much faster than window expressions (.over)
    first = (df["session"] != df["session"].shift(1)).fill_null(True).to_numpy()
    starts = np.flatnonzero(first)
    lengths = np.diff(np.append(starts, df.height))
    pos = np.arange(df.height) - np.repeat(starts, lengths)
    keep = (pos < opts.max_session_length) & (np.repeat(lengths, lengths) >= opts.min_session_length)
    start = np.repeat(df["t"].to_numpy()[starts], lengths)
    return df.with_columns(pos=pos, start=start).filter(keep).with_columns(wkey=pl.col("start") // WINDOW_MS[opts.window])


def _build_sessions(buckets: list[Path], folder: Path, opts: Options, progress: Progress) -> dict[int, list[int]]:
    """Step 2 for every bucket; returns {window key: [sessions, interactions]}."""
    counts: dict[int, list[int]] = {}
    for i, path in enumerate(progress.bar(buckets, desc="sessions", unit=" bucket")):
        df = sessionize(pl.read_ipc(path), opts)
        path.unlink()
        for (wkey,), part in df.partition_by("wkey", as_dict=True, include_key=False).items():
            (folder / str(wkey)).mkdir(parents=True, exist_ok=True)
            part.write_ipc(folder / str(wkey) / f"{i:05d}.arrow", compression=WORK_COMPRESSION)
            c = counts.setdefault(wkey, [0, 0])
            c[0] += part["session"].n_unique()
            c[1] += part.height
    return counts


def _choose_windows(counts: dict[int, list[int]], opts: Options, progress: Progress) -> list[int]:
    """Windows with enough sessions for the split recipe and ``--min-sessions-per-window``, in time order."""
    need = max(opts.min_sessions_per_window, 3 if opts.split == "80-10-10" else 2)
    kept = [k for k in sorted(counts) if counts[k][0] >= need]
    skipped = len(counts) - len(kept)
    if skipped:
        progress.say(f"skipped {skipped} of {len(counts)} {opts.window} windows with fewer than {need} sessions")
    if not kept:
        total = sum(c[0] for c in counts.values())
        raise SessrecError(f"no {opts.window} window has at least {need} sessions of >= {opts.min_session_length} "
                           f"interactions ({total} sessions in all); lower --min-sessions-per-window or check the input")
    if len(kept) == 1:
        progress.warn("only one window; `sessrec run` needs at least two (train on one, evaluate on the next)")
    return kept


# ---- step 3: fit ---------------------------------------------------------------------------------
@dataclass
class Fitted:
    items: pl.DataFrame  # item, id, n, first_t
    encoders: dict[str, pl.DataFrame]  # output name -> [source, id]
    max_ids: dict[str, int]  # output name -> largest id
    stats: dict


def encoder(counts: pl.DataFrame, cat: Categorical) -> tuple[pl.DataFrame, int]:
    """Ids by decreasing count (ties: by raw value) from 1, or from 2 with an unknown slot; and the largest id."""
    known = counts.filter(pl.col(cat.source).is_not_null() & (pl.col("n") >= cat.min_count))
    if cat.unknown_values:
        known = known.filter(~pl.col(cat.source).cast(pl.String).is_in([str(v) for v in cat.unknown_values]))
    offset = 2 if cat.unknown_slot else 1
    table = known.sort(["n", cat.source], descending=[True, False]).with_columns(
        pl.int_range(offset, offset + known.height, dtype=pl.Int64).alias("id"))
    return table, max(offset - 1, offset + known.height - 1)


def _fit(recipe: Recipe, files: list[Path], progress: Progress) -> Fitted:
    progress.say("fitting ids and feature statistics")
    lf = pl.scan_ipc(files)
    cats = recipe.categoricals
    results = pl.collect_all([lf.group_by("item").agg(n=pl.len(), first_t=pl.col("t").min())]
                             + [lf.group_by(c.source).agg(n=pl.len()) for c in cats])
    items, max_item = encoder(results[0], recipe.item)
    encoders, max_ids = {}, {recipe.item.name: max_item}
    for cat, counts in zip(cats, results[1:]):
        table, max_id = encoder(counts, cat)
        encoders[cat.name], max_ids[cat.name] = table.select(cat.source, "id"), max_id
    stats = recipe.fit(lf, items)
    return Fitted(items, encoders, max_ids, stats)


# ---- step 4: windows -----------------------------------------------------------------------------
def split_indices(n: int, recipe: str, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Row indices (sorted) of train/valid/test among ``n`` sessions of a window.

    ``80-10-10`` (REES46): disjoint random 80/10/10 %. ``all+10-10`` (YOOCHOOSE): train = all, valid and
    test = two disjoint random 10 % subsets. ``all+50-50`` (news, the paper's text): train = all, valid /
    test = a random half each. Every split gets at least one session."""
    perm = rng.permutation(n)
    if recipe == "80-10-10":
        n_valid = n_test = max(1, round(0.1 * n))
        parts = {"train": perm[n_valid + n_test:], "valid": perm[:n_valid], "test": perm[n_valid:n_valid + n_test]}
    elif recipe == "all+10-10":
        k = max(1, round(0.1 * n))
        parts = {"train": perm, "valid": perm[:k], "test": perm[k:2 * k]}
    else:
        half = n // 2
        parts = {"train": perm, "valid": perm[:half], "test": perm[half:]}
    return {k: np.sort(v) for k, v in parts.items()}


def _encode(df: pl.DataFrame, recipe: Recipe, fitted: Fitted) -> pl.DataFrame:
    """Replace raw values by their ids (a categorical may keep its raw column's name, as G1's do)."""
    df = df.join(fitted.items.select("item", "id", "first_t"), on="item", how="left", maintain_order="left")
    df = df.rename({"id": recipe.item.name})
    for cat in recipe.categoricals:
        df = df.join(fitted.encoders[cat.name], on=cat.source, how="left", maintain_order="left")
        df = df.drop(cat.name, strict=False).rename({"id": cat.name})
        if cat.unknown_slot:
            df = df.with_columns(pl.col(cat.name).fill_null(1))
    return df


def output_columns(recipe: Recipe) -> list[str]:
    return [recipe.item.name, *(c.name for c in recipe.categoricals), *(c.name for c in recipe.continuous),
            recipe.time_name]


def _sessions_table(df: pl.DataFrame, recipe: Recipe) -> pl.DataFrame:
    """One row per session (list columns), ordered by session start then session key."""
    unit = recipe.time_unit_ms
    df = df.sort("start", "session", "pos").with_columns((pl.col("t") / unit).cast(pl.Float64).alias(recipe.time_name))
    lists = [pl.col(c) for c in output_columns(recipe)]
    return df.group_by("session", maintain_order=True).agg(
        (pl.col("start").first() // unit).alias("session_start"), pl.len().alias("session_size"), *lists
    ).rename({"session": "session_id"})


def _write_windows(recipe: Recipe, fitted: Fitted, kept: list[int], sessions: Path, out: Path, opts: Options,
                   progress: Progress) -> list[dict]:
    windows = []
    bar = progress.bar(kept, desc="windows", unit=" window")
    for index, wkey in enumerate(bar, 1):
        df = pl.concat([pl.read_ipc(f) for f in sorted((sessions / str(wkey)).glob("*.arrow"))])
        df = recipe.transform(_encode(df, recipe, fitted), fitted.stats)
        table = _sessions_table(df, recipe)
        rng = np.random.default_rng([opts.seed, index])
        folder = window_dir(out, index)
        folder.mkdir(parents=True)
        sizes = {}
        for split, rows in split_indices(table.height, opts.split, rng).items():
            table[rows].write_parquet(folder / f"{split}.parquet")
            sizes[split] = int(rows.size)
        start = datetime.fromtimestamp(wkey * WINDOW_MS[opts.window] / 1000, tz=timezone.utc)
        windows.append({"window": index, "start_utc": start.strftime("%Y-%m-%d %H:%M"), "sessions": table.height,
                        "interactions": df.height, **sizes})
        shutil.rmtree(sessions / str(wkey))
    bar.close()
    return windows


def _windows_csv(windows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["window", "start_utc", "sessions", "interactions", *SPLITS],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(windows)
    return buf.getvalue()


def _write_catalog(out: Path, recipe: Recipe, fitted: Fitted, schema: Schema, opts: Options) -> None:
    """Original ids ↔ ids of the item and every categorical, the item table, the serving rules."""
    items = fitted.items.select(pl.col("item").alias("raw"), "id", pl.col("n").alias("count"), "first_t")
    maps = {c.name: (fitted.encoders[c.name].rename({c.source: "raw"}), 1 if c.unknown_slot else None)
            for c in recipe.categoricals}
    rules = {name: age_rule(rule["unit_ms"], rule["whole_units"], *fitted.stats[rule["stats"]]) if rule["from"] == "age" else rule
             for name, rule in recipe.serving.items()}
    splits = ("train",) if opts.split.startswith("all+") else SPLITS  # all+: train holds every session
    write_catalog(out, schema, items, maps, recipe.time_name, recipe.time_unit_ms, rules, splits)


# ---- statistics and schema -----------------------------------------------------------------------
def _statistics(recipe: Recipe, fitted: Fitted, windows: list[dict], opts: Options) -> dict:
    sessions = sum(w["sessions"] for w in windows)
    interactions = sum(w["interactions"] for w in windows)
    days = len({w["start_utc"][:10] for w in windows})
    return {"dataset": recipe.name, "window": opts.window, "days": days, "windows": len(windows), "items": fitted.items.height,
            "sessions": sessions, "interactions": interactions,
            "mean_session_length": round(interactions / sessions, 4),
            "gini_item_popularity": round(gini(fitted.items["n"].to_numpy()), 4)}


def format_stats(stats: dict, paper: dict | None = None) -> str:
    """The paper's Table 1 columns for this output (and the paper's row, when there is one)."""
    head = f"{'':<8}{'days':>6}{'windows':>9}{'items':>11}{'sessions':>13}{'interactions':>15}{'mean length':>13}{'Gini':>7}"

    def row(label: str, s: dict) -> str:
        windows = f"{s['windows']:,}" if "windows" in s else "-"
        return (f"{label:<8}{s['days']:>6,}{windows:>9}{s['items']:>11,}{s['sessions']:>13,}{s['interactions']:>15,}"
                f"{s['mean_session_length']:>13.2f}{s['gini_item_popularity']:>7.2f}")

    lines = [f"Table 1 statistics ({stats['dataset']}, {stats['window']} windows):", head, row("output", stats)]
    if paper:
        lines.append(row("paper", paper))
    return "\n".join(lines)


def build_schema(recipe: Recipe, fitted: Fitted, opts: Options) -> Schema:
    """The paper's schema for this data set, with int_domain max = the largest id actually written."""
    vc = {"value_count_min": opts.min_session_length, "value_count_max": opts.max_session_length}
    feats = [FeatureSpec(c.name, "int", c.tags, 1, fitted.max_ids[c.name], **vc)
             for c in (recipe.item, *recipe.categoricals)]
    feats += [FeatureSpec(c.name, "float", c.tags, c.low, c.high, **vc) for c in recipe.continuous]
    feats.append(FeatureSpec(recipe.time_name, "float", (TIME, LIST), 0.0, 0.0, **vc))
    names = [f.name for f in feats]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise SessrecError(f"two output columns would be named {', '.join(dup)}; rename a column")
    return Schema(feats, source=f"sessrec prepare {recipe.name}")
