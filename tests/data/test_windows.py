import pytest

from sessrec.data.windows import discover_windows, resolve_window_range, window_file
from sessrec.errors import SessrecError


def _make(root, names):
    for n in names:
        (root / n).mkdir(parents=True)
        (root / n / "train.parquet").write_bytes(b"")


def test_discovery_and_range(tmp_path):
    _make(tmp_path, ["0001", "0002", "0003", "notes"])
    assert discover_windows(tmp_path) == [1, 2, 3]
    assert resolve_window_range(tmp_path, 1, None) == (1, 3)
    with pytest.raises(SessrecError, match="must be smaller"):
        resolve_window_range(tmp_path, 3, 3)
    with pytest.raises(SessrecError, match=r"0004 missing .*\(windows found: 1..3\); lower final_time_window_index to 3$"):
        resolve_window_range(tmp_path, 1, 4)
    with pytest.raises(SessrecError, match=r"0004, 0005 missing .*; the data's windows are 1..3: choose start and final "
                                           r"among them$"):  # lowering final alone cannot help
        resolve_window_range(tmp_path, 4, 5)
    with pytest.raises(SessrecError, match=r"folder\(s\) 0004, 0005, 0006, 0007, 0008 and 22 more missing"):
        resolve_window_range(tmp_path, 1, 30)


def test_pad_digits(tmp_path):
    _make(tmp_path, ["01", "02"])
    assert discover_windows(tmp_path, pad_digits=2) == [1, 2]
    with pytest.raises(SessrecError, match="4-digit"):
        discover_windows(tmp_path)


def test_missing_paths(tmp_path):
    with pytest.raises(SessrecError, match="data path not found"):
        discover_windows(tmp_path / "nope")
    (tmp_path / "events.csv").write_text("a,b\n")
    with pytest.raises(SessrecError, match=r"data path .*events.csv is a file: give the folder of the window folders"):
        discover_windows(tmp_path / "events.csv")
    _make(tmp_path, ["0001"])
    with pytest.raises(SessrecError, match=r"missing file .*0001/valid.parquet"):
        window_file(tmp_path, 1, "valid")
    with pytest.raises(SessrecError, match="window folder not found"):
        window_file(tmp_path, 2, "train")
