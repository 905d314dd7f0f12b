"""Bad input: one line naming the file and the first offending line; no output folder left behind."""

import gzip
import json
import socket
import subprocess
import sys

import pytest

from sessrec.cli import main
from sessrec.datasets import raw
from tests.datasets.helpers import prepare
from tests.datasets.test_rees46 import HEADER, write_rees46
from tests.datasets.test_yoochoose import CLICKS

GOOD = "2019-10-01 10:00:00 UTC,view,100,1000,a.b,apple,10.5,1,s1\n"


def _rees46(tmp_path, text: str):
    path = tmp_path / "2019-Oct.csv"
    path.write_text(text)
    return ["rees46", "--input", str(path), "--output", str(tmp_path / "out")], path


@pytest.mark.parametrize("text,message", [
    ("", "the file is empty"),
    (HEADER + "\n", "the file has no events"),
    (HEADER.replace(",price", "") + "\n" + GOOD, "line 1: not a REES46 CSV (eCommerce behavior data from multi category "
                                                 "store): column(s) price missing from the header"),
    (HEADER + "\n" + GOOD * 2 + "2019/10/01 10:00,view,100,1000,a.b,apple,10.5,1,s1\n",
     "line 4: cannot read event_time value '2019/10/01 10:00' as a time like '2019-10-01 00:00:00 UTC'"),
    (HEADER + "\n" + GOOD + GOOD.replace(",100,", ",1e2x,"), "line 3: cannot read product_id value '1e2x' as an integer"),
    (HEADER + "\n" + GOOD + GOOD.replace("10.5", "ten"), "line 3: cannot read price value 'ten' as a finite number"),
    (HEADER + "\n" + GOOD * 2 + GOOD.replace("10.5", "NaN"), "line 4: cannot read price value 'NaN' as a finite number"),
    (HEADER + "\n" + GOOD + GOOD.replace("10.5", "-inf"), "line 3: cannot read price value '-inf' as a finite number"),
    (HEADER + "\n" + GOOD * 3 + GOOD.replace("10.5", ""), "line 5: empty value in the required column price"),
    (HEADER + "\n" + GOOD + GOOD.strip() + ",extra,field\n", "line 3 has 11 fields, expected 9"),
    (CLICKS, "line 1: not a REES46 CSV (eCommerce behavior data from multi category store): column(s) event_time, "
             "event_type, product_id, category_id, category_code, brand, price, user_id, user_session missing from the "
             "header '1,2014-04-07T10:51:09.277Z,214536502,0' (it looks like a YOOCHOOSE clicks file)"),
])
def test_rees46_bad_input(tmp_path, capsys, text, message):
    args, path = _rees46(tmp_path, text)
    rc, _, err = prepare(args, capsys)
    assert rc == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"sessrec: error: {path}") and message in line, line
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.tmp*"))


def test_line_numbers_count_across_blocks(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(raw, "CHUNK_BYTES", 100)  # about one row per block
    args, path = _rees46(tmp_path, HEADER + "\n" + GOOD * 7 + GOOD.replace("10.5", "?") + GOOD)
    rc, _, err = prepare(args, capsys)
    assert rc == 2 and f"{path}, line 9: cannot read price value '?' as a finite number" in err


def test_other_formats_are_named(tmp_path, capsys):
    rees = write_rees46(tmp_path / "2019-Oct.csv")
    rc, _, err = prepare(["yoochoose", "--input", str(rees), "--output", str(tmp_path / "o")], capsys)
    assert rc == 2 and "not a YOOCHOOSE clicks file" in err and "(it looks like a REES46 CSV)" in err
    folder = tmp_path / "three_month"
    folder.mkdir()
    (folder / "20170101").write_text(rees.read_text())
    rc, _, err = prepare(["adressa", "--input", str(folder), "--output", str(tmp_path / "o")], capsys)
    assert rc == 2 and "20170101, line 1: not an ADRESSA JSON-lines file" in err and "REES46 CSV" in err
    (folder / "20170101").write_text(json.dumps({"userId": "u", "time": 1}) + "\n{oops\n")
    rc, _, err = prepare(["adressa", "--input", str(folder), "--output", str(tmp_path / "o")], capsys)
    assert rc == 2 and "line 2 is not JSON: '{oops'" in err
    (folder / "20170101").write_text(json.dumps({"userId": "u", "time": "yesterday"}) + "\n")
    rc, _, err = prepare(["adressa", "--input", str(folder), "--output", str(tmp_path / "o")], capsys)
    assert rc == 2 and "line 1: field time is 'yesterday', expected an integer" in err
    clicks = tmp_path / "clicks"
    clicks.mkdir()
    (clicks / "clicks_hour_000.csv").write_text(rees.read_text())
    rc, _, err = prepare(["g1", "--input", str(clicks), "--articles", str(rees), "--output", str(tmp_path / "o")], capsys)
    assert rc == 2 and "not the G1 articles_metadata.csv" in err and "(it looks like a REES46 CSV)" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content, message", [
    (b"session;item;ts\ns0;a;1709283706\n", "the columns are separated by semicolons; pass --delimiter ';'"),
    (b"session\titem\tts\ns0\ta\t1709283706\n", "the columns are separated by tabs; pass --delimiter tab"),
    (b"session,item,TS\ns0,a,1709283706\n", "column(s) ts missing from the header 'session,item,TS' (did you mean 'TS'?)"),
    (b"session,item,ts,,\ns0,a,1709283706,,\n", "2 column(s) of the header have no name (as the trailing commas"),
    ("session,item,ts\ns0,a,1\n".encode("utf-16"), "the file is UTF-16 text (a spreadsheet's \"Unicode text\"); save it "
                                                     "as CSV UTF-8"),
    (b"ARROW1\x00\x00\xff\xff", "the file is an Arrow IPC (Feather) file; write it as parquet"),
    (b'{"session": "s0", "item": "a", "ts": 1}\n', "(it looks like JSON lines (the ADRESSA format))"),
    (b"s0\t2009-05-04T23:08:57Z\tDeep Dish, Underworld\t\ns0\t2009-05-04T23:09:57Z\tx\ty\n",
     "line 1: this is data, not a header (it holds '2009-05-04T23:08:57Z'): the file needs a first line naming its "
     "columns, among them 'item', 'ts', 'session' (e.g. sed -i '1i col1\\tcol2\\t...' {path}); its values are "
     "separated by tabs: pass --delimiter tab"),
    (b"session,item,time,2019\ns0,a,1709283706,1\n", "column(s) ts missing from the header 'session,item,time,2019'"),
    (b",session,item,ts\n0,s0,a,1709283706\n", "line 1: the first column of the header has no name, as pandas writes "
                                                "its index (DataFrame.to_csv without index=False)"),
    (b'session,item,ts,artist\ns0,a,1709283706,x\ns0,b,1709283766,"Weird Al" Yankovic\n',
     "line 3: a quoted value followed by more text ('s0,b,1709283766,\"Weird Al\" Yankovic'); quote the whole value"),
])
def test_files_of_other_shapes_say_what_they_are(tmp_path, capsys, content, message):
    """A European spreadsheet's semicolons, a tab-separated file, UTF-16 or Arrow bytes were shown as a header to match,
    with a "did you mean" of the whole line or of NUL bytes (QA helper-53)."""
    path = tmp_path / "log.csv"
    path.write_bytes(content)
    rc, _, err = prepare(["events", "--input", str(path), "--session-col", "session", "--item-col", "item",
                          "--time-col", "ts", "--output", str(tmp_path / "o")], capsys)
    line = err.strip().splitlines()[-1]
    message = message.format(path=path)
    assert rc == 2 and message in line and "did you mean '{" not in line and "\\x00" not in line, line
    assert not (tmp_path / "o").exists()


def test_a_log_of_single_clicks_is_named_as_such(tmp_path, capsys):
    """Every session one click long (a session key that is an event id): the error said to lower
    --min-sessions-per-window, whose default is 0 (QA helper-53)."""
    path = tmp_path / "log.csv"
    path.write_text("session,item,ts\n" + "".join(f"e{k},i{k % 7},{1709283706 + 600 * k}\n" for k in range(50)))
    rc, _, err = prepare(["events", "--input", str(path), "--session-col", "session", "--item-col", "item", "--time-col",
                          "ts", "--output", str(tmp_path / "o")], capsys)
    assert rc == 2 and err.strip().splitlines()[-1] == (
        "sessrec: error: no session has >= 2 interactions (after removing repeats: --repeats consecutive); check that "
        "the session key groups the events of a visit")


def test_events_missing_columns_and_bad_times(tmp_path, capsys):
    csv = tmp_path / "log.csv"
    csv.write_text("user,item,ts\nu1,a,2024-01-01 10:00:00\nu1,b,2024-01-01 10:01:00\nu1,c,not a time\n")
    base = ["events", "--input", str(csv), "--user-col", "user", "--item-col", "item", "--output", str(tmp_path / "o")]
    rc, _, err = prepare([*base, "--time-col", "time"], capsys)
    assert rc == 2 and "column(s) time missing from the header 'user,item,ts'" in err
    rc, _, err = prepare([*base, "--time-col", "ts"], capsys)
    assert rc == 2 and f"{csv}, line 4: cannot read ts value 'not a time'" in err
    rc, _, err = prepare(["events", "--input", str(csv), "--item-col", "item", "--time-col", "ts", "--output",
                          str(tmp_path / "o")], capsys)
    assert rc == 2 and "give --session-col, or --user-col" in err
    rc, _, err = prepare([*base, "--time-col", "ts", "--timezone", "Mars/Olympus"], capsys)
    assert rc == 2 and "unknown --timezone 'Mars/Olympus'" in err
    (tmp_path / "x.parquet").write_text("not parquet")
    rc, _, err = prepare(["events", "--input", str(tmp_path / "x.parquet"), "--session-col", "s", "--item-col", "i",
                          "--time-col", "t", "--output", str(tmp_path / "o")], capsys)
    assert rc == 2 and "x.parquet: not a readable parquet file" in err


def test_output_is_replaced_only_with_overwrite(tmp_path, capsys):
    raw = write_rees46(tmp_path / "oct.csv")
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    rc, _, err = prepare(["rees46", "--input", str(raw), "--output", str(out)], capsys)
    assert rc == 2 and "is not empty; pass --overwrite" in err and (out / "old.txt").exists()
    rc, _, _ = prepare(["rees46", "--input", str(raw), "--output", str(out), "--overwrite"], capsys)
    assert rc == 0 and not (out / "old.txt").exists() and (out / "0001" / "train.parquet").is_file()


def test_cli_error_is_one_line_without_traceback(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    proc = subprocess.run([sys.executable, "-m", "sessrec.cli", "prepare", "rees46", "--input", str(path), "--output",
                           str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"sessrec: error: {path}: the file is empty"]


def test_byte_order_mark_is_read_like_none(tmp_path, capsys):
    """Spreadsheets save "CSV UTF-8" with a byte order mark before the header."""
    raw = write_rees46(tmp_path / "oct.csv")
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + raw.read_bytes())
    for path, out in ((raw, "plain"), (bom, "bom")):
        rc, _, err = prepare(["rees46", "--input", str(path), "--output", str(tmp_path / out)], capsys)
        assert rc == 0, err
    for part in sorted((tmp_path / "plain").glob("*/*.parquet")):
        assert part.read_bytes() == (tmp_path / "bom" / part.relative_to(tmp_path / "plain")).read_bytes(), part


def test_compressed_and_non_utf8_files_are_named(tmp_path, capsys):
    raw = write_rees46(tmp_path / "oct.csv")
    packed = tmp_path / "oct.csv.gz"
    packed.write_bytes(gzip.compress(raw.read_bytes()))
    rc, _, err = prepare(["rees46", "--input", str(packed), "--output", str(tmp_path / "o")], capsys)
    assert rc == 2 and err.strip().endswith(f"{packed}: the file is gzip-compressed; decompress it first")
    lines = raw.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b",apple,", b",caf\xe9,")  # Latin-1, not UTF-8
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"".join(lines))
    rc, _, err = prepare(["rees46", "--input", str(latin), "--output", str(tmp_path / "o")], capsys)
    assert rc == 2 and f"{latin}: cannot read the CSV file" in err and "line 3 is not UTF-8 text (byte b'\\xe9')" in err
    assert not (tmp_path / "o").exists()


def test_folders_of_killed_runs_are_removed(tmp_path, capsys):
    """A killed prepare leaves its temporary folder (up to twice the input's columns); the next run removes the
    folders of dead processes of this machine and keeps those of live ones and of other machines."""
    raw = write_rees46(tmp_path / "oct.csv")
    host = socket.gethostname()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stale, live, other = (tmp_path / f".out.tmp-{host}-{dead.pid}", tmp_path / f".out.tmp-{host}-{alive.pid}",
                          tmp_path / f".out.tmp-elsewhere-{dead.pid}")
    for folder in (stale, live, other):
        (folder / "_work").mkdir(parents=True)
    try:
        rc, _, err = prepare(["rees46", "--input", str(raw), "--output", str(tmp_path / "out")], capsys)
    finally:
        alive.kill()
    assert rc == 0, err
    assert not stale.exists() and live.exists() and other.exists()


@pytest.mark.parametrize("flags, message", [
    (["--seed", "-1"], "--seed must be between 0 and 4294967295, got -1"),
    (["--min-sessions-per-window", "-3"], "--min-sessions-per-window must be >= 0, got -3"),
])
def test_out_of_range_options_are_refused_before_reading(tmp_path, capsys, flags, message):
    raw = write_rees46(tmp_path / "oct.csv")
    rc, _, err = prepare(["rees46", "--input", str(raw), "--output", str(tmp_path / "o"), *flags], capsys)
    assert rc == 2 and err.strip().splitlines()[-1] == f"sessrec: error: {message}"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("dataset, flags, message", [
    ("yoochoose", ["--repeats", "user"], "--repeats user keeps each (user, item) pair's first interaction, but YOOCHOOSE "
                                         "clicks have no user (SessionID,Timestamp,ItemID,Category); use --repeats "
                                         "consecutive, session or keep"),
    ("yoochoose", ["--session-gap", "30m"], "--session-gap does not apply to yoochoose: its sessions are given "
                                            "(SessionID), and YOOCHOOSE clicks have no user (SessionID,Timestamp,ItemID,"
                                            "Category); leave the option out"),
    ("rees46", ["--session-gap", "1h"], "--session-gap does not apply to rees46: its sessions are given (user_session); "
                                        "leave the option out"),
    ("g1", ["--session-gap", "1h"], "--session-gap does not apply to g1: its sessions are given (session_id); leave "
                                    "the option out"),
])
def test_options_a_data_set_cannot_honour_are_refused_before_reading(tmp_path, capsys, dataset, flags, message):
    """One line naming the option and why, exit 2, before any input is read (the input does not even exist)."""
    args = ["--input", str(tmp_path / "missing")] + (["--articles", str(tmp_path / "missing.csv")] if dataset == "g1" else [])
    rc, _, err = prepare([dataset, *args, "--output", str(tmp_path / "o"), *flags], capsys)
    assert rc == 2 and err.strip().splitlines() == [f"sessrec: error: {message}"]
    assert not (tmp_path / "o").exists()


def test_yoochoose_help_does_not_offer_repeats_user(capsys):
    with pytest.raises(SystemExit):
        main(["prepare", "yoochoose", "--help"])
    text = capsys.readouterr().out
    assert "{consecutive,session,keep}" in text and "(user, item)" not in text and "--session-gap" not in text
    with pytest.raises(SystemExit):
        main(["prepare", "g1", "--help"])
    assert "{consecutive,session,user,keep}" in capsys.readouterr().out


@pytest.mark.parametrize("error", [
    "parquet: File out of specification: underlying IO error: No space left on device (os error 28)",  # polars' text
    OSError(28, "No space left on device"),
])
def test_a_full_disk_is_one_line_naming_the_output_and_the_previous_output_stays(tmp_path, capsys, monkeypatch, error):
    """A disk that fills while windows are written raised polars' ComputeError (a traceback, exit 1) or an error
    without a path: one line naming the output, exit 2; no temporary folder left, an earlier output untouched."""
    import polars as pl

    from sessrec.datasets import pipeline

    raw = write_rees46(tmp_path / "oct.csv")
    args = ["rees46", "--input", str(raw), "--output", str(tmp_path / "out")]
    assert prepare(args, capsys)[0] == 0
    before = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}

    def full(*a, **k):
        raise pl.exceptions.ComputeError(error) if isinstance(error, str) else error

    monkeypatch.setattr(pipeline, "_write_window", full)
    rc, _, err = prepare([*args, "--overwrite"], capsys)
    assert rc == 2 and err.strip().splitlines()[-1] == (
        f"sessrec: error: cannot write {tmp_path / 'out'}: No space left on device [ENOSPC] (prepare writes its "
        f"temporary files beside it, in {tmp_path})"), err
    assert {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".out.tmp*"))


SIGTERM_AT_FIT = """
import os, signal, sys
from sessrec.datasets import pipeline
fit = pipeline._fit
def terminated(*a, **k):
    os.kill(os.getpid(), signal.SIGTERM)
    return fit(*a, **k)
pipeline._fit = terminated
from sessrec.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_sigterm_stops_prepare_with_a_line_and_removes_its_temporary_folder(tmp_path, capsys):
    """SIGTERM ended prepare at once and silently (exit -15), its temporary folder left for the next run to remove:
    now it stops like Ctrl-C, says so (exit 143), and removes the folder on the way out; an earlier output stays."""
    raw = write_rees46(tmp_path / "oct.csv")
    args = ["prepare", "rees46", "--input", str(raw), "--output", str(tmp_path / "out"), "--quiet"]
    assert main(args) == 0
    before = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    done = subprocess.run([sys.executable, "-c", SIGTERM_AT_FIT, *args, "--overwrite"], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 143 and done.stderr.strip().splitlines()[-1] == "sessrec: stopped by SIGTERM", done.stderr
    assert {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".out.tmp*"))
