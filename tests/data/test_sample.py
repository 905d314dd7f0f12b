import math

import pyarrow.parquet as pq
import pytest

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


def test_side_features_describe_the_items():
    """Category, brand and price are attributes of the item; time features follow the timestamps."""
    root = bundled_sample_path()
    t = pq.read_table(root / "0002" / "train.parquet").to_pydict()
    flat = {k: [x for s in v for x in s] for k, v in t.items() if k.endswith("_seq")}
    per_item = {}
    for i, *attrs in zip(flat["sess_pid_seq"], flat["sess_csid_seq"], flat["sess_ccid_seq"], flat["sess_bid_seq"],
                         flat["sess_price_log_norm_seq"]):
        assert per_item.setdefault(i, attrs) == attrs
    sub_to_cat = {}
    for sub, cat in zip(flat["sess_csid_seq"], flat["sess_ccid_seq"]):
        assert sub_to_cat.setdefault(sub, cat) == cat  # sub-categories nest in categories
    hours = [(ts - 1569888000) % 86400 / 3600 for ts in flat["sess_etime_seq"]]
    assert all(abs(math.sin(2 * math.pi * h / 24) - s) < 1e-3 for h, s in zip(hours, flat["sess_et_hour_sin_seq"]))
    # sessions mostly stay in one sub-category: that is what side information helps to see
    same = [a == b for s in t["sess_csid_seq"] for a, b in zip(s, s[1:])]
    assert sum(same) / len(same) > 0.5


def test_an_event_log_needs_sample_windows(tmp_path):
    from sessrec.data.sample import sample_event_log
    from sessrec.data.synthetic import write_realistic_windows
    from sessrec.errors import SessrecError

    with pytest.raises(SessrecError, match="no sample windows"):
        sample_event_log(tmp_path / "nowhere", tmp_path / "log.parquet")
    write_realistic_windows(tmp_path / "other")
    with pytest.raises(SessrecError, match="not a window of the sample data set"):
        sample_event_log(tmp_path / "other", tmp_path / "log.parquet")
