"""Time-window folders: ``DATA/0001/{train,valid,test}.parquet``, ``DATA/0002/...``."""

from __future__ import annotations

import re
from pathlib import Path

from sessrec.errors import SessrecError, listed

SPLITS = ("train", "valid", "test")


def window_dir(data_path: str | Path, index: int, pad_digits: int = 4) -> Path:
    return Path(data_path) / str(index).zfill(pad_digits)


def window_file(data_path: str | Path, index: int, split: str, pad_digits: int = 4) -> Path:
    """Path of one split of one window; a clear error if it is missing."""
    folder = window_dir(data_path, index, pad_digits)
    if not folder.is_dir():
        raise SessrecError(f"window folder not found: {folder} (window {index}, --time-window-folder-pad-digits {pad_digits})")
    path = folder / f"{split}.parquet"
    if not path.is_file():
        raise SessrecError(f"missing file {path} (window {index}, split '{split}')")
    return path


def data_folder(data_path: str | Path) -> Path:
    """``data_path``, checked to be a folder (of window folders)."""
    root = Path(data_path)
    if root.is_file():
        raise SessrecError(f"data path {root} is a file: give the folder of the window folders (0001/, 0002/, ...), "
                           "e.g. what `sessrec prepare` wrote")
    if not root.is_dir():
        raise SessrecError(f"data path not found: {root}")
    return root


def discover_windows(data_path: str | Path, pad_digits: int = 4) -> list[int]:
    """Sorted indices of the window folders under ``data_path`` (folder names of ``pad_digits`` digits)."""
    root = data_folder(data_path)
    pattern = re.compile(rf"^\d{{{pad_digits}}}$")
    found = sorted(int(p.name) for p in root.iterdir() if p.is_dir() and pattern.match(p.name))
    if not found:
        raise SessrecError(
            f"no window folders in {root}: expected sub-folders named by a {pad_digits}-digit index (e.g. {'1'.zfill(pad_digits)}/train.parquet)"
        )
    return found


def resolve_window_range(data_path: str | Path, start: int, final: int | None, pad_digits: int = 4) -> tuple[int, int]:
    """Check that windows ``start..final`` exist and return ``(start, final)``; ``final`` defaults to the last one."""
    found = discover_windows(data_path, pad_digits)
    final = found[-1] if final is None else final
    if start >= final:
        raise SessrecError(
            f"start_time_window_index ({start}) must be smaller than final_time_window_index ({final}); windows found in {data_path}: {found[0]}..{found[-1]}"
        )
    missing = [i for i in range(start, final + 1) if i not in set(found)]
    if missing:
        names = listed([str(i).zfill(pad_digits) for i in missing], 5)
        hint = ("" if final <= found[-1] else f"; lower final_time_window_index to {found[-1]}" if start < found[-1]
                else f"; the data's windows are {found[0]}..{found[-1]}: choose start and final among them")
        raise SessrecError(f"window folder(s) {names} missing in {data_path} (windows found: {found[0]}..{found[-1]}){hint}")
    return start, final
