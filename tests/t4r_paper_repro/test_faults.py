"""The paper's command line meets the faults of a run as ``sessrec run`` does (one code path)."""

from __future__ import annotations

import json
import signal

from sessrec.checkpoint import latest_good_checkpoint
from sessrec.cli import main as sessrec_main
from sessrec.runlock import RunLock
from t4r_paper_repro import transf_exp_main
from tests.fault_child import leftovers, metric_rows, start_child, train_history, wait_for
from tests.t4r_paper_repro.test_end_to_end import _argv, paths  # noqa: F401 (paths is a fixture)

PROG = "t4r_paper_repro.transf_exp_main"
# checkpoints on (the paper's commands turn them off with --save_steps 0), every step logged, 6 steps a window
FAULTS = ["--save_steps", "1", "--logging_steps", "1", "--max_steps", "6", "--simulated_inference", "False"]


def test_sigterm_mid_window_then_sessrec_run_resume_gives_the_uninterrupted_results(paths, tmp_path):  # noqa: F811
    straight, stopped, mark = tmp_path / "straight", tmp_path / "stopped", tmp_path / "mark"
    assert transf_exp_main.main(_argv("XLNet (MLM)", "ecommerce", paths, straight, FAULTS)) == 0
    child = start_child(_argv("XLNet (MLM)", "ecommerce", paths, stopped, FAULTS), FRONT_END="paper",
                        PAUSE_AT_STEP="2", MARK=str(mark))
    wait_for(mark, child)  # in window 1, before its step 3
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err
    assert err.splitlines()[-1] == (f"{PROG}: stopped by SIGTERM in window 1 after step 3 of 6; checkpoint saved in "
                                    f"{stopped}/checkpoint-last; continue with `sessrec run --resume --output-dir {stopped}`")
    assert sessrec_main(["run", "--resume", "-o", str(stopped)]) == 0  # the paper command's config, from the checkpoint
    assert metric_rows(stopped) == metric_rows(straight)
    assert train_history(stopped) == train_history(straight)
    assert leftovers(stopped) == []


def test_a_locked_folder_and_a_nan_loss_are_one_line_errors(paths, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    out.mkdir()
    with RunLock.acquire(out):  # as another run would hold it
        assert transf_exp_main.main(_argv("XLNet (MLM)", "ecommerce", paths, out, FAULTS)) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"{PROG}: error: cannot write into {out}: another run is using it (pid ")
    assert transf_exp_main.main(_argv("XLNet (MLM)", "ecommerce", paths, out, [*FAULTS, "--max_steps", "1",
                                                                                 "--learning_rate", "1e10"])) == 2
    err = capsys.readouterr().err.splitlines()[-1]
    assert err.startswith(f"{PROG}: error: the training loss is nan in window 2 at step 1 of 1 (global step 2): lower the learning rate")
    assert latest_good_checkpoint(out)[0] == out / "checkpoint-last"
    assert [w["index"] for w in json.loads((out / "results.json").read_text())["windows"]] == [2]
