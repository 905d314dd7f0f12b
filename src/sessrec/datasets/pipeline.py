"""Raw events → session windows, the steps every data set shares, in bounded memory.

A data set module describes its raw input as a :class:`Source` of *events* with these columns:
``t`` (epoch milliseconds, UTC), ``item`` (raw item key), ``session`` (raw session key; absent when
sessions are cut from a user's stream by inactivity), ``user`` (when needed), ``_row`` (the input
order, added here when the source has none) and the raw side columns of its :class:`Recipe`. Then:

1. **Buckets.** One streaming polars query reads the input and writes each event to one of ``n``
   Arrow IPC files by a hash of its session key (or of the user, when sessions are cut from a
   user's stream or repeats are removed per user), so that a whole session sits in one file and a
   file is small whatever the input size. Files keep the input order.
2. **Sessions.** Per bucket, in memory (two buckets at a time): sort by time (input order on ties),
   cut sessions on inactivity if asked, remove repeated items, keep the first
   ``max_session_length`` interactions, drop sessions shorter than ``min_session_length``. Each
   kept session becomes one row (its key, start, size) of the bucket's ``rows`` file, and its events
   follow each other in the bucket's ``events`` file; both hold one record batch per time window of
   the sessions' first events (:class:`SessionStore`).
3. **Fit.** Polars aggregations over the events of the kept windows: contiguous ids by decreasing
   frequency for the item and every categorical column (:func:`assign_ids`), each item's first
   and latest interaction time, and the data set's feature statistics (over the events in window
   order: the order of their float sums before the events were stored per bucket).
4. **Windows.** Per window, in memory (two to four windows at a time, :func:`window_workers`):
   order the sessions by start, encode and compute the features on their events, cut the events
   back into one list per session, split into train/valid/test with a seeded generator and write
   them. Each item's latest event is kept.
5. **Catalog** (:mod:`sessrec.datasets.catalog`): the id tables and counts of step 3 and the latest
   events of step 4, with the original ids.

Memory is that of two buckets, the id tables and windows of ``WINDOW_EVENTS_AT_ONCE`` events in all (or
two windows, when they are larger), whatever the input size. Everything is written under a temporary
folder renamed to the output at the very end.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from polars.io.plugins import register_io_source
from tqdm import tqdm

from sessrec.config import MAX_SEED
from sessrec.data.catalog import age_rule
from sessrec.data.windows import SPLITS, window_dir
from sessrec.datasets.catalog import LatestItems, latest_per_item, plain_integer, write_catalog
from sessrec.datasets.features import DAY_MS, HOUR_MS, gini
from sessrec.errors import SessrecError
from sessrec.io import WriteError, atomic_replace_dir, atomic_write_text, check_output_folder, disk_error
from sessrec.progress import bar_disabled
from sessrec.runlock import own_temporary, remove_dead_temporaries
from sessrec.schema import CATEGORICAL, LIST, TIME, FeatureSpec, Schema

WINDOW_MS = {"day": DAY_MS, "hour": HOUR_MS}
REPEATS = ("consecutive", "session", "user", "keep")
SPLIT_RECIPES = ("80-10-10", "all+10-10", "all+50-50")
BUCKET_BYTES = 64 * 2**20  # raw input bytes per bucket: bounds the memory of step 2
WORK_COMPRESSION = "uncompressed"  # temporary files are Arrow IPC, read once: lz4 cost 2x the CPU to write and read
SINK_BATCH_ROWS = 8192  # rows a bucket's writer buffers: polars' default (~100k) took ~8 MB a bucket, 80 buckets 1 GB
WORKERS = 2  # buckets processed at a time: keeps two cores busy through the single-threaded parts
# windows processed at a time: up to 4 while their events fit WINDOW_EVENTS_AT_ONCE (~300 bytes each in memory), at
# least 2. REES46, 5M rows, 2 cores: the windows step took 2.2 s with 2 at a time, 1.9 s with 4 (+60 MB)
MAX_WINDOW_WORKERS = 4
WINDOW_EVENTS_AT_ONCE = 1_500_000
OUTPUT_ZSTD_LEVEL = 1  # window files: zstd level 1 writes 25 % faster than the default 3, files 2 % larger
ROW_COLUMNS = ("session", "start", "size")  # the columns of a session row (its events are in a file beside it)


@dataclass(frozen=True)
class Categorical:
    """A raw column encoded as contiguous ids by decreasing frequency (0 = padding)."""

    source: str  # raw column of the events ("item" for the item id)
    name: str  # output list column and schema feature
    tags: tuple[str, ...] = (LIST, CATEGORICAL)
    unknown_slot: bool = False  # id 1 = null, unknown or rare value; known values start at 2
    min_count: int = 1  # values seen fewer times map to the unknown id
    unknown_values: tuple = ()  # raw values that mean "unknown" (YOOCHOOSE category "0")
    chosen: bool = False  # a column the user named (events): said when it carries nothing or looks like an id


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
    # (events of one window with the item's first_t, statistics) -> events with the continuous columns, in the same
    # order; an event's values may depend on the window's events as a set (GaussRank), not on their order
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
            raise SessrecError(f"--session-gap must be at least 1 ms, got {self.session_gap_ms} ms")
        if self.min_sessions_per_window < 0:
            raise SessrecError(f"--min-sessions-per-window must be >= 0, got {self.min_sessions_per_window}")
        if not 0 <= self.seed <= MAX_SEED:
            raise SessrecError(f"--seed must be between 0 and {MAX_SEED}, got {self.seed}")
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
        return tqdm(iterable, disable=bar_disabled(self.quiet), file=sys.stderr, dynamic_ncols=True, leave=False, **kw)


@dataclass(frozen=True)
class Source:
    """The raw events of a data set.

    ``batches`` is the exact reader: blocks of events whose errors name the file and the line.
    ``scan``, when given, is the fast path: the same events as one lazy polars query whose
    conversions are strict, so that bad input fails the query (any polars error); the input is then
    read again with ``batches``, which names the first bad line (or, where the two readers
    disagree, gives the events)."""

    batches: Callable[[], Iterator[pl.DataFrame]]
    input_bytes: int
    scan: Callable[[], pl.LazyFrame] | None = None


def prepare(recipe: Recipe, source: Source, opts: Options) -> PrepareResult:
    """Run steps 1-5 and write ``opts.output`` (only complete on success); print the Table 1 statistics."""
    opts.validate()
    out = Path(opts.output)
    _check_output(out, opts.overwrite)
    progress = Progress(recipe.name, opts.quiet)
    for folder in remove_dead_temporaries(out.parent, f".{out.name}.tmp"):  # one may hold twice the input's columns
        progress.say(f"removed {folder}, left by a run that was stopped")
    tmp = own_temporary(out.parent, f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        work = tmp / "_work"
        n_buckets = max(1, math.ceil(source.input_bytes / BUCKET_BYTES))
        _write_buckets(source, work / "buckets", n_buckets, _bucket_key(opts), progress, _user_option(opts))
        store = SessionStore(work / "sessions", integer_items=integer_text(work / "buckets", "item"))
        _build_sessions(work / "buckets", n_buckets, store, _bucket_key(opts), opts, progress)
        counts = store.counts()
        kept = _choose_windows(counts, opts, progress)
        fitted = _fit(recipe, store, kept, progress)
        workers = window_workers([counts[key][1] for key in kept])
        windows, latest = _write_windows(recipe, fitted, kept, store, tmp, opts, progress, workers)
        stats = _statistics(recipe, fitted, windows, opts)
        schema = build_schema(recipe, fitted, opts)
        schema.save(tmp / "schema.pbtxt")
        schema.save(tmp / "schema.json")
        _write_catalog(tmp, recipe, fitted, schema, latest)
        atomic_write_text(tmp / "stats.json", json.dumps(stats, indent=2) + "\n")
        atomic_write_text(tmp / "windows.csv", _windows_csv(windows))
        shutil.rmtree(work)
        atomic_replace_dir(tmp, out)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        full = disk_error(e)  # polars and pyarrow raise their own exceptions for it, without the path
        if full is not None:
            raise WriteError(out, full, f" (prepare writes its temporary files beside it, in {tmp.parent})") from None
        raise
    print(format_stats(stats, recipe.paper_stats))
    print(f"wrote {len(windows)} windows to {out} (train/valid/test.parquet each, schema.pbtxt, stats.json, windows.csv)")
    return PrepareResult(out, schema, stats, windows)


def _check_output(out: Path, overwrite: bool) -> None:
    check_output_folder(out, "--output")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise SessrecError(f"output folder {out} is not empty; pass --overwrite to replace it")


def _bucket_key(opts: Options) -> str:
    return "user" if opts.session_gap_ms is not None or opts.repeats == "user" else "session"


def _session_owner(opts: Options) -> str:
    """The column whose value names a session in messages: the user's where sessions are cut from user streams."""
    return "user" if opts.session_gap_ms is not None else "session"


def _user_option(opts: Options) -> str:
    """The option that needs each event's user, for messages."""
    return "--repeats user" if opts.repeats == "user" else "cutting sessions after --session-gap of inactivity"


# ---- step 1: buckets -----------------------------------------------------------------------------
def _write_buckets(source: Source, folder: Path, n_buckets: int, key: str, progress: Progress,
                   user_option: str) -> None:
    """Events → ``folder/RUN/_bucket=B/*.ipc``, one run for the fast scan, else one per batch (in input order).
    ``user_option``: what needs the events' user column, when ``key`` is ``user``."""
    if source.scan is not None:
        try:
            progress.say(f"reading {source.input_bytes / 2**20:,.0f} MB")
            _sink_buckets(source.scan(), folder / "00000", n_buckets, key, user_option)
            return
        except Exception as e:  # noqa: BLE001 - polars', ours, or one raised in a check the scan runs in Python
            # the exact reader names the first bad line, and reports several problems in the input's order
            shutil.rmtree(folder, ignore_errors=True)
            progress.say(f"reading again in blocks to locate the problem ({str(e).strip().splitlines()[0][:200]})")
    bar = progress.bar(unit=" events", unit_scale=True, desc="reading")
    try:
        for i, batch in enumerate(source.batches()):
            bar.update(batch.height)
            _sink_buckets(batch.lazy(), folder / f"{i:05d}", n_buckets, key, user_option)
    finally:
        bar.close()


def _sink_buckets(events: pl.LazyFrame, folder: Path, n_buckets: int, key: str, user_option: str) -> None:
    """One streaming query: events → one IPC file per bucket, in input order. ``_row`` is kept (and numbered
    when missing) only where it is a session id or breaks ties between rows that are not in input order."""
    names = events.collect_schema().names()
    if key not in names:  # the data set modules refuse such options before reading: a missed case
        raise SessrecError(f"{user_option} needs each event's user, and this input has no user column; "
                           "choose another option")
    if key == "user" and "_row" not in names:
        events = events.with_row_index("_row").with_columns(pl.col("_row").cast(pl.Int64))
    elif key != "user" and "_row" in names:
        events = events.drop("_row")
    if key != "user" and "user" in names:
        events = events.drop("user")
    # text is stored as bytes from here on (the reader checked it is UTF-8): reading an IPC file checked every
    # text value again, 3 % of the CPU of steps 2-4; ids are made of the bytes, the output text again
    events.with_columns(pl.col(pl.String).cast(pl.Binary), _bucket=pl.col(key).hash(seed=0) % n_buckets).sink_ipc(
        pl.PartitionBy(folder, key="_bucket", include_key=False, approximate_bytes_per_file=None),
        compression=WORK_COMPRESSION, record_batch_size=SINK_BATCH_ROWS, mkdir=True)


# ---- step 2: sessions ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Truncation:
    """The sessions longer than ``--max-session-length`` (after repeat removal): how many, the interactions of theirs
    left out; and the longest session's length and its session (or user) id, as the input has it."""

    sessions: int = 0
    events: int = 0
    longest: int = 0
    longest_id: object = None

    def __add__(self, other: Truncation) -> Truncation:
        top = self if self.longest >= other.longest else other
        return Truncation(self.sessions + other.sessions, self.events + other.events, top.longest, top.longest_id)


SUSPECT_LENGTH = 1000  # interactions of a session (after repeat removal) that a person rarely makes: said


def sessionize(df: pl.DataFrame, opts: Options) -> tuple[pl.DataFrame, Truncation]:
    """Sessions of one bucket: ``session``, ``pos`` (0-based, after repeat removal and truncation),
    ``start`` (the session's first kept event time) and ``wkey`` (its time window: UTC day or hour
    number since 1970) on each kept event, in order of window, then session, then position. Time ties
    keep the input order: ``_row`` where the events have it, else their order in ``df``. Also what the
    truncation to ``max_session_length`` left out."""
    ties = ["_row"] if "_row" in df.columns else []
    if opts.session_gap_ms is not None:
        df = df.sort("user", "t", *ties, maintain_order=True)
        new = ((pl.col("user") != pl.col("user").shift(1)) | ((pl.col("t") - pl.col("t").shift(1)) > opts.session_gap_ms))
        df = df.with_columns(session=pl.when(new.fill_null(True)).then(pl.col("_row")).forward_fill())
    if opts.repeats == "user":
        df = df.sort("user", "t", *ties, maintain_order=True).filter(pl.struct("user", "item").is_first_distinct())
    df = df.sort("session", "t", *ties, maintain_order=True)
    first = (pl.col("session") != pl.col("session").shift(1)).fill_null(True)
    repeat = {"consecutive": ((pl.col("item") == pl.col("item").shift(1)) & ~first).fill_null(False),
              "session": ~pl.struct("session", "item").is_first_distinct()}.get(opts.repeats, pl.lit(False))
    flags = df.select(first=first, kept=~repeat)
    # positions from the runs of the sorted session column, and one gather of the kept events in window order
    # at the end: much faster than window expressions (.over) and than filtering and sorting again.
    # A session's first event is never a repeat, so it starts the kept events too.
    first, kept = flags["first"].to_numpy(), flags["kept"].to_numpy()
    starts = np.flatnonzero(first)
    session = np.cumsum(first) - 1
    n_kept = np.cumsum(kept)
    pos = n_kept - 1 - (n_kept - kept)[starts][session]
    lengths = n_kept[np.append(starts[1:] - 1, df.height - 1)] - (n_kept - kept)[starts]
    rows = np.flatnonzero(kept & (pos < opts.max_session_length) & (lengths[session] >= opts.min_session_length))
    long = lengths[lengths > opts.max_session_length]
    top = int(np.argmax(lengths)) if lengths.size else None
    cut = Truncation(long.size, int(long.sum()) - long.size * opts.max_session_length,
                     0 if top is None else int(lengths[top]),
                     None if top is None else df[_session_owner(opts)][int(starts[top])])
    start = df["t"].to_numpy()[starts][session]
    wkey = start[rows] // WINDOW_MS[opts.window]
    if rows.size:  # stable by window (numpy's radix sort where the windows fit 16 bits)
        span = wkey - wkey.min()
        rows = rows[np.argsort(span.astype(np.uint16) if span.max() < 2**16 else span, kind="stable")]
    return df[rows].with_columns(pos=pos[rows], start=start[rows], wkey=start[rows] // WINDOW_MS[opts.window]), cut


def as_text(values: pl.Series) -> pl.Series:
    """Raw values as the input had them: text that the pipeline carried as bytes (step 1) becomes text again."""
    return values.cast(pl.String) if values.dtype == pl.Binary else values


def as_lists(values: pl.Series, offsets: np.ndarray) -> pl.Series:
    """``values`` cut into consecutive lists at ``offsets`` (``[0, ..., len(values)]``): the list column of
    events already in session order, built on arrow's offsets without copying the values (a sorted
    group_by took 20-50x longer)."""
    flat = values.rechunk().to_arrow(compat_level=pl.CompatLevel.newest())  # text as string_view: no copy either
    return pl.Series(values.name, pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), flat))


def session_rows(events: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The sessions of :func:`sessionize`'s events, one row each (``session``, ``start``, ``wkey``, ``size``), and
    their events (the other event columns, in the same order): a session's events are the next ``size`` rows."""
    firsts = np.flatnonzero(events["pos"].to_numpy() == 0)
    rows = events[firsts].select("session", "start", "wkey").with_columns(
        pl.Series("size", np.diff(np.append(firsts, events.height)), dtype=pl.get_index_type()))
    return rows, events.drop(*ROW_COLUMNS, "wkey", "pos", "user", "_row", strict=False)


@dataclass
class SessionStore:
    """Step 2's output: per bucket, a ``rows`` file (one row per session: ``session``, ``start``, ``size``) and an
    ``events`` file (their events, one after the other), Arrow IPC files holding one record batch per time
    window, in window order. One file per bucket rather than per (window, bucket): each query of the fit
    opened every file, and 310 files (REES46, 5M rows) cost it 0.27 of 0.61 s, measured; a window's batches
    are read by memory map."""

    folder: Path
    # the item ids were text, all of them integers written plainly, and are stored as integers (joins and
    # group-bys on integers: `events` at 5M rows 5.5 -> 5.1 s); ids still order ties by the text
    integer_items: bool = False
    # bucket -> {wkey: (its batch in the bucket's files, sessions, events)}, in window (= batch) order
    windows: dict[int, dict[int, tuple[int, int, int]]] = field(default_factory=dict)

    def path(self, bucket: int, kind: str) -> Path:
        return self.folder / f"{bucket:05d}.{kind}.arrow"

    def write(self, bucket: int, rows: pl.DataFrame, events: pl.DataFrame) -> None:
        """A bucket's sessions (with ``wkey``, in window order) and their events, one batch per window."""
        wkeys, firsts = np.unique(rows["wkey"].to_numpy(), return_index=True)
        ends = np.cumsum(rows["size"].to_numpy().astype(np.int64))
        slices = {}
        for wkey, lo, hi in zip(wkeys.tolist(), firsts.tolist(), [*firsts[1:].tolist(), rows.height]):
            first = int(ends[lo - 1]) if lo else 0
            slices[wkey] = (rows.slice(lo, hi - lo).drop("wkey"), events.slice(first, int(ends[hi - 1]) - first))
        self.folder.mkdir(parents=True, exist_ok=True)
        for kind, column in (("rows", 0), ("events", 1)):
            frames = [pair[column].to_arrow(compat_level=pl.CompatLevel.oldest()).combine_chunks() for pair in slices.values()]
            with pa.ipc.new_file(str(self.path(bucket, kind)), frames[0].schema) as writer:
                for table in frames:
                    (batch,) = table.to_batches()  # one batch per window: its index is the window's rank
                    writer.write_batch(batch)
        self.windows[bucket] = {wkey: (index, pair[0].height, pair[1].height)
                                for index, (wkey, pair) in enumerate(slices.items())}

    def counts(self) -> dict[int, list[int]]:
        """{window key: [sessions, events]} over the buckets."""
        totals: dict[int, list[int]] = {}
        for windows in self.windows.values():
            for wkey, (_, n_sessions, n_events) in windows.items():
                c = totals.setdefault(wkey, [0, 0])
                c[0] += n_sessions
                c[1] += n_events
        return totals

    def events_any_order(self, kept: list[int]) -> pl.LazyFrame:
        """The events of the ``kept`` windows, bucket after bucket (for order-free aggregates: counts, min, max):
        a bucket's whole file where it holds kept windows only, else a slice of it per run of kept windows."""
        keep, scans, whole = set(kept), [], []
        for bucket, windows in sorted(self.windows.items()):
            if keep.issuperset(windows):
                whole.append(self.path(bucket, "events"))
                continue
            offset, runs = 0, []
            for wkey, (_, _, n_events) in windows.items():
                if wkey in keep:
                    if runs and sum(runs[-1]) == offset:
                        runs[-1] = (runs[-1][0], runs[-1][1] + n_events)
                    else:
                        runs.append((offset, n_events))
                offset += n_events
            scans += [pl.scan_ipc(self.path(bucket, "events")).slice(o, n) for o, n in runs]
        return pl.concat(([pl.scan_ipc(whole)] if whole else []) + scans)

    def events(self, kept: list[int]) -> pl.LazyFrame:
        """The events of the ``kept`` windows as one lazy source, window after window and bucket after bucket
        within a window: the order the float statistics were summed in when each (window, bucket) had its own
        file (summed bucket by bucket, a float32 feature changed by one step at 20M rows; polars' streaming
        sums still vary in their last bit from run to run). Each batch is read by memory map, only the
        columns used."""
        parts = [(self.path(b, "events"), windows[wkey][0]) for wkey in kept
                 for b, windows in sorted(self.windows.items()) if wkey in windows]
        schema = pl.from_arrow(pa.ipc.open_file(pa.memory_map(str(parts[0][0]))).schema.empty_table()).schema

        def source(with_columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None,
                   batch_size: int | None) -> Iterator[pl.DataFrame]:
            readers = {path: pa.ipc.open_file(pa.memory_map(str(path))) for path in {path for path, _ in parts}}
            for path, index in parts:
                batch = readers[path].get_batch(index)
                frame = pl.from_arrow(batch.select(with_columns) if with_columns is not None else batch)
                if predicate is not None:
                    frame = frame.filter(predicate)
                if n_rows is not None:
                    frame = frame.head(n_rows)
                    n_rows -= frame.height
                yield frame
                if n_rows == 0:
                    return

        return register_io_source(source, schema=schema)

    def read(self, wkey: int) -> tuple[pl.DataFrame, pl.DataFrame]:
        """A window's sessions and their events, bucket after bucket."""
        found: dict[str, list[pa.RecordBatch]] = {"rows": [], "events": []}
        for bucket, windows in sorted(self.windows.items()):
            if wkey in windows:
                for kind, batches in found.items():
                    batches.append(pa.ipc.open_file(pa.memory_map(str(self.path(bucket, kind)))).get_batch(windows[wkey][0]))
        rows, events = (pl.from_arrow(pa.Table.from_batches(found[kind])) for kind in ("rows", "events"))
        return rows.rechunk(), events.rechunk()


def _build_sessions(buckets: Path, n_buckets: int, store: SessionStore, key: str, opts: Options,
                    progress: Progress) -> None:
    """Step 2 for every bucket, into ``store``."""
    def one(b: int) -> tuple[int, int, int, Truncation]:
        files = sorted(buckets.glob(f"*/_bucket={b}/*.ipc"))
        if not files:
            return 0, 0, 0, Truncation()
        df = pl.concat([pl.read_ipc(f) for f in files], how="vertical_relaxed", rechunk=True)  # sorts 2x faster
        for f in files:
            f.unlink()
        n_read = df.height
        if store.integer_items:
            df = df.with_columns(pl.col("item").cast(pl.String).cast(pl.Int64))
        if df[key].null_count() or df["item"].null_count():  # a filter copies every column, even keeping all rows
            df = df.filter(pl.col(key).is_not_null() & pl.col("item").is_not_null())
        # the events are stored flat (not as list columns of the rows): step 3 reads them 25 % faster (REES46,
        # 5M rows, measured)
        kept, cut = sessionize(df, opts)
        rows, events = session_rows(kept)
        if rows.height:
            store.write(b, rows, events)
        last = events["t"].to_numpy()[np.cumsum(rows["size"].to_numpy()) - 1]  # a session's events are in time order
        return n_read, n_read - df.height, int(np.count_nonzero(last - rows["start"].to_numpy() > DAY_MS)), cut

    n_rows = n_dropped = n_long = 0
    cut = Truncation()
    with ThreadPoolExecutor(WORKERS) as pool:
        for n_read, dropped, long, bucket_cut in progress.bar(pool.map(one, range(n_buckets)), total=n_buckets,
                                                              desc="sessions", unit=" bucket"):
            n_rows, n_dropped, n_long, cut = n_rows + n_read, n_dropped + dropped, n_long + long, cut + bucket_cut
    if n_rows == n_dropped:
        raise SessrecError("the input has no events" + (f" with a {key} and an item" if n_dropped else ""))
    progress.say(f"read {n_rows:,} events into {n_buckets} bucket(s)"
                 + (f"; dropped {n_dropped:,} without a {key} or an item" if n_dropped else ""))
    if cut.sessions:
        progress.say(f"kept the first {opts.max_session_length} interactions of {cut.sessions:,} longer session(s): "
                     f"{cut.events:,} interactions left out (--max-session-length)")
    if cut.longest >= SUSPECT_LENGTH:  # bots, or one id standing for many visitors
        who = _session_owner(opts)
        name = cut.longest_id.decode(errors="replace") if isinstance(cut.longest_id, bytes) else cut.longest_id
        progress.warn(f"sessions of up to {cut.longest:,} interactions (after removing repeats; the longest is {who} "
                      f"{name!r}): bots, or a {who} id that stands for a missing value (NA, null, 0, -1: only empty ones "
                      "are dropped)? Empty such ids to drop their events")
    if n_long:  # a session id used again on other days makes one session of them all
        progress.warn(f"{n_long:,} session(s) last more than a day from their first to their last kept interaction (a "
                      f"session id used again on other days?); each is kept whole, in the {opts.window} window of its "
                      "first interaction")


def integer_text(buckets: Path, column: str) -> bool:
    """Whether the text (bytes) ``column`` of the bucket files holds only integers written plainly ("1004856",
    not "007", "+5" or " 5"): read back as integers, they are the same values."""
    files = sorted(buckets.glob("*/_bucket=*/*.ipc"))
    if not files or pl.scan_ipc(files[0]).collect_schema()[column] != pl.Binary:
        return False
    with pl.Config(engine_affinity="streaming"):
        return bool(pl.scan_ipc(files).select(plain_integer(pl.col(column).cast(pl.String)).all()).collect().item())


def _choose_windows(counts: dict[int, list[int]], opts: Options, progress: Progress) -> list[int]:
    """Windows with enough sessions for the split recipe and ``--min-sessions-per-window``, in time order."""
    first, last = (_window_start(min(counts), opts.window), _window_start(max(counts), opts.window)) if counts else (None, None)
    if counts and (first is None or last is None):
        raise SessrecError("the event times go beyond the years 1-9999: are they in another unit (events: --time-unit)?")
    if counts and not (1980 <= first.year and last.year <= 2100):
        progress.warn(f"the sessions start between {first:%Y-%m-%d} and {last:%Y-%m-%d}: if the events did not happen "
                      "then, their times are in another unit (events: --time-unit)")
    least = 3 if opts.split == "80-10-10" else 2  # a session for each split
    need = max(opts.min_sessions_per_window, least)
    kept = [k for k in sorted(counts) if counts[k][0] >= need]
    skipped = len(counts) - len(kept)
    if skipped:
        progress.say(f"skipped {skipped} of {len(counts)} {opts.window} windows with fewer than {need} sessions")
    if not kept:
        total = sum(c[0] for c in counts.values())
        if not total:  # every session was shorter: lowering a count of sessions would not help
            raise SessrecError(f"no session has >= {opts.min_session_length} interactions (after removing repeats: "
                               f"--repeats {opts.repeats}); check that the session key groups the events of a visit")
        span = f", starting from {first:%Y-%m-%d} to {last:%Y-%m-%d}"
        lower = "lower --min-sessions-per-window or " if opts.min_sessions_per_window > least else ""
        raise SessrecError(f"no {opts.window} window has at least {need} sessions of >= {opts.min_session_length} "
                           f"interactions ({total} sessions in all{span}); {lower}check the input")
    if len(kept) == 1:
        progress.warn("only one window; `sessrec run` needs at least two (train on one, evaluate on the next)")
    empty = kept[-1] - kept[0] + 1 - len(kept)
    if empty:  # the windows are numbered over those kept: a run's window t + 1 may be days after t
        gap = next(k + 1 for k, after in zip(kept, kept[1:]) if after > k + 1)
        progress.say(f"{empty:,} of the {kept[-1] - kept[0] + 1:,} {opts.window}s from the first window to the last have "
                     f"no window (no session, or too few), the first {_window_start(gap, opts.window):%Y-%m-%d %H:%M}: "
                     "the windows are numbered over those kept (windows.csv gives their dates)")
    future = [k for k in kept if _window_start(k, opts.window) > datetime.now(timezone.utc)]
    if future:
        progress.warn(f"{len(future)} window(s) start after now, up to {_window_start(future[-1], opts.window):%Y-%m-%d}: "
                      "a clock error, or times in another unit?")
    return kept


def _window_start(wkey: int, window: str) -> datetime | None:
    """A window's start (UTC), or None beyond the years 1-9999."""
    try:
        return datetime.fromtimestamp(wkey * WINDOW_MS[window] / 1000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None


# ---- step 3: fit ---------------------------------------------------------------------------------
@dataclass
class Fitted:
    items: pl.DataFrame  # item, id, n, first_t, last_t (its first and latest interaction time)
    encoders: dict[str, pl.DataFrame]  # output name -> [source, id, n]
    max_ids: dict[str, int]  # output name -> largest id
    stats: dict


def encoder(counts: pl.DataFrame, cat: Categorical, ties_by_text: bool = False) -> tuple[pl.DataFrame, int]:
    """Ids by decreasing count (ties: by raw value, or by its text with ``ties_by_text``) from 1, or from 2 with an
    unknown slot; and the largest id."""
    known = counts.filter(pl.col(cat.source).is_not_null() & (pl.col("n") >= cat.min_count))
    if cat.unknown_values:
        known = known.filter(~pl.col(cat.source).cast(pl.String).is_in([str(v) for v in cat.unknown_values]))
    offset = 2 if cat.unknown_slot else 1
    tie = pl.col(cat.source).cast(pl.String) if ties_by_text else pl.col(cat.source)
    table = known.sort([pl.col("n"), tie], descending=[True, False]).with_columns(
        pl.int_range(offset, offset + known.height, dtype=pl.Int64).alias("id"))
    return table, max(offset - 1, offset + known.height - 1)


def assign_ids(events: pl.LazyFrame, recipe: Recipe,
               integer_items: bool = False) -> tuple[pl.DataFrame, dict[str, pl.DataFrame], dict[str, int]]:
    """The one place where ids are given: for the item and each categorical column, over the written ``events``.
    Returns the item table ``[item, id, n, first_t, last_t]``, the tables ``{output name: [raw column, id, n]}`` of the
    categorical columns (``n``: the value's interactions), and ``{output name: largest id}``; raw values absent from a table get no id (or the
    unknown id 1 where the column has that slot)."""
    cats = recipe.categoricals
    results = pl.collect_all([events.group_by("item").agg(n=pl.len(), first_t=pl.col("t").min(), last_t=pl.col("t").max())]
                             + [events.group_by(c.source).agg(n=pl.len()) for c in cats],
                             optimizations=pl.QueryOptFlags(comm_subplan_elim=False))  # a shared scan is held in memory
    items, max_item = encoder(results[0], recipe.item, ties_by_text=integer_items)
    tables, max_ids = {}, {recipe.item.name: max_item}
    for cat, counts in zip(cats, results[1:]):
        table, max_id = encoder(counts, cat)
        tables[cat.name], max_ids[cat.name] = table.select(cat.source, "id", "n"), max_id
    return items, tables, max_ids


def _fit(recipe: Recipe, store: SessionStore, kept: list[int], progress: Progress) -> Fitted:
    """Step 3 over the events of the kept windows: the ids (exact whatever the order) from a scan of whole files,
    the feature statistics from the events in window order (REES46, 20M rows: ids 0.9 s from the files, 1.6 s
    from the ordered source; statistics 1.2 s)."""
    progress.say("fitting ids and feature statistics")
    with pl.Config(engine_affinity="streaming"):  # the recipe's queries too: memory of the aggregates, not the events
        items, encoders, max_ids = assign_ids(store.events_any_order(kept), recipe, store.integer_items)
        _warn_flat_categoricals(recipe, int(items["n"].sum()), encoders, progress)
        return Fitted(items, encoders, max_ids, recipe.fit(store.events(kept), items))


ID_LIKE = 0.5  # distinct values per interaction of a categorical feature above which it looks like an id or a time


def _warn_flat_categoricals(recipe: Recipe, n_events: int, encoders: dict[str, pl.DataFrame], progress: Progress) -> None:
    """Say which categorical features the user chose carry nothing (no value, or one value on every interaction), and
    which have nearly a value per interaction (an event id or a time passed as a category: an embedding row per
    interaction)."""
    for cat in (c for c in recipe.categoricals if c.chosen):
        table, column = encoders[cat.name], f"--categorical-cols {cat.name}"
        if not table.height:
            progress.warn(f"{column}: no value in the kept sessions (empty everywhere): it carries nothing")
        elif table.height == 1 and int(table["n"].sum()) == n_events:
            value = table[cat.source][0]
            value = value.decode(errors="replace") if isinstance(value, bytes) else value
            progress.warn(f"{column}: {value!r} on every interaction of the kept sessions: it carries nothing")
        elif table.height >= 1000 and table.height >= ID_LIKE * n_events:
            progress.warn(f"{column}: {table.height:,} distinct values over {n_events:,} interactions: an id or a time "
                          "rather than a category? Each value gets an embedding row, trained on ~1 interaction, and "
                          "values unseen in training are all one unknown id")


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
    df = df.join(fitted.items.select("item", "id", "first_t", "last_t"), on="item", how="left", maintain_order="left")
    df = df.rename({"id": recipe.item.name})
    for cat in recipe.categoricals:
        df = df.join(fitted.encoders[cat.name].select(cat.source, "id"), on=cat.source, how="left", maintain_order="left")
        df = df.drop(cat.name, strict=False).rename({"id": cat.name})
        if cat.unknown_slot:
            df = df.with_columns(pl.col(cat.name).fill_null(1))
    return df


def output_columns(recipe: Recipe) -> list[str]:
    return [recipe.item.name, *(c.name for c in recipe.categoricals), *(c.name for c in recipe.continuous),
            recipe.time_name]


def _ranges(starts: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """The indices ``starts[0], ..., starts[0] + sizes[0] - 1, starts[1], ...``."""
    offsets = np.cumsum(sizes) - sizes
    return np.arange(int(sizes.sum())) + np.repeat(starts - offsets, sizes)


def _write_window(recipe: Recipe, fitted: Fitted, rows: pl.DataFrame, events: pl.DataFrame, folder: Path, split: str,
                  rng: np.random.Generator) -> tuple[dict[str, int], pl.DataFrame]:
    """Write a window's train/valid/test files: one row per session (list columns), ordered by session start
    then session key. The events are encoded in file order (``transform`` works event by event); only the
    output columns of each split's sessions are gathered, straight into their order. ``rows`` and
    ``events``: the window's sessions and their events (:meth:`SessionStore.read`). Returns the sizes, and each
    item's latest event of the window for the catalog (time ties: the later one in the written order, ``_place``)."""
    events = _encode(events, recipe, fitted)
    # an item's latest event in this window can only be one at its latest time of all windows (the fit's last_t):
    # looking for it among those events alone took the catalog's share of this step from 0.34 to ~0.03 s (REES46, 5M rows)
    candidates = (events["t"] == events["last_t"]).to_numpy()
    events = recipe.transform(events, fitted.stats)
    unit = recipe.time_unit_ms
    events = events.select(*output_columns(recipe)[:-1], (pl.col("t") / unit).cast(pl.Float64).alias(recipe.time_name))
    sizes = rows["size"].to_numpy().astype(np.int64)
    starts = np.cumsum(sizes) - sizes
    order = rows.select(pl.arg_sort_by("start", "session")).to_series().to_numpy()
    place = np.empty(events.height, dtype=np.int64)
    place[_ranges(starts[order], sizes[order])] = np.arange(events.height)
    latest = latest_per_item(events.filter(candidates).with_columns(pl.Series("_place", place[candidates])),
                             recipe.item.name, [recipe.time_name, "_place"]).drop("_place")
    rows = rows.select(as_text(rows["session"]).alias("session_id"), (pl.col("start") // unit).alias("session_start"),
                       pl.col("size").alias("session_size"))
    counts = {"sessions": rows.height, "interactions": events.height}
    for name, picked in split_indices(rows.height, split, rng).items():
        chosen = order[picked]
        part = events[_ranges(starts[chosen], sizes[chosen])]
        offsets = np.concatenate([[0], np.cumsum(sizes[chosen])])
        table = rows[chosen].with_columns(as_lists(part[c], offsets) for c in part.columns)
        table.write_parquet(folder / f"{name}.parquet", compression_level=OUTPUT_ZSTD_LEVEL)
        counts[name] = int(chosen.size)
    return counts, latest


def window_workers(events: list[int]) -> int:
    """How many windows step 4 processes at a time, given each window's number of events: as many as fit
    ``WINDOW_EVENTS_AT_ONCE`` if the largest windows came together, between 2 and ``MAX_WINDOW_WORKERS``."""
    return max(2, min(MAX_WINDOW_WORKERS, WINDOW_EVENTS_AT_ONCE // max(1, *events)))


def _write_windows(recipe: Recipe, fitted: Fitted, kept: list[int], store: SessionStore, out: Path, opts: Options,
                   progress: Progress, workers: int = WORKERS) -> tuple[list[dict], pl.DataFrame]:
    """Step 4 for every window; returns the rows of windows.csv and each item's latest written event (for the
    catalog's item table)."""
    def one(index: int, wkey: int) -> tuple[dict, pl.DataFrame]:
        folder = window_dir(out, index)
        folder.mkdir(parents=True)
        counts, latest = _write_window(recipe, fitted, *store.read(wkey), folder, opts.split,
                                       np.random.default_rng([opts.seed, index]))
        return {"window": index, "start_utc": _window_start(wkey, opts.window).strftime("%Y-%m-%d %H:%M"), **counts}, latest

    windows, latest = [], LatestItems(recipe.item.name, recipe.time_name)
    with ThreadPoolExecutor(workers) as pool:
        jobs = pool.map(one, range(1, len(kept) + 1), kept)
        for row, last in progress.bar(jobs, total=len(kept), desc="windows", unit=" window"):  # in window order
            windows.append(row)
            latest.add(last)
    return windows, latest.table()


def _windows_csv(windows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["window", "start_utc", "sessions", "interactions", *SPLITS],
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(windows)
    return buf.getvalue()


def _write_catalog(out: Path, recipe: Recipe, fitted: Fitted, schema: Schema, latest: pl.DataFrame) -> None:
    """Original ids ↔ ids of the item and every categorical (with the fit's counts), the item table (each item's
    ``latest`` written event), the serving rules."""
    items = fitted.items.select(pl.col("item").alias("raw"), "id", pl.col("n").alias("count"), "first_t")
    maps = {c.name: (fitted.encoders[c.name].select(pl.col(c.source).alias("raw"), "id", pl.col("n").alias("count")),
                     1 if c.unknown_slot else None) for c in recipe.categoricals}
    rules = {name: age_rule(rule["unit_ms"], rule["whole_units"], *fitted.stats[rule["stats"]]) if rule["from"] == "age" else rule
             for name, rule in recipe.serving.items()}
    write_catalog(out, schema, items, maps, latest, recipe.time_name, recipe.time_unit_ms, rules)


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
