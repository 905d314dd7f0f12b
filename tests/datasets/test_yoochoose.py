from datetime import datetime, timezone

import polars as pl
import pytest

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

# SessionID, Timestamp, ItemID, Category: header-less, as in yoochoose-clicks.dat
CLICKS = """\
1,2014-04-07T10:51:09.277Z,214536502,0
1,2014-04-07T10:54:09.868Z,214536502,0
1,2014-04-07T10:54:46.998Z,214536500,0
1,2014-04-07T10:57:00.306Z,214536506,0
2,2014-04-07T13:56:37.614Z,214662742,0
3,2014-04-07T12:09:10.948Z,214717089,S
3,2014-04-07T12:10:10.000Z,214826702,2053013552326770905
4,2014-04-08T00:00:30.000Z,214536500,1
4,2014-04-07T23:59:30.000Z,214536502,1
5,2014-04-07T15:00:00.000Z,214717089,S
5,2014-04-07T15:01:00.000Z,214717089,S
5,2014-04-07T15:02:00.000Z,214536500,0
6,2014-04-08T09:00:00.000Z,214536502,0
6,2014-04-08T09:05:00.000Z,214826702,
7,2014-04-08T10:00:00.000Z,214536506,0
7,2014-04-08T10:00:00.000Z,214536500,0
8,2014-04-09T11:00:00.000Z,214536502,0
8,2014-04-09T11:30:00.000Z,214662742,0
9,2014-04-09T12:00:00.000Z,214717089,S
9,2014-04-09T12:30:00.000Z,214536506,1
"""


def _events() -> list[tuple]:
    out = []
    for line in CLICKS.splitlines():
        s, t, item, _ = line.split(",")
        ts = datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()
        out.append((int(s), ts, int(item)))
    return out


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("yoochoose")
    (root / "yoochoose-clicks.dat").write_text(CLICKS)
    return root / "yoochoose-clicks.dat", root / "out"


def test_yoochoose_statistics_ids_and_features(prepared, capsys):
    raw, out = prepared
    rc, stdout, _ = prepare(["yoochoose", "--input", str(raw), "--output", str(out)], capsys)
    assert rc == 0
    stats, sessions, counts = reference(_events(), min_sessions=2)
    assert (stats["windows"], stats["sessions"], stats["interactions"]) == (3, 8, 17)  # by hand
    check_stats(out, stdout, {"days": 3, **stats})

    train = all_sessions(out, ("train",))
    assert train.height == 8  # train = all the day's sessions
    for split in ("valid", "test"):  # two disjoint non-empty subsets of each day's sessions
        part = all_sessions(out, (split,))
        assert set(part["session_id"]) <= set(train["session_id"]) and part["window"].n_unique() == 3
    assert not set(all_sessions(out, ("valid",))["session_id"]) & set(all_sessions(out, ("test",))["session_id"])

    ids = frequency_ids(counts)
    for sid, kept in sessions.items():
        row = train.filter(pl.col("session_id") == sid).row(0, named=True)
        assert row["item_id-list"] == [ids[i] for _, i in kept]
        assert row["timestamp-list"] == pytest.approx([t for t, _ in kept])
    assert train.filter(pl.col("session_id") == 4)["window"].item() == 1  # crosses midnight: its start day
    s3 = train.filter(pl.col("session_id") == 3).row(0, named=True)
    s1 = train.filter(pl.col("session_id") == 1).row(0, named=True)
    assert s1["category-list"] == [1, 1, 1]  # category "0" is unknown → 1
    assert min(s3["category-list"]) >= 2
    assert train.filter(pl.col("session_id") == 6)["category-list"].item()[1] == 1  # empty category → 1
    # item age in whole days: 214536502 first seen day 1 10:51, again day 2 09:00 (0 days) and day 3 11:00 (1 day)
    age = {r["session_id"]: r["timestamp_age_days_norm-list"] for r in train.iter_rows(named=True)}
    assert age[6][0] == pytest.approx(age[1][0]) and age[8][0] > age[1][0]
    assert train["timestamp_age_days_norm-list"].explode().mean() == pytest.approx(0.0, abs=1e-6)


def test_yoochoose_schema_and_training(prepared, tmp_path):
    _, out = prepared
    schema = load_schema(out / "schema.pbtxt")
    paper = load_schema(SCHEMAS / "yoochoose_schema.pbtxt")
    assert schema.names == [*paper.names, "timestamp-list"]  # plus the time column of the public parquet files
    assert schema["timestamp-list"].is_time
    assert all(set(f.tags) == set(paper[f.name].tags) for f in paper.features)
    assert schema.n_items == 7 and schema["category-list"].max_value == 4  # 1 = unknown, then S, 1, the brand id
    assert "ndcg_at_20_AOT" in train_run(out, tmp_path / "run")


def test_yoochoose_clicks_without_a_session_or_an_item_are_dropped_and_counted(tmp_path, capsys):
    """README: dropped and counted, not an error; the outputs are those of the clicks without them. A category of
    spaces only is empty (id 1), as an empty one is."""
    from sessrec.cli import main
    from tests.datasets.test_golden import digest

    lines = CLICKS.splitlines()
    variants = {"clean": lines, "holes": [*lines[:3], ",2014-04-07T10:55:00.000Z,214536502,0",
                                          "1,2014-04-07T10:55:00.000Z,,0", *lines[3:]],
                "spaces": [line[:line.rindex(",") + 1] + ("  " if line.endswith(",") else line.rsplit(",", 1)[1])
                           for line in lines]}
    got = {}
    for name, text in variants.items():
        (tmp_path / f"{name}.dat").write_text("\n".join(text) + "\n")
        assert main(["prepare", "yoochoose", "--input", str(tmp_path / f"{name}.dat"), "--output", str(tmp_path / name),
                     "--min-session-length", "1"]) == 0
        got[name] = digest(tmp_path / name, "")
        err = capsys.readouterr().err
        assert ("dropped 2 without a session or an item" in err) == (name == "holes")
    assert got["holes"] == got["clean"] and got["spaces"] == got["clean"]
