import json
import os
import socket

import pytest

from sessrec.cli import main
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
from sessrec.outputs import prepare_output_dir
from sessrec.runlock import RunLock, is_locked
from tests.conftest import FAULT_ARGS
from tests.fault_child import start_child, wait_for


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_lives(tiny_data, tmp_path, capsys):
    out, mark = tmp_path / "run", tmp_path / "mark"
    args = ["run", "--data-path", str(tiny_data), *FAULT_ARGS, "-o", str(out)]
    first = start_child(args, PAUSE_AT_STEP="8", MARK=str(mark))  # holds the lock, paused in window 2
    try:
        wait_for(mark, first)
        host = socket.gethostname()
        for second, verb in (([], "write into"), (["--overwrite-output-dir"], "write into"), (["--resume"], "resume")):
            assert main([*args, *second]) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1
            assert err.startswith(f"sessrec: error: cannot {verb} {out}: another run is using it (pid {first.pid} on host {host} since ")
        assert json.loads((out / ".lock").read_text())["pid"] == first.pid
    finally:
        first.kill()  # kill -9: the operating system releases the lock
        first.communicate()
    assert not is_locked(out)
    assert main(["run", "--resume", "-o", str(out), "--quiet"]) == 0  # no stale lock: the killed run continues
    assert json.loads((out / ".lock").read_text())["pid"] == os.getpid()


def test_the_lock_is_released_at_the_end_and_its_file_alone_is_an_empty_folder(tmp_path):
    (tmp_path / ".lock").write_text("")  # left by a run killed before it wrote anything
    out, lock = prepare_output_dir(ExperimentConfig(output_dir=str(tmp_path)))  # not refused as "not empty"
    with lock:
        assert is_locked(tmp_path)
        with pytest.raises(SessrecError, match=f"cannot write into {tmp_path}: another run is using it \\(pid {os.getpid()}"):
            RunLock.acquire(tmp_path)
    assert not is_locked(tmp_path)
    (tmp_path / "results.json").write_text("{}")
    with pytest.raises(SessrecError, match="is not empty; pass --overwrite-output-dir"):
        prepare_output_dir(ExperimentConfig(output_dir=str(tmp_path)))
    # a stopped run (a checkpoint, no total time): the command that continues it, under torchrun for a distributed one
    (tmp_path / "checkpoint-last").mkdir()
    (tmp_path / "checkpoint-last" / "experiment.json").write_text('{"world_size": 2}')
    with pytest.raises(SessrecError, match=f"holds a run that was stopped \\(its checkpoint-last\\): continue it with "
                                           f"torchrun launched as before \\(2 processes\\) running `-m sessrec run "
                                           f"--resume --output-dir {tmp_path}`, or pass --overwrite-output-dir"):
        prepare_output_dir(ExperimentConfig(output_dir=str(tmp_path)))
    (tmp_path / "results.json").write_text('{"total_seconds": 3.0}')  # it ended: nothing to continue
    with pytest.raises(SessrecError, match="is not empty; pass --overwrite-output-dir"):
        prepare_output_dir(ExperimentConfig(output_dir=str(tmp_path)))
