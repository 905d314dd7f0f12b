from datetime import datetime, timezone

import polars as pl
import pytest

from sessrec.schema import load_schema
from tests.datasets.helpers import all_sessions, check_stats, frequency_ids, prepare, reference, train_run

# user, item, time, category, price; sessions (label given by hand) are cut after 30 minutes of inactivity
ROWS = [
    ("u1", "i1", "2024-03-10 10:00:00", "shoes", "10.5", "u1a"), ("u1", "i2", "2024-03-10 10:05:00", "", "20", "u1a"),
    ("u1", "i2", "2024-03-10 10:05:30", "", "20", "u1a"),  # consecutive repeat
    ("u1", "i3", "2024-03-10 10:50:00", "bags", "", "u1b"),  # 45 minutes idle: a new session; no price
    ("u1", "i1", "2024-03-10 10:52:00", "shoes", "10.5", "u1b"),
    ("u2", "i2", "2024-03-10 10:10:00", "", "20", "u2"), ("u2", "i3", "2024-03-10 10:20:00", "bags", "30", "u2"),
    ("u3", "i1", "2024-03-10 10:30:00", "shoes", "10.5", "u3"),  # length 1
    ("u1", "i3", "2024-03-11 09:00:00", "bags", "30", "u1c"), ("u1", "i4", "2024-03-11 09:10:00", "hats", "5", "u1c"),
    ("u4", "i4", "2024-03-11 09:30:00", "hats", "5", "u4"), ("u4", "i1", "2024-03-11 09:40:00", "shoes", "10.5", "u4"),
]


def _epoch(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp())


@pytest.fixture(scope="module")
def csv_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("events") / "log.csv"
    path.write_text("user,item,ts,category,price\n" + "".join(f"{u},{i},{t},{c},{p}\n" for u, i, t, c, p, _ in ROWS))
    return path


def test_events_csv_with_sessions_cut_from_users(csv_log, tmp_path, capsys):
    out = tmp_path / "out"
    rc, stdout, _ = prepare(["events", "--input", str(csv_log), "--user-col", "user", "--item-col", "item",
                             "--time-col", "ts", "--categorical-cols", "category", "--continuous-cols", "price",
                             "--output", str(out)], capsys)
    assert rc == 0
    stats, sessions, counts = reference([(label, _epoch(t), i) for _, i, t, _, _, label in ROWS], min_sessions=2)
    assert (stats["windows"], stats["sessions"], stats["interactions"]) == (2, 5, 10)  # by hand
    check_stats(out, stdout, {"days": 2, **stats})
    train = all_sessions(out, ("train",))
    ids = frequency_ids(counts)
    by_start = {kept[0][0]: [ids[i] for _, i in kept] for kept in sessions.values()}
    assert {r["session_start"]: r["item_id"] for r in train.iter_rows(named=True)} == by_start
    u1a = train.filter(pl.col("session_start") == _epoch("2024-03-10 10:00:00")).row(0, named=True)
    assert u1a["category"][1] == 1  # empty → 1
    u1b = train.filter(pl.col("session_start") == _epoch("2024-03-10 10:50:00")).row(0, named=True)
    assert u1b["price_norm"][0] == pytest.approx(0.0, abs=1e-6)  # empty → the mean
    schema = load_schema(out / "schema.pbtxt")
    assert schema.names == ["item_id", "category", "price_norm", "item_age_days_log_norm", "hour_sin", "hour_cos",
                            "weekday_sin", "weekday_cos", "timestamp"]
    assert schema.item_id.name == "item_id" and schema["category"].max_value == 4  # 1 = empty, shoes, bags, hats

    rc, _, _ = prepare(["events", "--input", str(csv_log), "--user-col", "user", "--item-col", "item", "--time-col",
                        "ts", "--session-gap", "1h", "--output", str(tmp_path / "gap1h")], capsys)
    assert rc == 0
    assert all_sessions(tmp_path / "gap1h", ("train",)).height == 4  # u1a and u1b merge


def test_events_parquet_with_a_session_column_trains(tmp_path, capsys):
    rows = [(s, item, datetime(2024, 5, 1, h, m, tzinfo=timezone.utc)) for s, item, h, m in [
        (1, "a", 8, 0), (1, "b", 8, 1), (2, "b", 8, 10), (2, "c", 8, 20), (2, "c", 8, 21), (3, "c", 8, 30), (3, "a", 8, 59),
        (4, "a", 9, 5), (4, "c", 9, 6), (5, "b", 9, 30), (5, "a", 9, 31), (6, "c", 9, 40)]]
    path = tmp_path / "log.parquet"
    pl.DataFrame(rows, schema=["sid", "product", "when"], orient="row").write_parquet(path)
    out = tmp_path / "out"
    rc, stdout, _ = prepare(["events", "--input", str(path), "--session-col", "sid", "--item-col", "product",
                             "--time-col", "when", "--window", "hour", "--output", str(out)], capsys)
    assert rc == 0
    stats, _, _ = reference([(s, int(t.timestamp()), i) for s, i, t in rows], window_s=3600, min_sessions=2)
    assert (stats["windows"], stats["sessions"], stats["interactions"]) == (2, 5, 10)
    check_stats(out, stdout, {"days": 1, **stats})
    assert "ndcg_at_20_AOT" in train_run(out, tmp_path / "run")


def test_events_numeric_times_in_milliseconds(tmp_path, capsys):
    path = tmp_path / "log.csv"
    base = 1_700_000_000_000
    path.write_text("s,i,t\n" + "".join(f"{s},{i},{base + k * 60_000}\n" for k, (s, i) in enumerate(
        [(1, 5), (1, 6), (2, 6), (2, 7), (3, 5), (3, 7)])))
    out = tmp_path / "out"
    rc, _, _ = prepare(["events", "--input", str(path), "--session-col", "s", "--item-col", "i", "--time-col", "t",
                        "--time-unit", "ms", "--output", str(out)], capsys)
    assert rc == 0
    first = all_sessions(out, ("train",)).sort("session_start").row(0, named=True)
    assert first["timestamp"] == [base / 1000, base / 1000 + 60]
    # the wrong unit: milliseconds read as seconds go past the year 9999, seconds read as milliseconds fall in 1970
    base_args = ["events", "--session-col", "s", "--item-col", "i", "--time-col", "t"]
    rc, _, err = prepare([*base_args, "--input", str(path), "--output", str(tmp_path / "s")], capsys)
    assert rc == 2 and err.strip().endswith(f"{path}, line 2: the t value '{base}' is beyond the years 1-9999 as s since "
                                            "1970: is it in another unit (--time-unit)?")
    # one time in another unit, after a session's first: it went into the session, the catalog and the feature
    # statistics without a word (QA helper-53)
    stray = tmp_path / "stray.csv"
    stray.write_text("s,i,t\n" + "".join(f"{k // 2},{k % 3},{base // 1000 + k * 60}\n" for k in range(8))
                     .replace(f"0,1,{base // 1000 + 60}", f"0,1,{base + 60_000}"))
    rc, _, err = prepare([*base_args, "--input", str(stray), "--output", str(tmp_path / "stray")], capsys)
    assert rc == 2 and err.strip().endswith(f"{stray}, line 3: the t value '{base + 60_000}' is beyond the years 1-9999 "
                                            "as s since 1970: is it in another unit (--time-unit)?")
    assert not (tmp_path / "stray").exists()
    seconds = tmp_path / "seconds.csv"
    seconds.write_text("s,i,t\n" + "".join(f"{k // 2},{k % 3},{base // 1000 + k * 60}\n" for k in range(8)))
    rc, _, err = prepare([*base_args, "--input", str(seconds), "--time-unit", "ms", "--output", str(tmp_path / "ms")],
                         capsys)
    assert rc == 0 and "the sessions start between 1970-01-20 and 1970-01-20: if the events did not happen then" in err


def test_a_session_id_used_again_on_other_days_is_warned(tmp_path, capsys):
    """A session key reused on three days made one session of them, in the first day's window, without a word (QA
    helper-53): it is kept so (the input's session is the session), and counted in a warning."""
    day = 86_400
    rows = [(f"s{d}_{k}", f"i{(d * 7 + k * 3 + j) % 11}", 1714521600 + d * day + k * 300 + j * 20)
            for d in range(3) for k in range(10) for j in range(3)]
    rows += [("u0", f"x{d}", 1714521600 + d * day + 5 + j * 40) for d in range(3) for j in range(2)]
    path = tmp_path / "log.csv"
    path.write_text("s,i,t\n" + "".join(f"{s},{i},{t}\n" for s, i, t in rows))
    out = tmp_path / "out"
    rc, _, err = prepare(["events", "--input", str(path), "--session-col", "s", "--item-col", "i", "--time-col", "t",
                          "--output", str(out)], capsys)
    assert rc == 0 and ("warning: 1 session(s) last more than a day from their first to their last kept interaction (a "
                        "session id used again on other days?); each is kept whole, in the day window of its first "
                        "interaction") in err
    u0 = all_sessions(out, ("train",)).filter(pl.col("session_id") == "u0")  # (events' split: all+50-50)
    assert u0["window"].to_list() == [1] and len(u0["timestamp"][0]) == 3  # one item a day, once repeats are removed
    rc, _, err = prepare(["events", "--input", str(path), "--session-col", "s", "--item-col", "i", "--time-col", "t",
                          "--max-session-length", "2", "--output", str(tmp_path / "short")], capsys)
    assert rc == 0 and "more than a day" not in err  # its kept interactions are those of one day


def test_events_without_a_session_or_an_item_are_dropped_and_counted(tmp_path, capsys):
    """An empty session or item is no event: the windows hold the others only, and the progress says how many went."""
    rows = [("s1", "a", 10), ("s1", "b", 20), ("", "c", 25), ("s2", "a", 30), ("s2", "", 35), ("s2", "b", 40),
            ("s3", "b", 50), ("s3", "a", 60)]
    path = tmp_path / "log.csv"
    path.write_text("session,item,ts\n" + "".join(f"{s},{i},{t}\n" for s, i, t in rows))
    from sessrec.cli import main

    assert main(["prepare", "events", "--input", str(path), "--session-col", "session", "--item-col", "item",
                 "--time-col", "ts", "--output", str(tmp_path / "out")]) == 0
    assert "read 8 events into 1 bucket(s); dropped 2 without a session or an item" in capsys.readouterr().err
    written = all_sessions(tmp_path / "out", ("train",))  # every session (train is all of them here)
    assert sorted(written["session_id"]) == ["s1", "s2", "s3"] and written["item_id"].list.len().to_list() == [2, 2, 2]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_events_nan_and_infinite_numbers_are_missing(tmp_path, capsys, fmt):
    """NaN (pandas' missing number) and infinities count as missing: the output equals that of empty values; one
    NaN in the statistics made the whole standardised feature NaN."""
    def write(name, bad):
        prices = [bad[k % len(bad)] if k in (3, 7) else float(10 + k) for k in range(len(ROWS))]
        frame = pl.DataFrame({"user": [r[0] for r in ROWS], "item": [r[1] for r in ROWS], "ts": [r[2] for r in ROWS],
                              "price": prices})
        path = tmp_path / f"{name}.{fmt}"
        frame.write_csv(path) if fmt == "csv" else frame.write_parquet(path)
        out = tmp_path / name
        rc, _, err = prepare(["events", "--input", str(path), "--user-col", "user", "--item-col", "item", "--time-col",
                              "ts", "--continuous-cols", "price", "--output", str(out)], capsys)
        assert rc == 0, err
        return all_sessions(out, ("train", "valid", "test")).sort("session_id")

    empty, nonfinite = write("empty", [None]), write("nonfinite", [float("nan"), float("inf")])
    assert nonfinite["price_norm"].explode().is_finite().all()
    assert nonfinite.equals(empty)
