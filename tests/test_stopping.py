import json
import os
import signal

import pytest

from sessrec.checkpoint import find_checkpoint, latest_good_checkpoint
from sessrec.cli import main
from sessrec.stopping import RunInterrupted, stop_on_signals, stop_requested, terminate_as_interrupt
from tests.conftest import FAULT_ARGS as ARGS
from tests.conftest import tiny_config
from tests.fault_child import leftovers, metric_rows, start_child, train_history, wait_for


def _resume_and_compare(out, straight_run, quiet=True):
    assert main(["run", "--resume", "-o", str(out), *(["--quiet"] if quiet else [])]) == 0
    assert metric_rows(out) == metric_rows(straight_run)
    assert train_history(out) == train_history(straight_run)
    assert leftovers(out) == []


def test_sigterm_mid_window_checkpoints_there_and_resumes_exactly(tiny_data, tmp_path, straight_run, caplog, capsys):
    out, mark = tmp_path / "run", tmp_path / "mark"
    child = start_child(["run", "--data-path", str(tiny_data), *ARGS, "-o", str(out)], PAUSE_AT_STEP="8", MARK=str(mark))
    wait_for(mark, child)  # before step 3 of window 2
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err
    assert err.splitlines()[-1] == (f"sessrec: stopped by SIGTERM in window 2 after step 3 of 6; checkpoint saved in "
                                    f"{out}/checkpoint-last; continue with `sessrec run --resume --output-dir {out}`")
    meta = json.loads((out / "checkpoint-last" / "experiment.json").read_text())
    assert meta["trained_window"] == 1 and meta["in_window"] == {"window": 2, "where": "after step 3 of 6", "fit": None}
    assert [x["step"] for x in train_history(out)] == list(range(1, 10))  # the current step ended before the stop
    assert (out / "checkpoint-0001").is_dir()  # numbered checkpoints stay window boundaries
    # loading it says the model is partly trained, naming the checkpoint (the server named its temporary copy)
    from sessrec.recommend import Recommender
    from sessrec.serve.models import load_served

    want = f"checkpoint {out / 'checkpoint-last'} was saved by a run stopped inside window 2 (after step 3 of 6)"
    for load in (lambda: Recommender.load(out), lambda: load_served(out / "checkpoint-last", "eager", 1)):
        caplog.clear()
        with caplog.at_level("WARNING"):
            load()
        assert want in caplog.text and "sessrec-serve-" not in caplog.text, caplog.text
    # the same command again: the folder is refused with the command that continues it (QA helper-67)
    assert main(["run", "--data-path", str(tiny_data), *ARGS, "-o", str(out)]) == 2
    assert capsys.readouterr().err == (f"sessrec: error: output folder {out} holds a run that was stopped (its "
                                       f"checkpoint-last): continue it with `sessrec run --resume --output-dir {out}`, "
                                       "or pass --overwrite-output-dir to start again (its checkpoints are deleted)\n")
    _resume_and_compare(out, straight_run)


def test_sigint_during_evaluation_keeps_the_trained_window(tiny_data, tmp_path, straight_run, capsys):
    out, mark = tmp_path / "run", tmp_path / "mark"
    child = start_child(["run", "--data-path", str(tiny_data), *ARGS, "-o", str(out)], PAUSE_IN_EVAL="1", MARK=str(mark))
    wait_for(mark, child)  # the first evaluation, after window 1's 6 steps
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert "stopped by SIGINT in window 1 after training, during evaluation; checkpoint saved" in err.splitlines()[-1]
    meta = json.loads((out / "checkpoint-last" / "experiment.json").read_text())
    assert meta["trained_window"] == 0 and meta["in_window"]["fit"]["train_steps"] == 6.0 and meta["windows"] == []
    capsys.readouterr()
    _resume_and_compare(out, straight_run, quiet=False)
    assert "checkpoint-last (no window trained yet, and window 1 " in capsys.readouterr().out  # not "through window 0"


def test_a_second_signal_during_the_save_stops_at_once_and_keeps_the_last_checkpoint(tiny_data, tmp_path, straight_run):
    out, mark = tmp_path / "run", tmp_path / "mark"
    child = start_child(["run", "--data-path", str(tiny_data), *ARGS, "-o", str(out)], PAUSE_AT_STEP="8",
                        PAUSE_IN_SAVE="1", MARK=str(mark))
    wait_for(mark, child)
    child.send_signal(signal.SIGTERM)
    wait_for(mark.with_suffix(".save"), child)  # writing the mid-window checkpoint
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err
    assert err.splitlines()[-1] == "sessrec: stopped at once by a second SIGTERM; the newest complete checkpoint is kept"
    assert leftovers(out) == []  # the half-written checkpoint folder was removed on the way out
    assert find_checkpoint(out) == out / "checkpoint-last"
    assert latest_good_checkpoint(out)[0] == out / "checkpoint-last"
    assert "in_window" not in json.loads((out / "checkpoint-last" / "experiment.json").read_text())  # window 1's
    _resume_and_compare(out, straight_run)


@pytest.mark.parametrize("model, params", [
    ("gru4rec", ["--baseline-params", "{n_epochs: 2, layers: 16, batch_size: 32, n_sample: 8, dropout_p_hidden: 0.3}"]),
    ("vsknn", []),
])
def test_a_baseline_stopped_while_window_2_loads_resumes_to_the_uninterrupted_results(tiny_data, tmp_path, caplog, model,
                                                                                      params):
    """A baseline trains its window to the end; its checkpoint (GRU4Rec: the network, the optimizer's accumulators, the
    sampling and session order generators; V-SkNN: the stored sessions) is saved inside the window, during its
    evaluation, and the resumed run reads it back instead of refitting windows 1-2."""
    where = "in window 2 after training, during evaluation; checkpoint saved in {out}/checkpoint-last;"
    args = ["run", "--data-path", str(tiny_data), "--model", model, "--final-time-window-index", "4", "--quiet", *params]
    straight, out, mark = tmp_path / "straight", tmp_path / "run", tmp_path / "mark"
    assert main([*args, "-o", str(straight)]) == 0
    child = start_child([*args, "-o", str(out)], PAUSE_AT_LOAD="3", MARK=str(mark))  # 3rd file: window 2's train.parquet
    wait_for(mark, child)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 143, err
    assert err.splitlines()[-1].startswith(f"sessrec: stopped by SIGTERM {where.format(out=out)}")
    # stopped after window 2's training: the model is that of window 2 whole (it was said "partly trained on window
    # 2", and served as window 1's; QA helper-62)
    from sessrec.checkpoint import model_window, read_checkpoint
    from sessrec.recommend import Recommender

    _, _, meta = read_checkpoint(out / "checkpoint-last")
    assert (meta["trained_window"], model_window(meta)) == (1, 2)
    with caplog.at_level("WARNING"):
        Recommender.load(out)
    assert "partly trained" not in caplog.text
    with caplog.at_level("INFO"):
        _resume_and_compare(out, straight)
    assert "refitting" not in caplog.text


def test_stop_on_signals_sets_a_flag_then_raises_and_restores_the_handlers():
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(RunInterrupted, match="after the run's last safe point"):
        with stop_on_signals():
            assert stop_requested() is None
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop_requested() == signal.SIGTERM
            with pytest.raises(RunInterrupted) as second:
                os.kill(os.getpid(), signal.SIGTERM)
            assert second.value.exit_code == 143 and isinstance(second.value, KeyboardInterrupt)
    assert stop_requested() is None and signal.getsignal(signal.SIGTERM) is before


def test_a_signal_after_the_last_safe_point_is_not_swallowed(tiny_data, tmp_path):
    """A SIGTERM that came when no safe point was left (after the last window's evaluation): the
    run ends complete, then stops the process (a tuning study does not start its next trial)."""
    from sessrec.experiment import run_experiment

    def late_signal(window: int, aot: dict) -> None:
        if window == 4:
            os.kill(os.getpid(), signal.SIGTERM)

    cfg = tiny_config(tiny_data, tmp_path / "run", final_time_window_index=4)
    with pytest.raises(RunInterrupted, match="SIGTERM received after the run's last safe point") as stopped:
        run_experiment(cfg, printer=lambda *_: None, on_window=late_signal)
    assert stopped.value.exit_code == 143
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [w["index"] for w in results["windows"]] == [2, 3, 4] and results["aot"]


def test_a_signal_the_process_ignores_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for `sessrec run ... &` in a script
    try:
        with stop_on_signals():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            assert stop_requested() is None
    finally:
        signal.signal(signal.SIGINT, previous)


def test_sigterm_outside_a_run_stops_like_ctrl_c_and_a_foreign_handler_is_kept():
    with pytest.raises(RunInterrupted, match="^stopped by SIGTERM$") as stopped:
        with terminate_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
    assert stopped.value.exit_code == 143 and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))  # an embedding program's
    try:
        with terminate_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)
