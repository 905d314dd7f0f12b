import errno
import os
from pathlib import Path

import pytest

from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
from sessrec.io import WriteError, atomic_write_bytes, atomic_write_text, check_output_file, writing
from sessrec.outputs import OutputWriter


@pytest.mark.parametrize("code,full", [(errno.ENOSPC, True), (errno.EDQUOT, True), (errno.EFBIG, True), (errno.EACCES, False)])
def test_a_failed_write_names_the_path_and_the_cause(tmp_path, code, full):
    with pytest.raises(WriteError) as e, writing(tmp_path / "results.json"):
        raise OSError(code, os.strerror(code))
    assert str(e.value) == f"cannot write {tmp_path / 'results.json'}: {os.strerror(code)} [{errno.errorcode[code]}]"
    assert e.value.disk_full is full


def test_atomic_write_keeps_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    atomic_write_text(tmp_path / "results.json", "old")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(WriteError, match=r"results.json: No space left on device \[ENOSPC\]"):
        atomic_write_text(tmp_path / "results.json", "new")
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    assert (tmp_path / "results.json").read_text() == "old"


def test_a_failed_history_append_is_cut_back_off(tmp_path, monkeypatch):
    writer = OutputWriter(tmp_path, ExperimentConfig())
    writer.append_history([{"step": 1}])
    before = (tmp_path / "history.jsonl").read_bytes()
    write = os.write

    def half_then_full(fd, data):  # the first few bytes land, then the disk is full
        if len(data) > 5:
            return write(fd, bytes(data[:5]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(WriteError, match="history.jsonl: No space left on device"):
        writer.append_history([{"step": 2, "loss": 1.5}])
    assert (tmp_path / "history.jsonl").read_bytes() == before



def test_a_file_where_a_folder_should_be_is_named(tmp_path):
    (tmp_path / "afile").write_text("keep me")
    with pytest.raises(WriteError, match=r"cannot write .*afile/sub/r.parquet: .*afile is a file, not a folder$"):
        atomic_write_bytes(tmp_path / "afile" / "sub" / "r.parquet", b"x")
    assert (tmp_path / "afile").read_text() == "keep me"


def test_an_output_file_never_replaces_a_checkpoint_data_or_input_file(tmp_path, monkeypatch):
    """check_output_file: an existing file only with overwrite; never a folder, an input (also by a link), or a
    path inside a checkpoint, a prepared data folder or one of its windows, with or without overwrite."""
    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "run" / "checkpoint-last"
    ckpt.mkdir(parents=True)
    for name in ("manifest.json", "config.yaml", "model.safetensors"):
        (ckpt / name).write_text("x")
    data = tmp_path / "data"
    (data / "0006").mkdir(parents=True)
    (data / "schema.pbtxt").write_text("x")
    (data / "0006" / "valid.parquet").write_text("x")
    (tmp_path / "events.csv").write_text("session,item\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "events.csv")
    refused = [
        (ckpt / "model.safetensors", (), r"is inside the checkpoint folder .*checkpoint-last: writing there would damage it"),
        (ckpt / "new.pt", (), "is inside the checkpoint folder"),
        (data / "0006" / "valid.parquet", (), r"is inside the data window folder .*0006"),
        (data / "recs.parquet", (), r"is inside the prepared data folder .*data:"),
        (Path("data") / "0006" / "x" / "y.parquet", (), r"is inside the data window folder data/0006:"),
        (tmp_path / "events.csv", [("--input", tmp_path / "events.csv")], "is the --input file"),
        (tmp_path / "link.csv", [("--input", "events.csv")], "is the --input file"),
        (tmp_path / "run", (), "is a folder"),
    ]
    for path, inputs, message in refused:
        for overwrite in (False, True):
            with pytest.raises(SessrecError, match=message):
                check_output_file(path, "--output", inputs, overwrite)
    with pytest.raises(SessrecError, match=r"^--output events.csv exists: pass --overwrite to replace it$"):
        check_output_file("events.csv", "--output")
    assert check_output_file("events.csv", "--output", overwrite=True) == Path("events.csv")
    assert check_output_file(tmp_path / "run" / "model.pt", "--output") == tmp_path / "run" / "model.pt"  # a run folder is no checkpoint
    assert check_output_file(tmp_path / "new" / "recs.parquet", "--output", [("--input", "events.csv")])
    assert (ckpt / "model.safetensors").read_text() == "x" and (data / "0006" / "valid.parquet").read_text() == "x"


def test_disk_error_reads_the_os_error_in_polars_and_pyarrow_texts():
    import errno

    from sessrec.io import disk_error

    assert disk_error(RuntimeError("underlying IO error: No space left on device (os error 28)")).errno == errno.ENOSPC
    assert disk_error(OSError("Error writing bytes to file. Detail: [errno 122] Disk quota exceeded")).errno == errno.EDQUOT
    assert disk_error(OSError(errno.EROFS, "Read-only file system")).errno == errno.EROFS
    assert disk_error(RuntimeError("No such file or directory (os error 2)")) is None  # not a full disk: left as it is
    assert disk_error(ValueError("bad value")) is None


def test_files_together_replace_the_old_set_only_when_all_are_written(tmp_path):
    from sessrec.io import files_together

    out = tmp_path / "report"
    with files_together(out, out / ".stage", ["a.md", "b.png", "c.png"]) as stage:
        for name in ("a.md", "b.png", "c.png"):
            (stage / name).write_text("old " + name)
    with pytest.raises(OSError), files_together(out, out / ".stage", ["a.md", "b.png", "c.png"]) as stage:
        (stage / "a.md").write_text("new")
        raise OSError(28, "No space left on device")
    assert sorted(p.name for p in out.iterdir()) == ["a.md", "b.png", "c.png"]
    assert (out / "a.md").read_text() == "old a.md"  # not a mix of old and new files
    (out / "notes.txt").write_text("the user's")
    with files_together(out, out / ".stage", ["a.md", "b.png", "c.png"]) as stage:
        (stage / "a.md").write_text("new")
        (stage / "b.png").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["a.md", "b.png", "notes.txt"]  # c.png is no longer drawn
    assert (out / "a.md").read_text() == "new"
