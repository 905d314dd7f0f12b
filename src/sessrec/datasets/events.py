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

Logs as users' tools write them are read as what they mean, and what cannot be read right is refused
in one line: ISO times with an offset or ``Z`` are converted to UTC; a date that starts with a day
and a month is read in the order the values tell, or refused; ids are text, ``""`` and NaN missing,
whole floats integers (``1.0`` is ``1``; a float past 2^53 is refused, its digits are lost); a
parquet file is known by its first bytes too, and a folder stands for its files (:func:`input_files`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
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
from sessrec.datasets.pipeline import (
    Categorical,
    Continuous,
    Options,
    PrepareResult,
    Progress,
    Recipe,
    Source,
    output_columns,
    prepare,
)
from sessrec.datasets.raw import (
    COMMA,
    LINE,
    Conversion,
    Dialect,
    as_float,
    check_header,
    convert,
    csv_batches,
    csv_scan,
    existing_files,
    has_rows,
    in_input_order,
    line_number,
    strict_conversions,
)
from sessrec.errors import SessrecError, listed
from sessrec.schema import CATEGORICAL, CONTINUOUS, ITEM_ID, LIST

UNIT_MS = {"s": 1000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
PARQUET_ROWS = 500_000
SAMPLE_ROWS = 1000  # rows read for a file's first values
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv",)  # the text files a folder stands for (and .tsv files, with --delimiter tab)
_NUMBER = re.compile(r"^\s*-?\d+(\.\d*)?([eE][-+]?\d+)?\s*$")
# a date that starts with two numbers of 1-2 digits, the day and the month in some order: 03/05/2024, 3-5-24, 05.03.2024
_DAY_MONTH = r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-]\d{2,4}(?:\D|$)"
# an id written as a float: with a point or an exponent (1.0, 1.79e+18), or NaN; and any number, for the whole column
_FLOAT_TEXT = r"^[-+]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][-+]?\d+)$|^(?i:[-+]?nan)$"
_NUMBER_TEXT = r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^(?i:[-+]?(nan|inf|infinity))$"
# epoch milliseconds of 0001-01-01 and of the end of 9999-12-31: the times a window can start at
_YEARS_MS = (-62_135_596_800_000, 253_402_300_799_999)
SESSION_COLUMNS = ("session_id", "session_start", "session_size")  # the scalar columns of a session row


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
    dialect: Dialect = COMMA  # how the CSV files are written (--delimiter, --quote-char)
    input_zone: str = "UTC"  # the zone of times written without one (--input-timezone); epoch numbers are UTC

    @property
    def needed(self) -> list[str]:
        names = [self.item, self.time, self.session, self.user, *self.categorical, *self.continuous]
        return list(dict.fromkeys(n for n in names if n))

    @property
    def ids(self) -> list[str]:
        """The id columns (item, session, user): a missing value drops the event."""
        return list(dict.fromkeys(n for n in (self.item, self.session, self.user) if n))

    def select(self, float_ids: Collection[str] = ()) -> list[pl.Expr]:
        """The pipeline's columns. Ids become text: ``""`` and NaN are missing values (a CSV's empty field is one;
        pandas writes a missing number as NaN), and in the ``float_ids`` (float columns, or text written as
        floats), a whole number is the integer's text: ``1.0`` is item ``1``."""
        def text_id(c: str) -> pl.Expr:
            e = pl.col(c)
            if c in float_ids:
                return (pl.when(e.is_nan()).then(pl.lit(None, pl.String))
                        .when(e == e.floor()).then(e.cast(pl.Int64).cast(pl.String)).otherwise(e.cast(pl.String)))
            return pl.when(e.cast(pl.String) != "").then(e.cast(pl.String))

        out = [pl.col(self.time).alias("t"), text_id(self.item).alias("item")]
        out += [text_id(c).alias(role) for role, c in (("session", self.session), ("user", self.user)) if c]
        out += [pl.col(c).cast(pl.String).alias(f"c:{c}") for c in self.categorical]
        # NaN and infinities are missing values (the mean), as pandas writes a missing number: one NaN in the
        # statistics would make the whole standardised feature NaN
        out += [pl.when(pl.col(c).is_finite()).then(pl.col(c)).alias(f"x:{c}") for c in self.continuous]
        return out


def check_names(cols: Columns, reserved: Collection[str]) -> None:
    """Refuse, before reading, a side column listed twice, one that also plays another role, and one whose output
    column (its name; ``<col>_norm`` for a continuous one) is another output column (``reserved``, or another side
    column's)."""
    if cols.time == cols.item:
        raise SessrecError(f"--time-col {cols.time} is also the --item-col; give each role its own column")
    roles = {cols.item: "--item-col", cols.time: "--time-col"}
    for name, flag in ((cols.session, "--session-col"), (cols.user, "--user-col")):
        if name in (cols.item, cols.time):
            raise SessrecError(f"{flag} {name} is also the {roles[name]}; give each role its own column")
    for name, flag in ((cols.session, "--session-col"), (cols.user, "--user-col")):
        if name:
            roles.setdefault(name, flag)  # a session column may also be the user column
    outputs: dict[str, str] = {}
    for flag, names, suffix in (("--categorical-cols", cols.categorical, ""), ("--continuous-cols", cols.continuous, "_norm")):
        for name in names:
            if names.count(name) > 1:
                raise SessrecError(f"{flag} lists {name} {names.count(name)} times; list each column once")
            if name in roles:
                raise SessrecError(f"{flag} {name} is the {roles[name]}; a column cannot also be a side feature")
            out = name + suffix
            if out in reserved:
                raise SessrecError(f"{flag} {name}: the output already has a column {out} (its own columns: "
                                   f"{', '.join(reserved)}); rename that column in the input")
            if out in outputs:
                raise SessrecError(f"{flag} {name} and {outputs[out]} would both be the output column {out}; rename one "
                                   "of them in the input")
            outputs[out] = f"{flag} {name}"


@dataclass(frozen=True)
class Facts:
    """What a file's values, beyond their types, say about how to read it: the same for both readers."""

    time_sample: str | None = None  # the first time value that is not empty, where the column is text
    float_text: frozenset[str] = frozenset()  # text id columns of whole numbers written as floats ('1.0', 'NaN')
    # text dates that start with a day and a month (03/05/2024): (a value whose first number is > 12, so the day; a
    # value whose second one is), None where there is none
    day_month: tuple[str | None, str | None] | None = None


def _file_facts(frame: pl.LazyFrame, schema: pl.Schema, cols: Columns) -> Facts:
    """The :class:`Facts` of one file's columns (``frame``, a lazy query: the CSV's text or the parquet's values).
    The first values come from the head of the file; only a file whose first values say so is read whole, for the
    time column of dates that start with two small numbers and for id columns of floats written as text."""
    head = frame.head(SAMPLE_ROWS).collect()  # one query for the first values, mostly

    def first(c: str) -> str | None:
        present = pl.col(c).is_not_null() & (pl.col(c) != "")
        values = head.filter(present)[c] if head.height < SAMPLE_ROWS or head.filter(present).height else \
            frame.select(c).filter(present).head(1).collect()[c]
        return values[0] if len(values) else None

    sample = first(cols.time) if schema[cols.time] == pl.String else None
    candidates = [c for c in cols.ids if schema[c] == pl.String and re.match(_FLOAT_TEXT, first(c) or "")]
    checks = []
    for c in candidates:
        e, number = pl.col(c), pl.col(c).cast(pl.Float64, strict=False)
        whole = e.str.contains(_NUMBER_TEXT) & (number.is_nan() | number.is_infinite() | (number == number.floor()))
        checks.append((e.is_null() | (e == "") | whole).all().alias(f"f:{c}"))
    slash = sample is not None and not cols.time_format and re.match(_DAY_MONTH, sample)
    if slash:
        t = pl.col(cols.time)
        checks += [t.filter(t.str.extract(_DAY_MONTH, k).cast(pl.Int32) > 12).first().alias(f"d:{k}") for k in (1, 2)]
    found = frame.select(checks).collect().row(0, named=True) if checks else {}
    return Facts(sample, frozenset(c for c in candidates if found[f"f:{c}"]),
                 (found["d:1"], found["d:2"]) if slash else None)


def _day_first(facts: dict[Path, Facts], cols: Columns) -> bool | None:
    """Whether text dates that start with a day and a month (03/05/2024) have the day first, told by the values of
    every file: a first number above 12 is a day, a second one above 12 too. None where no file has such dates."""
    slash = {path: f for path, f in facts.items() if f.day_month}
    if not slash:
        return None
    days = [(path, f.day_month[0]) for path, f in slash.items() if f.day_month[0]]
    months = [(path, f.day_month[1]) for path, f in slash.items() if f.day_month[1]]
    if days and months:
        raise SessrecError(f"the {cols.time} values mix dates with the day first ({days[0][0]}: {days[0][1]!r}) and "
                           f"with the month first ({months[0][0]}: {months[0][1]!r}); write them in one order and pass "
                           "--time-format")
    if not days and not months:
        path, f = next(iter(slash.items()))
        raise SessrecError(f"{path}: the {cols.time} values such as {f.time_sample!r} could be day/month or month/day "
                           "dates, and none has a number above 12 to tell which; pass --time-format "
                           f"{_date_format(f.time_sample, True)!r} (day first) or {_date_format(f.time_sample, False)!r} "
                           "(month first)")
    return bool(days)


def _date_format(sample: str, day_first: bool) -> str:
    """A strptime format for a date like ``sample`` (03/05/2024 16:04), for messages: its date part, and its time
    part where it has a usual shape."""
    m = re.match(r"^\s*\d{1,2}([/.-])\d{1,2}([/.-])(\d+)(.*)$", sample)
    if m is None:
        return "%d/%m/%Y %H:%M:%S" if day_first else "%m/%d/%Y %H:%M:%S"
    sep1, sep2, year, rest = m.groups()
    date = f"{'%d' if day_first else '%m'}{sep1}{'%m' if day_first else '%d'}{sep2}{'%y' if len(year) == 2 else '%Y'}"
    t = re.match(r"^([ T])\d{1,2}:\d\d(:\d\d)?(\.\d+)?(\s*)([AaPp][Mm])?(\s*)(Z|[+-]\d\d:?\d\d)?$", rest)
    if t is None:
        return date
    sep, seconds, fraction, space1, ampm, space2, zone = t.groups()
    zone = {None: "", "Z": "Z"}.get(zone, "%z")
    return (f"{date}{sep}{'%I' if ampm else '%H'}:%M{':%S' if seconds else ''}{'%.f' if fraction else ''}"
            f"{space1}{'%p' if ampm else ''}{space2}{zone}")


def _float_id(dtype: pl.DataType) -> Conversion:
    """An id column of floats (or of text written as floats, where ``""`` is NaN): refused where a value is too large
    for the float to hold it exactly (2^53; 2^24 for float32), which merges ids silently."""
    bits = 24 if dtype == pl.Float32 else 53

    def number(e: pl.Expr, strict: bool) -> pl.Expr:
        return pl.when(e == "").then(pl.lit("NaN")).otherwise(e).cast(pl.Float64, strict=strict) if dtype == pl.String else e

    def expr(e: pl.Expr, strict: bool) -> pl.Expr:
        x = number(e, strict)
        if strict:
            return _failing(x, lambda v: v.is_not_nan() & (v.abs() >= 2.0 ** bits), "is too large for a float id")
        return pl.when(x.is_nan() | (x.abs() < 2.0 ** bits)).then(x)

    return Conversion(expr, f"an id: as a float, an id of 2^{bits} or more has lost digits (ids merge); write the "
                            "column as integers or as text")


def _failing(e: pl.Expr, bad: Callable[[pl.Series], pl.Series], what: str) -> pl.Expr:
    """``e``, failing the fast query where ``bad`` holds for a value (the exact reader then names the line)."""
    def check(values: pl.Series) -> pl.Series:
        if bad(values).fill_null(False).any():
            raise pl.exceptions.ComputeError(f"a value of {values.name} {what}")
        return values
    return e.map_batches(check, is_elementwise=True)


def _in_years(e: pl.Expr) -> pl.Expr:
    """``e`` (epoch ms), failing the query where a time is beyond the years 1-9999 (the exact reader then names the
    file, and the files whose times are in another unit)."""
    return _failing(e, lambda v: (v < _YEARS_MS[0]) | (v > _YEARS_MS[1]), "is beyond the years 1-9999")


def _time_conversion(dtype: pl.DataType, sample: str | None, cols: Columns, day_first: bool | None = None,
                     path: Path | None = None) -> Conversion:
    """Epoch milliseconds from a datetime, a number in ``--time-unit``, or text (``--time-format``, else inferred from
    the file's first value ``sample``: ISO 8601 with an offset or ``Z`` is converted to UTC, text without one is read
    as UTC; a date that starts with a day and a month in the order ``day_first``). The fast path fails on a number
    beyond the years 1-9999 (a time in another unit: the exact reader names its line)."""
    scale = UNIT_MS[cols.time_unit]

    def number(e: pl.Expr, strict: bool) -> pl.Expr:
        ms = e.cast(pl.Float64, strict=strict) * scale
        # NaN, infinities and numbers past int64 are not times: null (the exact reader names the line) or, strict, an error
        return ms.cast(pl.Int64, strict=strict) if strict else pl.when(ms.is_finite() & (ms.abs() < 9.2e18)).then(ms).cast(pl.Int64)

    numeric = Conversion(number, f"a number of {cols.time_unit} since 1970",
                         fast=lambda e: _in_years(number(e, True)))
    zone = cols.input_zone
    # what a local time must also be: one that happened (not in the hour summer time skips)
    in_zone = "" if zone == "UTC" else f", a local time of {zone} (whose clocks skip an hour when summer time begins)"

    def local(e: pl.Expr, strict: bool) -> pl.Expr:
        """A naive datetime as a time of ``--input-timezone`` (a repeated hour at the end of summer time: its first
        pass; an hour skipped at its start cannot have happened: null, or with ``strict`` an error)."""
        if zone == "UTC":
            return e
        return e.dt.replace_time_zone(zone, ambiguous="earliest", non_existent="raise" if strict else "null")

    if dtype == pl.Date:
        return Conversion(lambda e, strict: local(e.cast(pl.Datetime("ms")), strict).dt.epoch("ms"), "a date" + in_zone)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:  # the instant is given
            return Conversion(lambda e, strict: e.dt.epoch("ms"), "a time")
        return Conversion(lambda e, strict: local(e.cast(pl.Datetime("ms")), strict).dt.epoch("ms"), "a time" + in_zone)
    if dtype.is_numeric():
        return numeric
    if dtype not in (pl.String, pl.Categorical, pl.Null) and not isinstance(dtype, pl.Enum):
        raise SessrecError(f"{path}: the --time-col {cols.time} is a {dtype} column; it must hold datetimes, numbers "
                           f"of --time-unit since 1970, or text")
    if cols.time_format:
        aware = re.search(r"%[:#]?[zZ]", cols.time_format) is not None  # the values say their zone
        return Conversion(lambda e, strict: (lambda d: d if aware else local(d, strict))(
            e.cast(pl.String).str.strptime(pl.Datetime("ms"), cols.time_format, strict=strict, cache=False)
        ).dt.epoch("ms"), f"a time in the format {cols.time_format!r}" + ("" if aware else in_zone))
    if sample is not None and _NUMBER.match(sample):
        return numeric
    swap = sample is not None and day_first is False and re.match(_DAY_MONTH, sample)

    naive = zone != "UTC" and sample is not None and not _OFFSET.search(sample)

    def text(e: pl.Expr, strict: bool, local_times: bool = naive) -> pl.Expr:
        e = e.cast(pl.String)
        if swap:  # month/day/year: polars infers day/month/year dates only
            e = e.str.replace(r"^(\s*)(\d{1,2})([/.-])(\d{1,2})([/.-])", "${1}${4}${3}${2}${5}")
        if local_times:  # read without a zone, then placed in --input-timezone (polars' time_zone= nulls every
            return local(e.str.to_datetime(time_unit="ms", strict=strict), strict).dt.epoch("ms")  # value for one gap)
        # a time zone: polars refuses to infer a format with an offset (+01:00, Z) otherwise
        return e.str.to_datetime(time_unit="ms", time_zone="UTC", strict=strict).dt.epoch("ms")

    conv = Conversion(text, (f"a time in the format of the first value {sample!r} (or pass --time-format)"
                             if sample is not None else "a time (pass --time-format)") + in_zone)
    # the format is inferred in UTC: a local time that --input-timezone skips (summer time) is no format problem
    if sample is not None and pl.select(text(pl.lit(sample), False, False)).item() is None:
        hint = _date_format(sample, day_first is not False) if re.match(_DAY_MONTH, sample) else "%Y-%m-%d %H:%M:%S"
        raise SessrecError(f"{path}: cannot infer a time format from the first {cols.time} value {sample!r}; pass "
                           f"--time-format (e.g. {hint!r})")
    return conv


def _conversions(schema: pl.Schema, facts: Facts, cols: Columns, path: Path,
                 day_first: bool | None = None) -> dict[str, Conversion]:
    """The time column to epoch ms (its format from its type or the file's first value), continuous columns to
    numbers, float id columns checked (see :class:`Columns.select`)."""
    conv = {cols.time: _time_conversion(schema[cols.time], facts.time_sample, cols, day_first, path)}
    for c in [*cols.ids, *cols.categorical]:
        if schema[c].is_nested():  # a list, array or struct column cannot be one id per event
            raise SessrecError(f"{path}: the column {c} holds {schema[c]} values, not one value per event; give a "
                               "column of text or integers (one row per event: explode the list first)")
    for c in cols.continuous:
        dtype = schema[c]
        if dtype == pl.String:
            conv[c] = as_float()
        elif dtype.is_decimal() or dtype in (pl.Boolean, pl.Null):  # a boolean is 0 or 1
            conv[c] = Conversion(lambda e, strict: e.cast(pl.Float64, strict=strict), "a number")
        elif dtype == pl.Categorical or isinstance(dtype, pl.Enum):
            raise SessrecError(f"{path}: --continuous-cols {c} is a categorical (dictionary-encoded text) column, not "
                               "a number; list it under --categorical-cols, or store it as numbers")
        elif not dtype.is_numeric():
            raise SessrecError(f"{path}: --continuous-cols {c} is a {dtype} column, not a number; store it as numbers")
    conv.update({c: _float_id(schema[c]) for c in _float_ids(schema, facts, cols)})
    return conv


def _float_ids(schema: pl.Schema, facts: Facts, cols: Columns) -> set[str]:
    return {c for c in cols.ids if schema[c].is_float() or c in facts.float_text}


@dataclass(frozen=True)
class _File:
    """One input file, and what its reading needs to know."""

    path: Path
    parquet: bool
    header: list[str] | None  # a CSV's field names, as check_header gives them (as asked for)
    facts: Facts
    # the CSV reader's own names of the header fields, where they differ from ``header`` (spaces around a name):
    # its fast scan takes those
    read_as: dict[str, str] | None = None

    def text(self, cols: Columns) -> pl.LazyFrame:
        return _lazy(self.path, self.parquet, self.header, cols)


def _lazy(path: Path, parquet: bool, header: list[str] | None, cols: Columns) -> pl.LazyFrame:
    """The needed columns of a file, untyped: a CSV's text, a parquet file's values."""
    if parquet:
        return pl.scan_parquet(path).select(cols.needed)
    # the names of check_header, in place of the file's (which may have spaces around them)
    return pl.scan_csv(path, infer_schema=False, new_columns=header, truncate_ragged_lines=False,
                       null_values=[""], separator=cols.dialect.separator, quote_char=cols.dialect.quote).select(cols.needed)


class Files:
    """The input files with their :class:`Facts`, looked at once for both readers (the fast one may fail and the
    exact one take over), and the order of day and month of text dates, told by all files' values together."""

    def __init__(self, paths: list[Path], cols: Columns) -> None:
        self.paths, self.cols = paths, cols
        self._files: list[_File] | None = None
        self._error: SessrecError | None = None  # what the fast path found, for the exact one
        self.day_first: bool | None = None

    def files(self) -> list[_File]:
        if self._error is not None:
            raise self._error
        if self._files is None:
            try:
                files = [self._look(path) for path in self.paths]
                self.day_first = _day_first({f.path: f.facts for f in files}, self.cols)
            except SessrecError as e:
                self._error = e
                raise
            self._files = files
        return self._files

    def _look(self, path: Path) -> _File:
        parquet = is_parquet(path)
        header = None
        if parquet:
            _parquet_file(path, self.cols)
        else:
            header = _csv_header(path, self.cols)
        frame = _lazy(path, parquet, header, self.cols)
        try:
            facts = _file_facts(frame, frame.collect_schema(), self.cols)
        except pl.exceptions.PolarsError as e:
            if parquet:
                raise SessrecError(f"{path}: not a readable parquet file ({str(e).splitlines()[0]})") from None
            for _ in csv_batches(path, self.cols.needed, header, dialect=self.cols.dialect):  # names the line
                pass
            raise SessrecError(f"{path}: cannot read the CSV file ({str(e).splitlines()[0]})") from None
        return _File(path, parquet, header, facts, None if parquet else _read_as(path, header, self.cols.dialect))


def _read_as(path: Path, header: list[str], dialect: Dialect) -> dict[str, str] | None:
    """{name given: the CSV reader's name} of the header fields whose names differ (a name with spaces around it)."""
    try:
        names = pl.scan_csv(path, infer_schema=False, truncate_ragged_lines=False, separator=dialect.separator,
                            quote_char=dialect.quote).collect_schema().names()
    except pl.exceptions.PolarsError:  # the exact reader will say what is wrong
        return None
    if len(names) != len(header):  # a quoted delimiter in a name: the fast scan will fail, the exact reader take over
        return None
    return {given: name for given, name in zip(header, names) if given != name} or None


def _typed(batch: pl.DataFrame, file: _File, cols: Columns, day_first: bool | None) -> pl.DataFrame:
    conv = _conversions(batch.schema, file.facts, cols, file.path, day_first)
    try:
        return convert(batch, conv, file.path, not file.parquet, required=(cols.time,))
    except pl.exceptions.PolarsError:
        raise SessrecError(f"{file.path}: cannot infer the format of the time column {cols.time} from "
                           f"{file.facts.time_sample!r}; pass --time-format (e.g. '%Y-%m-%d %H:%M:%S')") from None


def is_parquet(path: Path) -> bool:
    """A parquet file: by its suffix, or else by its first bytes (Spark's ``part-00000-...c000`` files have none)."""
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return True
    with open(path, "rb") as f:
        return f.read(4) == b"PAR1"


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
    return check_header(path, cols.needed, "an event log CSV with these columns", cols.dialect, "--delimiter")


class _Units:
    """Epoch numbers beyond the years 1-9999 in ``--time-unit``: in a single file, or where no file's times are all
    within them, the first such line; where another file's are, the files have their times in different units
    (milliseconds read as seconds). Named with the file and line, where the pipeline could only say that some times
    are beyond those years (or, for a time after a session's first, nothing)."""

    def __init__(self, cols: Columns, several: bool) -> None:
        self.cols, self.several = cols, several
        self.good: Path | None = None  # a file whose times are all within the years
        self.bad: tuple[Path, int, object] | None = None  # a file with one beyond them: its line and value

    def _mixed(self, where: str, other: str) -> SessrecError:
        return SessrecError(f"{where}, while {other}: the files have their times in different units; convert them to "
                            f"one (--time-unit, {self.cols.time_unit}, applies to every file)")

    def _beyond(self, path: Path, line: int, value: object) -> str:
        return (f"{path}, line {line}: the {self.cols.time} value {value!r} is beyond the years 1-9999 as "
                f"{self.cols.time_unit} since 1970")

    def batch(self, path: Path, raw: pl.DataFrame, typed: pl.DataFrame, has_header: bool) -> tuple[int, object] | None:
        """The first time beyond the years in ``typed`` (its line and raw value), refused at once in a single file or
        where another file's are all within them."""
        t = typed[self.cols.time]
        beyond = ((t < _YEARS_MS[0]) | (t > _YEARS_MS[1])).fill_null(False)
        if not beyond.any():
            return None
        row = int(beyond.arg_true()[0])
        line, value = line_number(int(raw[LINE][row]), has_header), raw[self.cols.time][row]
        if not self.several:
            raise SessrecError(f"{self._beyond(path, line, value)}: is it in another unit (--time-unit)?")
        if self.good is not None:
            raise self._mixed(self._beyond(path, line, value), f"the times of {self.good} are within them")
        return line, value

    def file_done(self, path: Path, first_beyond: tuple[int, object] | None) -> None:
        if first_beyond is None and self.bad is not None:
            bad, line, value = self.bad
            raise self._mixed(f"{path}: the {self.cols.time} times are within the years 1-9999 as {self.cols.time_unit} "
                              "since 1970", f"those of {bad} are not (line {line}: {value!r})")
        if first_beyond is None:
            self.good = self.good or path
        else:
            self.bad = self.bad or (path, *first_beyond)

    def done(self) -> None:
        """After the last file: no file's times were all within the years."""
        if self.bad is not None:
            raise SessrecError(f"{self._beyond(*self.bad)}, and every file has such times: are they in another "
                               "unit (--time-unit)?")


def read_events(paths: list[Path], cols: Columns, files: Files | None = None) -> Iterator[pl.DataFrame]:
    files = files or Files(paths, cols)
    units = _Units(cols, len(paths) > 1)

    def read_file(file: _File) -> Iterator[pl.DataFrame]:
        batches = (_parquet_batches(file.path, cols) if file.parquet
                   else csv_batches(file.path, cols.needed, file.header, dialect=cols.dialect))
        first_beyond = None
        for batch in batches:
            typed = _typed(batch, file, cols, files.day_first)
            if first_beyond is None:
                first_beyond = units.batch(file.path, batch, typed, not file.parquet)
            yield typed.select(LINE, *cols.select(_float_ids(batch.schema, file.facts, cols)))
        units.file_done(file.path, first_beyond)

    by_path = {f.path: f for f in files.files()}
    yield from in_input_order(paths, lambda path: read_file(by_path[path]))
    units.done()


def _scan_file(file: _File, cols: Columns, day_first: bool | None) -> pl.LazyFrame:
    """One file's events as a lazy query with strict conversions; the time format from the file's first value."""
    text = file.text(cols)
    if file.parquet and text.head(1).collect().height == 0:
        raise SessrecError(f"{file.path}: the file has no events")
    schema = text.collect_schema()
    conv = _conversions(schema, file.facts, cols, file.path, day_first)
    select = cols.select(_float_ids(schema, file.facts, cols))
    if file.parquet:
        return text.with_columns(**strict_conversions(conv, (cols.time,))).select(select)
    if not file.read_as:
        return csv_scan(file.path, file.header, conv, (cols.time,), dialect=cols.dialect).select(select)
    named = file.read_as.get
    return (csv_scan(file.path, [named(h, h) for h in file.header], {named(c, c): v for c, v in conv.items()},
                     (named(cols.time, cols.time),), dialect=cols.dialect)
            .rename({name: given for given, name in file.read_as.items()}, strict=False).select(select))


def source(paths: list[Path], cols: Columns) -> Source:
    """The event logs: :func:`read_events`, and the same as one lazy query with strict conversions (fast path). The
    files are looked at once (:class:`Files`) for both."""
    files = Files(paths, cols)

    def scan() -> pl.LazyFrame:
        return pl.concat([_scan_file(f, cols, files.day_first) for f in files.files()],
                         how="vertical_relaxed")

    return Source(lambda: read_events(paths, cols, files), sum(p.stat().st_size for p in paths), scan)


def input_files(inputs: list[str], separator: str = ",") -> tuple[list[Path], list[Path]]:
    """The ``--input`` paths, a folder standing for its event files: its parquet files (by suffix or first bytes) and
    .csv files (and .tsv files where ``separator`` is a tab), under it at any depth (a hive-partitioned folder,
    ``date=2024-03-01/part-0.parquet``), in the natural order of their paths (``part-2`` before ``part-10``); hidden
    files and folders, ``_``-prefixed ones (Spark's ``_SUCCESS``) and ``.crc`` files are left out, and so are a
    folder's files without events (Spark writes empty parts: no bytes, a header only or a parquet schema only).
    Partition values in folder names are not read as columns. Returns the files and the folders' files left out for
    having no events."""
    out: list[Path] = []
    empty: list[Path] = []
    text = (*CSV_SUFFIXES, ".tsv") if separator == "\t" else CSV_SUFFIXES
    for given in map(Path, inputs):
        if not given.is_dir():
            out.append(given)
            continue
        found = [p for p in given.rglob("*") if p.is_file() and p.suffix.lower() != ".crc"
                 and not any(part.startswith((".", "_")) for part in p.relative_to(given).parts)
                 and (p.suffix.lower() in text or (p.stat().st_size and is_parquet(p)))]
        if not found:
            tsv = " (it holds .tsv files: pass --delimiter tab)" if any(given.rglob("*.tsv")) else ""
            raise SessrecError(f"input {given} is a folder without parquet or {' or '.join(text)} files{tsv}; pass the "
                               "event files")
        events = [p for p in found if _has_events(p)]
        if not events:
            raise SessrecError(f"input {given} is a folder whose {len(found)} parquet or {' or '.join(text)} file(s) "
                               "hold no events")
        empty += sorted(set(found) - set(events))
        out += sorted(events, key=lambda p: [int(s) if s.isdigit() else s
                                             for s in re.split(r"(\d+)", p.relative_to(given).as_posix())])
    return out, empty


def _has_events(path: Path) -> bool:
    """Whether a file may hold events: not one without bytes, a parquet file without rows or a CSV file without a line
    after its header (a file the readers cannot open is kept, for them to name the problem)."""
    if not path.stat().st_size:
        return False
    if is_parquet(path):
        try:
            return pq.ParquetFile(path).metadata.num_rows > 0
        except (OSError, pa.ArrowException):
            return True
    return has_rows(path)


def _age_log_days() -> pl.Expr:
    return ((pl.col("t") - pl.col("first_t")) / DAY_MS).clip(lower_bound=0.0).log1p()


def recipe(cols: Columns, timezone: str, progress: Progress | None = None) -> Recipe:
    def fit(lf: pl.LazyFrame, items: pl.DataFrame) -> dict:
        stats = {c: mean_std(lf, pl.col(f"x:{c}")) for c in cols.continuous}
        flat = [c for c in cols.continuous if not stats[c][1]]
        if flat and progress is not None:
            progress.warn(f"--continuous-cols {' '.join(flat)}: the same value (or empty) on every interaction of the "
                          "kept sessions: normalised, it is 0 everywhere and carries nothing")
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
        categoricals=tuple(Categorical(f"c:{c}", c, (LIST, CATEGORICAL), unknown_slot=True, chosen=True) for c in cols.categorical),
        continuous=(*(Continuous(f"{c}_norm", (LIST, CONTINUOUS)) for c in cols.continuous),
                    Continuous("item_age_days_log_norm", ("item", LIST, CONTINUOUS)),
                    *(Continuous(n, cyc, -1.0, 1.0) for n in ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos"))),
        time_name="timestamp", time_unit_ms=1000, fit=fit, transform=transform,
        serving={**hour_weekday_rules(timezone, False, ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")),
                 "item_age_days_log_norm": age_days_rule("age")},
    )


def _check_timezone(timezone: str, flag: str = "--timezone") -> None:
    try:
        pl.Series([0]).cast(pl.Datetime("ms")).dt.replace_time_zone(timezone)
    except pl.exceptions.PolarsError:
        raise SessrecError(f"unknown {flag} {timezone!r} (use an IANA name such as Europe/Oslo)") from None


def run(args, opts: Options) -> PrepareResult:
    if not args.session_col and not args.user_col:
        raise SessrecError("give --session-col, or --user-col to cut sessions after --session-gap of inactivity")
    if opts.repeats == "user" and not args.user_col:
        raise SessrecError("--repeats user needs --user-col")
    if args.time_unit is not None and args.time_format:
        raise SessrecError("give one of --time-unit (times written as numbers) and --time-format (times written as text)")
    if args.quote_char == args.delimiter:
        raise SessrecError(f"--quote-char and --delimiter are both {args.delimiter!r}; give the character that quotes "
                           "fields, or --quote-char none")
    if args.time_format and not re.search(r"%[-_0^#]?[YyGgscDFx+]", args.time_format):
        raise SessrecError(f"--time-format {args.time_format!r} has no year (%Y or %y): every time would fall in year 1 "
                           "(its weekdays, its windows); write the year into the time column first (Tmall's MMDD: "
                           "'2015' + the value padded to 4 digits, with --time-format '%Y%m%d')")
    if not args.session_col:
        opts.session_gap_ms = DEFAULT_SESSION_GAP_MS if args.session_gap is None else args.session_gap
    _check_timezone(args.timezone)
    _check_timezone(args.input_timezone, "--input-timezone")
    cols = Columns(args.item_col, args.time_col, args.session_col, args.user_col, tuple(args.categorical_cols),
                   tuple(args.continuous_cols), args.time_unit or "s", args.time_format,
                   Dialect(args.delimiter, args.quote_char), args.input_timezone)
    bare = recipe(Columns(cols.item, cols.time, cols.session, cols.user, (), ()), args.timezone)
    check_names(cols, [*output_columns(bare), *SESSION_COLUMNS])
    found, empty = input_files(args.input, args.delimiter)
    paths = existing_files(found, "input file")
    progress = Progress("events", opts.quiet)
    if empty:
        progress.say(f"left out {len(empty)} file(s) without events: {listed(empty, 3)}")
    if args.session_col and args.user_col and opts.repeats != "user":
        progress.warn("--user-col has no effect with --session-col (the sessions are given) unless --repeats user")
    first = _FirstTimes.of(paths[0], cols)  # what the warnings judge by
    _warn_inert_time_options(first, cols, args.time_unit is not None, progress)
    _warn_inert_input_zone(first, cols, progress)
    _warn_dates_only(first, cols, progress)
    if args.timezone != "UTC" and cols.input_zone == "UTC":
        _warn_naive_times(first, cols, args.timezone, progress)
    return prepare(recipe(cols, args.timezone, progress), source(paths, cols), opts)


_OFFSET = re.compile(r"(Z|UTC|GMT|[+-]\d\d(:?\d\d)?)\s*$", re.IGNORECASE)  # the end of a time that says its zone


@dataclass(frozen=True)
class _FirstTimes:
    """The time column of the first input file: its type and, where it is text, its first value."""

    path: Path
    dtype: pl.DataType
    sample: str | None

    @classmethod
    def of(cls, path: Path, cols: Columns) -> _FirstTimes:
        parquet = is_parquet(path)
        dtype = _time_dtype(path, parquet, cols)
        return cls(path, dtype, _first_text(path, parquet, cols) if _is_text(dtype) else None)

    def naive(self) -> bool:
        """Whether the times are written without a zone: datetimes without one, dates, text without an offset."""
        if isinstance(self.dtype, pl.Datetime) and self.dtype.time_zone is None or self.dtype == pl.Date:
            return True
        return (_is_text(self.dtype) and self.sample is not None and not _NUMBER.match(self.sample)
                and not _OFFSET.search(self.sample))

    def instant(self, cols: Columns) -> str | None:
        """What the times are where each says its instant (epoch numbers, datetimes with a zone, text with an offset
        read without --time-format), else None."""
        dtype, sample = self.dtype, self.sample
        if dtype.is_numeric() or _is_text(dtype) and sample is not None and _NUMBER.match(sample):
            return "epoch numbers (UTC)"
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            return f"datetimes in {dtype.time_zone}"
        if _is_text(dtype) and sample is not None and not cols.time_format and _OFFSET.search(sample):
            return f"times with their offset, such as {sample!r}"
        return None


def _warn_naive_times(first: _FirstTimes, cols: Columns, timezone: str, progress: Progress) -> None:
    """Say, from the first file, that times without a zone are read as UTC whatever --timezone says: local times
    written without their offset shift the hour features by it, with no error."""
    if not first.naive():
        return
    example = f" (such as {first.sample!r})" if first.sample else ""
    progress.warn(f"the {cols.time} times of {first.path}{example} have no time zone and are read as UTC; --timezone "
                  f"{timezone} sets the zone of the hour and weekday features only: if they are {timezone} times, "
                  f"pass --input-timezone {timezone}")


_DATE_ONLY = re.compile(r"^\s*(\d{4}-\d\d-\d\d|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4})\s*$")


def _warn_dates_only(first: _FirstTimes, cols: Columns, progress: Progress) -> None:
    """Say, from the first file, when its times are dates without a time of day (Diginetica's ``eventdate``): the
    events of a session then tie at midnight and keep the file's order, the hour features are constant, and hourly
    windows hold a day each."""
    path, dtype = first.path, first.dtype
    if dtype == pl.Date:
        sample = None
    elif _is_text(dtype) and cols.time_format:
        if re.search(r"%[-_0^#]?[HIklTRrcsX+]", cols.time_format):
            return
        sample = None
    elif _is_text(dtype):
        sample = first.sample
        if sample is None or not _DATE_ONLY.match(sample):
            return
    else:
        return
    example = f" (such as {sample!r})" if sample else ""
    progress.warn(f"the {cols.time} values of {path}{example} are dates without a time of day: the events of a session "
                  "tie at midnight and keep the file's order, and the hour features are constant; if another column "
                  "orders the events within the day (Diginetica's timeframe), build a time column from both first")


def _warn_inert_time_options(first: _FirstTimes, cols: Columns, unit_given: bool, progress: Progress) -> None:
    """Say when --time-unit or --time-format cannot act, from the first file: a time column of datetimes or dates
    needs neither, one of numbers no format, one of text times (not numbers written as text) no unit."""
    path, dtype = first.path, first.dtype
    if isinstance(dtype, pl.Datetime) or dtype == pl.Date:
        inert = [flag for flag, given in (("--time-unit", unit_given), ("--time-format", cols.time_format)) if given]
        what = "datetimes" if isinstance(dtype, pl.Datetime) else "dates"
    elif dtype.is_numeric():
        inert, what = (["--time-format"] if cols.time_format else []), f"numbers (of --time-unit {cols.time_unit})"
    elif _is_text(dtype) and unit_given:
        sample = first.sample
        if sample is None or _NUMBER.match(sample):
            return
        inert, what = ["--time-unit"], f"text times such as {sample!r}"
    else:
        return
    if inert:
        progress.warn(f"{' and '.join(inert)} ha{'ve' if len(inert) > 1 else 's'} no effect: the {cols.time} column "
                      f"of {path} holds {what}")


def _warn_inert_input_zone(first: _FirstTimes, cols: Columns, progress: Progress) -> None:
    """Say, from the first file, when --input-timezone cannot act: its times are epoch numbers, datetimes with a zone,
    or text with an offset (each an instant already)."""
    what = first.instant(cols) if cols.input_zone != "UTC" else None
    if what:
        progress.warn(f"--input-timezone has no effect on the times of {first.path}: they are {what}")


def _time_dtype(path: Path, parquet: bool, cols: Columns) -> pl.DataType:
    """The time column's type in a file: a parquet file's own (its reader names a file without the column), text in
    a CSV file."""
    if not parquet:
        return pl.String
    arrow = _parquet_file(path, cols).schema_arrow
    return pl.from_arrow(arrow.empty_table().select([cols.time])).schema[cols.time]


def _is_text(dtype: pl.DataType) -> bool:
    """Text as read: a CSV's values, a parquet column of strings or categories."""
    return dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum)


def _first_text(path: Path, parquet: bool, cols: Columns) -> str | None:
    """The first time value of a file that is not empty (None where the file cannot be read: the readers say why)."""
    try:
        frame = _lazy(path, parquet, None if parquet else _csv_header(path, cols), cols)
        t = pl.col(cols.time)
        values = frame.select(t.cast(pl.String)).filter(t.is_not_null() & (t != "")).head(1).collect()[cols.time]
    except (pl.exceptions.PolarsError, SessrecError):  # the output folder is checked first, then the readers say why
        return None
    return values[0] if len(values) else None
