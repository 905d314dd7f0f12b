"""The catalog ``sessrec prepare`` writes, on every data set's small fixture: original ids ↔ ids
round trip, counts, the item table's latest values, and the serving rules against the written features."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from sessrec.cli import main
from sessrec.data.catalog import ITEMS, Catalog, catalog_files, map_file, rebuild
from sessrec.datasets.catalog import LatestItems, _raw, latest_per_item
from sessrec.schema import load_schema
from tests.datasets import test_adressa, test_events, test_g1, test_rees46, test_yoochoose
from tests.datasets.helpers import reference


def _rees46(root):
    raw = test_rees46.write_rees46(root / "2019-Oct.csv")
    events = [(s, test_rees46._epoch(t), p) for s, _, t, p in test_rees46.EVENTS]
    return ["rees46", "--input", str(raw)], reference(events)[2]


def _yoochoose(root):
    (root / "clicks.dat").write_text(test_yoochoose.CLICKS)
    return ["yoochoose", "--input", str(root / "clicks.dat")], reference(test_yoochoose._events(), min_sessions=2)[2]


def _g1(root):
    clicks, articles = test_g1.write_g1(root)
    events = [(s, (test_g1.T0 + m * test_g1.MIN) // 1000, a) for rows in test_g1.HOURS.values() for _, s, a, m, *_ in rows]
    counts = reference(events, repeats="session", window_s=3600, min_sessions=2)[2]
    return ["g1", "--input", str(clicks), "--articles", str(articles), "--min-sessions-per-window", "2"], counts


def _adressa(root):
    folder = test_adressa.write_adressa(root / "three_month")
    events = [(label, test_adressa.T0 + m * 60, test_adressa.URL.format(a)) for d, _, label, m, a, _ in test_adressa.EVENTS
              if a and d != "20170103"]
    counts = reference(events, repeats="session", window_s=3600, min_sessions=2)[2]
    return ["adressa", "--input", str(folder), "--days", "2", "--min-sessions-per-window", "2",
            "--rare-category-count", "2"], counts


def _events(root):
    path = root / "log.csv"
    path.write_text("user,item,ts,category,price\n" + "".join(f"{u},{i},{t},{c},{p}\n" for u, i, t, c, p, _ in test_events.ROWS))
    epoch = test_events._epoch
    counts = reference([(label, epoch(t), i) for _, i, t, _, _, label in test_events.ROWS], min_sessions=2)[2]
    return ["events", "--input", str(path), "--user-col", "user", "--item-col", "item", "--time-col", "ts",
            "--categorical-cols", "category", "--continuous-cols", "price", "--timezone", "Europe/Oslo"], counts


DATASETS = {"rees46": _rees46, "yoochoose": _yoochoose, "g1": _g1, "adressa": _adressa, "events": _events}
# the features each data set's catalog rebuilds from interaction times
REBUILT = {
    "rees46": {"sess_et_hour_sin_seq", "sess_et_hour_cos_seq", "sess_et_dayofweek_sin_seq", "sess_et_dayofweek_cos_seq",
               "sess_prod_recency_days_log_norm_seq"},
    "yoochoose": {"timestamp_hour_sin-list", "timestamp_hour_cos-list", "timestamp_wd_sin-list", "timestamp_wd_cos-list",
                  "timestamp_age_days_norm-list"},
    "g1": {"hour_sin", "hour_cos", "weekday_sin", "weekday_cos"},
    "adressa": {"hour_sin", "hour_cos", "weekday_sin", "weekday_cos"},
    "events": {"hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "item_age_days_log_norm"},
}
TIME_UNIT_S = {"rees46": 1.0, "yoochoose": 1.0, "g1": 0.001, "adressa": 0.001, "events": 1.0}


@pytest.fixture(scope="module", params=list(DATASETS))
def prepared(request, tmp_path_factory):
    name = request.param
    root = tmp_path_factory.mktemp(f"catalog-{name}")
    args, counts = DATASETS[name](root)
    out = root / "out"
    assert main(["prepare", *args, "--output", str(out), "--quiet"]) == 0
    return name, out, counts


def _events_written(out, schema) -> pl.DataFrame:
    """Every interaction of the distinct sessions of every window, in window / written / position order
    (sessions by start, then id: the order of a split that holds them all)."""
    frames = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and p.name.isdigit()):
        splits = [pl.read_parquet(folder / f"{s}.parquet") for s in ("train", "valid", "test")]
        df = pl.concat(splits).unique("session_id", keep="first", maintain_order=True)
        if df.height > splits[0].height:  # 80-10-10 (REES46 here: whole seconds, so session_start is exact)
            df = df.sort("session_start", "session_id", maintain_order=True)
        lists = [c for c in df.columns if df[c].dtype == pl.List]
        frames.append(df.explode(lists).drop([c for c in df.columns if c not in lists]))
    return pl.concat(frames)


def test_catalog_round_trip_counts_item_table_and_rules(prepared):
    name, out, raw_counts = prepared
    schema = load_schema(out / "schema.pbtxt")
    catalog = Catalog.load(out)
    item = schema.item_id.name
    categoricals = [f.name for f in schema.features if f.is_categorical and not f.is_item_id]
    assert set(catalog.maps) == {item, *categoricals}
    assert set(catalog_files(out)) == {p.name for p in out.iterdir() if p.name.startswith("catalog")}
    events = _events_written(out, schema)

    # raw -> id -> raw, for the item and every categorical; counts = interactions written
    for feature, m in catalog.maps.items():
        table = pq.read_table(out / map_file(feature))
        assert table.num_rows == len(m.to_id) > 0
        written = Counter(events[feature].to_list())
        for raw, i, count in zip(*(table.column(c).to_pylist() for c in ("raw", "id", "count"))):
            assert m.lookup(raw) == i and m.raw[i] == raw
            assert m.lookup(str(raw)) == i  # "42" and 42 are the same original id
            assert count == written[i], (feature, raw)
        first = 2 if m.unknown_id else 1  # 1 = empty or rare values, when the feature has such an id
        assert sorted(table.column("id").to_pylist()) == list(range(first, first + table.num_rows))
    assert {catalog.item.raw[i]: int(catalog.item.count[i]) for i in range(1, catalog.n_items + 1)} == dict(raw_counts)
    assert catalog.decode(events[item].to_list()) == [catalog.item.raw[i] for i in events[item].to_list()]
    assert catalog.n_items == schema.n_items - 1

    # the item table: each side feature at the item's latest interaction
    table = pl.read_parquet(out / ITEMS)
    assert table["id"].to_list() == list(range(1, catalog.n_items + 1))
    time_name = next(f.name for f in schema.features if f.is_time)
    side = [f.name for f in schema.model_features(True) if not f.is_item_id]
    assert set(table.columns) == {"id", "raw", "count", "first_seen", "last_seen", *side}
    last = {}
    for row in events.iter_rows(named=True):
        if row[item] not in last or row[time_name] >= last[row[item]][time_name]:
            last[row[item]] = row
    for row in table.iter_rows(named=True):
        expected = last[row["id"]]
        assert row["last_seen"] == pytest.approx(expected[time_name] * TIME_UNIT_S[name])
        for f in side:
            assert row[f] == pytest.approx(expected[f], abs=1e-6), (row["id"], f)

    # the serving rules give the written values from the interaction times
    assert set(catalog.rules) == REBUILT[name]
    times = events[time_name].to_numpy() * TIME_UNIT_S[name]
    first = catalog.first_seen[events[item].to_numpy()]
    for feature, rule in catalog.rules.items():
        np.testing.assert_allclose(rebuild(rule, times, first), events[feature].to_numpy(), atol=2e-6, err_msg=feature)


def test_encode_builds_the_written_inputs_of_a_session(prepared):
    """A written session, given as original ids and times, encodes to its written model inputs: rebuilt
    from the times, or the item table's values (the items' latest interactions)."""
    name, out, _ = prepared
    schema = load_schema(out / "schema.pbtxt")
    catalog = Catalog.load(out)
    inputs = [f.name for f in schema.model_features(True)]
    item, time_name = schema.item_id.name, next(f.name for f in schema.features if f.is_time)
    row = pl.read_parquet(out / "0001" / "train.parquet").row(0, named=True)
    raw = catalog.decode(row[item])
    times = [t * TIME_UNIT_S[name] for t in row[time_name]]
    enc = catalog.encode(raw + ["no such item"], inputs, times + [times[-1]])
    assert enc.ids.tolist() == row[item] and enc.unknown == ["no such item"]
    for f in catalog.rules:
        np.testing.assert_allclose(enc.features[f], row[f], atol=2e-6)
    events = _events_written(out, schema)
    checked = 0
    for f in inputs:
        if f != item and f not in catalog.rules:
            for i, value, got in zip(row[item], row[f], enc.features[f].tolist()):
                if events.filter(pl.col(item) == i)[f].n_unique() == 1:  # the item's value never changes
                    assert got == pytest.approx(value, abs=1e-6), (f, i)
                    checked += 1
    if name == "rees46":  # a product's category, brand and price never change there: every value is checked
        assert checked == len(row[item]) * (len(inputs) - 1 - len(catalog.rules))


def test_latest_interaction_of_each_item_and_its_ties():
    """Within a window the last by time, then by place; across windows the latest time, the later window
    on a tie; an item a window does not have keeps its row; empty values are values."""
    w1 = pl.DataFrame({"item": [1, 2, 1, 2, 3], "t": [5.0, 7.0, 5.0, 6.0, 1.0], "_place": [3, 0, 1, 4, 2],
                       "cat": [10, 20, 11, 21, 30], "x": [0.1, 0.2, None, 0.4, 0.5]})
    first = latest_per_item(w1, "item", ["t", "_place"]).drop("_place").sort("item")
    assert first.rows() == [(1, 5.0, 10, 0.1), (2, 7.0, 20, 0.2), (3, 1.0, 30, 0.5)]
    w2 = pl.DataFrame({"item": [1, 2, 4], "t": [5.0, 6.5, 2.0], "cat": [12, 22, 40], "x": [None, 0.6, 0.7]})
    latest = LatestItems("item", "t")
    latest.add(first)
    latest.add(w2)
    assert latest.table().rows() == [(1, 5.0, 12, None), (2, 7.0, 20, 0.2), (3, 1.0, 30, 0.5), (4, 2.0, 40, 0.7)]


def test_on_a_time_tie_the_item_table_takes_the_session_written_later(tmp_path):
    """s2 starts first, so s1 is written after it: s1's colour of the item both have at the same time wins,
    whatever order the sessions had in the input or in prepare's buckets."""
    (tmp_path / "log.csv").write_text("session,item,ts,colour\ns1,x,1000,red\ns1,y,1010,red\n"
                                      "s2,z,990,blue\ns2,x,1000,blue\n")
    out = tmp_path / "out"
    assert main(["prepare", "events", "--input", str(tmp_path / "log.csv"), "--session-col", "session", "--item-col", "item",
                 "--time-col", "ts", "--categorical-cols", "colour", "--output", str(out), "--quiet"]) == 0
    catalog = Catalog.load(out)
    row = pl.read_parquet(out / ITEMS).filter(pl.col("id") == catalog.item.lookup("x"))
    assert catalog.maps["colour"].raw[row["colour"].item()] == "red"


def test_the_item_table_takes_the_latest_time_even_from_an_earlier_window(tmp_path):
    """Day 1's session a runs past midnight: its x at 00:10 on day 2 is later than day 2's x at 00:05 (and
    day 3 has no x), so the item table keeps a's colour, found in the earlier window; y's latest time is
    shared by b and c, which start at the same time: c, written after b, wins; z's is on day 3."""
    day = 86400
    rows = [("a", "x", day - 600, "red"), ("a", "x2", day - 300, "red"), ("a", "x", day + 600, "red"),
            ("b", "x", day + 300, "blue"), ("b", "y", day + 900, "blue"), ("c", "z", day + 300, "green"),
            ("c", "y", day + 900, "green"), ("d", "z", 2 * day + 60, "grey"), ("d", "v", 2 * day + 90, "grey")]
    rows += [(f"f{t}-{i}", item, t + i + dt, "grey") for i in range(3) for t in (10, day + 10, 2 * day + 10)
             for item, dt in (("w", 0), ("w2", 5))]  # filler: three sessions a day
    (tmp_path / "log.csv").write_text("session,item,ts,colour\n" + "".join(f"{s},{i},{t},{c}\n" for s, i, t, c in rows))
    out = tmp_path / "out"
    assert main(["prepare", "events", "--input", str(tmp_path / "log.csv"), "--session-col", "session", "--item-col", "item",
                 "--time-col", "ts", "--categorical-cols", "colour", "--repeats", "keep", "--split", "all+50-50",
                 "--output", str(out), "--quiet"]) == 0
    catalog = Catalog.load(out)
    table = pl.read_parquet(out / ITEMS)
    for item, colour, last_seen in (("x", "red", day + 600), ("y", "green", day + 900), ("z", "grey", 2 * day + 60)):
        row = table.filter(pl.col("id") == catalog.item.lookup(item))
        assert (catalog.maps["colour"].raw[row["colour"].item()], row["last_seen"].item()) == (colour, last_seen), item


def test_original_ids_keep_their_type_and_text_of_plain_integers_becomes_numbers():
    assert _raw(pl.Series(["1004856", "12", None])).to_list() == [1004856, 12, None]
    assert _raw(pl.Series(["007", "12"])).to_list() == ["007", "12"]  # not plain: "007" is not 7
    assert _raw(pl.Series(["a1", "12"])).to_list() == ["a1", "12"]
    assert _raw(pl.Series([5, 6], dtype=pl.Int32)).dtype == pl.Int64


def test_hour_rule_uses_the_timezone():
    """The events rule carries --timezone: 2024-03-10 10:00 UTC is 11:00 in Oslo."""
    rule = {"from": "time", "part": "hour", "fn": "sin", "timezone": "Europe/Oslo", "fractional_hour": False}
    t = datetime(2024, 3, 10, 10, tzinfo=timezone.utc).timestamp()
    assert rebuild(rule, np.array([t]), np.zeros(1))[0] == pytest.approx(np.sin((11 + 1e-8) / 24 * 2 * np.pi), abs=1e-7)


def test_an_item_age_of_no_spread_is_rebuilt_as_prepare_writes_it():
    """prepare standardises a constant to 0; serving kept ``x - mean`` (QA helper-69)."""
    from sessrec.data.catalog import age_rule

    rule = age_rule(86_400_000.0, False, 0.693, 0.0)
    assert rebuild(rule, np.array([86_400.0, 0.0]), np.zeros(2)).tolist() == [0.0, 0.0]
