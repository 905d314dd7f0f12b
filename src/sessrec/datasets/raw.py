"""Reading raw event files in batches, with errors that name the file and the first offending line.

Every CSV column is read as text and converted here, so a value that does not parse is reported
with its line, its column and the text found, instead of an exception from deep inside polars.
Before reading, the first line of each file is checked: a file of another data set's format is
recognised and named in the message.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import polars as pl

from sessrec.errors import SessrecError

CHUNK_BYTES = 32 * 2**20  # raw CSV bytes parsed at a time
LINE = "_line"  # 0-based data row index within a file, added by the CSV scanner

REES46_COLUMNS = ("event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price",
                  "user_id", "user_session")
YOOCHOOSE_COLUMNS = ("session_id", "timestamp", "item_id", "category")
G1_CLICK_COLUMNS = ("user_id", "session_id", "session_start", "session_size", "click_article_id", "click_timestamp",
                    "click_environment", "click_deviceGroup", "click_os", "click_country", "click_region",
                    "click_referrer_type")
G1_ARTICLE_COLUMNS = ("article_id", "category_id", "created_at_ts", "publisher_id", "words_count")
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@dataclass(frozen=True)
class Conversion:
    """How one text column becomes typed. ``expr(col, strict)``: with ``strict=False`` null where the text does
    not parse (the exact reader then names the line); with ``strict=True`` the query fails there instead.
    ``dtype``: the type a CSV reader may parse the column as directly (the fast path): it accepts fewer texts
    (no trailing spaces) and gives the same values for those it accepts."""

    expr: Callable[[pl.Expr, bool], pl.Expr]
    what: str  # "an integer", "a time like 2019-10-01 00:00:00 UTC", ... for messages
    dtype: pl.DataType | None = None
    # a faster strict conversion for the fast path: the same value for the texts it takes, fails on the others;
    # for a column the reader parses (``dtype``), a check of its values
    fast: Callable[[pl.Expr], pl.Expr] | None = None


def as_int() -> Conversion:
    return Conversion(lambda e, strict: e.str.strip_chars().cast(pl.Int64, strict=strict), "an integer", pl.Int64())


def as_float(finite: bool = False) -> Conversion:
    """Text → number; with ``finite``, NaN and infinities are refused like text that is not a number (a column whose
    missing values are errors: one NaN would make a whole standardised feature NaN)."""
    if not finite:
        return Conversion(lambda e, strict: e.str.strip_chars().cast(pl.Float64, strict=strict), "a number", pl.Float64())

    def expr(e: pl.Expr, strict: bool) -> pl.Expr:
        number = e.str.strip_chars().cast(pl.Float64, strict=strict)
        return _finite_only(number) if strict else pl.when(number.is_finite()).then(number)

    return Conversion(expr, "a finite number", pl.Float64(), fast=_finite_only)


def _finite_only(e: pl.Expr) -> pl.Expr:
    """``e``, failing the query on a NaN or an infinity (the exact reader then names the line)."""
    def check(values: pl.Series) -> pl.Series:
        if not values.is_finite().fill_null(True).all():
            raise pl.exceptions.ComputeError(f"a value of {values.name} is not a finite number")
        return values
    return e.map_batches(check, is_elementwise=True)


def as_time_ms(fmt: str, example: str, fast: Callable[[pl.Expr], pl.Expr] | None = None) -> Conversion:
    """Text time in ``fmt`` (UTC) → epoch milliseconds."""
    return Conversion(lambda e, strict: e.str.strptime(pl.Datetime("ms"), fmt, strict=strict).dt.epoch("ms"),
                      f"a time like '{example}'", fast=fast)


def iso_millis(e: pl.Expr) -> pl.Expr:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (three digits of a second) → epoch ms, as ``%Y-%m-%dT%H:%M:%S%.fZ`` reads it
    but 2-3x faster (polars' strptime has no fast path for ``%.f``); any other text, or none, fails."""
    text = pl.when(e.str.contains(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")).then(e).otherwise(pl.lit("another shape"))
    return (text.str.slice(0, 19).str.strptime(pl.Datetime("ms"), "%Y-%m-%dT%H:%M:%S", strict=True).dt.epoch("ms")
            + text.str.slice(20, 3).cast(pl.Int64, strict=True))


def _no_nulls(values: pl.Series) -> pl.Series:
    if values.has_nulls():
        raise pl.exceptions.ComputeError(f"empty value in the required column {values.name}")
    return values


def strict_conversions(conversions: dict[str, Conversion], required: Sequence[str] = ()) -> dict[str, pl.Expr]:
    """The conversions of :func:`convert` for a lazy query: a value that does not parse, or an empty value in a
    ``required`` column, fails the query (the caller then reads the input with :func:`convert` to name the line)."""
    exprs = {c: conv.fast(pl.col(c)) if conv.fast else conv.expr(pl.col(c), True) for c, conv in conversions.items()}
    exprs.update({c: exprs.get(c, pl.col(c)).map_batches(_no_nulls, is_elementwise=True) for c in required})
    return exprs


# the first bytes of compressed files, which readers would otherwise parse as text
COMPRESSED = {b"\x1f\x8b": "gzip", b"PK\x03\x04": "zip", b"BZh": "bzip2", b"\x28\xb5\x2f\xfd": "zstd",
              b"\xfd7zXZ\x00": "xz"}


def first_line(path: Path) -> str | None:
    """The first non-empty line of a text file (None when the file has none), without a UTF-8 byte order mark
    (spreadsheets write one); a compressed file is an error."""
    with open(path, "rb") as f:
        start = f.read(8)
    for magic, kind in COMPRESSED.items():
        if start.startswith(magic):
            raise SessrecError(f"{path}: the file is {kind}-compressed; decompress it first")
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for line in f:
            if line.strip():
                return line.rstrip("\r\n")
    return None


def describe_format(line: str) -> str | None:
    """Which known raw format a first line looks like, for error messages."""
    text = line.strip()
    if text.startswith("{"):
        return "JSON lines (the ADRESSA format)"
    fields = [f.strip().strip('"') for f in text.split(",")]
    for columns, name in ((REES46_COLUMNS, "a REES46 CSV"), (G1_CLICK_COLUMNS, "a G1 clicks CSV"),
                          (G1_ARTICLE_COLUMNS, "the G1 articles_metadata.csv")):
        if set(columns) <= set(fields):
            return name
    if len(fields) in (4, 5) and ISO_TIME.match(fields[1]):
        return "a YOOCHOOSE clicks file" if len(fields) == 4 else "a YOOCHOOSE buys file"
    return None


def looks_like(line: str) -> str:
    guess = describe_format(line)
    return f" (it looks like {guess})" if guess else ""


def existing_files(paths: Sequence[str | Path], what: str) -> list[Path]:
    """Check that every input exists and is a non-empty file."""
    out = []
    for p in map(Path, paths):
        if not p.is_file():
            raise SessrecError(f"{what} not found: {p}" if not p.exists() else f"{what} {p} is not a file")
        if p.stat().st_size == 0:
            raise SessrecError(f"{p}: the file is empty")
        out.append(p)
    return out


def files_in(folder: str | Path, pattern: str, what: str) -> list[Path]:
    """Files of ``folder`` matching ``pattern`` in natural order (``clicks_hour_2`` before ``clicks_hour_10``)."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise SessrecError(f"{what} not found: {folder}")
    files = sorted((p for p in folder.glob(pattern) if p.is_file() and not p.name.startswith(".")),
                   key=lambda p: [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)])
    if not files:
        raise SessrecError(f"no {what} ({pattern}) in {folder}")
    return files


def check_header(path: Path, required: Sequence[str], dataset: str) -> list[str]:
    """The header of a CSV file; a clear error when a required column is missing."""
    line = first_line(path)
    if line is None:
        raise SessrecError(f"{path}: the file is empty")
    names = [n.strip().strip('"') for n in line.split(",")]
    missing = [c for c in required if c not in names]
    if missing:
        raise SessrecError(f"{path}, line 1: not {dataset}: column(s) {', '.join(missing)} missing from the header "
                           f"{line[:160]!r}{looks_like(line)}")
    return names


def _row_chunks(f: BinaryIO, size: int, quoted: bool = True) -> Iterator[bytes]:
    """Blocks of about ``size`` bytes that end at a row boundary (for CSV, not inside a quoted field)."""
    while data := f.read(size):
        cut = len(data)
        if len(data) == size:  # more may follow: end at the last complete row, re-read the rest
            cut = data.rfind(b"\n") + 1
            while quoted and cut and data.count(b'"', 0, cut) % 2:  # that newline is inside quotes
                cut = data.rfind(b"\n", 0, cut - 1) + 1
            if cut == 0:  # a row longer than the block: read a larger one
                f.seek(-len(data), io.SEEK_CUR)
                size *= 2
                continue
            f.seek(cut - len(data), io.SEEK_CUR)
        if data[:cut].strip():
            yield data[:cut] if cut < len(data) else data


def _bad_line(chunk: bytes, n_fields: int, first_line: int) -> str:
    """Find the first line of ``chunk`` that is not UTF-8 text, or else the first row with a number of fields other
    than ``n_fields`` (error path only)."""
    for i, line in enumerate(chunk.split(b"\n")):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            return f"line {first_line + i} is not UTF-8 text (byte {line[e.start:e.start + 1]!r}): {line[:120]!r}"
    rows = csv.reader(io.StringIO(chunk.decode("utf-8", errors="replace")))
    for i, row in enumerate(rows):
        if row and len(row) != n_fields:
            return f"line {first_line + i} has {len(row)} fields, expected {n_fields}: {','.join(row)[:120]!r}"
    return f"lines {first_line}.."


def csv_batches(path: Path, columns: Sequence[str], header: Sequence[str], has_header: bool = True) -> Iterator[pl.DataFrame]:
    """Text batches of ``columns`` (plus ``_line``, the 0-based data row) of a CSV file whose fields are ``header``.

    The file is read in blocks of :data:`CHUNK_BYTES` cut at row boundaries and each block is parsed
    by polars: memory stays that of one block whatever the file size (polars' own streaming CSV
    scan reads ahead of a slow consumer, so its memory grows with the file)."""
    schema = {name: pl.String for name in header}
    rows = 0
    with open(path, "rb") as f:
        if has_header:
            f.readline()
        for chunk in _row_chunks(f, CHUNK_BYTES):
            try:
                df = pl.read_csv(chunk, has_header=False, schema=schema, row_index_name=LINE, row_index_offset=rows,
                                 truncate_ragged_lines=False)
            except pl.exceptions.PolarsError as e:
                where = _bad_line(chunk, len(header), line_number(rows, has_header))
                raise SessrecError(f"{path}: cannot read the CSV file ({str(e).splitlines()[0]}): {where}") from None
            rows += df.height
            yield df.select(LINE, *columns)


def csv_scan(path: Path, header: Sequence[str], conversions: dict[str, Conversion], required: Sequence[str] = (),
             has_header: bool = True) -> pl.LazyFrame:
    """:func:`csv_batches` and :func:`convert` as one lazy query, for a
    :class:`~sessrec.datasets.pipeline.Source`'s fast path: numbers are parsed by the CSV reader, and a value
    :func:`convert` would reject (or more: see :class:`Conversion`) fails the query. A file without rows is an
    error, as in :func:`in_input_order`."""
    typed = {c: conv.dtype for c, conv in conversions.items() if conv.dtype is not None}
    scan = pl.scan_csv(path, has_header=has_header, schema={name: typed.get(name, pl.String()) for name in header},
                       truncate_ragged_lines=False)
    if scan.head(1).collect().height == 0:
        raise SessrecError(f"{path}: the file has no events")
    checked = {c: v for c, v in conversions.items() if c not in typed or v.fast}  # typed: only a further check
    return scan.with_columns(**strict_conversions(checked, required))


def in_input_order(paths: Sequence[Path], read_file: Callable[[Path], Iterator[pl.DataFrame]]) -> Iterator[pl.DataFrame]:
    """The batches of every file (each with ``_line``, its row in the file) numbered ``_row`` across the files
    in order: the input order, which breaks ties in time. A file without events is an error."""
    offset = 0
    for path in paths:
        rows = 0
        for batch in read_file(path):
            if batch.height:
                rows = int(batch[LINE].max()) + 1
            yield batch.with_columns((pl.col(LINE).cast(pl.Int64) + offset).alias("_row")).drop(LINE)
        if rows == 0:
            raise SessrecError(f"{path}: the file has no events")
        offset += rows


def line_number(row: int, has_header: bool) -> int:
    """1-based line of 0-based data row ``row`` (quoted multi-line fields aside)."""
    return row + 1 + int(has_header)


def convert(batch: pl.DataFrame, conversions: dict[str, Conversion], path: Path, has_header: bool = True,
            required: Sequence[str] = ()) -> pl.DataFrame:
    """Apply the conversions; the first value that does not parse (or is empty in a ``required`` column)
    stops everything with its file, line, column and text."""
    out = batch.with_columns(**{c: conv.expr(pl.col(c), False) for c, conv in conversions.items()})
    checks = [(c, out[c].is_null() & batch[c].is_not_null(), f"cannot read {c} value {{!r}} as {conv.what}")
              for c, conv in conversions.items()]
    checks += [(c, batch[c].is_null(), "empty value in the required column " + c) for c in required]
    firsts = [(int(mask.arg_true()[0]), c, msg) for c, mask, msg in checks if mask.any()]
    if firsts:
        row, col, msg = min(firsts)
        line = line_number(int(batch[LINE][row]), has_header)
        raise SessrecError(f"{path}, line {line}: {msg.format(batch[col][row])}")
    return out


def _bad_json_line(chunk: bytes, first: int, fields: dict[str, type]) -> str:
    """The first line of ``chunk`` that is not a JSON object with the right value types (error path only)."""
    for i, line in enumerate(chunk.decode("utf-8", errors="replace").splitlines()):
        if not line.strip():
            continue
        where = f"line {first + i}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            return f"{where} is not JSON: {line.strip()[:120]!r}{looks_like(line)}"
        if not isinstance(obj, dict):
            return f"{where} is not a JSON object: {line.strip()[:120]!r}"
        for key, kind in fields.items():
            value = obj.get(key)
            if value is not None and not (isinstance(value, kind) and not isinstance(value, bool)):
                return f"{where}: field {key} is {value!r}, expected {'an integer' if kind is int else 'text'}"
    return f"lines {first}.."


def json_batches(path: Path, fields: dict[str, type]) -> Iterator[pl.DataFrame]:
    """Batches of the ``fields`` (``int`` or ``str`` values; absent = null) of a JSON-lines file, plus ``_line``
    (the 0-based line), read in blocks of :data:`CHUNK_BYTES` like :func:`csv_batches`."""
    schema = {k: pl.Int64 if kind is int else pl.String for k, kind in fields.items()}
    rows = 0
    with open(path, "rb") as f:
        for chunk in _row_chunks(f, CHUNK_BYTES, quoted=False):
            try:
                df = pl.read_ndjson(chunk, schema=schema, row_index_name=LINE, row_index_offset=rows)
            except pl.exceptions.PolarsError:
                raise SessrecError(f"{path}: cannot read the JSON lines: {_bad_json_line(chunk, rows + 1, fields)}") from None
            rows += df.height
            yield df
