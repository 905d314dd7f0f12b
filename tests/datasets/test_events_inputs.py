"""`sessrec prepare events` on logs as users' tools write them: the same events written differently give the same
output (ISO times with offsets, float ids, hive folders, parquet without a suffix, spaced header names), and what
cannot be read right (ambiguous day/month dates, float ids past 2^53, clashing column names) is refused in one line."""

from __future__ import annotations

import decimal
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sessrec.cli import main
from sessrec.data.catalog import Catalog
from sessrec.datasets import events
from sessrec.datasets.raw import Dialect
from sessrec.errors import SessrecError
from tests.datasets.helpers import all_sessions, prepare, train_run

T0 = datetime(2024, 3, 13, 8, 0, tzinfo=timezone.utc)  # 13, 14, 15 March: a day above 12
COLS = ["--session-col", "session", "--item-col", "item", "--time-col", "ts"]


def _events(days: int = 3, start: datetime = T0) -> list[tuple[int, int, datetime]]:
    """(session, item, time): 12 sessions a day of 2-4 events a minute apart, items 0-8, in a fixed order."""
    rows = []
    for s in range(12 * days):
        begin = start + timedelta(days=s // 12, hours=s % 12)
        rows += [(s, (s * 7 + k * 5) % 9, begin + timedelta(minutes=k)) for k in range(2 + s % 3)]
    return rows


def _write(path: Path, columns: dict) -> Path:
    frame = pl.DataFrame(columns, strict=False)
    frame.write_parquet(path) if path.suffix == ".parquet" else frame.write_csv(path)
    return path


def _epoch_csv(path: Path, rows) -> Path:
    return _write(path, {"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows],
                         "ts": [int(t.timestamp()) for _, _, t in rows]})


def _prepared(tmp_path: Path, capsys, name: str, inputs: list, *flags: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The sessions written (ordered by session id) and the item map, of a prepare that must succeed."""
    out = tmp_path / f"out-{name}"
    rc, _, err = prepare(["events", "--input", *map(str, inputs), *COLS, *flags, "--output", str(out)], capsys)
    assert rc == 0, err
    return (all_sessions(out).sort("session_id", "split"),
            pl.read_parquet(out / "catalog-map-item_id.parquet").sort("id"))


def _refused(tmp_path: Path, capsys, inputs: list, *flags: str, cols: list[str] = COLS) -> str:
    """The one error line of a prepare that must stop with exit 2, no traceback and no output."""
    out = tmp_path / "refused"
    rc, _, err = prepare(["events", "--input", *map(str, inputs), *cols, *flags, "--output", str(out)], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("sessrec: error: ") and "Traceback" not in err, err
    assert not out.exists()
    return lines[0]


# ---- D1: ISO 8601 with an offset or Z ----------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_events_iso_times_with_an_offset_or_z_are_read_as_utc(tmp_path, capsys, fmt):
    rows = _events()
    reference = _prepared(tmp_path, capsys, "epoch", [_epoch_csv(tmp_path / "epoch.csv", rows)])
    zones = [timezone(timedelta(hours=1)), timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
    offsets = [t.astimezone(zones[k % 3]).isoformat() for k, (_, _, t) in enumerate(rows)]  # 2024-03-13T09:00:00+01:00
    zulu = [t.strftime("%Y-%m-%d %H:%M:%S.000Z") for _, _, t in rows]
    for name, times in (("offset", offsets), ("zulu", zulu)):
        path = _write(tmp_path / f"{name}.{fmt}", {"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows],
                                                   "ts": times})
        assert all(a.equals(b) for a, b in zip(_prepared(tmp_path, capsys, name, [path]), reference)), name


def test_events_a_time_format_that_cannot_be_inferred_is_blamed_on_the_right_value(tmp_path, capsys):
    rows = _events(1)
    times = [t.strftime("%Y-%m-%d %H:%M:%S") for _, _, t in rows]
    columns = {"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows]}
    first_bad = _write(tmp_path / "first.csv", {**columns, "ts": ["at nine", *times[1:]]})
    line = _refused(tmp_path, capsys, [first_bad])
    assert f"{first_bad}: cannot infer a time format from the first ts value 'at nine'; pass --time-format" in line
    later_bad = _write(tmp_path / "later.csv", {**columns, "ts": [*times[:4], "at nine", *times[5:]]})
    line = _refused(tmp_path, capsys, [later_bad])
    assert f"{later_bad}, line 6: cannot read ts value 'at nine' as a time in the format of the first value " \
           f"'{times[0]}'" in line


# ---- D2: day/month order -------------------------------------------------------------------------------------------
def _slash(tmp_path: Path, name: str, rows, fmt: str) -> Path:
    return _write(tmp_path / f"{name}.csv", {"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows],
                                             "ts": [t.strftime(fmt) for _, _, t in rows]})


def test_events_day_month_dates_are_read_in_the_order_the_values_tell(tmp_path, capsys):
    rows = _events()  # 13-15 March: the day is above 12
    reference = _prepared(tmp_path, capsys, "epoch", [_epoch_csv(tmp_path / "epoch.csv", rows)])
    for name, fmt in (("dmy", "%d/%m/%Y %H:%M"), ("mdy", "%m/%d/%Y %H:%M"), ("dmy-dots", "%d.%m.%Y %H:%M:%S")):
        written = _prepared(tmp_path, capsys, name, [_slash(tmp_path, name, rows, fmt)])
        assert all(a.equals(b) for a, b in zip(written, reference)), name


def test_events_ambiguous_day_month_dates_are_refused_unless_a_format_is_given(tmp_path, capsys):
    rows = _events(start=datetime(2024, 3, 5, 8, 0, tzinfo=timezone.utc))  # 5-7 March: 03/05, 03/06, 03/07
    path = _slash(tmp_path, "us", rows, "%m/%d/%Y %H:%M")
    line = _refused(tmp_path, capsys, [path])
    assert line == (f"sessrec: error: {path}: the ts values such as '03/05/2024 08:00' could be day/month or month/day "
                    "dates, and none has a number above 12 to tell which; pass --time-format '%d/%m/%Y %H:%M' (day first) "
                    "or '%m/%d/%Y %H:%M' (month first)")
    reference = _prepared(tmp_path, capsys, "epoch", [_epoch_csv(tmp_path / "epoch.csv", rows)])
    given = _prepared(tmp_path, capsys, "given", [path], "--time-format", "%m/%d/%Y %H:%M")
    assert all(a.equals(b) for a, b in zip(given, reference))
    # another file's values tell the order for all of them
    later = _events(start=datetime(2024, 3, 13, 8, 0, tzinfo=timezone.utc))
    later = [(s + 100, i, t) for s, i, t in later]
    both = _prepared(tmp_path, capsys, "both", [path, _slash(tmp_path, "us-later", later, "%m/%d/%Y %H:%M")])
    reference = _prepared(tmp_path, capsys, "epoch-both", [_epoch_csv(tmp_path / "epoch-both.csv", rows + later)])
    assert all(a.equals(b) for a, b in zip(both, reference))
    # values that put the day first and others the month first
    mixed = _slash(tmp_path, "mixed", later[:10], "%d/%m/%Y %H:%M").read_text() + \
        _slash(tmp_path, "mixed2", later[10:], "%m/%d/%Y %H:%M").read_text().split("\n", 1)[1]
    (tmp_path / "mixed.csv").write_text(mixed)
    line = _refused(tmp_path, capsys, [tmp_path / "mixed.csv"])
    assert "the ts values mix dates with the day first" in line and "with the month first" in line


# ---- D3, D4: missing and float ids ---------------------------------------------------------------------------------
def test_events_nan_and_empty_ids_are_missing_in_csv_and_parquet(tmp_path, capsys):
    rows = _events()
    gaps = {3, 10, 17}  # no session; no item at 5 and 20
    nulls = _write(tmp_path / "nulls.parquet", {
        "session": [None if k in gaps else str(s) for k, (s, _, _) in enumerate(rows)],
        "item": [None if k in (5, 20) else str(i) for k, (_, i, _) in enumerate(rows)],
        "ts": [int(t.timestamp()) for _, _, t in rows]})
    reference = _prepared(tmp_path, capsys, "nulls", [nulls])
    empty = pl.read_parquet(nulls).with_columns(pl.col("session", "item").fill_null(""))
    empty.write_parquet(tmp_path / "empty.parquet")
    (tmp_path / "empty.csv").write_text(empty.write_csv(quote_style="always"))  # "" in a CSV: quoted, not absent
    floats = pl.read_parquet(nulls).with_columns(pl.col("session", "item").cast(pl.Float64).fill_null(float("nan")))
    floats.write_parquet(tmp_path / "nan.parquet")
    for name in ("empty.parquet", "empty.csv", "nan.parquet"):
        out = tmp_path / f"out-{name}"
        assert main(["prepare", "events", "--input", str(tmp_path / name), *COLS, "--output", str(out)]) == 0
        assert "dropped 5 without a session or an item" in capsys.readouterr().err, name
        written = (all_sessions(out).sort("session_id", "split"), pl.read_parquet(out / "catalog-map-item_id.parquet"))
        assert written[0].equals(reference[0]) and written[1].sort("id").equals(reference[1]), name


def test_events_whole_float_ids_are_integers_and_large_ones_refused(tmp_path, capsys):
    rows = _events()
    ints = _prepared(tmp_path, capsys, "ints", [_epoch_csv(tmp_path / "ints.csv", rows)])
    assert ints[1]["raw"].dtype == pl.Int64 and ints[0]["session_id"][0] == "0"
    columns = {"session": [float(s) for s, _, _ in rows], "item": [float(i) for _, i, _ in rows],
               "ts": [int(t.timestamp()) for _, _, t in rows]}
    as_floats = _write(tmp_path / "floats.parquet", columns)
    float32 = pl.read_parquet(as_floats).with_columns(pl.col("item").cast(pl.Float32))
    float32.write_parquet(tmp_path / "float32.parquet")
    pandas_csv = tmp_path / "pandas.csv"  # pandas.to_csv of a float column: 1.0, 2.0, ...
    pandas_csv.write_text("session,item,ts\n" + "".join(f"{s:.1f},{i:.1f},{int(t.timestamp())}\n" for s, i, t in rows))
    for path in (as_floats, tmp_path / "float32.parquet", pandas_csv):
        written = _prepared(tmp_path, capsys, path.name, [path])
        assert all(a.equals(b) for a, b in zip(written, ints)), path.name
    # text ids that are not all whole floats stay text
    versions = _write(tmp_path / "versions.csv", {**columns, "item": [f"1.{i}0" if i else "1.5" for _, i, _ in rows]})
    raw = _prepared(tmp_path, capsys, "versions", [versions])[1]["raw"]
    assert raw.dtype == pl.String and {"1.10", "1.50"} <= set(raw)  # 1.1 and 1.10 would be one float

    big = _write(tmp_path / "big.parquet", {**columns, "session": [1.79e18 + 256.0 * s for s, _, _ in rows]})
    line = _refused(tmp_path, capsys, [big])
    assert line.startswith(f"sessrec: error: {big}, line 1: cannot read session value 1.79e+18 as an id: as a float, an "
                           "id of 2^53 or more has lost digits (ids merge); write the column as integers or as text")
    big32 = float32.with_columns(pl.col("item") + 2.0**24)
    big32.write_parquet(tmp_path / "big32.parquet")
    assert "cannot read item value 16777216.0 as an id: as a float, an id of 2^24 or more" in \
        _refused(tmp_path, capsys, [tmp_path / "big32.parquet"])
    big_csv = tmp_path / "big.csv"
    big_csv.write_text(pandas_csv.read_text().replace("\n0.0,", "\n1.7900000000000023e+18,"))
    assert f"{big_csv}, line 2: cannot read session value '1.7900000000000023e+18' as an id" in \
        _refused(tmp_path, capsys, [big_csv])


def test_events_float_item_ids_are_served_by_the_users_ids(tmp_path, capsys):
    rows = _events()
    path = _write(tmp_path / "floats.parquet", {"session": [s for s, _, _ in rows],
                                                "item": [float(i) if k % 7 else float("nan") for k, (_, i, _) in enumerate(rows)],
                                                "ts": [int(t.timestamp()) for _, _, t in rows]})
    out = tmp_path / "data"
    assert prepare(["events", "--input", str(path), *COLS, "--output", str(out)], capsys)[0] == 0
    catalog = Catalog.load(out)
    assert catalog.numeric_ids and sorted(v for v in catalog.item.raw if v is not None) == list(range(9))
    assert catalog.item.lookup("1") == catalog.item.lookup(1) is not None and catalog.item.lookup("1.0") is None
    train_run(out, tmp_path / "run", side_information=False)
    capsys.readouterr()
    assert main(["recommend", "--model-dir", str(tmp_path / "run" / "checkpoint-last"), "--items", "1,2,3", "-k", "3",
                 "--timestamps", ",".join(str(int(T0.timestamp()) + 60 * k) for k in range(3))]) == 0
    assert "unknown" not in capsys.readouterr().err


# ---- D5: side columns --------------------------------------------------------------------------------------------
def test_events_decimal_and_boolean_continuous_columns_are_numbers(tmp_path, capsys):
    rows = _events()
    base = {"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows], "ts": [int(t.timestamp()) for _, _, t in rows]}
    prices = [decimal.Decimal(f"{(i * 13 % 50) / 4:.2f}") for _, i, _ in rows]
    table = pa.table({**base, "price": pa.array(prices, pa.decimal128(10, 2)), "flag": [i % 2 == 0 for _, i, _ in rows],
                      "category": pa.array([f"c{i % 3}" for _, i, _ in rows]).dictionary_encode()})
    pq.write_table(table, tmp_path / "side.parquet")
    as_float = pl.read_parquet(tmp_path / "side.parquet").with_columns(pl.col("price").cast(pl.Float64),
                                                                       pl.col("flag").cast(pl.Float64))
    as_float.write_parquet(tmp_path / "float.parquet")
    side = ["--continuous-cols", "price", "flag"]
    written = _prepared(tmp_path, capsys, "side", [tmp_path / "side.parquet"], *side)
    assert all(a.equals(b) for a, b in zip(written, _prepared(tmp_path, capsys, "float", [tmp_path / "float.parquet"], *side)))
    assert written[0]["flag_norm"].explode().n_unique() == 2
    line = _refused(tmp_path, capsys, [tmp_path / "side.parquet"], "--continuous-cols", "category")
    assert line == (f"sessrec: error: {tmp_path / 'side.parquet'}: --continuous-cols category is a categorical "
                    "(dictionary-encoded text) column, not a number; list it under --categorical-cols, or store it as "
                    "numbers")


@pytest.mark.parametrize("flags,message", [
    (["--categorical-cols", "category", "category"], "--categorical-cols lists category 2 times; list each column once"),
    (["--continuous-cols", "price", "price"], "--continuous-cols lists price 2 times"),
    (["--categorical-cols", "hour_sin"], "--categorical-cols hour_sin: the output already has a column hour_sin (its own "
                                         "columns: item_id, item_age_days_log_norm, hour_sin, hour_cos, weekday_sin, "
                                         "weekday_cos, timestamp, session_id, session_start, session_size); rename that "
                                         "column in the input"),
    (["--categorical-cols", "timestamp"], "--categorical-cols timestamp: the output already has a column timestamp"),
    (["--categorical-cols", "session_size"], "--categorical-cols session_size: the output already has a column"),
    (["--categorical-cols", "item_id"], "--categorical-cols item_id: the output already has a column item_id"),
    (["--categorical-cols", "item"], "--categorical-cols item is the --item-col; a column cannot also be a side feature"),
    (["--continuous-cols", "ts"], "--continuous-cols ts is the --time-col"),
    (["--categorical-cols", "price_norm", "--continuous-cols", "price"],
     "--continuous-cols price and --categorical-cols price_norm would both be the output column price_norm"),
])
def test_events_side_columns_that_clash_are_refused_before_reading(tmp_path, capsys, flags, message):
    path = tmp_path / "not-read.csv"
    path.write_text("not even a CSV of these columns\n")
    assert _refused(tmp_path, capsys, [path], *flags).startswith(f"sessrec: error: {message}")


def test_events_a_side_column_that_is_the_item_column_of_another_name_clashes(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_text("session_id,item_id,timestamp,hour_sin\n")
    line = _refused(tmp_path, capsys, [path], "--categorical-cols", "hour_sin",
                    cols=["--session-col", "session_id", "--item-col", "item_id", "--time-col", "timestamp"])
    assert "--categorical-cols hour_sin: the output already has a column hour_sin" in line


# ---- D10: header names with spaces -------------------------------------------------------------------------------
def test_events_csv_header_names_are_matched_without_the_spaces_around_them(tmp_path, capsys):
    rows = _events()
    reference = _prepared(tmp_path, capsys, "epoch", [_epoch_csv(tmp_path / "epoch.csv", rows)])
    spaced = tmp_path / "spaced.csv"
    spaced.write_text(' session ,"Item ",Time Stamp\n' + "".join(f"{s},{i},{int(t.timestamp())}\n" for s, i, t in rows))
    for session, item in (("session", "Item"), (" session ", "Item "), ("session ", '"Item "')):
        out = tmp_path / f"out-{session!r}{item!r}"
        rc, _, err = prepare(["events", "--input", str(spaced), "--session-col", session, "--item-col", item,
                              "--time-col", "Time Stamp", "--output", str(out)], capsys)
        assert rc == 0, err
        assert all_sessions(out).sort("session_id", "split").equals(reference[0])
    line = _refused(tmp_path, capsys, [spaced], cols=["--session-col", "session", "--item-col", "item", "--time-col",
                                                      "Time Stamp"])
    assert "column(s) item missing from the header ' session ,\"Item \",Time Stamp' (did you mean 'Item'?)" in line
    line = _refused(tmp_path, capsys, [spaced], "--categorical-cols", " session",
                    cols=["--session-col", "session", "--item-col", "Item", "--time-col", "Time Stamp"])
    assert "'session' and ' session' name the same column session of the header; name it once" in line


# ---- --delimiter: semicolons (European spreadsheets, Diginetica), tabs (.tsv), bars -------------------------------
def _delimited(path: Path, rows, separator: str) -> Path:
    """``rows`` with a side column whose values hold the delimiter and a comma (quoted where needed)."""
    frame = pl.DataFrame({"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows],
                          "ts": [int(t.timestamp()) for _, _, t in rows],
                          "cat": [f"a{separator}b, {s % 3}" for s, _, _ in rows]})
    frame.write_csv(path, separator=separator)
    return path


@pytest.mark.parametrize("separator, flag", [(";", ";"), ("\t", "tab"), ("\t", "\\t"), ("|", "|")])
def test_events_delimiter_reads_the_same_events_as_a_comma_file(tmp_path, capsys, separator, flag):
    """A semicolon-, tab- or bar-separated log gives what the same log written with commas gives, by both readers;
    a folder stands for its .tsv files too."""
    rows = _events()
    reference = _prepared(tmp_path, capsys, "comma", [_delimited(tmp_path / "comma.csv", rows, ",")],
                          "--categorical-cols", "cat")
    folder = tmp_path / "in"
    folder.mkdir()
    path = _delimited(folder / ("log.tsv" if separator == "\t" else "log.csv"), rows, separator)
    got = _prepared(tmp_path, capsys, "other", [folder], "--categorical-cols", "cat", "--delimiter", flag)
    if separator == "\t":  # a folder of .tsv files without the option: named
        assert _refused(tmp_path, capsys, [folder], "--categorical-cols", "cat").endswith(
            f"input {folder} is a folder without parquet or .csv files (it holds .tsv files: pass --delimiter tab); "
            "pass the event files")
    assert got[0].equals(reference[0]) and got[1].equals(reference[1])
    assert set(got[0]["cat"].explode().to_list()) == {2, 3, 4}  # three values (+ padding and unknown ids)
    source = events.source([path], events.Columns("item", "ts", "session", None, ("cat",), (),
                                                           dialect=Dialect(separator)))
    fast = source.scan().collect()
    assert fast.height == len(rows) and fast.equals(pl.concat(source.batches()).drop("_row"))


@pytest.mark.parametrize("content, flags, message", [
    ("session;item;ts\ns0;a;1709283706\n", [], "the columns are separated by semicolons; pass --delimiter ';'"),
    ("session::item::ts\ns0::a::1709283706\n", [], "the columns are separated by '::'; the CSV reader takes a "
     "one-character delimiter: replace it first (e.g. sed 's/::/\\t/g' log.csv > out.tsv, then --delimiter tab)"),
    ("s0^a^1709283706\ns0^b^1709283766\n", ["--delimiter", "^"], "this is data, not a header (it holds '1709283706'): "
     "the file needs a first line naming its columns, among them 'item', 'ts', 'session' (e.g. sed -i '1i col1^col2^...'"),
    ("session\titem\tts\ns0\ta\t1709283706\n", [], "the columns are separated by tabs; pass --delimiter tab"),
    ("session,item,ts\ns0,a,1709283706\n", ["--delimiter", ";"],
     "the columns are separated by commas; leave --delimiter out (a comma is its default)"),
    ("session;item;ts\ns0;a;1709283706\ns0;b;1709283766;x\n", ["--delimiter", ";"],
     "line 3 has 4 fields, expected 3 (a value with a ';' delimiter needs quotes): 's0;b;1709283766;x'"),
    ("session;item;ts\ns0;a;1709283706\ns0;b\n", ["--delimiter", ";"],
     "line 3 has 2 fields, expected 3 (every row needs a value, empty or not, for each header column): 's0;b'"),
    ('session;item;ts\ns0;a;1709283706\ns0;15" b;1709283766\n', ["--delimiter", ";"],
     "line 3: a quote inside a value that does not start with one"),
])
def test_events_delimiter_errors_name_the_line_and_the_fix(tmp_path, capsys, content, flags, message):
    path = tmp_path / "log.csv"
    path.write_text(content)
    line = _refused(tmp_path, capsys, [path], *flags)
    assert message in line, line


def test_events_quote_char_none_reads_tab_separated_values_that_hold_quotes(tmp_path, capsys):
    """LastFM-1K's track names (12" Mix, "Weird Al" Yankovic): no quoting in a TSV file; both readers give the values
    as written, and the default (quotes) names the line and this option."""
    rows = _events()
    names = ['12" Mix', '"Weird Al" Yankovic', "plain", 'Boy, "Boy"']
    text = "session\titem\tts\ttrack\n" + "".join(f"{s}\t{i}\t{int(t.timestamp())}\t{names[k % 4]}\n"
                                                  for k, (s, i, t) in enumerate(rows))
    path = tmp_path / "log.tsv"
    path.write_text(text)
    line = _refused(tmp_path, capsys, [path], "--delimiter", "tab")
    assert "line 2: a quote inside a value that does not start with one" in line and "--quote-char none" in line
    reference = _prepared(tmp_path, capsys, "epoch", [_epoch_csv(tmp_path / "epoch.csv", rows)])
    got = _prepared(tmp_path, capsys, "tsv", [path], "--delimiter", "tab", "--quote-char", "none",
                    "--categorical-cols", "track")
    assert got[0].drop("track").equals(reference[0]) and got[1].equals(reference[1])
    source = events.source([path], events.Columns("item", "ts", "session", None, ("track",), (),
                                                   dialect=Dialect("\t", None)))
    fast = source.scan().collect()
    assert fast.height == len(rows) and fast.equals(pl.concat(source.batches()).drop("_row"))
    assert fast["c:track"].unique().sort().to_list() == sorted(names)
    path.write_text(text + "99\t1\t1710288000\tx\ty\n")
    line = _refused(tmp_path, capsys, [path], "--delimiter", "tab", "--quote-char", "none")
    assert f"line {len(rows) + 2} has 5 fields, expected 4 (a value cannot hold the '\\t' delimiter where nothing is " \
           "quoted)" in line
    line = _refused(tmp_path, capsys, [path], "--delimiter", ";", "--quote-char", ";")
    assert line.endswith("--quote-char and --delimiter are both ';'; give the character that quotes fields, or "
                         "--quote-char none")


@pytest.mark.parametrize("separator, quote", [(";", "'"), ("|", None), ("\x1f", '"')])
def test_events_both_readers_agree_where_last_fields_are_empty(tmp_path, separator, quote):
    """Rows whose last field is empty send the fast scan to its field count (a delimiter other than the comma, a
    quote other than ", none, and the delimiter its own mark used to be)."""
    rows = _events()
    q = quote or ""
    text = f"session{separator}item{separator}ts{separator}note\n" + "".join(
        f"{s}{separator}{q}{i}{q}{separator}{int(t.timestamp())}{separator}{'' if k % 3 else 'x'}\n"
        for k, (s, i, t) in enumerate(rows))
    path = tmp_path / "log.csv"
    path.write_text(text)
    source = events.source([path], events.Columns("item", "ts", "session", None, ("note",), (),
                                                   dialect=Dialect(separator, quote)))
    fast = source.scan().collect()
    assert fast.height == len(rows) and fast.equals(pl.concat(source.batches()).drop("_row"))
    assert fast["c:note"].null_count() == sum(1 for k in range(len(rows)) if k % 3)
    path.write_text(text + f"99{separator}1\n")  # a short row, read as one with empty last fields
    with pytest.raises(SessrecError, match=f"line {len(rows) + 2} has 2 fields, expected 4"):
        pl.concat(source.batches())


@pytest.mark.parametrize("given, message", [
    ("::", "the CSV reader takes a one-character delimiter, got '::': replace it in the file first"),
    ('"', "expected one ASCII character other than a quote or a line break, or tab, got '\"'"),
    ("", "expected one ASCII character"),
    ("§", "expected one ASCII character"),
])
def test_events_a_delimiter_the_reader_cannot_take_is_refused(tmp_path, capsys, given, message):
    path = _epoch_csv(tmp_path / "log.csv", _events())
    with pytest.raises(SystemExit) as stop:
        main(["prepare", "events", "--input", str(path), *COLS, "--delimiter", given, "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and f"argument --delimiter: {message}" in err and not (tmp_path / "o").exists(), err


@pytest.mark.parametrize("gap", ["0", "0s", "0.5ms"])
def test_events_a_session_gap_of_zero_is_refused_not_the_default(tmp_path, capsys, gap):
    """``--session-gap 0`` was read as "not given": sessions were cut after 30 minutes (QA helper-61)."""
    rows = _events()
    path = _write(tmp_path / "log.csv", {"user": [s % 5 for s, _, _ in rows], "item": [i for _, i, _ in rows],
                                         "ts": [int(t.timestamp()) for _, _, t in rows]})
    with pytest.raises(SystemExit) as stop:
        main(["prepare", "events", "--input", str(path), "--user-col", "user", "--item-col", "item", "--time-col", "ts",
              "--session-gap", gap, "--output", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and not (tmp_path / "o").exists(), err
    assert f"argument --session-gap: expected a duration of at least 1 ms, got '{gap}'" in err, err


@pytest.mark.parametrize("fmt, refused", [("%m%d", True), ("%d.%m. %H:%M", True), ("%Y%m%d", False), ("%y-%m-%d", False),
                                          ("%F %T", False), ("%-d/%-m/%Y", False)])
def test_events_a_time_format_without_a_year_is_refused(tmp_path, capsys, fmt, refused):
    """Tmall's ``time_stamp`` is MMDD: read with '%m%d' every time fell in year 1 with no error (QA helper-61)."""
    rows = _events()
    path = _write(tmp_path / "log.csv", {"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows],
                                         "ts": [t.strftime("%Y%m%d") for _, _, t in rows]})
    if refused:
        line = _refused(tmp_path, capsys, [path], "--time-format", fmt)
        assert f"--time-format {fmt!r} has no year (%Y or %y): every time would fall in year 1" in line
    else:  # not refused for its format (it may still not read these values)
        rc, _, err = prepare(["events", "--input", str(path), *COLS, "--time-format", fmt, "--output",
                              str(tmp_path / fmt.replace("/", "_"))], capsys)
        assert "has no year" not in err and (rc == 0) == (fmt == "%Y%m%d"), err


@pytest.mark.parametrize("fmt, flags, warned", [("csv", [], True), ("parquet", [], True), ("csv", ["--time-format", "%d.%m.%Y"], True),
                                               ("hours", [], False)])
def test_events_times_that_are_dates_only_are_warned(tmp_path, capsys, fmt, flags, warned):
    """Diginetica's eventdate: a session's events tie at midnight, in file order, with no word said (QA helper-61)."""
    rows = _events()
    days = {"csv": [t.strftime("%d.%m.%Y") if flags else t.strftime("%Y-%m-%d") for _, _, t in rows],
            "parquet": [t.date() for _, _, t in rows], "hours": [t.strftime("%Y-%m-%d %H:%M") for _, _, t in rows]}[fmt]
    path = _write(tmp_path / ("log.parquet" if fmt == "parquet" else "log.csv"),
                  {"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows], "ts": days})
    rc, _, err = prepare(["events", "--input", str(path), *COLS, *flags, "--output", str(tmp_path / "o")], capsys)
    assert rc == 0, err
    assert ("are dates without a time of day: the events of a session tie at midnight and keep the file's order" in err) \
        == warned, err


def test_events_truncation_is_counted_and_a_session_of_a_thousand_interactions_warned(tmp_path, capsys):
    """Bots, or a user id that stands for a missing value ("NA" for 40 % of the events): their events were cut to 20
    a session with no word said (QA helper-63)."""
    rows = _events()
    users = [str(s % 7) for s, _, _ in rows]
    items, times = [i for _, i, _ in rows], [int(t.timestamp()) for _, _, t in rows]
    start = int(T0.timestamp()) + 3600
    na = [("NA", f"x{k % 97}", start + 5 * k) for k in range(1200)]  # one stream, never 30 minutes idle
    path = _write(tmp_path / "log.csv", {"user": users + [u for u, _, _ in na], "item": [str(i) for i in items]
                                         + [i for _, i, _ in na], "ts": times + [t for _, _, t in na]})
    cols = ["--user-col", "user", "--item-col", "item", "--time-col", "ts"]
    rc, _, err = prepare(["events", "--input", str(path), *cols, "--output", str(tmp_path / "o")], capsys)
    assert rc == 0, err
    assert "warning: sessions of up to 1,200 interactions (after removing repeats; the longest is user 'NA'): bots, " \
           "or a user id that stands for a missing value (NA, null, 0, -1: only empty ones are dropped)?" in err
    rc, _, err = prepare(["events", "--input", str(_epoch_csv(tmp_path / "plain.csv", rows)), *COLS, "--output",
                          str(tmp_path / "p")], capsys)
    assert rc == 0 and "bots" not in err, err
    # a session column of integers (parquet)
    frame = pl.DataFrame({"session": [s for s, _, _ in rows] + [-1] * 1200, "item": [str(i) for i in items]
                          + [i for _, i, _ in na], "ts": times + [t for _, _, t in na]})
    frame.write_parquet(tmp_path / "log.parquet")
    rc, _, err = prepare(["events", "--input", str(tmp_path / "log.parquet"), "--session-col", "session", "--item-col",
                          "item", "--time-col", "ts", "--output", str(tmp_path / "q")], capsys)
    assert rc == 0 and "(after removing repeats; the longest is session '-1'): bots, or a session id" in err, err


def test_events_a_day_without_sessions_is_said_and_times_after_now_warned(tmp_path, capsys):
    """The windows are numbered over the kept days: a missing day went unsaid, as did sessions dated 2039 (QA
    helper-63)."""
    rows = [r for r in _events(days=4) if r[2].day != 14]  # 13, 15, 16 March: the 14th has no events
    path = _epoch_csv(tmp_path / "log.csv", rows)
    assert main(["prepare", "events", "--input", str(path), *COLS, "--output", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "1 of the 4 days from the first window to the last have no window (no session, or too few), the first " \
           "2024-03-14 00:00: the windows are numbered over those kept (windows.csv gives their dates)" in err
    assert "after now" not in err
    later = [(900 + k // 3, k % 5, datetime(2039, 5, 1, 10, k, tzinfo=timezone.utc)) for k in range(12)]
    rc, _, err = prepare(["events", "--input", str(_epoch_csv(tmp_path / "later.csv", rows + later)), *COLS,
                          "--output", str(tmp_path / "later")], capsys)
    assert rc == 0 and "warning: 1 window(s) start after now, up to 2039-05-01: a clock error, or times in another " \
                       "unit?" in err, err


# ---- D11: parquet without a suffix, folders, files in different time units -------------------------------------
def test_events_parquet_is_known_by_its_bytes_and_a_folder_by_its_files(tmp_path, capsys):
    rows = _events()
    columns = {"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows],
               "ts": [int(t.timestamp()) for _, _, t in rows]}
    reference = _prepared(tmp_path, capsys, "one", [_write(tmp_path / "one.parquet", columns)])
    spark = tmp_path / "part-00000-abc.c000"
    spark.write_bytes((tmp_path / "one.parquet").read_bytes())
    assert all(a.equals(b) for a, b in zip(_prepared(tmp_path, capsys, "spark", [spark]), reference))
    # a hive-partitioned folder: a file per day (and two parts for the last), read in the natural order of the paths
    hive = tmp_path / "hive"
    frame = pl.DataFrame(columns)
    for day in range(3):
        part = frame.filter(pl.col("session") // 12 == day)
        folder = hive / f"date=2024-03-{13 + day}"
        folder.mkdir(parents=True)
        if day < 2:
            part.write_parquet(folder / "part-0.parquet")
        else:
            part.head(10).write_parquet(folder / "part-2.parquet")
            part.slice(10).write_parquet(folder / "part-10.parquet")
        (folder / ".part-0.parquet.crc").write_bytes(b"crc")
    (hive / "_SUCCESS").write_bytes(b"")
    # Spark's empty parts: a parquet schema without rows, a CSV header alone, a file without bytes
    frame.head(0).write_parquet(hive / "date=2024-03-13" / "part-1.parquet")
    (hive / "date=2024-03-14" / "part-1.csv").write_text("session,item,ts\n\n")
    (hive / "date=2024-03-14" / "part-2.csv").write_bytes(b"")
    assert all(a.equals(b) for a, b in zip(_prepared(tmp_path, capsys, "hive", [hive]), reference))
    assert main(["prepare", "events", "--input", str(hive), *COLS, "--output", str(tmp_path / "out-hive2")]) == 0
    err = capsys.readouterr().err
    assert f"left out 3 file(s) without events: {hive / 'date=2024-03-13' / 'part-1.parquet'}, " in err
    (tmp_path / "empty").mkdir()
    assert _refused(tmp_path, capsys, [tmp_path / "empty"]) == \
        f"sessrec: error: input {tmp_path / 'empty'} is a folder without parquet or .csv files; pass the event files"
    (tmp_path / "empty" / "part-0.csv").write_text("session,item,ts\n")
    assert _refused(tmp_path, capsys, [tmp_path / "empty"]) == \
        f"sessrec: error: input {tmp_path / 'empty'} is a folder whose 1 parquet or .csv file(s) hold no events"
    assert _refused(tmp_path, capsys, [tmp_path / "empty" / "part-0.csv"]) == \
        f"sessrec: error: {tmp_path / 'empty' / 'part-0.csv'}: the file has no events"  # named, it is a mistake


@pytest.mark.parametrize("times, warned", [
    (lambda t: t.strftime("%Y-%m-%d %H:%M:%S"), True), (lambda t: t.replace(tzinfo=None), True),
    (lambda t: t.strftime("%Y-%m-%dT%H:%M:%S+01:00"), False), (lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"), False),
    (lambda t: int(t.timestamp()), False), (lambda t: t, False)])
def test_times_without_a_zone_beside_a_timezone_are_warned(tmp_path, capsys, times, warned):
    """Naive local times with --timezone Europe/Berlin were read as UTC and converted: the hour features an hour off,
    without a word (QA helper-53). Epoch numbers and times with an offset or zone are not warned about."""
    rows = _events()
    path = _write(tmp_path / "log.parquet", {"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows],
                                              "ts": [times(t) for _, _, t in rows]})
    rc, _, err = prepare(["events", "--input", str(path), *COLS, "--timezone", "Europe/Berlin", "--output",
                          str(tmp_path / "out")], capsys)
    assert rc == 0, err
    assert ("have no time zone and are read as UTC; --timezone Europe/Berlin sets the zone of the hour and weekday "
            "features only" in err) == warned, err
    if warned:  # the way out is named, and taking it ends the warning
        assert "if they are Europe/Berlin times, pass --input-timezone Europe/Berlin" in err
        rc, _, err = prepare(["events", "--input", str(path), *COLS, "--timezone", "Europe/Berlin", "--input-timezone",
                              "Europe/Berlin", "--output", str(tmp_path / "local")], capsys)
        assert rc == 0 and "warning" not in err, err


def _first_times(folder: Path) -> list[float]:
    """The sessions' first times (epoch seconds) of every window's train split, in order."""
    return sorted(t for w in sorted(folder.glob("0*/train.parquet"))
                  for t in pl.read_parquet(w)["timestamp"].list.first().to_list())


@pytest.mark.parametrize("kind", ["text", "format", "datetime", "date"])
def test_times_without_a_zone_are_read_in_the_input_timezone(tmp_path, capsys, kind):
    """--input-timezone: local times written without their zone (a shop's database in Berlin time) are converted to
    UTC, an hour earlier in winter and two in summer, as dates are local midnights (the ninth session's "Left")."""
    rows = _events(days=4, start=datetime(2024, 3, 29, 8, 0))  # 29 March - 1 April 2024: summer time from the 31st
    write = {"text": lambda t: t.strftime("%Y-%m-%d %H:%M:%S"), "format": lambda t: t.strftime("%d.%m.%Y %H:%M"),
             "datetime": lambda t: t, "date": lambda t: t.date()}[kind]
    path = _write(tmp_path / ("log.csv" if kind in ("text", "format") else "log.parquet"),
                  {"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows],
                   "ts": [write(t) for _, _, t in rows]})
    fmt = ["--time-format", "%d.%m.%Y %H:%M"] if kind == "format" else []
    outs = {}
    for zone in ("UTC", "Europe/Berlin"):
        outs[zone] = tmp_path / zone.replace("/", "-")
        rc, _, err = prepare(["events", "--input", str(path), *COLS, *fmt, "--input-timezone", zone, "--output",
                              str(outs[zone])], capsys)
        assert rc == 0, err
    utc, berlin = _first_times(outs["UTC"]), _first_times(outs["Europe/Berlin"])
    assert len(utc) == len(berlin) > 0
    shift = [u - b for u, b in zip(utc, berlin)]
    offset = {datetime(2024, 3, 29).date(): 3600, datetime(2024, 3, 30).date(): 3600, datetime(2024, 3, 31).date(): 7200,
              datetime(2024, 4, 1).date(): 7200}
    want = [offset[datetime.fromtimestamp(u, timezone.utc).date()] if kind != "date" else None for u in utc]
    if kind == "date":  # local midnight: before 2 a.m. on the 31st, Berlin was still on winter time
        assert set(shift) == {3600, 7200}, shift
    else:
        assert shift == want


def test_the_input_timezone_refuses_a_time_that_never_happened_and_says_when_it_cannot_act(tmp_path, capsys):
    gap = tmp_path / "gap.csv"
    gap.write_text("session,item,ts\ns1,i1,2024-03-31 01:59:00\ns1,i2,2024-03-31 02:30:00\n")
    line = _refused(tmp_path, capsys, [gap], "--input-timezone", "Europe/Berlin")
    assert line.startswith(f"sessrec: error: {gap}, line 3: cannot read ts value '2024-03-31 02:30:00' as a time in the "
                           "format of the first value") and line.endswith(", a local time of Europe/Berlin (whose "
                                                                          "clocks skip an hour when summer time begins)")
    pl.DataFrame({"session": ["s1", "s1"], "item": ["i1", "i2"],
                  "ts": [datetime(2024, 3, 31, 1, 59), datetime(2024, 3, 31, 2, 30)]}).write_parquet(tmp_path / "g.parquet")
    line = _refused(tmp_path, capsys, [tmp_path / "g.parquet"], "--input-timezone", "Europe/Berlin")
    assert line == (f"sessrec: error: {tmp_path / 'g.parquet'}, line 2: cannot read ts value datetime.datetime(2024, 3, "
                    "31, 2, 30) as a time, a local time of Europe/Berlin (whose clocks skip an hour when summer time "
                    "begins)"), line
    assert _refused(tmp_path, capsys, [gap], "--input-timezone", "Mars/Olympus") == \
        "sessrec: error: unknown --input-timezone 'Mars/Olympus' (use an IANA name such as Europe/Oslo)"
    # the hour repeated when summer time ends: its first pass (00:30 UTC, not 01:30)
    starts = ["2024-10-27 02:30", "2024-10-27 10:00", "2024-10-28 09:00", "2024-10-28 10:00"]
    fold = _write(tmp_path / "fold.csv", {"session": [s for s in "aabbccdd"], "item": ["x", "y"] * 4,
                                          "ts": [f"{s}:0{k}" for s in starts for k in (0, 1)]})
    rc, _, err = prepare(["events", "--input", str(fold), *COLS, "--input-timezone", "Europe/Berlin", "--output",
                          str(tmp_path / "f")], capsys)
    assert rc == 0, err
    assert _first_times(tmp_path / "f")[0] == datetime(2024, 10, 27, 0, 30, tzinfo=timezone.utc).timestamp()
    # instants already: epoch numbers, text with an offset
    rows = _events()
    for name, write in (("epoch.csv", lambda t: int(t.timestamp())),
                        ("offset.csv", lambda t: t.strftime("%Y-%m-%dT%H:%M:%S+01:00"))):
        path = _write(tmp_path / name, {"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows],
                                        "ts": [write(t) for _, _, t in rows]})
        rc, _, err = prepare(["events", "--input", str(path), *COLS, "--input-timezone", "Europe/Berlin", "--output",
                              str(tmp_path / name.replace(".", "-"))], capsys)
        assert rc == 0 and f"--input-timezone has no effect on the times of {path}: they are " in err, err


def test_a_file_given_twice_is_refused(tmp_path, capsys):
    """The same file twice (also through a link, or as a file of a folder given too) doubled every event without a word:
    only --repeats consecutive hid it (QA helper-53)."""
    (tmp_path / "logs").mkdir()
    log = _epoch_csv(tmp_path / "logs" / "a.csv", _events())
    (tmp_path / "link.csv").symlink_to(log)
    for inputs, second in [([log, log], log), ([log, tmp_path / "link.csv"], tmp_path / "link.csv"),
                           ([tmp_path / "logs", log], log)]:
        assert _refused(tmp_path, capsys, inputs) == (f"sessrec: error: input file {second} is the same file as {log}: "
                                                      "given twice, its events would count twice")


def test_events_files_in_different_time_units_are_named(tmp_path, capsys):
    rows = _events()
    seconds = _epoch_csv(tmp_path / "seconds.csv", rows[:40])
    millis = _write(tmp_path / "millis.parquet", {"session": [s for s, _, _ in rows[40:]], "item": [i for _, i, _ in rows[40:]],
                                                  "ts": [int(t.timestamp()) * 1000 for _, _, t in rows[40:]]})
    value = int(rows[40][2].timestamp()) * 1000
    assert _refused(tmp_path, capsys, [seconds, millis]) == (
        f"sessrec: error: {millis}, line 1: the ts value {value} is beyond the years 1-9999 as s since 1970, while the "
        f"times of {seconds} are within them: the files have their times in different units; convert them to one "
        "(--time-unit, s, applies to every file)")
    line = _refused(tmp_path, capsys, [millis, seconds])
    assert line.startswith(f"sessrec: error: {seconds}: the ts times are within the years 1-9999 as s since 1970, while "
                           f"those of {millis} are not (line 1: {value})")
    (tmp_path / "more").mkdir()
    shutil.copy(millis, tmp_path / "more" / "millis.parquet")
    assert _refused(tmp_path, capsys, [millis, tmp_path / "more" / "millis.parquet"]) == (
        f"sessrec: error: {millis}, line 1: the ts value {value} is beyond the years 1-9999 as s since 1970, and every "
        "file has such times: are they in another unit (--time-unit)?")


# ---- both readers ------------------------------------------------------------------------------------------------
def test_events_the_scan_and_the_block_reader_agree_on_these_inputs(tmp_path):
    """The fast scan reads these inputs (it does not leave them to the block reader), and gives its events."""
    rows = _events()
    sessions, items = [s for s, _, _ in rows], [i for _, i, _ in rows]
    epoch = [int(t.timestamp()) for _, _, t in rows]
    cases = {
        "offset.csv": {"session": sessions, "item": items,
                       "ts": [t.astimezone(timezone(timedelta(hours=-5))).isoformat() for _, _, t in rows]},
        "mdy.csv": {"session": sessions, "item": items, "ts": [t.strftime("%m/%d/%Y %H:%M") for _, _, t in rows]},
        "floats.parquet": {"session": [float(s) for s in sessions],
                           "item": [float(i) if k % 5 else float("nan") for k, i in enumerate(items)], "ts": epoch},
        "floats.csv": {"session": [f"{s}.0" for s in sessions], "item": [f"{i}.0" for i in items], "ts": epoch},
        "empty.parquet": {"session": [str(s) if s % 4 else "" for s in sessions], "item": items, "ts": epoch},
    }
    for name, columns in cases.items():
        source = events.source([_write(tmp_path / name, columns)], events.Columns("item", "ts", "session", None, (), ()))
        fast = source.scan().collect()
        assert fast.height > 50 and fast.equals(pl.concat(source.batches()).drop("_row")), name
    spaced = tmp_path / "spaced.csv"
    spaced.write_text(' session ,"Item ",ts\n' + "".join(f"{s},{i},{t}\n" for s, i, t in zip(sessions, items, epoch)))
    source = events.source([spaced], events.Columns("Item", "ts", " session ", None, (), ()))
    assert source.scan().collect().equals(pl.concat(source.batches()).drop("_row"))


def test_events_time_options_that_cannot_act_are_warned(tmp_path, capsys):
    rows = _events()
    stamps = {"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows]}
    as_datetimes = _write(tmp_path / "dt.parquet", {**stamps, "ts": [t for _, _, t in rows]})
    numbers = _write(tmp_path / "n.parquet", {**stamps, "ts": [int(t.timestamp()) for _, _, t in rows]})

    def err(name: str, path: Path, *flags: str) -> str:
        rc, _, text = prepare(["events", "--input", str(path), *COLS, *flags, "--output", str(tmp_path / name)], capsys)
        assert rc == 0, text
        return text

    assert f"warning: --time-unit has no effect: the ts column of {as_datetimes} holds datetimes" \
        in err("a", as_datetimes, "--time-unit", "ms")
    assert f"warning: --time-format has no effect: the ts column of {as_datetimes} holds datetimes" \
        in err("a2", as_datetimes, "--time-format", "%Y")
    assert "no effect" not in err("b", as_datetimes)
    assert all_sessions(tmp_path / "a").equals(all_sessions(tmp_path / "b"))  # the options did nothing indeed
    assert "warning: --time-format has no effect: the ts column of" in err("c", numbers, "--time-format", "%Y")
    assert "no effect" not in err("d", numbers, "--time-unit", "s")
    text = _write(tmp_path / "text.csv", {**stamps, "ts": [t.strftime("%Y-%m-%d %H:%M:%S") for _, _, t in rows]})
    first = rows[0][2].strftime("%Y-%m-%d %H:%M:%S")
    assert (f"warning: --time-unit has no effect: the ts column of {text} holds text times such as '{first}'"
            in err("e", text, "--time-unit", "ms"))
    assert all_sessions(tmp_path / "e").equals(all_sessions(tmp_path / "b"))
    assert "no effect" not in err("f", _epoch_csv(tmp_path / "epoch.csv", rows), "--time-unit", "s")
    categorical = tmp_path / "cat.parquet"
    pl.read_csv(text).with_columns(pl.col("ts").cast(pl.Categorical)).write_parquet(categorical)
    assert f"--time-unit has no effect: the ts column of {categorical} holds text times" in err("g", categorical,
                                                                                                "--time-unit", "ms")


def test_events_a_list_column_as_an_id_or_category_is_one_line(tmp_path, capsys):
    rows = _events()
    columns = {"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows],
               "ts": [int(t.timestamp()) for _, _, t in rows], "tags": [[i] for _, i, _ in rows]}
    path = _write(tmp_path / "lists.parquet", columns)
    line = _refused(tmp_path, capsys, [path], "--categorical-cols", "tags")
    assert f"{path}: the column tags holds List(Int64) values, not one value per event" in line
    line = _refused(tmp_path, capsys, [path], cols=["--session-col", "session", "--item-col", "tags", "--time-col", "ts"])
    assert "the column tags holds List(Int64) values" in line


def test_events_a_nan_or_infinite_epoch_time_is_named_with_its_line(tmp_path, capsys):
    path = _epoch_csv(tmp_path / "t.csv", _events())
    lines = path.read_text().splitlines()
    for bad in ("nan", "inf", "1e30"):
        lines[5] = ",".join([*lines[5].split(",")[:2], bad])
        path.write_text("\n".join(lines) + "\n")
        assert _refused(tmp_path, capsys, [path]).endswith(f"{path}, line 6: cannot read ts value '{bad}' as a number "
                                                           "of s since 1970")


def test_events_options_that_cannot_both_act_are_refused_or_warned(tmp_path, capsys):
    """--time-unit with --time-format: the format won without a word (QA helper-43); --user-col beside --session-col
    reads nothing unless --repeats user."""
    rows = _events()
    path = _write(tmp_path / "e.parquet", {"session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows],
                                           "user": [s for s, _, _ in rows], "ts": [int(t.timestamp()) for _, _, t in rows]})
    rc, _, err = prepare(["events", "--input", str(path), *COLS, "--time-unit", "s", "--time-format", "%s", "--output",
                          str(tmp_path / "a")], capsys)
    assert rc == 2 and err.strip().splitlines()[-1] == ("sessrec: error: give one of --time-unit (times written as numbers) "
                                                       "and --time-format (times written as text)")
    rc, _, err = prepare(["events", "--input", str(path), *COLS, "--user-col", "user", "--output", str(tmp_path / "b")],
                         capsys)
    assert rc == 0 and "warning: --user-col has no effect with --session-col (the sessions are given) unless --repeats " \
                       "user" in err
    rc, _, err = prepare(["events", "--input", str(path), *COLS, "--user-col", "user", "--repeats", "user", "--output",
                          str(tmp_path / "c")], capsys)
    assert rc == 0 and "--user-col has no effect" not in err


def test_events_side_features_that_carry_nothing_or_look_like_ids_are_warned(tmp_path, capsys):
    """A side column empty everywhere, one value everywhere, or a value per interaction (an event id passed as a
    category) was prepared without a word: a feature that carries nothing, or an embedding row per event (QA
    helper-63)."""
    rows = _events(days=40)
    n = len(rows)
    path = _write(tmp_path / "log.parquet", {
        "session": [s for s, _, _ in rows], "item": [i for _, i, _ in rows], "ts": [int(t.timestamp()) for _, _, t in rows],
        "empty": [None] * n, "shop": ["web"] * n, "event_id": [f"e{k}" for k in range(n)],
        "brand": [f"b{i % 3}" for _, i, _ in rows], "price": [float(i) for _, i, _ in rows], "tax": [0.2] * n})
    rc, _, err = prepare(["events", "--input", str(path), *COLS, "--categorical-cols", "empty", "shop", "event_id", "brand",
                          "--continuous-cols", "price", "tax", "--output", str(tmp_path / "o")], capsys)
    assert rc == 0, err
    warned = [line.split("warning: ", 1)[1] for line in err.splitlines() if "warning: " in line]
    assert "--categorical-cols empty: no value in the kept sessions (empty everywhere): it carries nothing" in warned, err
    assert "--categorical-cols shop: 'web' on every interaction of the kept sessions: it carries nothing" in warned, err
    assert any(w.startswith(f"--categorical-cols event_id: {n:,} distinct values over {n:,} interactions: an id or a "
                            "time rather than a category?") for w in warned), err
    assert ("--continuous-cols tax: the same value (or empty) on every interaction of the kept sessions: normalised, it "
            "is 0 everywhere and carries nothing") in warned, err
    assert not any("brand" in w or "price" in w for w in warned), err
