import math

import polars as pl
import pytest
from scipy.special import erfinv

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

HEADER = ("user_id,session_id,session_start,session_size,click_article_id,click_timestamp,click_environment,"
          "click_deviceGroup,click_os,click_country,click_region,click_referrer_type")
T0 = 1506816000000  # 2017-10-01 00:00 UTC, in ms
MIN = 60_000
# hourly files: (user, session, article, minutes after T0, deviceGroup, os, region)
HOURS = {
    0: [(1, 1001, 10, 5, 1, 17, 25), (1, 1001, 20, 10, 1, 17, 25), (1, 1001, 10, 20, 1, 17, 25),  # repeat of 10
        (2, 1002, 30, 15, 3, 20, 28),  # length 1
        (3, 1003, 20, 50, 3, 20, 28), (3, 1003, 30, 70, 3, 20, 28),  # crosses into hour 1
        (4, 1004, 40, 30, 1, 2, 25), (4, 1004, 99, 31, 1, 2, 25)],  # article 99 is not in the metadata
    1: [(1, 1005, 10, 80, 1, 17, 25), (1, 1005, 30, 85, 1, 17, 25)],  # the hour's only session: skipped
    2: [(5, 1006, 20, 150, 3, 20, 28), (5, 1006, 40, 160, 3, 20, 28),
        (6, 1007, 30, 170, 1, 2, 25), (6, 1007, 30, 175, 1, 2, 25),  # only a repeat: length 1
        (7, 1008, 10, 125, 1, 17, 28), (7, 1008, 20, 130, 1, 17, 28)],
}
CREATED = {10: T0 - 120 * MIN, 20: T0 - 600 * MIN, 30: T0 - 60 * MIN, 40: T0 + 20 * MIN}


def write_g1(root):
    clicks = root / "clicks"
    clicks.mkdir()
    for hour, rows in HOURS.items():
        lines = [HEADER] + [f"{u},{s},{T0},2,{a},{T0 + m * MIN},4,{dev},{os_},1,{reg},2" for u, s, a, m, dev, os_, reg in rows]
        (clicks / f"clicks_hour_{hour:03d}.csv").write_text("\n".join(lines) + "\n")
    articles = ["article_id,category_id,created_at_ts,publisher_id,words_count"]
    articles += [f"{a},{a % 7},{ts},0,180" for a, ts in CREATED.items()]
    (root / "articles_metadata.csv").write_text("\n".join(articles) + "\n")
    return clicks, root / "articles_metadata.csv"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("g1")
    return *write_g1(root), root / "out"


def test_g1_statistics_ids_and_features(prepared, capsys):
    clicks, articles, out = prepared
    args = ["g1", "--input", str(clicks), "--articles", str(articles), "--output", str(out)]
    rc, _, stderr = prepare(args, capsys)
    assert rc == 2 and "no hour window has at least 100 sessions" in stderr  # the paper's threshold
    assert "lower --min-sessions-per-window or check the input" in stderr
    rc, stdout, _ = prepare([*args, "--min-sessions-per-window", "2"], capsys)
    assert rc == 0
    events = [(s, (T0 + m * MIN) // 1000, a) for rows in HOURS.values() for _, s, a, m, *_ in rows]
    stats, sessions, counts = reference(events, repeats="session", window_s=3600, min_sessions=2)
    assert (stats["windows"], stats["sessions"], stats["interactions"]) == (2, 5, 10)  # by hand
    check_stats(out, stdout, {"days": 1, **stats})
    starts = [line.split(",")[1] for line in (out / "windows.csv").read_text().splitlines()[1:]]
    assert starts == ["2017-10-01 00:00", "2017-10-01 02:00"]  # hour 1 skipped, the others numbered 1, 2

    train = all_sessions(out, ("train",))
    ids = frequency_ids(counts)
    for sid, kept in sessions.items():
        row = train.filter(pl.col("session_id") == sid).row(0, named=True)
        assert row["click_article_id"] == [ids[a] for _, a in kept]
        assert row["click_timestamp"] == [float(t * 1000) for t, _ in kept]
    halves = [set(all_sessions(out, (s,))["session_id"]) for s in ("valid", "test")]
    assert not halves[0] & halves[1] and halves[0] | halves[1] == set(train["session_id"])

    # item age: hours since created_at_ts, GaussRank over all kept clicks; no metadata → 0 (the median)
    ages = {(sid, i): max(0.0, (t * 1000 - CREATED[a]) / 3.6e6) for sid, kept in sessions.items()
            for i, (t, a) in enumerate(kept) if a in CREATED}
    norm = {(r["session_id"], i): v for r in train.iter_rows(named=True) for i, v in enumerate(r["item_age_hours_norm"])}
    assert norm[(1004, 1)] == 0.0
    oldest, newest = max(ages, key=ages.get), min(ages, key=ages.get)
    assert norm[oldest] == pytest.approx(erfinv(1 - 1e-4), rel=1e-5) and norm[newest] == pytest.approx(-erfinv(1 - 1e-4), rel=1e-5)
    order = sorted(ages, key=ages.get)
    assert [norm[k] for k in order] == sorted(norm[k] for k in order)
    # local time America/Sao_Paulo (UTC-3): 00:05 UTC Sunday = 21:05 Saturday (weekday 6)
    s1001 = train.filter(pl.col("session_id") == 1001).row(0, named=True)
    assert s1001["hour_sin"][0] == pytest.approx(math.sin(2 * math.pi * (21 + 5 / 60 + 1e-8) / 24), abs=1e-6)
    assert s1001["weekday_cos"][0] == pytest.approx(math.cos(2 * math.pi * (6 + 1e-8) / 7), abs=1e-6)
    # deviceGroup over the kept clicks: 1 six times, 3 four times → ids 1 and 2 (no unknown id: G1 has no gaps)
    assert s1001["click_deviceGroup"] == [1, 1]
    assert train.filter(pl.col("session_id") == 1006)["click_deviceGroup"].item().to_list() == [2, 2]


def test_g1_schema_has_weekday_cos_instead_of_the_duplicate(prepared, tmp_path):
    _, _, out = prepared
    schema = load_schema(out / "schema.pbtxt")
    paper = load_schema(SCHEMAS / "g1_schema.pbtxt")  # 'weekday_sin' declared twice there (collapsed on load)
    names = paper.names
    assert schema.names == [*names[: names.index("weekday_sin") + 1], "weekday_cos", *names[names.index("weekday_sin") + 1:]]
    text = (out / "schema.pbtxt").read_text()
    assert all(text.count(f'name: "{n}"') == 2 for n in schema.names)  # feature name + domain name, once each
    assert schema["click_timestamp"].is_time and schema.n_items == 6  # articles 10, 20, 30, 40, 99
    assert "ndcg_at_20_AOT" in train_run(out, tmp_path / "run")


def test_g1_repeats_user_keeps_each_users_first_click_of_an_article(prepared, tmp_path, capsys):
    """G1 clicks have a user_id: --repeats user keeps each (user, article) pair's first click (README step 2)."""
    clicks, articles, _ = prepared
    out = tmp_path / "user"
    rc, _, err = prepare(["g1", "--input", str(clicks), "--articles", str(articles), "--output", str(out),
                          "--repeats", "user", "--min-sessions-per-window", "1"], capsys)
    assert rc == 0, err
    rows = [(u, s, a, (T0 + m * MIN) // 1000) for hour in HOURS.values() for u, s, a, m, *_ in hour]
    first: dict = {}
    for order, (u, _, a, t) in enumerate(rows):
        first[(u, a)] = min(first.get((u, a), (t, order)), (t, order))
    kept = [(s, t, a) for order, (u, s, a, t) in enumerate(rows) if first[(u, a)] == (t, order)]
    _, sessions, counts = reference(kept, repeats="keep", window_s=3600, min_sessions=1)
    assert 1005 not in sessions  # user 1 had clicked article 10 before: only 30 is left, too short
    ids = frequency_ids(counts)
    train = all_sessions(out, ("train",))
    assert {r["session_id"]: r["click_article_id"] for r in train.iter_rows(named=True)} == \
        {s: [ids[a] for _, a in evs] for s, evs in sessions.items()}


def test_g1_repeats_user_needs_the_user_column(tmp_path, capsys):
    clicks, articles = write_g1(tmp_path)
    for path in clicks.glob("*.csv"):  # the same files without their first column, user_id
        path.write_text("\n".join(line.split(",", 1)[1] for line in path.read_text().splitlines()) + "\n")
    args = ["g1", "--input", str(clicks), "--articles", str(articles), "--min-sessions-per-window", "1"]
    rc, _, err = prepare([*args, "--output", str(tmp_path / "o"), "--repeats", "user"], capsys)
    assert rc == 2 and err.strip().splitlines() == [
        f"sessrec: error: {clicks / 'clicks_hour_000.csv'}, line 1: --repeats user needs the user_id column, which the "
        "header does not have; add it, or choose another --repeats"]
    assert not (tmp_path / "o").exists()
    assert prepare([*args, "--output", str(tmp_path / "o")], capsys)[0] == 0  # the default does not need it


def _g1_run(tmp_path, name: str, clicks, articles, capsys) -> tuple[dict, str]:
    """Digest of a G1 run, and its progress output."""
    from sessrec.cli import main
    from tests.datasets.test_golden import digest

    out = tmp_path / name
    assert main(["prepare", "g1", "--input", str(clicks), "--articles", str(articles), "--output", str(out),
                 "--min-sessions-per-window", "1"]) == 0
    err = capsys.readouterr().err
    return digest(out, ""), err


def test_g1_clicks_without_a_session_or_an_article_are_dropped_and_counted(tmp_path, capsys):
    """README: events without a session id or an item are dropped, and the progress output counts them."""
    clicks, articles = write_g1(tmp_path)
    expected, _ = _g1_run(tmp_path, "clean", clicks, articles, capsys)
    path = clicks / "clicks_hour_002.csv"
    lines = path.read_text().splitlines()
    no_session = lines[1].split(",")
    no_session[1] = ""
    no_article = lines[2].split(",")
    no_article[4] = ""
    path.write_text("\n".join([lines[0], ",".join(no_session), ",".join(no_article), *lines[1:]]) + "\n")
    got, err = _g1_run(tmp_path, "holes", clicks, articles, capsys)
    assert got == expected and "dropped 2 without a session or an item" in err


def test_g1_blank_lines_are_skipped(tmp_path, capsys):
    """An extra newline at the end of a clicks file or of articles_metadata.csv, or a blank line between rows."""
    clicks, articles = write_g1(tmp_path)
    expected, _ = _g1_run(tmp_path, "clean", clicks, articles, capsys)
    path = clicks / "clicks_hour_000.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines[:3], "", *lines[3:]]) + "\n\n")
    articles.write_text(articles.read_text() + "\n")
    assert _g1_run(tmp_path, "blank", clicks, articles, capsys)[0] == expected


def test_g1_a_click_that_lost_a_field_is_refused(tmp_path, capsys):
    clicks, articles = write_g1(tmp_path)
    path = clicks / "clicks_hour_000.csv"
    lines = path.read_text().splitlines()
    short = lines[3].split(",")
    del short[8]  # click_os: the country, region and referrer would move one column left
    path.write_text("\n".join([*lines[:3], ",".join(short), *lines[4:]]) + "\n")
    rc, _, err = prepare(["g1", "--input", str(clicks), "--articles", str(articles), "--output", str(tmp_path / "o"),
                          "--min-sessions-per-window", "1"], capsys)
    assert rc == 2 and err.strip().splitlines() == [
        f"sessrec: error: {path}, line 4 has 11 fields, expected 12 (every row needs a value, empty or not, for each "
        f"header column): {','.join(short)!r}"]
    assert not (tmp_path / "o").exists() and not list(tmp_path.glob(".o.tmp*"))


def test_g1_an_article_listed_twice_is_one_article_or_a_one_line_error(tmp_path, capsys):
    clicks, articles = write_g1(tmp_path)
    lines = articles.read_text().splitlines()
    out = tmp_path / "out"
    args = ["g1", "--input", str(clicks), "--articles", str(articles), "--min-sessions-per-window", "2"]
    assert prepare([*args, "--output", str(tmp_path / "once")], capsys)[0] == 0
    articles.write_text("\n".join([*lines, lines[1]]) + "\n")  # the same row twice: the same output
    assert prepare([*args, "--output", str(out)], capsys)[0] == 0
    assert all_sessions(out).equals(all_sessions(tmp_path / "once"))
    articles.write_text("\n".join([*lines, "10,3,1506800000000,0,180"]) + "\n")  # article 10 created twice
    rc, _, err = prepare([*args, "--output", str(tmp_path / "x")], capsys)
    assert rc == 2 and f"{articles}: article_id 10 has 2 different created_at_ts values" in err
    assert "1 article(s) are listed with conflicting creation times: keep one row per article" in err
