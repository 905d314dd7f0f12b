import argparse
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from sessrec.datasets import pipeline, raw
from sessrec.datasets.cli import parse_duration
from sessrec.datasets.features import gauss_rank_apply, gauss_rank_fit, gini
from sessrec.datasets.pipeline import Categorical, Options, Truncation, encoder, sessionize, split_indices
from sessrec.errors import SessrecError


def test_encoder_orders_by_frequency_with_an_unknown_slot():
    counts = pl.DataFrame({"c": ["x", "y", None, "0", "z", "w"], "n": [5, 7, 9, 9, 1, 7]})
    table, max_id = encoder(counts, Categorical("c", "c", unknown_slot=True, min_count=2, unknown_values=("0",)))
    assert dict(table.select("c", "id").iter_rows()) == {"w": 2, "y": 3, "x": 4}  # ties by value; null, "0", rare z → 1
    assert max_id == 4
    table, max_id = encoder(counts.filter(pl.col("c").is_not_null()), Categorical("c", "c"))
    assert table["id"].to_list() == [1, 2, 3, 4, 5] and max_id == 5
    assert encoder(counts.clear(), Categorical("c", "c", unknown_slot=True))[1] == 1  # only the unknown id


def _events(rows):
    return pl.DataFrame(rows, schema=["_row", "session", "user", "t", "item"], orient="row")


@pytest.mark.parametrize("repeats,expected", [
    ("consecutive", {"s1": ["a", "b", "a"], "s2": ["a", "c"]}),
    ("session", {"s1": ["a", "b"], "s2": ["a", "c"]}),
    ("user", {"s1": ["a", "b"], "s2": ["c"]}),
    ("keep", {"s1": ["a", "a", "b", "a"], "s2": ["a", "c"]}),
])
def test_sessionize_repeat_modes(repeats, expected):
    df = _events([(0, "s1", "u", 0, "a"), (1, "s1", "u", 1, "a"), (2, "s1", "u", 2, "b"), (3, "s1", "u", 3, "a"),
                  (4, "s2", "u", 10, "a"), (5, "s2", "u", 11, "c")])
    out, _ = sessionize(df, Options(output=None, repeats=repeats, min_session_length=1))
    got = {s: g["item"].to_list() for (s,), g in out.group_by("session", maintain_order=True)}
    assert got == expected


def test_sessionize_gap_truncation_and_windows():
    minute = 60_000
    rows = [(i, None, "u", t * minute, f"i{i}") for i, t in enumerate([0, 10, 45, 46, 47, 48, 60 * 24 - 1, 60 * 24 + 5])]
    out, cut = sessionize(_events(rows), Options(output=None, session_gap_ms=30 * minute, max_session_length=3))
    sessions = [g["item"].to_list() for _, g in out.group_by("session", maintain_order=True)]
    assert sessions == [["i0", "i1"], ["i2", "i3", "i4"], ["i6", "i7"]]  # cut after 35 min idle, first 3 kept
    assert out["wkey"].unique().to_list() == [0]  # the last session starts at 23:59 of day 0
    assert out["pos"].to_list() == [0, 1, 0, 1, 2, 0, 1]
    assert cut == Truncation(sessions=1, events=1, longest=4, longest_id="u")  # i2..i5: one left out


def test_split_recipes():
    rng = np.random.default_rng(0)
    s = split_indices(20, "80-10-10", rng)
    assert [len(s[k]) for k in ("train", "valid", "test")] == [16, 2, 2]
    assert sorted(np.concatenate(list(s.values()))) == list(range(20))
    s = split_indices(3, "80-10-10", rng)
    assert all(len(v) == 1 for v in s.values())
    s = split_indices(25, "all+10-10", rng)
    assert len(s["train"]) == 25 and len(s["valid"]) == len(s["test"]) == 2 and not set(s["valid"]) & set(s["test"])
    s = split_indices(5, "all+50-50", rng)
    assert len(s["valid"]) == 2 and len(s["test"]) == 3 and sorted([*s["valid"], *s["test"]]) == list(range(5))
    again = split_indices(5, "all+50-50", np.random.default_rng(0))
    assert again["valid"].tolist() == split_indices(5, "all+50-50", np.random.default_rng(0))["valid"].tolist()


def test_gini_and_gauss_rank():
    assert gini(np.array([5, 5, 5])) == 0.0
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)  # (n - 1) / n for one item taking everything
    values = np.array([3.0, 1.0, 2.0, 2.0, 100.0])
    out = gauss_rank_apply(values, gauss_rank_fit(values))
    assert out[4] == pytest.approx(-out[1]) and out[2] == out[3] and np.all(np.diff(out[[1, 2, 0, 4]]) > 0)
    assert gauss_rank_apply(np.array([7.0]), gauss_rank_fit(np.array([7.0])))[0] == 0.0


def test_parse_duration():
    assert parse_duration("30m") == 1_800_000 and parse_duration("1h") == 3_600_000 and parse_duration("90") == 90_000
    assert parse_duration("1.5ms") == 2 and parse_duration("0.0015s") == 2 and parse_duration("1.5h") == 5_400_000
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration("soon")


def test_csv_blocks_never_cut_a_quoted_field(tmp_path, monkeypatch):
    monkeypatch.setattr(raw, "CHUNK_BYTES", 16)  # many blocks, some ending inside the quoted newline
    path = tmp_path / "x.csv"
    rows = [("1", 'he said "hi"\nthen left'), ("2", "plain"), ("3", "a,b")]
    path.write_text("id,text\n" + "".join(f'{i},"{t.replace(chr(34), chr(34) * 2)}"\n' for i, t in rows))
    got = pl.concat(raw.csv_batches(path, ["id", "text"], ["id", "text"]))
    assert list(zip(got["id"], got["text"])) == rows
    assert [raw.line_number(n, True) for n in got[raw.LINE]] == [2, 4, 5]  # the first row spans lines 2-3


def test_windows_at_a_time_bounded_by_the_largest_windows_events():
    """Step 4 holds as many windows as fit WINDOW_EVENTS_AT_ONCE (two at least, four at most)."""
    budget = pipeline.WINDOW_EVENTS_AT_ONCE
    assert pipeline.window_workers([10, 20]) == pipeline.MAX_WINDOW_WORKERS
    assert pipeline.window_workers([10, budget // 3]) == 3
    assert pipeline.window_workers([budget, 5]) == 2
    assert pipeline.window_workers([10 * budget]) == 2


def test_session_store_reads_back_each_window_and_the_kept_windows_events(tmp_path):
    """Two buckets holding windows 5, 6, 7 and 5, 7: a window's sessions and events come back bucket after
    bucket, and the fit sees the events of the kept windows only (window 6, in the middle, dropped), window
    after window."""
    store = pipeline.SessionStore(tmp_path)
    ids = iter(range(100))

    def bucket(windows: list[tuple[int, list[int]]]) -> tuple[pl.DataFrame, pl.DataFrame]:
        rows = [(f"s{next(ids)}", wkey, len(items)) for wkey, items in windows]
        rows_df = pl.DataFrame(rows, schema=["session", "wkey", "size"], orient="row").with_columns(
            pl.col("session").cast(pl.Binary), start=pl.col("wkey") * 10, size=pl.col("size").cast(pl.get_index_type()))
        events = pl.DataFrame({"item": [i for _, items in windows for i in items]}).with_columns(
            label=pl.lit("x").cast(pl.Binary))
        return rows_df, events

    store.write(0, *bucket([(5, [1, 2]), (5, [3]), (6, [4, 5, 6]), (7, [7, 8])]))
    store.write(1, *bucket([(5, [9]), (7, [10, 11]), (7, [12])]))
    assert store.counts() == {5: [3, 4], 6: [1, 3], 7: [3, 5]}
    rows, events = store.read(7)
    assert rows["size"].to_list() == [2, 2, 1] and events["item"].to_list() == [7, 8, 10, 11, 12]
    assert rows["session"].dtype == pl.Binary and events["label"].to_list() == [b"x"] * 5
    assert store.events([5, 7]).collect()["item"].to_list() == [1, 2, 3, 9, 7, 8, 10, 11, 12]  # window-major
    assert store.events([6]).select("item").collect()["item"].to_list() == [4, 5, 6]
    assert store.events([5, 6, 7]).filter(pl.col("item") > 3).head(4).collect()["item"].to_list() == [9, 4, 5, 6]
    assert sorted(store.events_any_order([5, 7]).collect()["item"].to_list()) == [1, 2, 3, 7, 8, 9, 10, 11, 12]
    assert store.events_any_order([5, 6, 7]).collect()["item"].to_list() == list(range(1, 13))


def test_integer_text_only_for_plain_integers(tmp_path):
    """Item ids read as text are carried as integers only when every one is an integer written plainly."""
    def buckets(values, dtype=pl.Binary) -> Path:
        folder = tmp_path / f"b{len(list(tmp_path.iterdir()))}"
        (folder / "00000" / "_bucket=0").mkdir(parents=True)
        pl.DataFrame({"item": pl.Series(values).cast(dtype)}).write_ipc(folder / "00000" / "_bucket=0" / "0.ipc")
        return folder

    assert pipeline.integer_text(buckets(["1004856", "12", None, "-3"]), "item")
    for odd in ("007", "+5", " 5", "5.0", "99999999999999999999", "http://x/1.html", "-0"):
        assert not pipeline.integer_text(buckets(["12", odd]), "item"), odd
    assert not pipeline.integer_text(buckets([12, 13], pl.Int64), "item")  # integers already


def test_integer_text_items_give_the_outputs_of_text_items(tmp_path, monkeypatch):
    """Items "9", "10", "100" clicked equally often take their ids in the order of their text ("10" < "100" < "9"),
    carried as integers or not: every output file is the same."""
    rows = [(f"s{k}", item, 100 * k + j) for k in range(12) for j, item in enumerate(["9", "10", "100", str(200 + k)])]
    path = tmp_path / "log.csv"
    path.write_text("session,item,ts\n" + "".join(f"{s},{i},{t}\n" for s, i, t in rows))
    args = ["prepare", "events", "--input", str(path), "--session-col", "session", "--item-col", "item", "--time-col",
            "ts", "--repeats", "keep", "--quiet", "--output"]
    from sessrec.cli import main

    assert main([*args, str(tmp_path / "int")]) == 0
    monkeypatch.setattr(pipeline, "integer_text", lambda buckets, column: False)
    assert main([*args, str(tmp_path / "text")]) == 0
    files = sorted(p.relative_to(tmp_path / "text") for p in (tmp_path / "text").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "int") for p in (tmp_path / "int").rglob("*") if p.is_file())
    for name in files:
        if name.suffix == ".parquet":
            assert pl.read_parquet(tmp_path / "int" / name).equals(pl.read_parquet(tmp_path / "text" / name)), name
        else:
            assert (tmp_path / "int" / name).read_bytes() == (tmp_path / "text" / name).read_bytes(), name
    items = pl.read_parquet(next((tmp_path / "int").glob("catalog-map-item*.parquet"))).sort("id")
    assert items["raw"].to_list()[:3] == [10, 100, 9]  # the text order of equal counts; the values as numbers


def test_an_option_that_needs_users_on_events_without_them_names_the_option(tmp_path):
    """The data set modules refuse such options before reading; the pipeline's own check names the option too."""
    events = pl.LazyFrame({"session": [1, 1], "item": [5, 6], "t": [0, 1]})
    for opts, option in ((pipeline.Options(tmp_path, repeats="user"), "--repeats user"),
                         (pipeline.Options(tmp_path, session_gap_ms=60_000), "cutting sessions after --session-gap")):
        with pytest.raises(SessrecError, match=f"^{option}.* needs each event's user, and this input has no user column"):
            pipeline._sink_buckets(events, tmp_path / "b", 1, pipeline._bucket_key(opts), pipeline._user_option(opts))
