"""sessrec tune end to end on tiny data: outputs, continuation, kill -9, refusals, workers, final seeds."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from sessrec.cli import main
from sessrec.config import ExperimentConfig
from sessrec.data.sample import generate_sample
from sessrec.errors import SessrecError

TINY = ["--d-model", "16", "--n-layer", "1", "--max-steps", "3", "--per-device-train-batch-size", "32",
        "--eval-steps-on-train-set", "0", "--quiet"]


def tune(data: Path, out: Path, *extra: str) -> int:
    return main(["tune", "--data-path", str(data), "-o", str(out), "--model", "gpt2", "--task", "clm", *TINY, *extra])


def load(out: Path, name: str = "gpt2-clm") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tune_writes_its_outputs_and_best_yaml_runs(tiny_data, tmp_path, capsys):
    out = tmp_path / "tune"
    assert tune(tiny_data, out, "--trials", "4", "--tune-windows", "3") == 0
    printed = capsys.readouterr().out
    assert printed.count("trial ") >= 4 and "[untuned configuration" in printed and "[preset rees46/gpt2-clm]" in printed
    for name in ("best.yaml", "trials.csv", "tune.json", "optimization_history.png", "param_importances.png", "study.db"):
        assert (out / name).is_file(), name
    summary = json.loads((out / "tune.json").read_text())
    assert summary["trials"]["complete"] + summary["trials"]["pruned"] == 4
    assert summary["data"]["windows"] == [1, 3] and "validation" in summary["objective"]
    study = load(out)
    best = study.best_trial
    assert summary["best"]["number"] == best.number and summary["best"]["value"] == pytest.approx(best.value)
    # the trial's own results agree with the study's value
    trial_results = json.loads((out / "trials" / f"trial-{best.number:04d}" / "results.json").read_text())
    assert trial_results["aot"]["eval_/next-item/ndcg_at_20"] == pytest.approx(best.value)
    assert trial_results["config"]["eval_on_test_set"] is False and trial_results["config"]["final_time_window_index"] == 3
    # best.yaml: the user's config plus the best values, on test, all windows
    cfg = ExperimentConfig.from_yaml(out / "best.yaml")
    assert cfg.eval_on_test_set and cfg.final_time_window_index is None and cfg.d_model == 16
    for key, value in best.params.items():
        assert getattr(cfg, key) == pytest.approx(value), key
    assert "0000000000" not in (out / "trials.csv").read_text() + (out / "best.yaml").read_text()  # 0.3, not 0.30000000000000004
    assert cfg.num_train_epochs == 10  # the paper's fixed setting (max_steps decides here)
    rows = (out / "trials.csv").read_text().splitlines()
    assert len(rows) == 1 + len(study.trials) and rows[0].startswith("number,state,value")
    assert main(["run", "--config", str(out / "best.yaml"), "-o", str(tmp_path / "best-run"), "--final-time-window-index", "3"]) == 0
    # a report of the study alone (no final runs) says where its history is, not an empty table
    assert main(["report", str(out), "-o", str(tmp_path / "report")]) == 0
    assert "hold(s) no final runs (`sessrec tune ... --final-seeds 5` makes them)" in (tmp_path / "report" / "report.md").read_text()


def test_a_timeout_says_the_study_stopped_early(tiny_data, tmp_path, capsys):
    assert tune(tiny_data, tmp_path / "tune", "--trials", "50", "--timeout", "1s", "--eval-on-test-set") == 0
    printed = capsys.readouterr().out
    assert "note: --eval-on-test-set / --no-eval-on-test-set have no effect on tuning" in printed
    assert "stopped by --timeout after " in printed and " of 50 trials; run the same command to continue" in printed


def test_a_baseline_preset_is_tuned_and_a_d_model_the_default_heads_cannot_divide_is_tuned_too(tiny_data, tmp_path,
                                                                                                 capsys):
    """`--preset rees46/vsknn` counted the preset's parameters as fixed by the user: "nothing to tune"; `--d-model 30`
    failed on the default n_head 4 before the space (n_head 1 or 2) was built."""
    out = tmp_path / "knn"
    assert main(["tune", "--data-path", str(tiny_data), "-o", str(out), "--model", "vsknn", "--preset", "rees46/vsknn",
                 "--trials", "2", "--quiet"]) == 0
    assert [t.user_attrs.get("start") for t in load(out, "vsknn").trials][1] == "preset rees46/vsknn"
    capsys.readouterr()
    assert main(["tune", "--data-path", str(tiny_data), "--model", "xlnet", "--task", "mlm", "--d-model", "30",
                 "--print-space"]) == 0
    assert "n_head:\n  type: categorical\n  choices:\n  - 1\n  - 2\ninput_dropout" in capsys.readouterr().out


def test_options_tuning_does_otherwise_are_said_and_no_compare_with_pop_is_followed(tiny_data, tmp_path, capsys):
    out = tmp_path / "tune"
    assert tune(tiny_data, out, "--trials", "1", "--no-compare-with-pop", "--overwrite-output-dir",
                "--preset", "rees46/gpt2-clm", "--no-warm-start") == 0
    printed = capsys.readouterr().out
    assert f"note: --overwrite-output-dir has no effect on tuning: running the same command continues the study in {out}" in printed
    assert "note: --no-warm-start: the preset rees46/gpt2-clm is the base" in printed
    assert not (out / "trials" / "most-popular").exists() and "pop" not in printed.replace("--no-compare-with-pop", "")
    assert json.loads((out / "tune.json").read_text())["most_popular_value"] is None
    assert "start" not in load(out).trials[0].user_attrs  # a draw of the sampler, not the preset
    assert tune(tiny_data, tmp_path / "plain", "--trials", "1") == 0
    assert "note:" not in capsys.readouterr().out and (tmp_path / "plain" / "trials" / "most-popular").is_dir()


def test_a_preset_is_the_second_first_trial_and_what_it_fixes_is_said(tiny_data, tmp_path, capsys):
    """With --preset the untuned configuration was the preset's values under the untuned label, and the keys the
    preset sets but nobody tunes (dataloader_drop_last) were fixed unsaid."""
    out = tmp_path / "tune"
    assert tune(tiny_data, out, "--trials", "2", "--no-prune", "--preset", "rees46/gpt2-clm") == 0
    printed = capsys.readouterr().out
    assert "\nfixed by the preset (not tuned; a flag overrides): dataloader_drop_last=True\n" in printed
    starts = [t.user_attrs["start"] for t in load(out).trials]
    assert starts[0].startswith("untuned configuration") and starts[1] == "preset rees46/gpt2-clm"
    untuned, preset = (t.params for t in load(out).trials)
    assert untuned["learning_rate"] != preset["learning_rate"] and preset["input_dropout"] == pytest.approx(0.4)


def test_the_same_command_continues_the_study(tiny_data, tmp_path):
    out = tmp_path / "tune"
    assert tune(tiny_data, out, "--trials", "2", "--no-prune") == 0
    first = [t.params for t in load(out).trials]
    assert tune(tiny_data, out, "--trials", "4", "--no-prune") == 0
    trials = load(out).trials
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    assert [t.params for t in trials[:2]] == first
    # the warm starts were queued once; the continued study drew new values
    assert sum("start" in t.user_attrs for t in trials) == 2
    assert trials[2].params != trials[3].params
    assert tune(tiny_data, out, "--trials", "4", "--no-prune") == 0  # already there: nothing to run
    assert len(load(out).trials) == 4
    # and drew what one invocation of 4 trials draws (each trial's draws depend on the study's history only)
    assert tune(tiny_data, tmp_path / "whole", "--trials", "4", "--no-prune") == 0
    assert [t.params for t in load(tmp_path / "whole").trials] == [t.params for t in trials]


def test_test_files_are_never_read_while_tuning(tiny_data, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    for test_file in data.glob("*/test.parquet"):
        test_file.write_bytes(b"not a parquet file")
    assert tune(data, tmp_path / "tune", "--trials", "2", "--tune-windows", "4") == 0
    study = load(tmp_path / "tune")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    # the final runs are on test: they do read it, and say so before a study is opened
    assert tune(data, tmp_path / "tune", "--trials", "2", "--tune-windows", "4", "--final-seeds", "1") == 2
    assert tune(data, tmp_path / "final", "--trials", "2", "--tune-windows", "4", "--final-seeds", "1") == 2
    assert "test.parquet" in capsys.readouterr().err and not (tmp_path / "final").exists()


def test_a_study_made_for_other_data_or_settings_is_refused_untouched(tiny_data, tmp_path, capsys):
    out = tmp_path / "tune"
    assert tune(tiny_data, out, "--trials", "1") == 0
    before = digest(out / "study.db")
    other = tmp_path / "other"
    generate_sample(other, n_days=4, sessions_per_day=250, n_items=200, seed=8)
    capsys.readouterr()
    assert tune(other, out, "--trials", "1") == 2
    err = capsys.readouterr().err.strip()
    assert "was made for another data set" in err and len(err.splitlines()) == 1
    assert tune(tiny_data, out, "--trials", "1", "--dropout", "0.3") == 2
    assert "fixed configuration (dropout: 0.1 -> 0.3)" in capsys.readouterr().err
    assert main(["tune", "--data-path", str(tiny_data), "-o", str(out), "--model", "xlnet", "--task", "mlm", *TINY,
                 "--trials", "1", "--study-name", "gpt2-clm"]) == 2
    assert "algorithm (gpt2-clm, not xlnet-mlm)" in capsys.readouterr().err
    assert tune(tiny_data, out, "--trials", "1", "--resume") == 2  # not the run's "no checkpoint" advice
    assert capsys.readouterr().err.strip() == ("sessrec: error: sessrec tune has no --resume: run the same command again "
                                               "and the study continues")
    assert digest(out / "study.db") == before


def test_another_algorithm_or_a_run_folder_as_output_is_refused_untouched(tiny_data, tmp_path, capsys):
    """Another algorithm's study in the folder (its files would be replaced), or a run's folder (mixed with the study's
    files, it would leave reports), is one line, and nothing changes."""
    out = tmp_path / "tune"
    assert tune(tiny_data, out, "--trials", "1") == 0
    before = {p: digest(p) for p in out.rglob("*") if p.is_file()}
    capsys.readouterr()
    xlnet = ["tune", "--data-path", str(tiny_data), "--model", "xlnet", "--task", "mlm", *TINY, "--trials", "1"]
    assert main([*xlnet, "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (f"sessrec: error: --output-dir {out} holds the tuning of study 'gpt2-clm' "
                                               "(tune.json), not 'xlnet-mlm': its files would be replaced; give another "
                                               "--output-dir")
    (out / "tune.json").unlink()  # killed before its first summary: the storage tells
    assert main([*xlnet, "-o", str(out)]) == 2
    assert "holds the study 'gpt2-clm', not 'xlnet-mlm'" in capsys.readouterr().err
    assert {p: digest(p) for p in out.rglob("*") if p.is_file()} == {p: d for p, d in before.items() if p.name != "tune.json"}
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text("{}")
    assert main([*xlnet, "-o", str(run)]) == 2
    assert "holds no sessrec tune study" in capsys.readouterr().err
    assert [p.name for p in run.iterdir()] == ["results.json"]


@pytest.mark.parametrize("model, task, message", [
    ("gpt3", "clm", "unknown model_type 'gpt3'"),
    ("xlnet", "clm", None),
    ("gpt2", "plm", "task plm needs XLNet's permutation attention"),
])
def test_an_algorithm_a_run_refuses_is_refused_before_the_study(tiny_data, tmp_path, capsys, model, task, message):
    out = tmp_path / "tune"
    rc = main(["tune", "--data-path", str(tiny_data), "-o", str(out), "--model", model, "--task", task, *TINY,
               "--trials", "1", "--hidden-act", "relu" if message else "nonsense"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and not out.exists(), err
    assert (message or "unknown activation 'nonsense'") in err


def test_the_same_data_by_another_path_continues_the_study(tiny_data, tmp_path, monkeypatch):
    """A relative path, or a copy of the folder, is the same data set: the study goes on."""
    import shutil

    out = tmp_path / "tune"
    assert tune(tiny_data, out, "--trials", "1") == 0
    copy = tmp_path / "copy"
    shutil.copytree(tiny_data, copy)
    monkeypatch.chdir(tmp_path)
    assert tune(Path("copy"), out, "--trials", "2") == 0
    assert len(load(out).trials) == 2


@pytest.mark.parametrize("args, message", [
    (["--storage", "sqlite:////no/such/folder/study.db"], "cannot open the study storage sqlite:////no/such/folder/study.db"),
    (["--storage", "postgresql://me:secret@127.0.0.1:1/db"], "cannot open the study storage postgresql://me:***@127.0.0.1:1/db"),
    (["--tune-windows", "9"], "--tune-windows must be between 2 and 4"),
    (["--metric", "ndcg_at_50"], "50 is not among --top-ks"),
    (["--trials", "0"], "--trials must be >= 1"),
])
def test_bad_tuning_options_are_one_line_errors(tiny_data, tmp_path, capsys, args, message):
    out = tmp_path / "tune"
    assert tune(tiny_data, out, *args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "secret" not in err
    assert not out.exists()


def test_a_damaged_study_file_says_what_to_do(tiny_data, tmp_path, capsys):
    """"database disk image is malformed" with no next step (QA helper-67)."""
    db = tmp_path / "study.db"
    db.write_bytes(b"SQLite format 3\x00" + b"\x13" * 4000)
    assert tune(tiny_data, tmp_path / "tune", "--storage", f"sqlite:///{db}") == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("the file is damaged: restore it from a copy, or tune again into another --output-dir (the "
                        "finished trials' values are also in trials.csv)") and len(err.splitlines()) == 1, err


def test_a_bad_space_file_stops_before_anything_is_written(tiny_data, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: log_uniform, low: 1.0e-2, high: 1.0e-4}\n")
    assert tune(tiny_data, tmp_path / "tune", "--space", str(space)) == 2
    assert "empty range" in capsys.readouterr().err
    space.write_text("d_model: {type: int, low: 16, high: 32, step: 16}\n")
    assert tune(tiny_data, tmp_path / "tune", "--space", str(space)) == 2  # --d-model is fixed by a flag
    assert "'d_model' is both fixed" not in (err := capsys.readouterr().err) and "d_model is both fixed" in err
    # a value that cannot make a model with the fixed keys, and a key that cannot act for this algorithm
    space.write_text("n_head: {type: categorical, choices: [3, 4]}\n")
    assert tune(tiny_data, tmp_path / "tune", "--space", str(space)) == 2
    assert "'n_head': value 3 is not valid (gpt2 needs d_model divisible by n_head" in capsys.readouterr().err
    space.write_text("mlm_probability: {type: uniform, low: 0.1, high: 0.5}\n")
    assert tune(tiny_data, tmp_path / "tune", "--space", str(space)) == 2
    assert "mlm_probability has no effect with task clm" in capsys.readouterr().err
    assert not (tmp_path / "tune").exists()


def test_an_untuned_value_outside_the_space_is_said(tiny_data, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("n_head: {type: categorical, choices: [8, 16]}\n")  # the untuned run has 4 heads
    assert tune(tiny_data, tmp_path / "tune", "--space", str(space), "--trials", "1") == 0
    assert load(tmp_path / "tune").trials[0].user_attrs["start"] == "untuned configuration moved into the space (n_head 4 -> 8)"


def test_a_space_file_replaces_the_default_space(tiny_data, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("learning_rate: {type: log_uniform, low: 1.0e-3, high: 1.0e-2}\n"
                     "dropout: {type: categorical, choices: [0.0, 0.2]}\n")
    assert tune(tiny_data, tmp_path / "tune", "--space", str(space), "--trials", "3") == 0
    for t in load(tmp_path / "tune").trials:
        assert set(t.params) == {"learning_rate", "dropout"}
        assert 1e-3 <= t.params["learning_rate"] <= 1e-2 and t.params["dropout"] in (0.0, 0.2)
    capsys.readouterr()
    assert main(["tune", "--data-path", str(tiny_data), "--model", "xlnet", "--task", "plm", "--d-model", "64",
                 "--print-space"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert "d_model" not in printed and printed["plm_max_span_length"] == {"type": "int", "low": 2, "high": 6, "step": 1}


def test_pruned_trials_stop_before_their_last_window(tiny_data, tmp_path):
    out = tmp_path / "tune"
    assert tune(tiny_data, out, "--trials", "10", "--tune-windows", "4", "--no-warm-start") == 0
    study = load(out)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    for t in pruned:
        assert t.user_attrs["pruned_after_window"] < 4
        assert not (out / "trials" / f"trial-{t.number:04d}" / "eval_results_avg_over_time.txt").exists()
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert all(sorted(t.intermediate_values) == [1, 2, 3] for t in complete)
    # a complete trial's reports are its running average over the windows
    t = complete[0]
    windows = json.loads((out / "trials" / f"trial-{t.number:04d}" / "results.json").read_text())["windows"]
    ndcg = [w["metrics"]["eval_/next-item/ndcg_at_20"] for w in windows]
    assert t.intermediate_values[2] == pytest.approx(sum(ndcg[:2]) / 2)


def _kill_a_running_trial(data: Path, out: Path, n: str, sig: int, code: int):
    """Start a tune, send ``sig`` once a trial is running after a complete one; the trial the study holds
    RUNNING once the process is dead (None where the signal landed between two trials)."""
    cmd = [sys.executable, "-m", "sessrec.cli", "tune", "--data-path", str(data), "-o", str(out), "--model", "gpt2",
           "--task", "clm", *TINY, "--no-prune", "--trials", n, "--tune-windows", "4"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sent = False
    deadline = time.time() + 120
    while time.time() < deadline and not sent and proc.poll() is None:
        time.sleep(0.1)
        if not (out / "trials.csv").exists():  # a trial has finished; opening the study as it is made races its creation
            continue
        try:
            trials = load(out).trials
        except Exception:  # the study is being created
            continue
        running = [t for t in trials if t.state == TrialState.RUNNING and "worker" in t.user_attrs
                   and (out / "trials" / f"trial-{t.number:04d}").exists()]  # its values drawn, its run started
        if any(t.state == TrialState.COMPLETE for t in trials) and running:
            os.kill(proc.pid, sig)
            sent = True
    if not sent:
        proc.kill()
    assert sent, f"the tuning process never had a running trial after a complete one: {proc.stderr.read()}"
    assert proc.wait(timeout=60) == code
    assert ",COMPLETE," in (out / "trials.csv").read_text()  # rewritten after each trial, not only at the end
    if sig == signal.SIGTERM:
        assert proc.stderr.read().strip().splitlines()[-1].startswith(
            "sessrec: tuning stopped by SIGTERM: the study keeps its")
    # the trial seen running may have finished before the signal arrived: the study after the death says which ran
    after = load(out).trials
    if sig == signal.SIGTERM:  # marked interrupted by the process itself
        killed = [t for t in after if t.state == TrialState.FAIL and t.user_attrs.get("interrupted")]
    else:
        killed = [t for t in after if t.state == TrialState.RUNNING and "worker" in t.user_attrs and t.params]
    assert len(killed) <= 1
    return killed[0] if killed else None


@pytest.mark.parametrize("sig, code", [(signal.SIGKILL, -signal.SIGKILL), (signal.SIGTERM, 143)])
def test_a_killed_tune_continues_with_the_same_command_and_loses_no_trial(tiny_data, tmp_path, sig, code):
    n = "24"  # enough trials that one is still running after the first completes, whatever the poll's latency (12 were
    # all done before the poll saw one running, once, on a fast idle machine)
    for attempt in range(3):  # a signal that lands between two trials interrupts none: try again
        out = tmp_path / f"tune{attempt}"
        killed = _kill_a_running_trial(tiny_data, out, n, sig, code)
        if killed is not None:
            break
    assert killed is not None, "three signals all landed between trials"
    assert tune(tiny_data, out, "--no-prune", "--trials", n, "--tune-windows", "4") == 0
    trials = load(out).trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == int(n)
    lost = trials[killed.number]
    assert lost.state == TrialState.FAIL and lost.user_attrs["interrupted"]
    retry = [t for t in trials if t.user_attrs.get("retry_of") == killed.number]
    assert len(retry) == 1 and retry[0].params == lost.params and retry[0].state == TrialState.COMPLETE
    if sig == signal.SIGKILL:  # the continued study drew what an uninterrupted one draws
        assert tune(tiny_data, tmp_path / "whole", "--no-prune", "--trials", n, "--tune-windows", "4") == 0
        assert [t.params for t in trials if t.number != lost.number] == [t.params for t in load(tmp_path / "whole").trials]


def test_values_drawn_again_are_not_run_again(tiny_data, tmp_path):
    """4 trials from 2 possible values: the repeats take their twin's value (a run is deterministic) without a run."""
    space = tmp_path / "space.yaml"
    space.write_text("dropout: {type: categorical, choices: [0.0, 0.2]}\n")
    out = tmp_path / "tune"
    assert tune(tiny_data, out, "--space", str(space), "--trials", "4", "--no-warm-start", "--no-prune") == 0
    trials = load(out).trials
    twins = [t for t in trials if "same_as" in t.user_attrs]
    assert len(twins) >= 2 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in twins:
        first = trials[t.user_attrs["same_as"]]
        assert first.params == t.params and first.value == t.value and "same_as" not in first.user_attrs
        assert not (out / "trials" / f"trial-{t.number:04d}").exists()
    assert "not run again" in (out / "trials.csv").read_text()


def test_workers_share_one_study(tiny_data, tmp_path):
    out = tmp_path / "tune"
    assert tune(tiny_data, out, "--trials", "4", "--n-jobs", "2", "--no-prune") == 0
    trials = load(out).trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 4
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == len(trials)  # no duplicate draws


def test_workers_stop_when_tune_is_killed(tiny_data, tmp_path):
    """kill -9 of `sessrec tune --n-jobs 2` left its two workers running the study, unseen: they stop as on SIGTERM
    (their trials queued again), and the same command continues the study."""
    from sessrec.runlock import pid_alive

    out = tmp_path / "tune"
    cmd = [sys.executable, "-m", "sessrec.cli", "tune", "--data-path", str(tiny_data), "-o", str(out), "--model", "gpt2",
           "--task", "clm", *TINY, "--no-prune", "--trials", "5000", "--n-jobs", "2"]  # more than 60 s of trials
    log = tmp_path / "tune.err"
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
    workers: set[int] = set()
    deadline = time.time() + 120
    while time.time() < deadline and len(workers) < 2 and proc.poll() is None:
        time.sleep(0.2)
        if not (out / "trials.csv").exists():  # a trial has finished; opening the study as it is made races its creation
            continue
        try:
            workers = {t.user_attrs["worker"]["pid"] for t in load(out).trials if "worker" in t.user_attrs}
        except Exception:  # the study is being created
            continue
    proc.kill()
    proc.wait(timeout=30)
    assert len(workers) == 2, f"the workers never started a trial: {log.read_text()[-2000:]}"
    deadline = time.time() + 60
    while time.time() < deadline and any(pid_alive(p) for p in workers):
        time.sleep(0.2)
    alive = [p for p in workers if pid_alive(p)]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, "the workers went on after tune was killed"
    trials = load(out).trials
    assert all(t.user_attrs.get("interrupted") for t in trials if t.state == TrialState.FAIL)  # stopped as on SIGTERM
    assert sum(t.state == TrialState.COMPLETE for t in trials) < 5000


def test_an_error_of_the_parent_stops_the_workers(tiny_data, tmp_path, capsys, monkeypatch):
    """An error in `sessrec tune --n-jobs 2` itself (a full disk writing trials.csv) was said, then the process waited
    at exit for its workers, which ran the study on to --trials."""
    from sessrec.runlock import pid_alive
    from sessrec.tuning import study as study_module

    calls = []

    def failing(self, study, trial=None):
        calls.append(1)
        if len(calls) == 3:
            raise SessrecError("cannot write trials.csv: No space left on device [ENOSPC]")

    monkeypatch.setattr(study_module._Monitor, "__call__", failing)
    out = tmp_path / "tune"
    started = time.time()
    assert main(["tune", "--data-path", str(tiny_data), "-o", str(out), "--model", "vsknn", "--trials", "5000",
                 "--n-jobs", "2", "--quiet", "--no-compare-with-pop"]) == 2
    assert "No space left on device" in capsys.readouterr().err and time.time() - started < 60
    workers = {t.user_attrs["worker"]["pid"] for t in load(out, "vsknn").trials if "worker" in t.user_attrs}
    assert workers and not any(pid_alive(p) for p in workers)


def test_final_seeds_run_the_best_configuration_on_test(tiny_data, tmp_path):
    out = tmp_path / "tune"
    assert tune(tiny_data, out, "--trials", "2", "--final-seeds", "2", "--seed", "5") == 0
    summary = json.loads((out / "final" / "summary.json").read_text())
    assert summary["seeds"] == [5, 6]
    for seed in (5, 6):
        results = json.loads((out / "final" / f"seed-{seed}" / "results.json").read_text())
        assert results["config"]["eval_on_test_set"] is True and results["config"]["seed"] == seed
        assert results["config"]["final_time_window_index"] == 4
    ndcg = [json.loads((out / "final" / f"seed-{s}" / "results.json").read_text())["aot"]["eval_/next-item/ndcg_at_20"]
            for s in (5, 6)]
    assert summary["aot"]["eval_/next-item/ndcg_at_20"]["mean"] == pytest.approx(sum(ndcg) / 2)
    # the report reads the tune folder: final runs and the tuning history
    assert main(["report", str(out), "-o", str(tmp_path / "report")]) == 0
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Tuning: gpt2-clm" in page and "GPT-2 (CLM)" in page and page.count("data:image/png;base64,") >= 3


def test_a_config_key_added_by_a_later_sessrec_does_not_split_a_study():
    from sessrec.tuning.study import _differences

    cfg = {k: v for k, v in json.loads(json.dumps(ExperimentConfig().to_dict())).items() if k != "output_dir"}
    old = {k: v for k, v in cfg.items() if k != "label_smoothing"}  # a study made before the key existed
    assert _differences({"config": old}, {"config": cfg}) == []
    assert _differences({"config": old}, {"config": {**cfg, "label_smoothing": 0.2}}) == [
        "fixed configuration (label_smoothing: 0.0 -> 0.2)"]


def test_bad_side_feature_data_stops_before_the_study(tiny_data, tmp_path, capsys):
    """A NaN in a side feature was found inside each trial: five FAIL trials were left in the study per attempt (QA
    helper-44). The tuning files are checked with the model's features before the study is opened."""
    import shutil

    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from sessrec.schema import load_schema

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    name = next(f.name for f in load_schema(data / "schema.pbtxt").features if f.is_continuous)
    path = data / "0001" / "train.parquet"  # read by the first trial's first window
    table = pq.read_table(path)
    column = table.column(name).combine_chunks()
    values = pc.list_flatten(column).to_numpy().copy()
    values[3] = float("nan")
    broken = pa.ListArray.from_arrays(column.offsets, pa.array(values, column.type.value_type))
    pq.write_table(table.set_column(table.column_names.index(name), name, broken), path)
    out = tmp_path / "tune"
    assert tune(data, out, "--trials", "1", "--use-side-information-features") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"continuous feature '{name}' has a non-finite value (nan)" in err[0] and not out.exists()


def test_a_failure_is_said_even_when_the_outputs_cannot_be_updated_after_it(tiny_data, tmp_path, capsys, monkeypatch,
                                                                          caplog):
    """A full disk stopped a trial, then writing tune.json and the plots failed too: the later error was the one
    printed. The first one is said; the second is a warning."""
    import errno

    from sessrec.io import WriteError
    from sessrec.tuning import study as study_module

    out = tmp_path / "tune"
    full = WriteError(out / "trials" / "trial-0000" / "results.json", OSError(errno.ENOSPC, "No space left on device"))

    def trials(*a, **k):
        raise full

    def outputs(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "tune.json"))

    monkeypatch.setattr(study_module, "_run_trials", trials)
    monkeypatch.setattr(study_module, "write_outputs", outputs)
    assert tune(tiny_data, out, "--trials", "1", "--no-compare-with-pop") == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"sessrec: error: {full}", err
    assert f"could not update {out}'s trials.csv, tune.json and plots after the error below" in caplog.text
    monkeypatch.setattr(study_module, "_run_trials", lambda *a, **k: None)
    assert tune(tiny_data, out, "--trials", "1", "--no-compare-with-pop") == 2  # without an earlier error: said
    assert "No space left on device" in capsys.readouterr().err.strip().splitlines()[-1]


def test_the_untuned_gru4rec_trial_is_its_defaults_snapped_and_says_which_moved():
    """GRU4Rec's default ``layers: [100]`` (a list) could not be snapped: the "untuned configuration" drew a random layer
    size, and its default batch size moved into the space unsaid (QA helper-62)."""
    from sessrec.config import ExperimentConfig
    from sessrec.tuning.space import default_space
    from sessrec.tuning.study import _warm_starts

    cfg = ExperimentConfig.from_dict({"model_type": "gru4rec", "baseline_params": {"n_epochs": 1, "n_sample": 32}})
    (label, untuned), *_ = _warm_starts(cfg, cfg, default_space(cfg), {}, None)
    assert untuned["baseline_params.layers"] == 128 and untuned["baseline_params.batch_size"] == 128
    assert label.startswith("untuned configuration moved into the space (") and "baseline_params.layers 100 -> 128" in label
    assert "baseline_params.batch_size 32 -> 128" in label and "learning_rate" not in label.split("(")[1].split("baseline")[0]
    tuned = ExperimentConfig.from_dict({"model_type": "gru4rec", "baseline_params": {"layers": 192, "batch_size": 256}})
    (label, untuned), *_ = _warm_starts(tuned, tuned, default_space(tuned), {}, None)
    assert untuned["baseline_params.layers"] == 192 and "layers" not in label and "batch_size" not in label
    text = ExperimentConfig.from_dict({"model_type": "gru4rec", "baseline_params": {"layers": "192"}})
    (label, untuned), *_ = _warm_starts(text, text, default_space(text), {}, None)
    assert untuned["baseline_params.layers"] == 192 and "layers" not in label  # as GRU4Rec reads it
    two = ExperimentConfig.from_dict({"model_type": "gru4rec", "baseline_params": {"layers": [100, 100]}})
    (label, untuned), *_ = _warm_starts(two, two, default_space(two), {}, None)
    assert "baseline_params.layers" not in untuned
    assert label.endswith("with draws for what the space cannot hold (baseline_params.layers [100, 100])"), label
