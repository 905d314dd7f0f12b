"""File I/O: atomic writes (results and checkpoints are never left half-written), write errors
said in one line, and parquet reads."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sessrec.errors import SessrecError

if TYPE_CHECKING:
    import pyarrow as pa


def read_parquet(path: str | Path, columns: Sequence[str] | None = None) -> pa.Table:
    """One parquet file (all columns, or ``columns``). Through ``ParquetFile``, not ``pq.read_table``:
    that imports ``pyarrow.dataset`` and pandas (+48 MB resident memory, measured)."""
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as f:
        return f.read(columns=None if columns is None else list(columns))


# the disk is full, a quota or a file-size limit (ulimit -f) is reached: freeing space is the cure
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class WriteError(SessrecError):
    """A file could not be written (disk full, quota, permissions, ...): the path and the cause in one line."""

    def __init__(self, path: str | Path, cause: OSError, note: str = ""):
        code = errno.errorcode.get(cause.errno or 0, "")
        blocker = file_in_the_way(path)
        why = f"{blocker} is a file, not a folder" if blocker else f"{cause.strerror or cause}" + (f" [{code}]" if code else "")
        super().__init__(f"cannot write {path}: {why}{note}")
        self.path, self.cause = Path(path), cause
        self.disk_full = cause.errno in DISK_FULL


def disk_error(e: BaseException) -> OSError | None:
    """The full disk (or quota, file-size limit, read-only file system) behind ``e``: ``e`` itself, or the
    ``(os error 28)`` / ``[errno 28]`` that polars and pyarrow put in the text of their own exceptions; None for
    any other error."""
    code = e.errno if isinstance(e, OSError) else None
    if code is None:
        found = re.search(r"\(os error (\d+)\)|\[errno (\d+)\]", str(e), re.IGNORECASE)
        code = int(found.group(1) or found.group(2)) if found else None
    if code not in DISK_FULL | {errno.EROFS}:
        return None
    return e if isinstance(e, OSError) and e.errno == code else OSError(code, os.strerror(code))


def file_in_the_way(path: str | Path) -> Path | None:
    """A file where a folder above ``path`` should be (it cannot be written), if there is one."""
    return next((p for p in Path(path).parents if p.exists() and not p.is_dir()), None)


def check_output_folder(path: str | Path, flag: str) -> None:
    """An output folder (given as ``flag``) that is a file, or lies under one, is a one-line error."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SessrecError(f"{flag} {path} is a file, not a folder")
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise SessrecError(f"{flag} {path}: {blocker} is a file, not a folder")


# The result files a run writes (sessrec.outputs), and the files beside them: another command's output must not
# replace them.
RESULT_FILES = ("results.json", "eval_train_results.csv", "eval_results_over_time.txt", "train_results_over_time.txt",
                "eval_results_avg_over_time.txt")
RUN_FILES = (*RESULT_FILES, "config.yaml", "history.jsonl", "log.json")


def check_output_file(path: str | Path, flag: str, inputs: Sequence[tuple[str, str | Path]] = (),
                      overwrite: bool = False) -> Path:
    """An output file (given as ``flag``) that would replace what it should not is a one-line error: always a
    folder, one of ``inputs`` (``(flag, path)`` pairs), or a path inside a checkpoint folder, a prepared data
    folder or one of its window folders (a file written there damages them), a run's own file (``RUN_FILES``); an
    existing file unless ``overwrite``.
    The writes themselves stay atomic (:func:`atomic_write_bytes`)."""
    path = Path(path)
    if path.is_dir():
        raise SessrecError(f"{flag} {path} is a folder: give the file to write")
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise SessrecError(f"{flag} {path}: {blocker} is a file, not a folder")
    for input_flag, input_path in inputs:
        if _same_file(path, Path(input_path)):
            raise SessrecError(f"{flag} {path} is the {input_flag} file: writing it would replace the input; "
                               "give another path")
    as_given = [p for p in path.parents if p != Path(".")]  # first: an error names the folder as the user wrote it
    for folder in dict.fromkeys([*as_given, *Path(os.path.abspath(path)).parents, *path.resolve().parents]):
        what = _guarded_folder(folder)
        if what:
            raise SessrecError(f"{flag} {path} is inside {what} {folder}: writing there would damage it; "
                               "give a path outside it")
    if path.name in RUN_FILES and (path.parent / "config.yaml").is_file() and (path.parent / "history.jsonl").is_file():
        raise SessrecError(f"{flag} {path} is a file of the run in {path.parent}: writing it would replace the run's "
                           "own; give another name")
    if path.exists() and not overwrite:
        raise SessrecError(f"{flag} {path} exists: pass --overwrite to replace it")
    return path


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (the same path, a link to it, or a hard link)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


_WINDOW = re.compile(r"[0-9]+")


def _guarded_folder(folder: Path) -> str | None:
    """What ``folder`` is when a file written into it would damage it: a checkpoint (its manifest lists its
    files), a prepared data folder (a schema or catalog beside window folders) or one of its window folders."""
    try:
        if (folder / "manifest.json").is_file() and (folder / "config.yaml").is_file() or \
                (folder / "model.safetensors").is_file() and (folder / "experiment.json").is_file():
            return "the checkpoint folder"
        if ((folder / "schema.pbtxt").is_file() or (folder / "catalog.json").is_file()) and \
                any(p.is_dir() and _WINDOW.fullmatch(p.name) for p in folder.iterdir()):
            return "the prepared data folder"
        if _WINDOW.fullmatch(folder.name) and any((folder / f"{s}.parquet").is_file() for s in ("train", "valid", "test")):
            return "the data window folder"
    except OSError:  # a folder that cannot be listed is none of them
        pass
    return None


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn an ``OSError`` raised while writing ``path`` into a :class:`WriteError` naming it."""
    try:
        yield
    except OSError as e:
        raise WriteError(path, e) from None


@contextlib.contextmanager
def reading(path: str | Path) -> Iterator[None]:
    """Turn what a damaged, hand-edited or foreign file raises while it is read and interpreted (bytes that are not
    UTF-8, a list where an object was written, a key missing, text where a number was) into one line naming it."""
    try:
        yield
    except SessrecError:
        raise
    except UnicodeDecodeError as e:
        raise SessrecError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})") from None
    except json.JSONDecodeError as e:  # cut short (a full disk, a kill) more often than edited
        raise SessrecError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        cause = f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:160]}"
        raise SessrecError(f"{path}: not as sessrec writes it ({cause}); was it edited by hand?") from None


@contextlib.contextmanager
def files_together(folder: Path, stage: Path, names: Sequence[str]) -> Iterator[Path]:
    """``stage``, a new folder inside ``folder``, to write a set of files in; when the block ends without an error
    they replace those of ``folder`` (a rename each, once all are written: a full disk or a kill while writing leaves
    the previous set whole, never a mix of old and new files), and the ``names`` the new set lacks are removed from
    ``folder`` (a plot no longer drawn). The stage is removed in any case."""
    with writing(stage):
        folder.mkdir(parents=True, exist_ok=True)
        stage.mkdir()
    try:
        try:
            yield stage
        except WriteError as e:  # named as the file it was to become
            if stage not in e.path.parents:
                raise
            raise WriteError(folder / e.path.relative_to(stage), e.cause) from None
        written = sorted(p.name for p in stage.iterdir())
        with writing(folder):
            for name in written:
                os.replace(stage / name, folder / name)
            for name in sorted(set(names) - set(written)):
                (folder / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a temporary file next to ``path``, fsync it, then rename it over ``path``."""
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_replace_dir(tmp_dir: str | Path, final_dir: str | Path) -> None:
    """Move a fully written ``tmp_dir`` to ``final_dir``, replacing an older copy. Between the two
    renames the older copy is ``.NAME.old``; one left by an interrupted call is put back first."""
    tmp_dir, final_dir = Path(tmp_dir), Path(final_dir)
    old = final_dir.with_name(f".{final_dir.name}.old")
    with writing(final_dir):
        if old.exists():
            if final_dir.exists():
                shutil.rmtree(old)
            else:
                os.replace(old, final_dir)
        if final_dir.exists():
            os.replace(final_dir, old)
        os.replace(tmp_dir, final_dir)
        if old.exists():
            shutil.rmtree(old)
