"""The two readers of a data set's raw files: the fast lazy scan and the exact block reader give the same
events; the scan is what runs on good input; when it fails, the block reader takes over."""

import csv
import dataclasses
from datetime import datetime, timezone

import polars as pl
import pytest

from sessrec.datasets import events, rees46, yoochoose
from sessrec.datasets.pipeline import Options, prepare
from sessrec.errors import SessrecError
from tests.datasets import helpers
from tests.datasets.golden_inputs import write_events_csv, write_events_parquet, write_rees46, write_yoochoose
from tests.datasets.test_golden import digest

HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"
# CRLF line ends, quoted fields (with a comma, an empty quoted code), a leading space in a number (the fast
# CSV reader takes it), empty side values, text with non-ASCII characters
TRICKY_REES46 = (HEADER + "\r\n"
                 + '2019-10-01 10:00:00 UTC,view,100,1000,"a,b",apple, 10.5,1,s1\r\n'
                 + '2019-10-01 10:00:05 UTC,view,200,1001,"",,20,1,s1\r\n'
                 + "2019-10-01 10:00:09 UTC,view, 300,1002,electronics.ça,brand ü,-0.0,,s1\r\n"
                 + '2019-10-01 10:01:00 UTC,cart,"400",1000,,apple,1e2,2,"s2"\r\n')


def _events_cols(session: bool = True) -> events.Columns:
    return events.Columns(item="item", time="ts", session="sess" if session else None, user="user",
                          categorical=("colour",), continuous=("price",))


def _sources(tmp_path) -> dict:
    (tmp_path / "tricky.csv").write_text(TRICKY_REES46, encoding="utf-8")
    parquet = write_events_parquet(tmp_path / "pq")
    return {
        "rees46": rees46.source([*write_rees46(tmp_path / "rees46"), tmp_path / "tricky.csv"]),
        "yoochoose": yoochoose.source([write_yoochoose(tmp_path / "yoochoose")]),
        "events-csv": events.source([write_events_csv(tmp_path / "events")], _events_cols()),
        "events-parquet": events.source([parquet], events.Columns("product", "when", "sid", None, ("shade",), ())),
    }


@pytest.mark.parametrize("name", ["rees46", "yoochoose", "events-csv", "events-parquet"])
def test_the_scan_gives_the_events_of_the_block_reader(tmp_path, name):
    source = _sources(tmp_path)[name]
    fast = source.scan().collect()
    exact = pl.concat(source.batches()).drop("_row")
    assert fast.height > 100 and fast.equals(exact)


def _run(tmp_path, name: str, source, recipe) -> dict:
    prepare(recipe, source, Options(output=tmp_path / name, quiet=True))
    return digest(tmp_path / name, "")


def test_good_input_is_read_by_the_scan_alone(tmp_path, capsys):
    source = rees46.source(write_rees46(tmp_path / "raw"))

    def no_blocks():
        raise AssertionError("the block reader ran")

    assert _run(tmp_path, "fast", dataclasses.replace(source, batches=no_blocks), rees46.recipe()) == \
        _run(tmp_path, "exact", dataclasses.replace(source, scan=None), rees46.recipe())


def test_the_block_reader_takes_over_what_the_scan_rejects(tmp_path, capsys):
    good = write_rees46(tmp_path / "raw")[0]
    spaced = tmp_path / "spaced.csv"  # a space after a price: the fast CSV reader rejects it, the text conversion not
    lines = good.read_text().splitlines()
    fields = lines[50].split(",")
    fields[6] += " "
    spaced.write_text("\n".join([*lines[:50], ",".join(fields), *lines[51:]]) + "\n")
    with pytest.raises(pl.exceptions.PolarsError):
        rees46.source([spaced]).scan().collect()
    assert _run(tmp_path, "spaced", rees46.source([spaced]), rees46.recipe()) == \
        _run(tmp_path, "good", rees46.source([good]), rees46.recipe())


def test_yoochoose_time_and_events_parquet_datetimes(tmp_path):
    path = tmp_path / "clicks.dat"
    path.write_text("1,2014-04-07T10:51:09.277Z,5,0\n1,2014-04-07T23:59:60.050Z,6,S\n")  # a leap second
    source = yoochoose.source([path])
    assert source.scan().collect()["t"].to_list() == [1396867869277, 1396915200050]
    assert source.scan().collect().equals(pl.concat(source.batches()).drop("_row"))
    path.write_text("1,2014-04-07T10:51:09.277Z,5,0\n1,2014-04-07T10:51:10.5Z,6,S\n")  # one digit of a second
    with pytest.raises(pl.exceptions.PolarsError):  # the fast path takes three digits only: the exact reader does it
        source.scan().collect()
    assert pl.concat(source.batches())["t"].to_list() == [1396867869277, 1396867870500]
    for bad in ("2014-04-07T10:51:10.500", "2014-04-07 10:51:10.500Z", "x2014-04-07T10:51:10.500Z"):
        path.write_text(f"1,2014-04-07T10:51:09.277Z,5,0\n1,{bad},6,S\n")
        with pytest.raises(pl.exceptions.PolarsError):
            source.scan().collect()
        with pytest.raises(SessrecError, match="line 2: cannot read timestamp value"):
            list(source.batches())
    when = datetime(2024, 3, 3, 10, 0, 1, 500_000, tzinfo=timezone.utc)
    pq = tmp_path / "log.parquet"
    pl.DataFrame({"s": [1], "i": ["a"], "t": [when]}).write_parquet(pq)
    cols = events.Columns("i", "t", "s", None, (), ())
    assert events.source([pq], cols).scan().collect()["t"].to_list() == [int(when.timestamp() * 1000)]


# data set -> (writer of its golden input, its source, its recipe, the CLI arguments before --output)
def _dataset(name: str, tmp_path):
    cols = events.Columns(item="item", time="ts", session="sess", user=None, categorical=("colour",),
                          continuous=("price",))
    return {
        "rees46": (lambda: write_rees46(tmp_path / "raw")[0], lambda p: rees46.source([p]), rees46.recipe(),
                   lambda p: ["rees46", "--input", str(p)]),
        "yoochoose": (lambda: write_yoochoose(tmp_path / "raw"), lambda p: yoochoose.source([p]), yoochoose.recipe(),
                      lambda p: ["yoochoose", "--input", str(p)]),
        "events": (lambda: write_events_csv(tmp_path / "raw"), lambda p: events.source([p], cols),
                   events.recipe(cols, "UTC"),
                   lambda p: ["events", "--input", str(p), "--session-col", "sess", "--item-col", "item", "--time-col",
                              "ts", "--categorical-cols", "colour", "--continuous-cols", "price"]),
    }[name]


@pytest.mark.parametrize("name", ["rees46", "yoochoose", "events"])
@pytest.mark.parametrize("lost", ["a middle field", "the last field"])
def test_a_row_that_lost_a_field_is_refused_by_both_readers(tmp_path, capsys, name, lost):
    """Polars reads a row with too few fields with empty last fields: the fast scan fails on it (its values moved
    into other columns, or it is looked up in the file), and the exact reader names its line."""
    write, make_source, _, cli = _dataset(name, tmp_path)
    lines = write().read_text().splitlines()
    fields = lines[40].split(",")
    del fields[2 if lost == "a middle field" else -1]
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([*lines[:40], ",".join(fields), *lines[41:]]) + "\n")
    source = make_source(bad)
    with pytest.raises(pl.exceptions.PolarsError):
        source.scan().collect()
    expected = f"{bad}, line 41 has {len(fields)} fields, expected {len(fields) + 1} "
    with pytest.raises(SessrecError) as e:
        list(source.batches())
    assert str(e.value).startswith(expected), str(e.value)
    rc, _, err = helpers.prepare([*cli(bad), "--output", str(tmp_path / "o")], capsys)
    assert rc == 2 and err.strip().splitlines()[-1].startswith(f"sessrec: error: {expected}")
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def _no_blocks():
    raise AssertionError("the block reader ran")


def test_empty_last_values_stay_on_the_fast_path(tmp_path, capsys):
    """Rows whose last field is empty (YOOCHOOSE's empty categories, the events' empty prices, a REES46 row
    without a user_session) are looked up in the file and accepted: the scan alone reads the input."""
    for name in ("rees46", "yoochoose", "events"):
        write, make_source, recipe, _ = _dataset(name, tmp_path / name)
        path = write()
        if name == "rees46":
            lines = path.read_text().splitlines()
            lines[7] = lines[7][:lines[7].rindex(",") + 1]  # no session: dropped
            path.write_text("\n".join(lines) + "\n")
        source = make_source(path)
        assert source.scan().collect()["t"].len() > 1000
        assert _run(tmp_path, f"{name}-fast", dataclasses.replace(source, batches=_no_blocks), recipe) == \
            _run(tmp_path, f"{name}-exact", dataclasses.replace(source, scan=None), recipe)


@pytest.mark.parametrize("name", ["rees46", "yoochoose", "events"])
def test_blank_lines_and_quoted_values_change_nothing(tmp_path, capsys, name):
    """Blank lines (before the header, between rows, at the end, CRLF or spaces only) are skipped and not counted;
    every value quoted, an empty one as "", reads as unquoted."""
    write, _, _, cli = _dataset(name, tmp_path)
    path = write()
    lines = path.read_text().splitlines()
    blank = tmp_path / "blank.csv"
    blank.write_text("\n" + "\n".join(line + ("\n\r\n  " if i % 97 == 5 else "") for i, line in enumerate(lines))
                     + "\n\n\n")
    quoted = tmp_path / "quoted.csv"
    with open(quoted, "w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL).writerows(csv.reader(lines))
    digests = []
    for variant in (path, blank, quoted):
        out = tmp_path / f"out-{variant.stem}"
        rc, _, err = helpers.prepare([*cli(variant), "--output", str(out)], capsys)
        assert rc == 0, err
        digests.append(digest(out, ""))
    assert digests[1] == digests[0] and digests[2] == digests[0]


@pytest.mark.parametrize("name", ["rees46", "yoochoose", "events"])
def test_blank_lines_stay_on_the_fast_path(tmp_path, capsys, name):
    """Blank lines (an extra newline at the end of a file, above all, but also between rows) are left out by the
    scan as the exact reader skips them: the scan alone reads the input, to the same events in the same order."""
    write, make_source, recipe, _ = _dataset(name, tmp_path / name)
    path = write()
    lines = path.read_text().splitlines()
    blank = tmp_path / "blank.csv"
    blank.write_text("\n".join(line + ("\n" if i % 97 == 5 else "") for i, line in enumerate(lines)) + "\n\n")
    source = make_source(blank)
    assert source.scan().collect().height == make_source(path).scan().collect().height > 1000
    assert _run(tmp_path, f"{name}-fast", dataclasses.replace(source, batches=_no_blocks), recipe) == \
        _run(tmp_path, f"{name}-exact", dataclasses.replace(source, scan=None), recipe) == \
        _run(tmp_path, f"{name}-plain", make_source(path), recipe)
