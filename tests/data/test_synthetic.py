import numpy as np
import pyarrow.parquet as pq
import pytest

from sessrec.data.loader import load_sessions
from sessrec.data.synthetic import small_cardinalities, write_realistic_windows, write_synthetic_windows
from sessrec.data.windows import discover_windows
from sessrec.schema import load_schema
from tests.conftest import DATA


@pytest.mark.parametrize("name", ["rees46", "yoochoose", "g1", "adressa"])
def test_windows_in_each_paper_schema_load_cleanly(tmp_path, name):
    schema = small_cardinalities(load_schema(DATA / "schemas" / f"{name}_schema.pbtxt"), 50)
    assert schema.n_items == 50 and all(f.cardinality <= 50 for f in schema.features if f.dtype == "int" and f.cardinality)
    out = write_synthetic_windows(tmp_path / name, schema, n_windows=2, sessions_per_window=40, seed=3)
    assert discover_windows(out) == [1, 2]
    sizes = {split: pq.read_metadata(out / "0001" / f"{split}.parquet").num_rows for split in ("train", "valid", "test")}
    assert sizes == {"train": 32, "valid": 4, "test": 4}
    data = load_sessions(out / "0002" / "train.parquet", schema, 20)  # the loader's checks: ids, lengths, finite values
    assert set(data.features) == set(schema.names)
    lengths = data.lengths.numpy()
    assert lengths.min() >= 2 and lengths.max() <= 20
    for f in schema.features:
        values = data.features[f.name][data.items != 0].numpy()
        if f.is_item_id or (f.dtype == "int" and f.cardinality):
            assert values.min() >= 1 and values.max() < f.cardinality
        elif f.is_time:
            per_session = data.features[f.name].numpy()
            assert all(np.all(np.diff(row[:n]) >= 0) for row, n in zip(per_session, lengths))


def test_same_seed_same_files(tmp_path):
    schema = small_cardinalities(load_schema(DATA / "schemas" / "rees46_schema.pbtxt"), 30)
    a = write_synthetic_windows(tmp_path / "a", schema, 1, 20, seed=1)
    b = write_synthetic_windows(tmp_path / "b", schema, 1, 20, seed=1)
    assert pq.read_table(a / "0001" / "train.parquet").equals(pq.read_table(b / "0001" / "train.parquet"))


def _lists(path, column):
    return pq.read_table(path, columns=[column]).column(column).to_pylist()


def test_realistic_windows_have_the_awkward_properties_of_click_logs(realistic_data):
    schema = load_schema(realistic_data / "schema.pbtxt")
    assert discover_windows(realistic_data) == [1, 2, 3, 4] and schema.n_items == 301
    sizes = {w: {s: pq.read_metadata(realistic_data / f"000{w}" / f"{s}.parquet").num_rows for s in ("train", "valid", "test")}
             for w in (1, 2, 3, 4)}
    assert sizes[2] == {"train": 3, "valid": 2, "test": 2} and sizes[3]["train"] == 360  # a tiny and a large window
    sessions = [s for w in (1, 2, 3, 4) for split in ("train", "valid", "test")
                for s in _lists(realistic_data / f"000{w}" / f"{split}.parquet", "item_id")]
    lengths = np.array([len(s) for s in sessions])
    assert 0.05 < np.mean(lengths == 1) < 0.2 and np.mean((lengths >= 2) & (lengths <= 3)) > 0.5
    assert (lengths > 20).sum() >= 10 and lengths.max() > 30
    assert sum(any(a == b for a, b in zip(s, s[1:])) for s in sessions) > 50  # consecutive repeats
    assert sum(any(x in s[:i - 1] and x != s[i - 1] for i, x in enumerate(s) if i >= 2) for s in sessions) > 20  # returns
    counts = np.bincount(np.concatenate(sessions), minlength=301)
    assert counts[np.argsort(-counts)[:30]].sum() > 0.4 * counts.sum()  # the top 10 % of items take > 40 % of clicks

    trained = {i for w in (1, 2, 3) for s in _lists(realistic_data / f"000{w}" / "train.parquet", "item_id") for i in s}
    for split in ("valid", "test"):
        rows = _lists(realistic_data / "0004" / f"{split}.parquet", "item_id")
        assert any(s[-1] == 300 for s in rows) and any(300 in s[:-1] for s in rows)  # the largest id, never trained on
        assert any(len(s) > 20 for s in rows)
        assert len({i for s in rows for i in s} - trained) >= 2
    assert 300 not in trained

    side = {c: np.concatenate([np.asarray(x) for x in _lists(realistic_data / "0003" / "train.parquet", c)])
            for c in ("category", "device", "price", "item_age_days", "timestamp")}
    assert 0.02 < np.mean(side["category"] == 1) < 0.3 and np.mean(side["device"] == 1) > 0.1  # "unknown" / "empty"
    assert 0 < np.mean(side["device"] == 4) < 0.05 and np.abs(side["price"]).max() > 20 and side["item_age_days"].max() > 100
    times = _lists(realistic_data / "0003" / "train.parquet", "timestamp")
    assert all(np.all(np.diff(t) >= 0) for t in times) and min(t[0] for t in times) > 1.5e9
    data = load_sessions(realistic_data / "0004" / "valid.parquet", schema, 20)  # the loader's checks pass
    assert int(data.items.max()) == 300 and set(data.features) == set(schema.names)


def test_realistic_windows_same_seed_same_files(tmp_path):
    write_realistic_windows(tmp_path / "a", sizes=(20, 5), seed=3)
    write_realistic_windows(tmp_path / "b", sizes=(20, 5), seed=3)
    for split in ("train", "valid", "test"):
        assert pq.read_table(tmp_path / "a" / "0002" / f"{split}.parquet").equals(pq.read_table(tmp_path / "b" / "0002" / f"{split}.parquet"))
