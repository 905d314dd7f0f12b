"""Reading raw event files in batches, with errors that name the file and the first offending line.

Every CSV column is read as text and converted here, so a value that does not parse is reported
with its line, its column and the text found, instead of an exception from deep inside polars.
Before reading, the first line of each file is checked: a file of another data set's format is
recognised and named in the message. Blank lines are skipped (they are not events, and do not
count in the input order); line numbers in messages are the file's own, blank lines and quoted
fields that span lines included.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl

from sessrec.errors import SessrecError

# Python's csv refuses a field over 128 KiB by default, and a valid CSV may have longer text (a description): the
# checks below read such a file as polars does (the limit is the process's; a C long on every platform)
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

CHUNK_BYTES = 32 * 2**20  # raw CSV bytes parsed at a time
# where a row is in its file: 0-based, counted from the first line after the header (line_number() gives the file's
# 1-based line); blank lines and quoted fields that span lines count, so a row after them has a larger number
LINE = "_line"
SCAN_ROW = "_sessrec_scan_row"  # the 0-based row of a fast CSV scan (blank lines are rows there)
BOM = b"\xef\xbb\xbf"
JSON_BLANK = b" \t\r"  # a JSON-lines line of only these is skipped, by polars as by us
# the delimiters a file's first line is checked for, by name (for messages)
DELIMITERS = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "vertical bars"}


@dataclass(frozen=True)
class Dialect:
    """How a CSV file writes its rows: the character between the fields, and the one that quotes a field (None:
    nothing is quoted, as in tab-separated files whose values hold quotes: ``12" Mix``)."""

    separator: str = ","
    quote: str | None = '"'

    def csv_module(self) -> dict:
        """Python's ``csv.reader`` arguments."""
        if self.quote is None:
            return {"delimiter": self.separator, "quoting": csv.QUOTE_NONE}
        return {"delimiter": self.separator, "quotechar": self.quote}


COMMA = Dialect()

REES46_COLUMNS = ("event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price",
                  "user_id", "user_session")
YOOCHOOSE_COLUMNS = ("session_id", "timestamp", "item_id", "category")
G1_CLICK_COLUMNS = ("user_id", "session_id", "session_start", "session_size", "click_article_id", "click_timestamp",
                    "click_environment", "click_deviceGroup", "click_os", "click_country", "click_region",
                    "click_referrer_type")
G1_ARTICLE_COLUMNS = ("article_id", "category_id", "created_at_ts", "publisher_id", "words_count")
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
# a value no header names a column by: a number, a date (what the first line of a file without a header holds)
DATA_VALUE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^\d{4}-\d\d-\d\d")


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


# strptime's cache=False: event times are mostly distinct, and polars' cache of parsed texts made parsing 2.3x slower
# (REES46 times, 5M rows: 0.47 -> 0.20 s; YOOCHOOSE 0.56 -> 0.21 s; same values)
def as_time_ms(fmt: str, example: str, fast: Callable[[pl.Expr], pl.Expr] | None = None) -> Conversion:
    """Text time in ``fmt`` (UTC) → epoch milliseconds."""
    return Conversion(lambda e, strict: e.str.strptime(pl.Datetime("ms"), fmt, strict=strict, cache=False).dt.epoch("ms"),
                      f"a time like '{example}'", fast=fast)


def iso_millis(e: pl.Expr) -> pl.Expr:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` (three digits of a second) → epoch ms, as ``%Y-%m-%dT%H:%M:%S%.fZ`` reads it
    but 2-3x faster (polars' strptime has no fast path for ``%.f``); any other text, or none, fails."""
    text = pl.when(e.str.contains(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")).then(e).otherwise(pl.lit("another shape"))
    return (text.str.slice(0, 19).str.strptime(pl.Datetime("ms"), "%Y-%m-%dT%H:%M:%S", strict=True, cache=False).dt.epoch("ms")
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
# the first bytes of other files that are not UTF-8 text
NOT_TEXT = {b"\xff\xfe": "UTF-16 text (a spreadsheet's \"Unicode text\"); save it as CSV UTF-8",
            b"\xfe\xff": "UTF-16 text; save it as CSV UTF-8", b"ARROW1": "an Arrow IPC (Feather) file; write it as parquet",
            b"PAR1": "a parquet file; this command reads CSV"}


def first_line(path: Path) -> str | None:
    """The first non-empty line of a text file (None when the file has none), without a UTF-8 byte order mark
    (spreadsheets write one); a compressed file is an error."""
    with open(path, "rb") as f:
        start = f.read(8)
    for magic, kind in COMPRESSED.items():
        if start.startswith(magic):
            raise SessrecError(f"{path}: the file is {kind}-compressed; decompress it first")
    for magic, kind in NOT_TEXT.items():
        if start.startswith(magic):
            raise SessrecError(f"{path}: the file is {kind}")
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
    """Check that every input exists, is a non-empty file, and is given once (also through a link or a folder):
    a file given twice counted its events twice."""
    out, seen = [], {}
    for p in map(Path, paths):
        if not p.is_file():
            raise SessrecError(f"{what} not found: {p}" if not p.exists() else f"{what} {p} is not a file")
        stat = p.stat()
        if stat.st_size == 0:
            raise SessrecError(f"{p}: the file is empty")
        first = seen.setdefault((stat.st_dev, stat.st_ino), p)
        if first is not p:
            raise SessrecError(f"{what} {p} is the same file as {first}: given twice, its events would count twice")
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


def delimiter_text(separator: str) -> str:
    """``separator`` as a command line writes it: ``tab``, ``';'``."""
    return "tab" if separator == "\t" else shlex.quote(separator)


def check_header(path: Path, required: Sequence[str], dataset: str, dialect: Dialect = COMMA,
                 delimiter_option: str | None = None) -> list[str]:
    """The header of a CSV file written in ``dialect``; a clear error when a required column is missing. A file
    whose fields are separated otherwise is named as such: with ``delimiter_option``, the option that reads it, else
    as a file to convert; one whose first line holds data (no asked column, a number or a date) as one without a
    header.

    Names are compared bare: without the spaces and quotes around them (``" session "`` and ``"Item "`` are
    ``session`` and ``Item``), the header's and the required ones alike, so that a column is found by its bare
    name and by the name the error shows (``' session '``). A header name is returned as it was asked for,
    so that the reader's columns carry the names the caller selects."""
    import difflib  # here, for the error only

    def bare(name: str) -> str:
        return name.strip().strip('"').strip()

    line = first_line(path)
    if line is None:
        raise SessrecError(f"{path}: the file is empty")
    separator = dialect.separator
    names = [bare(n) for n in next(csv.reader([line], **dialect.csv_module()))]  # a quoted name may hold a delimiter
    missing = [c for c in required if bare(c) not in names]
    data = [v for d in dict.fromkeys((separator, *DELIMITERS)) for v in map(bare, line.split(d)) if DATA_VALUE.match(v)]
    if data and len(missing) == len(required) and not describe_format(line):  # no column found: no header
        used = max(dict.fromkeys((separator, *DELIMITERS)), key=line.count)  # what separates the values, by count
        used = used if line.count(used) else separator
        sed = {"\t": "\\t"}.get(used, used)
        also = (f"; its values are separated by {DELIMITERS.get(used, repr(used))}: pass {delimiter_option} "
                f"{delimiter_text(used)}" if used != separator and delimiter_option else "")
        raise SessrecError(f"{path}, line 1: this is data, not a header (it holds {data[0]!r}): the file needs a first "
                           f"line naming its columns, among them {', '.join(map(repr, missing))} (e.g. sed -i "
                           f"'1i col1{sed}col2{sed}...' {path}){also}")
    if names[0] == "" and names.count("") == 1:
        raise SessrecError(f"{path}, line 1: the first column of the header has no name, as pandas writes its index "
                           "(DataFrame.to_csv without index=False): name it, or write the file without it")
    if "" in names:
        raise SessrecError(f"{path}, line 1: {names.count('')} column(s) of the header have no name (as the trailing "
                           f"{DELIMITERS.get(separator, 'delimiters')} a spreadsheet writes: {line[-40:]!r}); name or "
                           "remove them")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SessrecError(f"{path}, line 1: the header names the column {twice[0]!r} twice; rename one of them")
    asked: dict[str, str] = {}
    for c in required:
        if asked.setdefault(bare(c), c) != c:
            raise SessrecError(f"{path}: {asked[bare(c)]!r} and {c!r} name the same column {bare(c)} of the header; "
                               "name it once")
    if missing:
        if len(names) == 1 and all(bare(c) in map(bare, line.split("::")) for c in missing):  # MovieLens 1M's
            raise SessrecError(f"{path}, line 1: the columns are separated by '::'; the CSV reader takes a one-character "
                               f"delimiter: replace it first (e.g. sed 's/::/\\t/g' {path.name} > out.tsv"
                               + (f", then {delimiter_option} tab)" if delimiter_option else ")"))
        for other, name in DELIMITERS.items():
            if other != separator and len(names) == 1 and all(bare(c) in map(bare, line.split(other)) for c in missing):
                fix = (f"leave {delimiter_option} out (a comma is its default)" if delimiter_option and other == ","
                       else f"pass {delimiter_option} {delimiter_text(other)}" if delimiter_option else
                       "only comma-separated CSV is read: convert it (e.g. polars.read_csv(path, "
                       f"separator={other!r}).write_csv(...))")
                raise SessrecError(f"{path}, line 1: the columns are separated by {name}; {fix}")

        def close(c: str) -> list[str]:  # another case first (ts, TS), then a near spelling
            return [n for n in names if n.lower() == bare(c).lower()][:1] or difflib.get_close_matches(bare(c), names, 1)

        guess = looks_like(line)
        near = [] if guess else [m for c in missing for m in close(c)]
        hint = f" (did you mean {', '.join(map(repr, near))}?)" if near else ""
        raise SessrecError(f"{path}, line 1: not {dataset}: column(s) {', '.join(missing)} missing from the header "
                           f"{line[:160]!r}{guess}{hint}")
    return [asked.get(n, n) for n in names]


def _row_chunks(f: BinaryIO, size: int, quote: str | None = '"') -> Iterator[bytes]:
    """Blocks of about ``size`` bytes that end at a row boundary (for CSV, not inside a field quoted with ``quote``),
    blank ones included: their lines count in the line numbers."""
    mark = quote.encode() if quote else None
    while data := f.read(size):
        cut = len(data)
        if len(data) == size:  # more may follow: end at the last complete row, re-read the rest
            cut = data.rfind(b"\n") + 1
            while mark and cut and data.count(mark, 0, cut) % 2:  # that newline is inside quotes
                cut = data.rfind(b"\n", 0, cut - 1) + 1
            if cut == 0:  # a row longer than the block: read a larger one
                f.seek(-len(data), io.SEEK_CUR)
                size *= 2
                continue
            f.seek(cut - len(data), io.SEEK_CUR)
        yield data[:cut] if cut < len(data) else data


def _n_lines(chunk: bytes) -> int:
    """The lines of a block, a last one without its newline included."""
    return chunk.count(b"\n") + (not chunk.endswith(b"\n"))


def _blank(row: list[str]) -> bool:
    return not row or (len(row) == 1 and not row[0].strip())


def _fields_message(line: int, n: int, expected: int, text: str, dialect: Dialect = COMMA) -> str:
    separator = dialect.separator
    what = "comma" if separator == "," else f"{separator!r} delimiter"
    fix = (f"a value with a {what} needs quotes" if n > expected and dialect.quote is not None
           else f"a value cannot hold the {what} where nothing is quoted" if n > expected
           else "every row needs a value, empty or not, for each header column")
    return f"line {line} has {n} fields, expected {expected} ({fix}): {text[:120]!r}"


def _not_utf8(chunk: bytes, first_line: int) -> str | None:
    """The first line of ``chunk`` (whose first line is line ``first_line`` of the file) that is not UTF-8 text."""
    for i, line in enumerate(chunk.split(b"\n")):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            return (f"line {first_line + i} is not UTF-8 text (byte {line[e.start:e.start + 1]!r}), save the file as "
                    f"UTF-8: {line[:120]!r}")
    return None


def _bad_fields(chunk: bytes, n_fields: int, first_line: int, dialect: Dialect = COMMA) -> str | None:
    """The first row of ``chunk`` (UTF-8 text) with a number of fields other than ``n_fields``; blank lines are
    skipped (error path only)."""
    reader = csv.reader((line + "\n" for line in chunk.decode("utf-8").split("\n")), **dialect.csv_module())
    before = 0  # the lines before the row: a quoted field may span lines
    try:
        for row in reader:
            if not _blank(row) and len(row) != n_fields:
                return _fields_message(first_line + before, len(row), n_fields, dialect.separator.join(row), dialect)
            before = reader.line_num
    except csv.Error:  # Python's csv reads this row otherwise than polars: the caller names the block
        return None
    return None


def _stray_quote(chunk: bytes, first_line: int, dialect: Dialect = COMMA) -> str | None:
    """The first line of ``chunk`` with a quote inside a value that does not start with one (``15" monitor``) or a
    quoted value followed by more text (``"Weird Al" Yankovic``), which polars cannot read and Python's csv reads
    (error path only)."""
    fix = 'quote the whole value and double its quotes ("15"" monitor", """Weird Al"" Yankovic")'
    separator, q = dialect.separator, dialect.quote
    if q is None:
        return None
    if q != '"':
        fix = f"quote the whole value with {q} and double the {q} inside it"
    if separator == "\t":
        fix += "; or, where the file quotes nothing (tab-separated values rarely do), --quote-char none"
    quoted = False
    for i, line in enumerate(chunk.decode("utf-8", "replace").split("\n")):
        at_start, j = not quoted, 0  # a row starts a field, unless a quoted field goes on from the line before
        while j < len(line):
            ch = line[j]
            if quoted:
                if ch == q:
                    if line[j + 1:j + 2] == q:  # a doubled quote inside a quoted value
                        j += 1
                    else:
                        quoted = False
                        if line[j + 1:j + 2] not in ("", separator, "\r"):
                            return f"line {first_line + i}: a quoted value followed by more text ({line[:160]!r}); {fix}"
            elif ch == separator:
                at_start, j = True, j + 1
                continue
            elif ch == q and at_start:
                quoted = True
            elif ch == q:
                return f"line {first_line + i}: a quote inside a value that does not start with one ({line[:160]!r}); {fix}"
            at_start = False
            j += 1
    return None


MARKS = ("\x1f", "\x1e")  # one is added at the end of every line to count a row's fields: not the delimiter


def _field_counts(chunk: bytes, n_fields: int, dialect: Dialect = COMMA) -> pl.Series:
    """The number of fields of each row of ``chunk`` (0 for a blank line), its rows as polars reads them, where no
    row has more than ``n_fields``. Polars fills the missing last fields of a short row with nulls, as it reads
    empty ones: the block is read again with a mark added at the end of every line, and a row's fields are those
    before its mark (a value equal to the mark comes before it)."""
    separator = dialect.separator
    mark = next(m for m in MARKS if m != separator)
    marked = chunk.replace(b"\r\n", b"\n").replace(b"\n", f"{separator}{mark}\n".encode())
    if not marked.endswith(b"\n"):
        marked += f"{separator}{mark}".encode()
    names = [f"f{i}" for i in range(n_fields + 1)]
    rows = pl.read_csv(marked, has_header=False, schema=dict.fromkeys(names, pl.String), truncate_ragged_lines=False,
                       separator=separator, quote_char=dialect.quote)
    count = pl.max_horizontal([pl.when(pl.col(n) == mark).then(i) for i, n in enumerate(names)])
    blank = (count == 1) & (pl.col("f0").fill_null("").str.strip_chars() == "")
    return rows.select(pl.when(blank).then(0).otherwise(count).alias("fields")).to_series()


def _with_lines(df: pl.DataFrame, chunk: bytes, first: int) -> pl.DataFrame:
    """``df``, the rows of ``chunk`` with every column of the file, with :data:`LINE` (``first`` for the block's first
    line): a row's line counts the newlines inside the quoted fields before it."""
    line = pl.int_range(pl.len(), dtype=pl.Int64) + first
    if df.height != _n_lines(chunk):  # some quoted field spans lines
        inside = pl.sum_horizontal([pl.col(c).str.count_matches("\n", literal=True).fill_null(0) for c in df.columns])
        line = line + inside.cum_sum().shift(1, fill_value=0)
    return df.with_columns(line.alias(LINE))


def _whole_rows(df: pl.DataFrame, chunk: bytes, first: int, header: Sequence[str], path: Path,
                has_header: bool, dialect: Dialect) -> pl.DataFrame:
    """``df`` (the rows of ``chunk`` with :data:`LINE`) without its blank lines; a row with fewer fields than the header
    stops everything with its line. Only blocks with an empty last field are looked at again."""
    if not df[header[-1]].has_nulls():  # a blank line or a short row leaves the last field empty
        return df
    counts = _field_counts(chunk, len(header), dialect)
    if counts.len() != df.height:  # both read the block with polars: never seen
        raise SessrecError(f"{path}: cannot count the fields of the rows from line {line_number(first, has_header)} on; "
                           "check the quotes there")
    short = (counts != len(header)) & (counts != 0)
    if short.any():
        row = int(short.arg_true()[0])
        line = int(df[LINE][row])
        text = chunk.split(b"\n")[line - first].rstrip(b"\r").decode("utf-8", errors="replace")
        message = _fields_message(line_number(line, has_header), counts[row], len(header), text, dialect)
        raise SessrecError(f"{path}, {message}")
    blank = counts == 0
    return df.filter(~blank) if blank.any() else df


def _skip_header(f: BinaryIO, has_header: bool) -> int:
    """Move ``f`` (at the start of a CSV file) past a UTF-8 byte order mark and, with ``has_header``, the blank lines
    before the header (as :func:`first_line` skips them) and the header: the number of blank lines skipped. The
    exact reader and the fast scan (:func:`_lines_before_rows`) both number lines from here."""
    if f.read(len(BOM)) != BOM:
        f.seek(0)
    blank = 0
    while has_header and (head := f.readline()) and not head.strip():
        blank += 1
    return blank


def has_rows(path: Path, has_header: bool = True) -> bool:
    """Whether a CSV file has a line that is not blank after its header."""
    with open(path, "rb") as f:
        _skip_header(f, has_header)
        return any(line.strip() for line in f)


def csv_batches(path: Path, columns: Sequence[str], header: Sequence[str], has_header: bool = True,
                dialect: Dialect = COMMA) -> Iterator[pl.DataFrame]:
    """Text batches of ``columns`` (plus :data:`LINE`) of a CSV file whose fields are ``header``, written in
    ``dialect``.

    The file is read in blocks of :data:`CHUNK_BYTES` cut at row boundaries and each block is parsed
    by polars: memory stays that of one block whatever the file size (polars' own streaming CSV
    scan reads ahead of a slow consumer, so its memory grows with the file). Blank lines are skipped;
    a row with more or fewer fields than the header stops everything with its line. A quoted empty
    value (``""``) is empty, as an empty field is."""
    schema = {name: pl.String for name in header}
    with open(path, "rb") as f:
        line = _skip_header(f, has_header)  # LINE of the block's first line
        for chunk in _row_chunks(f, CHUNK_BYTES, dialect.quote):
            first, line = line, line + chunk.count(b"\n")
            if not chunk.strip():
                continue
            start = 0  # polars takes the number of fields from the first line: a blank one is cut off
            while (end := chunk.find(b"\n", start)) >= 0 and not chunk[start:end].strip():
                start, first = end + 1, first + 1
            chunk = chunk[start:] if start else chunk
            try:
                df = pl.read_csv(chunk, has_header=False, schema=schema, truncate_ragged_lines=False, null_values=[""],
                                 separator=dialect.separator, quote_char=dialect.quote)
            except pl.exceptions.PolarsError as e:
                at = line_number(first, has_header)
                where = _not_utf8(chunk, at)
                if where is None and (fields := _bad_fields(chunk, len(header), at, dialect)
                                      or _stray_quote(chunk, at, dialect)):
                    raise SessrecError(f"{path}, {fields}") from None
                raise SessrecError(f"{path}: cannot read the CSV file ({str(e).splitlines()[0]}): "
                                   f"{where or f'lines {at}..'}") from None
            df = _whole_rows(_with_lines(df, chunk, first), chunk, first, header, path, has_header, dialect)
            if df.height:
                yield df.select(LINE, *columns)


def _count_fields(line: bytes, dialect: Dialect = COMMA) -> int | None:
    """The fields of one CSV line (0 for a blank one); None where Python's csv cannot read it as one row."""
    text = line.rstrip(b"\r")
    separator = dialect.separator.encode()
    if not text.strip() and separator not in text:  # tabs between empty fields are not blank
        return 0
    if dialect.quote is None or dialect.quote.encode() not in text:
        return text.count(separator) + 1
    try:
        return len(next(csv.reader([text.decode("utf-8", errors="replace")], **dialect.csv_module())))
    except csv.Error:  # e.g. a carriage return inside an unquoted field
        return None


def _positions(data: bytes, byte: int) -> np.ndarray:
    return np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == byte)


@dataclass
class _Block:
    """The lines of one block of a file (a last one without its newline included), with the delimiters and quotes
    in each, counted at once for the block (numpy)."""

    data: bytes
    dialect: Dialect = COMMA

    def __post_init__(self) -> None:
        ends = _positions(self.data, ord("\n"))
        if not self.data.endswith(b"\n"):
            ends = np.append(ends, len(self.data))
        self.ends = ends  # where each line ends (its newline)
        self.delimiters = np.diff(np.searchsorted(_positions(self.data, ord(self.dialect.separator)), ends), prepend=0)
        q = self.dialect.quote
        quotes = _positions(self.data, ord(q)) if q and q.encode() in self.data else np.empty(0, dtype=np.int64)
        self.quotes = np.diff(np.searchsorted(quotes, ends), prepend=0)

    def line(self, k: int) -> bytes:
        return self.data[(int(self.ends[k - 1]) + 1 if k else 0):int(self.ends[k])]

    def fields(self, ks: np.ndarray) -> np.ndarray:
        """The fields of lines ``ks`` (0 for a blank one, -1 for one Python's csv cannot read as one row): the
        delimiters plus one, but for the rare lines with a quote or no delimiter (maybe blank), read with
        :func:`_count_fields`."""
        out = self.delimiters[ks] + 1
        for i in np.flatnonzero((self.quotes[ks] > 0) | (out == 1)):
            n = _count_fields(self.line(int(ks[i])), self.dialect)
            out[i] = -1 if n is None else n
        return out


class _Lines:
    """The fields of a file's lines by number (0-based), the file read as far as asked once: the index keeps where
    each block of about :attr:`BLOCK` bytes starts, and the last :attr:`CACHED` blocks looked at are kept."""

    BLOCK = 2**20
    CACHED = 8

    def __init__(self, path: Path, dialect: Dialect = COMMA) -> None:
        self.path, self.dialect = path, dialect
        self.starts, self.offsets = [0], [0]  # first line and byte offset of each block indexed, then of the next
        self.at_end = False
        self.spanning: int | None = None  # the first line with an odd number of quotes: a field may go on after it
        self.blocks: OrderedDict[int, _Block] = OrderedDict()

    def _index_block(self, f: BinaryIO) -> None:
        f.seek(self.offsets[-1])
        data = b""
        while True:
            more = f.read(self.BLOCK)
            data += more
            cut = data.rfind(b"\n") + 1
            if len(more) < self.BLOCK:  # the end of the file
                cut, self.at_end = len(data), True
                break
            if cut:
                break
        if not cut:
            return
        data = data[:cut]
        quote = self.dialect.quote
        if self.spanning is None and quote and quote.encode() in data:  # the blocks are looked at in bulk only where needed
            block = _Block(data, self.dialect)
            self._keep(len(self.starts) - 1, block)
            if (odd := np.flatnonzero(block.quotes % 2)).size:
                self.spanning = self.starts[-1] + int(odd[0])
        self.starts.append(self.starts[-1] + _n_lines(data))
        self.offsets.append(self.offsets[-1] + cut)

    def _keep(self, b: int, block: _Block) -> None:
        self.blocks[b] = block
        if len(self.blocks) > self.CACHED:
            self.blocks.popitem(last=False)

    def fields(self, numbers: np.ndarray) -> np.ndarray:
        """The fields of the lines ``numbers`` (see :meth:`_Block.fields`); -1 for one past the end of the file, or at
        or after a line where a quoted field may go on over the next line (rows are not lines from there on)."""
        out = np.full(len(numbers), -1, dtype=np.int64)
        if not len(numbers):
            return out
        with open(self.path, "rb") as f:
            while int(numbers.max()) >= self.starts[-1] and not self.at_end:
                self._index_block(f)
            found = numbers < (self.starts[-1] if self.spanning is None else min(self.spanning, self.starts[-1]))
            where = np.searchsorted(self.starts, numbers, side="right") - 1
            for b in np.unique(where[found]).tolist():
                if b not in self.blocks:
                    f.seek(self.offsets[b])
                    self._keep(b, _Block(f.read(self.offsets[b + 1] - self.offsets[b]), self.dialect))
                self.blocks.move_to_end(b)
                sel = found & (where == b)
                out[sel] = self.blocks[b].fields(numbers[sel] - self.starts[b])
        return out


class _RowFields:
    """The fast scan's check of its rows' fields. Polars reads a row with too few fields as one with empty last
    fields, and a blank line as a row of empty fields, so each row of the scan whose last field is empty (rare in
    the real REES46 and YOOCHOOSE files: a few rows without a session) is looked up in the file, its fields counted
    in bulk (:class:`_Lines`): a blank line is left out (as the exact reader skips it), and one with too few fields,
    or that cannot be found as one line, fails the query, and the exact reader then names it. Called by polars on
    the scan's batches, from several threads; reads the file once at most, as far as the last such row."""

    def __init__(self, path: Path, n_fields: int, header_lines: int, dialect: Dialect = COMMA) -> None:
        self.path, self.n_fields, self.header_lines = path, n_fields, header_lines
        self.lines = _Lines(path, dialect)
        self.lock = threading.Lock()

    def __call__(self, rows: pl.Series) -> pl.Series:
        """``rows``: the scan row of each row whose last field is empty, else null → whether to keep each row (false
        for a blank line), or the query fails."""
        suspects = rows.drop_nulls()
        if not suspects.len():
            return pl.repeat(True, rows.len(), eager=True)
        numbers = suspects.to_numpy().astype(np.int64) + self.header_lines
        with self.lock:
            fields = self.lines.fields(numbers)
        bad = np.flatnonzero((fields != self.n_fields) & (fields != 0))
        if bad.size:
            number, n = int(numbers[bad[0]]), int(fields[bad[0]])
            if n < 0:
                raise pl.exceptions.ComputeError(f"{self.path}: cannot find data row {number + 1 - self.header_lines} "
                                                 "as one line (a quoted field spans lines before it)")
            raise pl.exceptions.ComputeError(f"{self.path}, line {number + 1}: {n} fields, expected {self.n_fields}")
        keep = np.ones(rows.len(), dtype=bool)
        keep[np.flatnonzero(rows.is_not_null().to_numpy())[fields == 0]] = False
        return pl.Series(rows.name, keep)


def _lines_before_rows(path: Path, has_header: bool) -> int:
    """The lines before a CSV scan's first row: the header, and the blank lines before it, which polars skips (after
    a byte order mark too; a line of spaces there fails the scan)."""
    if not has_header:
        return 0
    with open(path, "rb") as f:
        return _skip_header(f, has_header) + 1


def csv_scan(path: Path, header: Sequence[str], conversions: dict[str, Conversion], required: Sequence[str] = (),
             has_header: bool = True, dialect: Dialect = COMMA) -> pl.LazyFrame:
    """:func:`csv_batches` and :func:`convert` as one lazy query, for a
    :class:`~sessrec.datasets.pipeline.Source`'s fast path: numbers are parsed by the CSV reader, and a value
    :func:`convert` would reject (or more: see :class:`Conversion`), an empty ``required`` value and a row with too
    few fields (:class:`_RowFields`) fail the query. Blank lines are left out, as :func:`csv_batches` skips them
    (same events, in the same order). A file without events is an error, as in :func:`in_input_order`. Every data
    set's events have a ``required`` column."""
    if not required:
        raise ValueError("csv_scan needs a required column")
    typed = {c: conv.dtype for c, conv in conversions.items() if conv.dtype is not None}
    scan = pl.scan_csv(path, has_header=has_header, schema={name: typed.get(name, pl.String()) for name in header},
                       truncate_ragged_lines=False, null_values=[""], row_index_name=SCAN_ROW, separator=dialect.separator,
                       quote_char=dialect.quote)
    rows = scan.filter(pl.when(pl.col(header[-1]).is_null()).then(pl.col(SCAN_ROW)).map_batches(
        _RowFields(path, len(header), _lines_before_rows(path, has_header), dialect), return_dtype=pl.Boolean, is_elementwise=True))
    if rows.head(1).collect().height == 0:
        raise SessrecError(f"{path}: the file has no events")
    checked = {c: v for c, v in conversions.items() if c not in typed or v.fast}  # typed: only a further check
    return rows.with_columns(**strict_conversions(checked, required))


def in_input_order(paths: Sequence[Path], read_file: Callable[[Path], Iterator[pl.DataFrame]]) -> Iterator[pl.DataFrame]:
    """The batches of every file (each with :data:`LINE`, dropped here) numbered ``_row`` across the files in order:
    the input order, which breaks ties in time and gives a session cut from a user's stream its id (that of its first
    event). Events only are numbered, not blank lines. A file without events is an error."""
    offset = 0
    for path in paths:
        start = offset
        for batch in read_file(path):
            yield batch.with_columns(pl.int_range(offset, offset + batch.height, dtype=pl.Int64).alias("_row")).drop(LINE)
            offset += batch.height
        if offset == start:
            raise SessrecError(f"{path}: the file has no events")


def line_number(row: int, has_header: bool) -> int:
    """The file's 1-based line of :data:`LINE` ``row``."""
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
    """The first line of ``chunk`` (``first``: its line in the file) that is not UTF-8 text, or not a JSON object
    with the right value types (error path only). Lines end at a newline only, as polars reads them (not at
    U+2028 and the other line breaks of Python's ``splitlines``)."""
    for i, raw in enumerate(chunk.split(b"\n")):
        where = f"line {first + i}"
        if bad := _not_utf8(raw, first + i):
            return bad
        line = raw.decode("utf-8")
        if not line.strip(JSON_BLANK.decode()):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            return f"{where} is not JSON: {line.strip()[:120]!r}{looks_like(line)}"
        if not isinstance(obj, dict):
            return f"{where} is not a JSON object: {line.strip()[:120]!r}"
        for key, kind in fields.items():  # polars reads any value as text (a list as its JSON): integers only
            value = obj.get(key)
            if kind is int and value is not None and not (isinstance(value, int) and not isinstance(value, bool)
                                                          and -2**63 <= value < 2**63):
                return f"{where}: field {key} is {value!r}, expected an integer"
    return f"lines {first}.."


def _json_lines(chunk: bytes, first: int, n: int) -> pl.Series:
    """:data:`LINE` of the ``n`` events polars read from ``chunk`` (``first``: its first line's): it skips the lines of
    only spaces, tabs and carriage returns."""
    if n == _n_lines(chunk):
        return pl.int_range(first, first + n, dtype=pl.Int64, eager=True)
    lines = [first + i for i, line in enumerate(chunk.split(b"\n")) if line.strip(JSON_BLANK)]
    if len(lines) != n:  # never seen: polars refuses any other line without an event
        lines = list(range(first, first + n))
    return pl.Series(lines, dtype=pl.Int64)


def json_batches(path: Path, fields: dict[str, type]) -> Iterator[pl.DataFrame]:
    """Batches of the ``fields`` (``int`` or ``str`` values; absent = null) of a JSON-lines file, plus :data:`LINE`,
    read in blocks of :data:`CHUNK_BYTES` like :func:`csv_batches`. A UTF-8 byte order mark is skipped, as are blank
    lines."""
    schema = {k: pl.Int64 if kind is int else pl.String for k, kind in fields.items()}
    line = 0  # LINE of the block's first line
    with open(path, "rb") as f:
        _skip_header(f, has_header=False)  # a byte order mark
        for chunk in _row_chunks(f, CHUNK_BYTES, quote=None):
            first, line = line, line + chunk.count(b"\n")
            if not chunk.strip(JSON_BLANK + b"\n"):
                continue
            try:
                df = pl.read_ndjson(chunk, schema=schema)
            except pl.exceptions.PolarsError:
                raise SessrecError(f"{path}: cannot read the JSON lines: {_bad_json_line(chunk, first + 1, fields)}") from None
            yield df.with_columns(_json_lines(chunk, first, df.height).alias(LINE))
