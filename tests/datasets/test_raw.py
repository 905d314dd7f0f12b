"""The raw readers (``sessrec.datasets.raw``): the file's own line numbers in messages, blank lines skipped and not
counted as events, rows with too few fields refused by both the exact block reader and the fast scan, strict UTF-8
per line, a byte order mark skipped, and only a newline ending a JSON line."""

import json

import numpy as np
import polars as pl
import pytest

from sessrec.datasets import raw
from sessrec.errors import SessrecError

HEADER = ["id", "text", "n"]


def _csv(tmp_path, text: str, name: str = "x.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def _rows(path, header=HEADER, has_header=True) -> list[tuple]:
    """(file line, values...) of every row the exact reader gives."""
    batches = list(raw.csv_batches(path, header, header, has_header))
    return [(raw.line_number(r[0], has_header), *r[1:]) for b in batches for r in b.iter_rows()]


@pytest.mark.parametrize("chunk", [raw.CHUNK_BYTES, 12])  # one block, and a block of about a line
def test_csv_blank_lines_are_skipped_and_lines_keep_their_numbers(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(raw, "CHUNK_BYTES", chunk)
    text = '\n\r\nid,text,n\n1,a,5\n\n  \r\n2,"two\nlines",6\n3,,\n\n4,"",8\r\n\n'
    got = _rows(_csv(tmp_path, text))
    assert got == [(4, "1", "a", "5"), (7, "2", "two\nlines", "6"), (9, "3", None, None), (11, "4", None, "8")]
    header_less = _rows(_csv(tmp_path, "\n1,a,5\n\n2,b,\n", "h.csv"), has_header=False)
    assert header_less == [(2, "1", "a", "5"), (4, "2", "b", None)]  # "" and an empty field: both empty


@pytest.mark.parametrize("chunk", [raw.CHUNK_BYTES, 12])
def test_csv_a_row_with_too_few_fields_is_named_with_its_line(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(raw, "CHUNK_BYTES", chunk)
    path = _csv(tmp_path, 'id,text,n\n1,a,5\n\n2,"x\ny",6\n3,c\n4,d,7\n')
    with pytest.raises(SessrecError) as e:
        _rows(path)
    assert str(e.value) == (f"{path}, line 6 has 2 fields, expected 3 (every row needs a value, empty or not, for each "
                            "header column): '3,c'")
    path = _csv(tmp_path, "id,text,n\n1,a,5\n\n2,b,6,extra\n")
    with pytest.raises(SessrecError, match=r"x.csv, line 4 has 4 fields, expected 3 "
                                           r"\(a value with a comma needs quotes\): '2,b,6,extra'"):
        _rows(path)


def test_csv_counts_fields_as_polars_reads_the_rows(tmp_path):
    """The marks added to count fields do not move rows: quoted commas, a quoted newline, CRLF, the mark's own byte
    in a value, a last line without its newline."""
    chunk = f'1,"a,b",3\r\n2,"x\ny",\r\n\r\n4\n5,{raw.MARKS[0]},6\n  \n7,8'.encode()
    assert raw._field_counts(chunk, 3).to_list() == [3, 3, 0, 1, 3, 0, 2]


def _scan(path, header=HEADER) -> pl.DataFrame:
    return raw.csv_scan(path, header, {header[0]: raw.as_int()}, (header[0],)).select(header).collect()


def test_csv_scan_fails_on_a_row_that_lost_fields(tmp_path):
    """The fast scan cannot see a short row (polars fills its last fields with nulls): rows whose last field is
    empty are looked up in the file. Empty last values pass; a short row, or a row after a quoted field that spans
    lines (it cannot be found as one line) fail the query, for the exact reader to decide."""
    def scan(text: str) -> pl.DataFrame:
        return _scan(_csv(tmp_path, text))

    assert scan("\nid,text,n\n1,a,\n2,,\n3,c,9\n")["n"].to_list() == [None, None, "9"]  # an empty line before the header
    for bad, message in (("id,text,n\n1,a,\n2,b\n3,c,9\n", "x.csv, line 3: 2 fields, expected 3"),
                         ("id,text,n\n1,a,5\n\n3,c,9\n\n4,d\n", "x.csv, line 6: 2 fields, expected 3"),
                         ('id,text,n\n1,"a\nb",5\n2,c,\n', "x.csv: cannot find data row 2 as one line")):
        with pytest.raises(pl.exceptions.ComputeError, match=message):
            scan(bad)
    assert _rows(_csv(tmp_path, 'id,text,n\n1,"a\nb",5\n2,c,\n')) == [(2, "1", "a\nb", "5"), (4, "2", "c", None)]


def test_csv_line_fields_are_counted_in_bulk(tmp_path):
    """:class:`raw._Lines` counts the fields of lines by number, in blocks: commas, but for lines with quotes (read
    as CSV) and blank lines (0); -1 past the end or from a line whose quoted field goes on over the next one."""
    lines = raw._Lines(_csv(tmp_path, 'a,b\n"x,y",z\n\n  \r\nc\n1,2,3\r\n,,\n"p\nq",r\n4,5'))
    lines.BLOCK = 2  # blocks of a line or so
    got = lines.fields(np.array([5, 0, 2, 1, 3, 4, 6, 7, 8, 9, 99]))
    assert got.tolist() == [3, 2, 0, 2, 0, 1, 3, -1, -1, -1, -1]
    assert raw._Lines(_csv(tmp_path, "a,b\n1,2")).fields(np.array([1, 0, 2])).tolist() == [2, 2, -1]


def test_csv_scan_counts_fields_fast_where_the_last_column_is_often_empty(tmp_path, monkeypatch):
    """Many rows with an empty last field (an often empty last column, a trailing comma on every line): the lines
    without a quote are counted in bulk, only lines with a quote or without a comma are read one by one."""
    one_by_one = []
    count = raw._count_fields
    monkeypatch.setattr(raw, "_count_fields", lambda line, sep: one_by_one.append(line) or count(line, sep))
    monkeypatch.setattr(raw._Lines, "BLOCK", 1000)
    rows = [f'{i},{"t" if i % 3 else ""},{"" if i % 2 else i}' for i in range(5000)]
    rows[4001] = '4001,"a, b",'
    path = _csv(tmp_path, "id,text,n\n" + "\n".join(rows) + "\n")
    got = _scan(path)
    assert got.height == 5000 and got["n"].null_count() == 2500 and got["text"][4001] == "a, b"
    assert set(one_by_one) == {b'4001,"a, b",'}  # (the first batch is read twice: is there an event?)
    assert got.equals(pl.concat(raw.csv_batches(path, HEADER, HEADER)).select(HEADER).with_columns(pl.col("id").cast(pl.Int64)))
    rows[4003] = "4003,t"
    with pytest.raises(pl.exceptions.ComputeError, match="x.csv, line 4005: 2 fields, expected 3"):
        _scan(_csv(tmp_path, "id,text,n\n" + "\n".join(rows) + "\n"))


@pytest.mark.parametrize("text", ["id,text,n\n1,a,5\n\n2,b,\n  \n3,c,6\n\n", "\r\n\nid,text,n\r\n\r\n1,a,5\r\n2,b,\r\n3,c,6\r\n\r\n",
                                  "id,text,n\n\n\n1,a,5\n2,b,\n3,c,6"])
def test_csv_scan_skips_blank_lines_as_the_exact_reader_does(tmp_path, text):
    """A blank line (an extra newline at the end of a file, above all) leaves the fast scan on its path: it is left
    out, as the exact reader skips it; the events, and their input order, are the same."""
    path = _csv(tmp_path, text)
    fast = _scan(path)
    assert fast.rows() == [(1, "a", "5"), (2, "b", None), (3, "c", "6")]
    exact = pl.concat(raw.in_input_order([path], lambda p: raw.csv_batches(p, HEADER, HEADER)))
    assert exact.select(HEADER).with_columns(pl.col("id").cast(pl.Int64)).equals(fast)
    with pytest.raises(SessrecError, match="the file has no events"):
        _scan(_csv(tmp_path, "id,text,n\n\n\n", "empty.csv"))


def test_csv_scan_and_exact_reader_agree_after_a_bom_and_a_blank_line(tmp_path):
    """A byte order mark, then a blank line, then the header: both readers number the lines alike, so a row that lost
    its last field is refused by both (the fast scan used to look up the line above it)."""
    rows = "".join(f"{i},t,{i}\n" for i in range(20))
    path = tmp_path / "bom.csv"
    path.write_bytes(raw.BOM + ("\nid,text,n\n" + rows + "20,short\n21,t,\n").encode())
    assert raw._lines_before_rows(path, True) == 2
    with pytest.raises(pl.exceptions.ComputeError, match="bom.csv, line 23: 2 fields, expected 3"):
        _scan(path)
    with pytest.raises(SessrecError, match="bom.csv, line 23 has 2 fields, expected 3"):
        _rows(path)
    path.write_bytes(raw.BOM + ("\nid,text,n\n" + rows + "20,t,\n").encode())
    assert _scan(path)["id"].to_list() == list(range(21))
    assert [r[0] for r in _rows(path)] == list(range(3, 24))


def test_csv_a_quoted_field_over_128_kib(tmp_path):
    """Python's csv refuses a field over 128 KiB by default: the row checks read such a valid file (a row whose last
    field is empty) as polars does, and name the bad row of a malformed one."""
    long = "x" * 200_000
    path = _csv(tmp_path, f'id,text,n\n1,"{long}",\n2,b,3\n')
    assert _scan(path)["text"].str.len_chars().to_list() == [200_000, 1]
    assert [r[:2] for r in _rows(path)] == [(2, "1"), (3, "2")]
    path = _csv(tmp_path, f'id,text,n\n1,"{long}",5\n2,b,3,extra\n')
    with pytest.raises(SessrecError, match="line 3 has 4 fields, expected 3"):
        _rows(path)


@pytest.mark.parametrize("chunk", [raw.CHUNK_BYTES, 40])
def test_json_lines_blank_lines_bom_and_line_numbers(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(raw, "CHUNK_BYTES", chunk)
    events = [json.dumps({"userId": f"u{i}", "time": i, "title": "første\u2028linje"}, ensure_ascii=False)
              for i in range(4)]
    text = "\n".join([events[0], "", "  \t", events[1], "\r", events[2], "", events[3]]) + "\n\n"
    path = tmp_path / "day"
    path.write_bytes(raw.BOM + text.encode())
    fields = {"userId": str, "time": int}
    got = pl.concat(raw.json_batches(path, fields))
    assert got["userId"].to_list() == ["u0", "u1", "u2", "u3"]
    assert [raw.line_number(n, False) for n in got[raw.LINE]] == [1, 4, 6, 8]
    ordered = pl.concat(raw.in_input_order([path, path], lambda p: raw.json_batches(p, fields)))
    assert ordered["_row"].to_list() == list(range(8))  # events are numbered, blank lines are not


@pytest.mark.parametrize("bad, message", [
    (b'{"userId": "u", "time": 5, "title": "\xf8"}', "line 4 is not UTF-8 text (byte b'\\xf8')"),
    (b'{"userId": "u", "time": 5', "line 4 is not JSON: '{\"userId\": \"u\", \"time\": 5'"),
    (b'{"userId": "u", "time": "5"}', "line 4: field time is '5', expected an integer"),
])
def test_json_lines_errors_name_the_line(tmp_path, bad, message):
    """The lines before the bad one: a valid event with U+2028 (a line break for Python's splitlines, not for
    JSON lines), and a blank line."""
    good = json.dumps({"userId": "u", "time": 1, "title": "a\u2028b"}, ensure_ascii=False).encode()
    path = tmp_path / "day"
    path.write_bytes(b"\n".join([good, b"", good, bad, good]) + b"\n")
    with pytest.raises(SessrecError) as e:
        list(raw.json_batches(path, {"userId": str, "time": int}))
    assert str(e.value).startswith(f"{path}: cannot read the JSON lines: {message}"), str(e.value)


def test_a_header_is_split_as_csv_and_a_name_given_twice_is_named(tmp_path):
    quoted = tmp_path / "q.csv"
    quoted.write_text('session,item,ts,"price, EUR"\ns0,0,1700000000,3\n')
    assert raw.check_header(quoted, ["session", "price, EUR"], "x") == ["session", "item", "ts", "price, EUR"]
    twice = tmp_path / "t.csv"
    twice.write_text("id,session,item,id\n0,s0,1,2\n")
    with pytest.raises(SessrecError, match=r"t.csv, line 1: the header names the column 'id' twice; rename one"):
        raw.check_header(twice, ["session"], "x")


def test_a_stray_quote_inside_a_value_is_named_with_its_line(tmp_path):
    path = tmp_path / "s.csv"
    rows = [f's{i},{i % 7},{1700000000 + i},"a ""quoted"", value",c{i % 3}' for i in range(3000)]
    rows[2500] = 's2500,1,1700002500,15" monitor,c0'
    path.write_text("session,item,ts,desc,cat\n" + "\n".join(rows) + "\n")
    with pytest.raises(SessrecError, match=r"s.csv, line 2502: a quote inside a value that does not start with one"):
        for _ in raw.csv_batches(path, ["session", "item", "ts", "desc", "cat"], raw.check_header(path, ["session"], "x")):
            pass
