import json
import math
from collections import Counter
from datetime import datetime, timezone

import polars as pl
import pytest

from sessrec.datasets import pipeline
from sessrec.datasets import raw as raw_module
from sessrec.schema import load_schema
from tests.datasets.helpers import (
    SCHEMAS,
    all_sessions,
    check_stats,
    frequency_ids,
    prepare,
    reference,
    train_run,
)

HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"


def _product(p: int) -> tuple:
    """category_id, category_code, brand, price of product ``p`` (p400/p500 have no code, no brand)."""
    code = "" if p in (400, 500) else ("electronics.smartphone" if p in (100, 200) else "appliances.kitchen")
    brand = "" if p in (400, 500) else ("apple" if p == 100 else "samsung")
    return 1000 + p % 3, code, brand, p / 10


# (session, user, UTC time, product): hand-written edge cases, in file order
EVENTS = [
    ("s1", 1, "2019-10-01 10:00:00", 100), ("s1", 1, "2019-10-01 10:00:10", 100),  # consecutive repeat
    ("s1", 1, "2019-10-01 10:00:20", 200), ("s1", 1, "2019-10-01 10:00:30", 300),
    ("s1", 1, "2019-10-01 10:00:40", 300), ("s1", 1, "2019-10-01 10:00:50", 100),  # a non-consecutive repeat stays
    ("s2", 2, "2019-10-01 11:00:00", 200),  # length 1
    ("s3", 3, "2019-10-01 12:00:00", 400), ("s3", 3, "2019-10-01 12:00:05", 500),  # empty category_code and brand
    ("s4", 4, "2019-10-01 13:00:00", 100), ("s4", 4, "2019-10-01 13:00:01", 100),  # length 1 once repeats go
    ("s5", 5, "2019-10-02 00:10:00", 300), ("s5", 5, "2019-10-01 23:50:00", 200),  # crosses midnight, rows unsorted
    *[("s6", 6, f"2019-10-01 14:{m:02d}:00", 1000 + m) for m in range(1, 23)],  # 22 distinct items: cut to 20
    ("s7", 7, "2019-10-01 15:00:10", 800), ("s7", 7, "2019-10-01 15:00:00", 600),
    ("s7", 7, "2019-10-01 15:00:00", 700),  # a time tie: input order
    ("s8", 1, "2019-10-02 09:00:00", 200), ("s8", 1, "2019-10-02 09:01:00", 300),
    ("s9", 8, "2019-10-02 10:00:00", 300), ("s9", 8, "2019-10-02 10:01:00", 100), ("s9", 8, "2019-10-02 10:02:00", 100),
    ("s10", 9, "2019-10-02 11:00:00", 100), ("s10", 9, "2019-10-02 11:01:00", 400),
    ("s11", 1, "2019-10-03 08:00:00", 100), ("s11", 1, "2019-10-03 08:01:00", 200),  # user 1 has seen both
    ("s12", 10, "2019-10-03 09:00:00", 500), ("s12", 10, "2019-10-03 09:01:00", 600),
    ("s13", 11, "2019-10-03 10:00:00", 700), ("s13", 11, "2019-10-03 10:01:00", 800),
    ("s14", 12, "2019-10-04 10:00:00", 100),  # the only session of day 4, length 1: no window
]


def _epoch(text: str) -> int:
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp())


def write_rees46(path, events=EVENTS):
    lines = [HEADER]
    for s, user, t, p in events:
        cid, code, brand, price = _product(p)
        lines.append(f"{t} UTC,view,{p},{cid},{code},{brand},{price},{user},{s}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("rees46")
    raw = write_rees46(root / "2019-Oct.csv")
    return raw, root / "out"


def test_rees46_statistics_ids_and_features(prepared, capsys):
    raw, out = prepared
    rc, stdout, _ = prepare(["rees46", "--input", str(raw), "--output", str(out)], capsys)
    assert rc == 0
    stats, sessions, counts = reference([(s, _epoch(t), p) for s, _, t, p in EVENTS])
    assert stats["windows"] == 3 and stats["sessions"] == 11 and stats["interactions"] == 43  # by hand
    check_stats(out, stdout, {"days": 3, **stats})
    assert "paper" in stdout

    ids = frequency_ids(counts)
    written = all_sessions(out)
    assert written.height == 11 and written["session_id"].n_unique() == 11  # 80/10/10 splits are disjoint
    assert set(written.filter(pl.col("window") == 1)["session_id"]) == {"s1", "s3", "s5", "s6", "s7"}  # s5 starts on day 1
    for sid, kept in sessions.items():
        row = written.filter(pl.col("session_id") == sid).row(0, named=True)
        assert row["sess_pid_seq"] == [ids[p] for _, p in kept], sid
        assert row["sess_etime_seq"] == [float(t) for t, _ in kept]
        assert row["session_size"] == len(kept)
    assert ids[100] == 1 and max(ids.values()) == 28
    s6 = written.filter(pl.col("session_id") == "s6").row(0, named=True)
    assert len(s6["sess_pid_seq"]) == 20

    s3 = written.filter(pl.col("session_id") == "s3").row(0, named=True)
    assert s3["sess_ccid_seq"] == [1, 1] and s3["sess_bid_seq"] == [1, 1]  # empty category_code / brand → 1
    brands = Counter(_product(p)[2] for kept in sessions.values() for _, p in kept if _product(p)[2])
    s1 = written.filter(pl.col("session_id") == "s1").row(0, named=True)
    assert s1["sess_bid_seq"] == [frequency_ids(brands, 2)[_product(p)[2]] for _, p in sessions["s1"]]

    # features: hour/weekday of 2019-10-01 10:00 UTC (a Tuesday: weekday 2 of 1..7)
    assert s1["sess_et_hour_sin_seq"][0] == pytest.approx(math.sin(2 * math.pi * (10 + 1e-8) / 24), abs=1e-6)
    assert s1["sess_et_dayofweek_cos_seq"][0] == pytest.approx(math.cos(2 * math.pi * (2 + 1e-8) / 7), abs=1e-6)
    # relative price: (price - mean price of its category_id over the kept events) / that mean
    cat_prices = [p / 10 for kept in sessions.values() for _, p in kept if 1000 + p % 3 == 1000 + 100 % 3]
    avg = sum(cat_prices) / len(cat_prices)
    assert s1["sess_relative_price_to_avg_category_seq"][0] == pytest.approx((10.0 - avg) / avg, rel=1e-5)
    # recency: items seen for the first time share the smallest value; p100 again 50 s later is older
    rec = s1["sess_prod_recency_days_log_norm_seq"]
    assert rec[0] == pytest.approx(rec[1]) == pytest.approx(rec[2]) and rec[3] > rec[0]
    price = written["sess_price_log_norm_seq"].explode()
    assert abs(price.mean()) < 1e-5 and price.std() == pytest.approx(1.0, rel=1e-4)  # standardised over all events


def test_rees46_schema_matches_the_paper_without_bugs(prepared):
    _, out = prepared
    schema = load_schema(out / "schema.pbtxt")
    paper = load_schema(SCHEMAS / "rees46_schema.pbtxt")
    assert schema.names == paper.names
    for f in schema.features:
        assert (f.dtype, set(f.tags)) == (paper[f.name].dtype, set(paper[f.name].tags)), f.name
    assert schema.n_items == 29 and schema["sess_bid_seq"].max_value == 3  # 28 items; brands: null, samsung, apple
    assert load_schema(out / "schema.json").to_dict() == schema.to_dict()
    windows = (out / "windows.csv").read_text().splitlines()
    assert windows[0] == "window,start_utc,sessions,interactions,train,valid,test"
    assert windows[1] == "1,2019-10-01 00:00,5,31,3,1,1"


def test_rees46_trains_with_sessrec_run(prepared, tmp_path):
    _, out = prepared
    assert "ndcg_at_20_AOT" in train_run(out, tmp_path / "run")


def test_rees46_repeats_per_user_as_notebook_01(tmp_path, capsys):
    raw = write_rees46(tmp_path / "oct.csv")
    out = tmp_path / "out"
    rc, _, stderr = prepare(["rees46", "--input", str(raw), "--output", str(out), "--repeats", "user"], capsys)
    assert rc == 0
    # only the first (user, product) interaction of the month stays: s11 (user 1: p100, p200) disappears,
    # s8 (user 1: p200, p300) too, so days 2 and 3 keep 2 sessions each: fewer than 3, no window
    written = all_sessions(out)
    assert set(written["session_id"]) == {"s1", "s3", "s5", "s6", "s7"}
    assert json.loads((out / "stats.json").read_text())["windows"] == 1
    assert "only one window" in stderr  # warnings are printed even with --quiet


def test_rees46_several_months_and_window_numbering(tmp_path, capsys):
    oct_ = write_rees46(tmp_path / "oct.csv", EVENTS[:-1])
    nov = [(s + "n", u, t.replace("2019-10", "2019-11"), p) for s, u, t, p in EVENTS if s in ("s8", "s9", "s10")]
    nov_csv = write_rees46(tmp_path / "nov.csv", nov)
    out = tmp_path / "out"
    rc, stdout, _ = prepare(["rees46", "--input", str(oct_), str(nov_csv), "--output", str(out), "--seed", "3"], capsys)
    assert rc == 0
    starts = [line.split(",")[1] for line in (out / "windows.csv").read_text().splitlines()[1:]]
    assert starts == ["2019-10-01 00:00", "2019-10-02 00:00", "2019-10-03 00:00", "2019-11-02 00:00"]
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["0001", "0002", "0003", "0004"]
    assert all_sessions(out).filter(pl.col("session_id") == "s9n")["window"].to_list() == [4]


def test_rees46_output_does_not_depend_on_buckets_or_blocks(tmp_path, capsys, monkeypatch):
    raw = write_rees46(tmp_path / "oct.csv")
    assert prepare(["rees46", "--input", str(raw), "--output", str(tmp_path / "one")], capsys)[0] == 0
    monkeypatch.setattr(pipeline, "BUCKET_BYTES", 300)  # ~10 buckets
    monkeypatch.setattr(raw_module, "CHUNK_BYTES", 200)  # ~20 blocks
    assert prepare(["rees46", "--input", str(raw), "--output", str(tmp_path / "many")], capsys)[0] == 0
    files = sorted(p.relative_to(tmp_path / "one") for p in (tmp_path / "one").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "many") for p in (tmp_path / "many").rglob("*") if p.is_file())
    for f in files:
        a, b = tmp_path / "one" / f, tmp_path / "many" / f
        assert pl.read_parquet(a).equals(pl.read_parquet(b)) if f.suffix == ".parquet" else a.read_text() == b.read_text()


def test_rees46_events_without_a_product_or_a_session_are_dropped_and_counted(prepared, tmp_path, capsys):
    """README: dropped and counted, not an error; the outputs are those of the events without them."""
    from sessrec.cli import main
    from tests.datasets.test_golden import digest

    raw, _ = prepared
    lines = raw.read_text().splitlines()
    holes = tmp_path / "holes.csv"
    no_product, no_session = lines[2].split(","), lines[3].split(",")
    no_product[2], no_session[-1] = "", ""
    holes.write_text("\n".join([*lines[:2], ",".join(no_product), ",".join(no_session), *lines[2:]]) + "\n")
    for name, path in (("clean", raw), ("holes", holes)):
        assert main(["prepare", "rees46", "--input", str(path), "--output", str(tmp_path / name)]) == 0
        assert ("dropped 2 without a session or an item" in capsys.readouterr().err) == (name == "holes")
    assert digest(tmp_path / "holes", "") == digest(tmp_path / "clean", "")
