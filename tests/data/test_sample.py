import pyarrow.parquet as pq

from sessrec.data.sample import DEFAULTS, bundled_sample_path, generate_sample
from sessrec.schema import load_schema


def test_bundled_sample_matches_its_generator(tmp_path):
    """The parquet files shipped in the package are exactly what the generator writes."""
    out = tmp_path / "sample"
    generate_sample(out, **DEFAULTS)
    bundled = bundled_sample_path()
    assert load_schema(out / "schema.pbtxt").features == load_schema(bundled / "schema.pbtxt").features
    for window in sorted(p.name for p in bundled.iterdir() if p.is_dir()):
        for split in ("train", "valid", "test"):
            assert pq.read_table(out / window / f"{split}.parquet").equals(pq.read_table(bundled / window / f"{split}.parquet"))


def test_sample_layout():
    root = bundled_sample_path()
    schema = load_schema(root / "schema.pbtxt")
    t = pq.read_table(root / "0001" / "train.parquet")
    assert set(schema.names) <= set(t.column_names)
    lengths = [len(x) for x in t.column(schema.item_id.name).to_pylist()]
    assert min(lengths) >= 2 and max(lengths) <= 20
    items = t.column(schema.item_id.name).to_pylist()
    assert all(a != b for s in items for a, b in zip(s, s[1:]))  # no consecutive repeats
