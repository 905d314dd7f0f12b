import json
import math

import polars as pl
import pytest
from scipy.special import erfinv

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

T0 = 1483228800  # 2017-01-01 00:00 UTC (a Sunday), in seconds
URL = "http://adressa.no/{}.html"
ARTICLE = {  # canonical URL key -> category1, author (a JSON list, as some events have, or text)
    "A": ("nyheter|trondheim", ["Ola Nordmann"]), "B": ("sport|fotball", "Kari"), "C": ("nyheter", None), "D": (None, None)}
# (day file, user, session label given by hand, minutes after T0, article or None for a front-page event, city)
EVENTS = [
    ("20170101", "u1", "u1a", 600, "A", "trondheim"), ("20170101", "u1", "u1a", 610, "B", "trondheim"),
    ("20170101", "u1", "u1a", 620, "A", "trondheim"),  # repeat in the session: removed
    ("20170101", "u2", "u2", 605, "A", "oslo"), ("20170101", "u2", "u2", 606, None, "oslo"),  # front page: no item
    ("20170101", "u2", "u2", 630, "C", "trondheim"),
    ("20170101", "u3", "u3", 640, "B", "trondheim"),  # length 1
    ("20170101", "u4", "u4", 655, "D", "trondheim"), ("20170101", "u4", "u4", 670, "A", "trondheim"),  # crosses 11:00
    ("20170101", "u1", "u1b", 660, "C", "trondheim"), ("20170101", "u1", "u1b", 665, "D", "trondheim"),  # 40 min idle
    ("20170101", "u5", "u5", 680, "C", None), ("20170101", "u5", "u5", 690, "B", None),
    ("20170102", "u1", "u1c", 1440 + 540, "A", "trondheim"), ("20170102", "u1", "u1c", 1440 + 550, "B", "trondheim"),
    ("20170102", "u6", "u6", 1440 + 560, "C", "trondheim"), ("20170102", "u6", "u6", 1440 + 565, "D", "trondheim"),
    ("20170103", "u7", "u7", 2880 + 600, "A", "trondheim"), ("20170103", "u7", "u7", 2880 + 610, "B", "trondheim"),
]


def _event(user: str, minutes: int, article: str | None, city: str | None, i: int) -> dict:
    e = {"eventId": i, "userId": user, "time": T0 + minutes * 60, "activeTime": 12, "country": "no", "region": "trondelag",
         "deviceType": "Mobile" if i % 2 else "Tablet", "os": "Android", "referrerHostClass": "social",
         "url": URL.format(article or "front"), "sessionStart": False, "sessionStop": False,
         "profile": [{"item": "x", "groups": [{"group": "category", "weight": 1.0, "count": 1}]}]}
    if city:
        e["city"] = city
    if article:
        category, author = ARTICLE[article]
        e.update({"canonicalUrl": URL.format(article), "id": f"hash{article}", "title": article,
                  "publishtime": "2016-12-31T10:00:00.000Z"})
        if category:
            e["category1"] = category
        if author:
            e["author"] = author
    return e


def write_adressa(folder):
    folder.mkdir()
    for day in sorted({e[0] for e in EVENTS}):
        lines = [json.dumps(_event(u, m, a, c, i)) for i, (d, u, _, m, a, c) in enumerate(EVENTS) if d == day]
        (folder / day).write_text("\n".join(lines) + "\n")
    return folder


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("adressa")
    return write_adressa(root / "three_month"), root / "out"


def test_adressa_sessions_statistics_and_features(prepared, capsys):
    raw, out = prepared
    rc, stdout, _ = prepare(["adressa", "--input", str(raw), "--output", str(out), "--days", "2",
                             "--min-sessions-per-window", "2", "--rare-category-count", "2"], capsys)
    assert rc == 0
    events = [(label, T0 + m * 60, a) for d, _, label, m, a, _ in EVENTS if a and d != "20170103"]
    stats, sessions, counts = reference(events, repeats="session", window_s=3600, min_sessions=2)
    assert (stats["windows"], stats["sessions"], stats["interactions"]) == (3, 7, 14)  # by hand
    check_stats(out, stdout, {"days": 2, **stats})

    train = all_sessions(out, ("train",))
    ids = frequency_ids(counts)
    by_start = {kept[0][0] * 1000: [ids[a] for _, a in kept] for kept in sessions.values()}
    assert {r["session_start"]: r["article_id"] for r in train.iter_rows(named=True)} == by_start
    u4 = train.filter(pl.col("session_start") == (T0 + 655 * 60) * 1000).row(0, named=True)
    assert u4["timestamp"] == [float((T0 + 655 * 60) * 1000), float((T0 + 670 * 60) * 1000)]

    # side columns: 1 = empty or seen fewer than 2 times ("oslo" once), known values from 2
    u2 = train.filter(pl.col("session_start") == (T0 + 605 * 60) * 1000).row(0, named=True)
    assert u2["city"] == [1, 2] and u4["city"] == [2, 2]
    assert u4["author_encoded"] == [1, 2]  # D has no author; A's author (a list) is a regular value
    # D has no category; "nyheter" (A and C) is the most frequent first level
    assert u4["category0_encoded"][1] == 2 and u4["category1_encoded"][0] == 1

    # item age: hours since the article's first click, GaussRank within the hour
    hour10 = all_sessions(out, ("train",)).filter(pl.col("window") == 1)
    norm = {(r["session_start"], i): v for r in hour10.iter_rows(named=True) for i, v in enumerate(r["item_age_hours_norm"])}
    assert norm[((T0 + 655 * 60) * 1000, 1)] == pytest.approx(erfinv(1 - 1e-4), rel=1e-5)  # A at 11:10: oldest
    assert norm[((T0 + 600 * 60) * 1000, 0)] == pytest.approx(-erfinv(1 - 1e-4), rel=1e-5)  # first clicks: age 0
    b = 1 - 1e-4  # the middle rank maps to 1/b - b, not 0, in the original GaussRankScaler
    assert norm[((T0 + 605 * 60) * 1000, 0)] == pytest.approx(erfinv(1 / b - b), rel=1e-4)  # A 5 minutes later
    # Europe/Oslo time (UTC+1): 10:00 UTC = 11:00 local, on a Sunday (weekday 7)
    first = train.filter(pl.col("session_start") == (T0 + 600 * 60) * 1000).row(0, named=True)
    assert first["hour_cos"][0] == pytest.approx(math.cos(2 * math.pi * (11 + 1e-8) / 24), abs=1e-6)
    assert first["weekday_cos"][0] == pytest.approx(1.0, abs=1e-6)


def test_adressa_schema_has_device_instead_of_the_duplicate(prepared, tmp_path):
    _, out = prepared
    schema = load_schema(out / "schema.pbtxt")
    paper = load_schema(SCHEMAS / "adressa_schema.pbtxt").names  # 'country' declared twice there
    assert schema.names == [*paper[: paper.index("country") + 1], "device", *paper[paper.index("country") + 1:]]
    assert schema["author_encoded"].max_value == 3 and schema["city"].max_value == 2
    assert "ndcg_at_20_AOT" in train_run(out, tmp_path / "run")


@pytest.mark.parametrize("flag", ["--days", "--rare-category-count"])
def test_negative_counts_are_refused(prepared, tmp_path, capsys, flag):
    raw, _ = prepared
    rc, _, err = prepare(["adressa", "--input", str(raw), "--output", str(tmp_path / "o"), flag, "-1"], capsys)
    assert rc == 2 and err.strip().splitlines()[-1] == f"sessrec: error: {flag} must be >= 0, got -1"


def _digest(out) -> dict:
    from tests.datasets.test_golden import digest

    return digest(out, "")


def test_adressa_blank_lines_and_a_byte_order_mark_change_nothing(prepared, tmp_path, capsys):
    """Blank lines are skipped and not counted: a session cut from a user's stream keeps the id of its first event's
    input position, as without them; a UTF-8 byte order mark is read like none."""
    raw, _ = prepared
    args = ["--days", "2", "--min-sessions-per-window", "2", "--rare-category-count", "2"]
    assert prepare(["adressa", "--input", str(raw), "--output", str(tmp_path / "plain"), *args], capsys)[0] == 0
    odd = tmp_path / "odd"
    odd.mkdir()
    for day in sorted(raw.iterdir()):
        lines = day.read_text().splitlines()
        (odd / day.name).write_bytes(b"\xef\xbb\xbf" + "\n\n".join(lines).encode() + b"\r\n  \n")
    assert prepare(["adressa", "--input", str(odd), "--output", str(tmp_path / "odd_out"), *args], capsys)[0] == 0
    assert _digest(tmp_path / "odd_out") == _digest(tmp_path / "plain")


@pytest.mark.parametrize("chunk", [None, 300])  # one block; blocks of about one event
@pytest.mark.parametrize("bad, message", [
    ({"userId": "u9", "url": "x"}, "line 13: empty value in the required column time"),
    (b'{"userId": "u9", "time": 1483264800, "title": "f\xf8rste"}', "line 13 is not UTF-8 text (byte b'\\xf8')"),
    ('{"userId": "u9", "time": 14832648', "line 13 is not JSON: '{\"userId\": \"u9\", \"time\": 14832648'"),
])
def test_adressa_errors_name_the_files_own_line(tmp_path, capsys, monkeypatch, chunk, bad, message):
    """The line counts the blank lines before it, and a valid event with a raw U+2028 in its title (a line break
    for Python's splitlines, not for JSON lines) is one line."""
    if chunk:
        monkeypatch.setattr(raw_module, "CHUNK_BYTES", chunk)
    folder = tmp_path / "three_month"
    folder.mkdir()
    good = [json.dumps(_event("u1", 600 + i, "A", "oslo", i) | {"title": "første\u2028linje"}, ensure_ascii=False)
            for i in range(8)]
    bad_line = bad if isinstance(bad, bytes) else (bad if isinstance(bad, str) else json.dumps(bad)).encode()
    text = "\n".join([*good[:3], "", *good[3:5], "", "", *good[5:8]]).encode() + b"\n\n" + bad_line + b"\n"  # line 13
    (folder / "20170101").write_bytes(text)
    rc, _, err = prepare(["adressa", "--input", str(folder), "--days", "0", "--output", str(tmp_path / "o")], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert err.startswith(f"sessrec: error: {folder / '20170101'}")
    assert not (tmp_path / "o").exists()


def test_adressa_events_without_a_user_or_an_article_are_dropped_and_counted(tmp_path, capsys):
    """README: events without a user or an item are dropped and the progress output counts them; an empty text is
    no value."""
    folder = tmp_path / "three_month"
    folder.mkdir()
    events = [_event(f"u{k // 3}", 600 + k, "ABC"[k % 3], "oslo", k) for k in range(9)]
    del events[4]["userId"]
    events[5]["userId"] = " "
    events[7]["canonicalUrl"] = ""
    (folder / "20170101").write_text("\n".join(map(json.dumps, events)) + "\n")
    from sessrec.cli import main

    out = tmp_path / "out"
    assert main(["prepare", "adressa", "--input", str(folder), "--output", str(out), "--min-sessions-per-window", "1"]) == 0
    assert "dropped 3 without a user or an item" in capsys.readouterr().err
    sessions = all_sessions(out, ("train",))
    assert sorted(sessions["session_size"].to_list()) == [2, 3]  # u0: A B C; u1: only A; u2: A C


def test_adressa_empty_side_values_are_id_1(tmp_path, capsys):
    """README: 1 = empty or rare. "" (also after the first part of category1) and an empty author list are empty,
    even when they are frequent."""
    folder = tmp_path / "three_month"
    folder.mkdir()
    events = [_event(f"u{k // 3}", 600 + k, "ABC"[k % 3], "", k) for k in range(9)]
    for e in events:
        e.update({"category1": "" if e["canonicalUrl"].endswith("A.html") else "|fotball", "author": [],
                  "region": "  ", "city": ""})
    (folder / "20170101").write_text("\n".join(map(json.dumps, events)) + "\n")
    out = tmp_path / "out"
    rc, _, err = prepare(["adressa", "--input", str(folder), "--output", str(out), "--min-sessions-per-window", "1",
                          "--rare-category-count", "1"], capsys)
    assert rc == 0, err
    train = all_sessions(out, ("train",))
    for name in ("city", "region", "category0_encoded", "author_encoded"):
        assert set(train[name].explode().to_list()) == {1}, name
        assert pl.read_parquet(out / f"catalog-map-{name}.parquet").height == 0, name
    assert set(train["category1_encoded"].explode().to_list()) == {1, 2}  # "" → 1, "|fotball" → 2


def test_fewer_day_files_than_days_are_warned_about(prepared, tmp_path, capsys):
    """The one-week release with the default --days 16 reads its 7 files, and says so (Table 1's days differ)."""
    raw, _ = prepared
    n = len(list(raw.iterdir()))
    args = ["adressa", "--input", str(raw), "--min-sessions-per-window", "2", "--rare-category-count", "2"]
    rc, _, err = prepare([*args, "--output", str(tmp_path / "a")], capsys)
    assert rc == 0 and f"warning: --days 16: {raw} has {n} day file(s); reading all {n}" in err
    for days in ("0", str(n)):
        rc, _, err = prepare([*args, "--output", str(tmp_path / f"d{days}"), "--days", days], capsys)
        assert rc == 0 and "warning" not in err
