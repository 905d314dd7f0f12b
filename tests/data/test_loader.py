import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from sessrec.data.loader import (
    SessionTensors,
    check_sessions,
    iterate_batches,
    load_sessions,
    split_last_item,
)
from sessrec.errors import SessrecError
from sessrec.schema import CATEGORICAL, CONTINUOUS, ITEM_ID, TIME, FeatureSpec, Schema
from tests.conftest import write_sessions

SCHEMA = Schema([
    FeatureSpec("item", "int", (ITEM_ID, CATEGORICAL), 1, 9),
    FeatureSpec("cat", "int", (CATEGORICAL,), 1, 3),
    FeatureSpec("price", "float", (CONTINUOUS,)),
])


def _write(tmp_path, **cols):
    base = {"item": [[1, 2, 3], [4, 5]], "cat": [[1, 1, 2], [3, 3]], "price": [[0.1, 0.2, 0.3], [1.0, 2.0]]}
    base.update(cols)
    return write_sessions(tmp_path / "train.parquet", base)


def test_pads_right_and_keeps_first_items(tmp_path):
    path = _write(tmp_path, item=[[1, 2, 3], [4, 5]])
    data = load_sessions(path, SCHEMA, max_len=2)
    assert data.items.tolist() == [[1, 2], [4, 5]]  # the first 2 items are kept
    data = load_sessions(path, SCHEMA, max_len=4)
    assert data.items.tolist() == [[1, 2, 3, 0], [4, 5, 0, 0]]
    assert data.features["price"].dtype == torch.float32
    assert data.features["price"][1].tolist() == [1.0, 2.0, 0.0, 0.0]
    assert data.lengths.tolist() == [3, 2]


@pytest.mark.parametrize("cols,match", [
    ({"item": [[1, 2, 10], [4, 5]]}, r"row 0: item id 10 in 'item' is >= the schema cardinality 10"),
    ({"item": [[1, -2, 3], [4, 5]]}, r"row 0: item id -2 in 'item' is negative"),
    ({"item": [[1, 2, 3], [0, 5]]}, r"row 1: item id 0 in .item. is reserved for padding"),
    ({"cat": [[1, 1, 2], [3, 4]]}, r"row 1: categorical feature 'cat' has value 4 >= its cardinality 4"),
    ({"cat": [[1, 1], [3, 3]]}, r"row 0: list column 'cat' has 2 values but 'item' has 3"),
    ({"price": [[0.1, float("nan"), 0.3], [1.0, 2.0]]}, r"row 0: continuous feature 'price' has a non-finite value \(nan\)"),
    ({"price": [[0.1, 0.2, 0.3], [1.0, float("inf")]]}, r"row 1: continuous feature 'price' has a non-finite value \(inf\)"),
    ({"price": [[0.1, 0.2, 0.3], [float("-inf"), 2.0]]}, r"row 1: continuous feature 'price' has a non-finite value \(-inf\)"),
    ({"price": [[0.1, 0.2, 0.3], [1.0]]}, r"row 1: list column 'price' has 1 values but 'item' has 2"),
    ({"cat": [[1, 1, -1], [3, 3]]}, r"row 0: categorical feature 'cat' has a negative value -1"),
    ({"item": [1, 2]}, r"column 'item' must be a list column"),
    ({"item": [[1, 2, 3], []]}, r"row 1: session has no items"),
])
@pytest.mark.parametrize("read", ["load", "check"])
def test_bad_input_is_named(tmp_path, cols, match, read):
    """The same checks, the same message, whether the file is loaded or only checked (before a run)."""
    path = _write(tmp_path, **cols)
    with pytest.raises(SessrecError, match=match) as e:
        if read == "load":
            load_sessions(path, SCHEMA, max_len=20, window=3)
        else:
            check_sessions(path, SCHEMA, window=3)
    assert "train.parquet" in str(e.value) and "window 3" in str(e.value)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_time_is_named(tmp_path, bad):
    """A NaN time made the kNN baselines' time weights NaN and every score 0, exit 0 (QA helper-44)."""
    schema = Schema([*SCHEMA.features, FeatureSpec("ts", "float", (TIME,))])
    path = _write(tmp_path, ts=[[1.7e9, 1.7e9 + 5, 1.7e9 + 9], [1.7e9, bad]])
    for read in (lambda: check_sessions(path, schema, window=2), lambda: load_sessions(path, schema, max_len=5)):
        with pytest.raises(SessrecError, match=rf"row 1: time feature 'ts' has a non-finite value \({bad}\)"):
            read()


def test_a_huge_unsigned_id_is_named_as_it_is(tmp_path):
    """2**64 - 1 in a uint64 column was reported as the negative id -1 (QA helper-44)."""
    path = tmp_path / "train.parquet"
    pq.write_table(pa.table({"item": pa.array([[1, 2**64 - 1], [3]], pa.list_(pa.uint64())), "cat": [[1, 1], [2]],
                             "price": [[0.1, 0.2], [0.3]]}), path)
    with pytest.raises(SessrecError, match=rf"row 0: item id {2**64 - 1} in 'item' is >= the schema cardinality 10"):
        check_sessions(path, SCHEMA)


def test_check_reads_what_load_reads(tmp_path):
    path = _write(tmp_path, price=[[0.1, float("nan"), 0.3], [1.0, 2.0]])
    assert check_sessions(path, SCHEMA, features=[SCHEMA["cat"]]) == 2  # the NaN is in a feature not read
    assert len(load_sessions(path, SCHEMA, max_len=5, features=[SCHEMA["cat"]])) == 2
    with pytest.raises(SessrecError, match="non-finite"):
        check_sessions(path, SCHEMA)


@pytest.mark.parametrize("read", [lambda path, **kw: load_sessions(path, SCHEMA, max_len=20, **kw),
                                  lambda path, **kw: check_sessions(path, SCHEMA, **kw)], ids=["load", "check"])
def test_missing_column_and_empty_file(tmp_path, read):
    path = write_sessions(tmp_path / "a.parquet", {"item": [[1, 2]], "cat": [[1, 1]]})
    with pytest.raises(SessrecError, match=r"a.parquet \(window 2\): column\(s\) price of the schema are missing"):
        read(path, window=2)
    # only the features asked for are needed: an item-id-only model reads the same file fine
    assert load_sessions(path, SCHEMA, max_len=20, features=[SCHEMA["item"], SCHEMA["cat"]]).items.tolist() == [[1, 2] + [0] * 18]
    empty = write_sessions(tmp_path / "b.parquet", {"item": [], "cat": [], "price": []},
                           {"item": pa.list_(pa.int64()), "cat": pa.list_(pa.int64()), "price": pa.list_(pa.float32())})
    with pytest.raises(SessrecError, match="no sessions"):
        read(empty)
    with pytest.raises(SessrecError, match="cannot read parquet"):
        (tmp_path / "c.parquet").write_text("not parquet")
        read(tmp_path / "c.parquet")
    # a file whose footer reads but whose data pages are damaged: one line too, not pyarrow's traceback
    good = _write(tmp_path / "d")
    raw = bytearray(good.read_bytes())
    raw[4:40] = b"\xff" * 36
    (tmp_path / "e.parquet").write_bytes(bytes(raw))
    with pytest.raises(SessrecError, match=r"cannot read parquet file .*e.parquet \(window 5\)") as e:
        read(tmp_path / "e.parquet", window=5)
    assert "\n" not in str(e.value)


def test_batches_cover_everything_once():
    data = SessionTensors({"item": torch.arange(1, 11).view(10, 1)}, "item")
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))
    seen = torch.cat([b["item"] for b in iterate_batches(data, 3, order=order)])
    assert seen.flatten().tolist() == (order + 1).tolist()
    assert torch.cat([b["item"] for b in iterate_batches(data, 3, order=order, start=2)]).flatten().tolist() == (order[6:] + 1).tolist()
    assert len(list(iterate_batches(data, 3, drop_last=True))) == 3
    assert len(list(iterate_batches(data, 3))) == 4


def test_split_last_item():
    batch = {"item": torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]]), "cat": torch.tensor([[1, 2, 3, 0], [1, 2, 0, 0]])}
    prefix, targets = split_last_item(batch, "item")
    assert targets.tolist() == [7, 9]
    assert prefix["item"].tolist() == [[5, 6, 0, 0], [8, 0, 0, 0]]
    assert prefix["cat"].tolist() == [[1, 2, 0, 0], [1, 0, 0, 0]]
    assert batch["item"][0, 2] == 7  # the input batch is untouched


def test_timestamps_keep_full_precision(tmp_path):
    schema = Schema([FeatureSpec("item", "int", (ITEM_ID, CATEGORICAL), 1, 9), FeatureSpec("ts", "float", ("time",))])
    path = write_sessions(tmp_path / "t.parquet", {"item": [[1, 2]], "ts": [[1569888000.0, 1569888001.0]]})
    ts = load_sessions(path, schema, max_len=3).features["ts"]
    assert ts.dtype == torch.float64 and ts[0, 1].item() - ts[0, 0].item() == 1.0
