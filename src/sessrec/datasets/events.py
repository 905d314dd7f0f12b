"""Your own event log (CSV with a header, or parquet) → daily or hourly windows.

    sessrec prepare events --input clicks.csv --session-col session --item-col item --time-col ts --output DATA
    sessrec prepare events --input log.parquet --user-col user --session-gap 30m --item-col item \\
        --time-col time --window hour --categorical-cols category brand --continuous-cols price --output DATA

The same steps as the paper's data sets: sessions from a session column, or cut from each user's
stream after ``--session-gap`` of inactivity; repeated items removed (``--repeats``); first 20
interactions; sessions of >= 2; ids by decreasing frequency (0 = padding; 1 = empty value for the
side columns); features: item age (log1p days since the item was first seen, standardised), hour
and weekday sin/cos (``--timezone``), the ``--continuous-cols`` standardised; one window per day
or hour; train = all the window's sessions, valid / test = a random half each (``--split``).

Output columns: ``item_id``, the categorical columns under their own names, ``<col>_norm`` for the
continuous ones, ``item_age_days_log_norm``, ``hour_sin``, ``hour_cos``, ``weekday_sin``,
``weekday_cos``, and ``timestamp`` (seconds).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from sessrec.datasets import DEFAULT_SESSION_GAP_MS
from sessrec.datasets.features import (
    DAY_MS,
    age_days_rule,
    hour_weekday,
    hour_weekday_rules,
    mean_std,
    standardize,
)
from sessrec.datasets.pipeline import Categorical, Continuous, Options, PrepareResult, Recipe, Source, prepare
from sessrec.datasets.raw import (
    LINE,
    Conversion,
    as_float,
    check_header,
    convert,
    csv_batches,
    csv_scan,
    existing_files,
    in_input_order,
    strict_conversions,
)
from sessrec.errors import SessrecError
from sessrec.schema import CATEGORICAL, CONTINUOUS, ITEM_ID, LIST

UNIT_MS = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
PARQUET_ROWS = 500_000
_NUMBER = re.compile(r"^\s*-?\d+(\.\d*)?([eE][-+]?\d+)?\s*$")


@dataclass(frozen=True)
class Columns:
    """Which input column plays which role. Side columns are renamed ``c:<name>`` / ``x:<name>`` inside the
    pipeline so that no user column can clash with its own columns."""

    item: str
    time: str
    session: str | None
    user: str | None
    categorical: tuple[str, ...]
    continuous: tuple[str, ...]
    time_unit: str = "s"
    time_format: str | None = None

    @property
    def needed(self) -> list[str]:
        names = [self.item, self.time, self.session, self.user, *self.categorical, *self.continuous]
        return list(dict.fromkeys(n for n in names if n))

    def select(self) -> list[pl.Expr]:
        out = [pl.col(self.time).alias("t"), pl.col(self.item).cast(pl.String).alias("item")]
        out += [pl.col(c).cast(pl.String).alias(role) for role, c in (("session", self.session), ("user", self.user)) if c]
        out += [pl.col(c).cast(pl.String).alias(f"c:{c}") for c in self.categorical]
        # NaN and infinities are missing values (the mean), as pandas writes a missing number: one NaN in the
        # statistics would make the whole standardised feature NaN
        out += [pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(f"x:{c}") for c in self.continuous]
        return out


def _time_conversion(dtype: pl.DataType, sample: str | None, cols: Columns) -> Conversion:
    """Epoch milliseconds from a datetime, a number in ``--time-unit``, or text (``--time-format`` or inferred)."""
    scale = UNIT_MS[cols.time_unit]
    numeric = Conversion(lambda e, strict: (e.cast(pl.Float64, strict=strict) * scale).cast(pl.Int64),
                         f"a number of {cols.time_unit} since 1970")
    if dtype == pl.Date:
        return Conversion(lambda e, strict: e.cast(pl.Datetime("ms")).dt.epoch("ms"), "a date")
    if isinstance(dtype, pl.Datetime):
        return Conversion(lambda e, strict: e.dt.epoch("ms"), "a time")
    if dtype.is_numeric():
        return numeric
    if cols.time_format:
        return Conversion(lambda e, strict: e.str.strptime(pl.Datetime("ms"), cols.time_format, strict=strict)
                          .dt.epoch("ms"), f"a time in the format {cols.time_format!r}")
    if sample is not None and _NUMBER.match(sample):
        return numeric
    return Conversion(lambda e, strict: e.str.to_datetime(time_unit="ms", strict=strict).dt.epoch("ms"),
                      "a time in the format of the first value (pass --time-format)")


def _conversions(schema: pl.Schema, sample: str | None, cols: Columns) -> dict[str, Conversion]:
    """The time column to epoch ms (its format from its type or its first value), text continuous columns to numbers."""
    conv = {cols.time: _time_conversion(schema[cols.time], sample, cols)}
    conv.update({c: as_float() for c in cols.continuous if schema[c] == pl.String})
    return conv


def _typed(batch: pl.DataFrame, path: Path, cols: Columns, has_header: bool) -> pl.DataFrame:
    values = batch[cols.time].drop_nulls()
    sample = str(values[0]) if values.len() and batch[cols.time].dtype == pl.String else None
    try:
        return convert(batch, _conversions(batch.schema, sample, cols), path, has_header, required=(cols.time,))
    except pl.exceptions.PolarsError:
        raise SessrecError(f"{path}: cannot infer the format of the time column {cols.time} from {sample!r}; "
                           "pass --time-format (e.g. '%Y-%m-%d %H:%M:%S')") from None


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def _parquet_file(path: Path, cols: Columns) -> pq.ParquetFile:
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # pyarrow raises several types for a file that is not parquet
        raise SessrecError(f"{path}: not a readable parquet file ({e})") from None
    missing = [c for c in cols.needed if c not in pf.schema_arrow.names]
    if missing:
        raise SessrecError(f"{path}: column(s) {', '.join(missing)} not found; the columns are "
                           f"{', '.join(pf.schema_arrow.names)}")
    return pf


def _parquet_batches(path: Path, cols: Columns) -> Iterator[pl.DataFrame]:
    rows = 0
    for rb in _parquet_file(path, cols).iter_batches(batch_size=PARQUET_ROWS, columns=cols.needed):
        df = pl.from_arrow(rb).with_row_index(LINE, offset=rows)
        rows += df.height
        yield df


def _csv_header(path: Path, cols: Columns) -> list[str]:
    return check_header(path, cols.needed, "an event log CSV with these columns")


def read_events(paths: list[Path], cols: Columns) -> Iterator[pl.DataFrame]:
    def read_file(path: Path) -> Iterator[pl.DataFrame]:
        if _is_parquet(path):
            batches = _parquet_batches(path, cols)
        else:
            batches = csv_batches(path, cols.needed, _csv_header(path, cols))
        for batch in batches:
            yield _typed(batch, path, cols, has_header=not _is_parquet(path)).select(LINE, *cols.select())

    return in_input_order(paths, read_file)


def _scan_file(path: Path, cols: Columns) -> pl.LazyFrame:
    """One file's events as a lazy query with strict conversions; the time format from the file's first value."""
    if _is_parquet(path):
        _parquet_file(path, cols)
        text = pl.scan_parquet(path).select(cols.needed)
        if text.head(1).collect().height == 0:
            raise SessrecError(f"{path}: the file has no events")
    else:
        header = _csv_header(path, cols)
        text = pl.scan_csv(path, schema={name: pl.String for name in header}, truncate_ragged_lines=False)
    schema = text.collect_schema()
    first = text.select(cols.time).drop_nulls().head(1).collect()[cols.time] if schema[cols.time] == pl.String else []
    conv = _conversions(schema, str(first[0]) if len(first) else None, cols)
    if _is_parquet(path):
        return text.with_columns(**strict_conversions(conv, (cols.time,))).select(cols.select())
    return csv_scan(path, header, conv, (cols.time,)).select(cols.select())


def source(paths: list[Path], cols: Columns) -> Source:
    """The event logs: :func:`read_events`, and the same as one lazy query with strict conversions (fast path)."""
    return Source(lambda: read_events(paths, cols), sum(p.stat().st_size for p in paths),
                  lambda: pl.concat([_scan_file(p, cols) for p in paths], how="vertical_relaxed"))


def _age_log_days() -> pl.Expr:
    return ((pl.col("t") - pl.col("first_t")) / DAY_MS).clip(lower_bound=0.0).log1p()


def recipe(cols: Columns, timezone: str) -> Recipe:
    def fit(lf: pl.LazyFrame, items: pl.DataFrame) -> dict:
        stats = {c: mean_std(lf, pl.col(f"x:{c}")) for c in cols.continuous}
        stats["age"] = mean_std(lf.join(items.lazy().select("item", "first_t"), on="item"), _age_log_days())
        return stats

    def transform(df: pl.DataFrame, stats: dict) -> pl.DataFrame:
        return df.with_columns(
            *(standardize(pl.col(f"x:{c}").fill_null(stats[c][0]), *stats[c]).alias(f"{c}_norm") for c in cols.continuous),
            standardize(_age_log_days(), *stats["age"]).alias("item_age_days_log_norm"),
            *hour_weekday("t", timezone, False, ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")))

    cyc = (LIST, CONTINUOUS)
    return Recipe(
        name="events",
        item=Categorical("item", "item_id", (ITEM_ID, LIST, CATEGORICAL, "item")),
        categoricals=tuple(Categorical(f"c:{c}", c, (LIST, CATEGORICAL), unknown_slot=True) for c in cols.categorical),
        continuous=(*(Continuous(f"{c}_norm", (LIST, CONTINUOUS)) for c in cols.continuous),
                    Continuous("item_age_days_log_norm", ("item", LIST, CONTINUOUS)),
                    *(Continuous(n, cyc, -1.0, 1.0) for n in ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos"))),
        time_name="timestamp", time_unit_ms=1000, fit=fit, transform=transform,
        serving={**hour_weekday_rules(timezone, False, ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")),
                 "item_age_days_log_norm": age_days_rule("age")},
    )


def _check_timezone(timezone: str) -> None:
    try:
        pl.Series([0]).cast(pl.Datetime("ms")).dt.replace_time_zone(timezone)
    except pl.exceptions.PolarsError:
        raise SessrecError(f"unknown --timezone {timezone!r} (use an IANA name such as Europe/Oslo)") from None


def run(args, opts: Options) -> PrepareResult:
    if not args.session_col and not args.user_col:
        raise SessrecError("give --session-col, or --user-col to cut sessions after --session-gap of inactivity")
    if opts.repeats == "user" and not args.user_col:
        raise SessrecError("--repeats user needs --user-col")
    if not args.session_col:
        opts.session_gap_ms = args.session_gap or DEFAULT_SESSION_GAP_MS
    _check_timezone(args.timezone)
    cols = Columns(args.item_col, args.time_col, args.session_col, args.user_col, tuple(args.categorical_cols),
                   tuple(args.continuous_cols), args.time_unit, args.time_format)
    return prepare(recipe(cols, args.timezone), source(existing_files(args.input, "input file"), cols), opts)
