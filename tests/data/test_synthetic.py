import numpy as np
import pyarrow.parquet as pq
import pytest

from sessrec.data.loader import load_sessions
from sessrec.data.synthetic import small_cardinalities, write_synthetic_windows
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
