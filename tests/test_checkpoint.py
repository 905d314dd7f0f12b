import csv
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from sessrec.baselines import BASELINES
from sessrec.baselines.pop import MostPopular
from sessrec.checkpoint import (
    DamagedCheckpoint,
    find_checkpoint,
    latest_good_checkpoint,
    read_checkpoint,
    read_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
    verify_checkpoint,
    write_state,
)
from sessrec.cli import main
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
from sessrec.experiment import run_experiment
from tests.conftest import FAULT_ARGS, tiny_config
from tests.fault_child import metric_rows, train_history
from tests.test_recommend import SCHEMA

SRC = Path(__file__).resolve().parents[1] / "src"
TIMING = ("runtime", "per_second")


def test_state_round_trip_keeps_structure_and_tied_tensors(tmp_path):
    w = torch.arange(6.0).view(3, 2)
    state = {"model": {"a.weight": w, "b.weight": w, "view": w[1:]},
             "optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"betas": (0.9, 0.999), "params": [0]}]},
             "step": 7, "name": "x", "none": None, "nan": float("nan"), "gen": torch.Generator().get_state()}
    write_state(tmp_path / "s.safetensors", state)
    back = read_state(tmp_path / "s.safetensors")
    assert back["model"]["a.weight"] is back["model"]["b.weight"]  # stored once, tied again
    assert torch.equal(back["model"]["view"], w[1:])
    assert back["optimizer"]["state"][0]["step"].item() == 3.0 and isinstance(back["optimizer"]["param_groups"][0]["betas"], tuple)
    assert back["step"] == 7 and back["name"] == "x" and back["none"] is None and np.isnan(back["nan"])
    assert torch.equal(back["gen"], state["gen"])
    with pytest.raises(SessrecError, match="unsupported type object"):
        write_state(tmp_path / "bad.safetensors", {"x": object()})


def test_rng_state_round_trip():
    saved = rng_state()
    a = (torch.rand(3), np.random.rand(3), __import__("random").random())
    set_rng_state(saved)
    b = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def _metric_rows(run_dir: Path) -> list[dict]:
    rows = list(csv.DictReader(open(run_dir / "eval_train_results.csv")))
    return [{k: v for k, v in r.items() if not any(t in k for t in TIMING)} for r in rows]


def _train_history(run_dir: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
    return [x for x in lines if x["type"] == "train"]


KILLER = """
import os, signal, sys
from sessrec.training import NeuralLearner
step = NeuralLearner._train_step
def dying_step(self, batch):
    if self.global_step == int(os.environ["KILL_AT_STEP"]):
        os.kill(os.getpid(), signal.SIGKILL)  # kill -9 in the middle of a window
    return step(self, batch)
NeuralLearner._train_step = dying_step
from sessrec.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_mid_window_then_resume_gives_the_uninterrupted_results(tiny_data, tmp_path):
    args = ["run", "--data-path", str(tiny_data), "--d-model", "16", "--n-layer", "1", "--n-head", "2", "--max-steps", "3",
            "--logging-steps", "1", "--final-time-window-index", "4", "--eval-steps-on-train-set", "1", "--quiet"]
    killed = tmp_path / "killed"
    # One thread, as in this process (tests/conftest.py): results must match bit for bit. Step 4 is in window 2.
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": str(torch.get_num_threads()), "KILL_AT_STEP": "4"}
    proc = subprocess.run([sys.executable, "-c", KILLER, *args, "-o", str(killed)], env=env, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert find_checkpoint(killed) == killed / "checkpoint-last"
    assert json.loads((killed / "checkpoint-last" / "experiment.json").read_text())["trained_window"] == 1
    assert [x["step"] for x in _train_history(killed)] == [1, 2, 3, 4]  # step 4 was logged by the dying window

    assert main([*args[:1], "--resume", "-o", str(killed), "--quiet"]) == 0  # the saved config: no other flag needed
    straight = tmp_path / "straight"
    assert main([*args, "-o", str(straight), "--keep-checkpoints", "-1"]) == 0

    assert _metric_rows(killed) == _metric_rows(straight)
    assert [r["index"] for r in _metric_rows(killed)] == ["2", "3", "4"]
    assert _train_history(killed) == _train_history(straight)  # the dying window's loss points were cut off
    assert sorted(p.name for p in straight.glob("checkpoint-*")) == ["checkpoint-0001", "checkpoint-0002", "checkpoint-0003", "checkpoint-last"]
    assert sorted(p.name for p in killed.glob("checkpoint-*")) == ["checkpoint-0003", "checkpoint-last"]  # keep_checkpoints 1
    assert os.stat(killed / "checkpoint-last" / "model.safetensors").st_nlink == 2  # a hard link, not a copy
    done = json.loads((killed / "results.json").read_text())
    assert len(done["windows"]) == 3 and "total_seconds" in done


class CountsWithoutState:
    """A baseline without state_dict(): a resumed run must refit it on the earlier windows."""

    scores_are_logits = False

    def __init__(self, cfg, schema):
        self.input_names = [schema.item_id.name]
        self.counts = torch.zeros(schema.n_items, dtype=torch.float64)
        self.fail_on = int(os.environ.get("FAIL_ON_WINDOW", "0"))

    fitted: list[int] = []  # every window fit_window was called on, across instances

    def fit_window(self, data, window):
        if window == self.fail_on:
            raise RuntimeError("simulated crash")
        self.fitted.append(window)
        self.counts += torch.bincount(data.items.flatten(), minlength=self.counts.numel()).double() * (1 + torch.rand(()).item())
        return {}

    def score(self, prefix):
        return self.counts[1:].expand(next(iter(prefix.values())).shape[0], -1)


@pytest.mark.parametrize("fresh_each_window", [False, True])
def test_resume_refits_a_learner_without_state_dict(tiny_data, tmp_path, monkeypatch, fresh_each_window):
    monkeypatch.setitem(BASELINES, "counts", CountsWithoutState)
    monkeypatch.setattr(CountsWithoutState, "fitted", [])
    quiet = {"printer": lambda *_: None}
    args = {"model_type": "counts", "final_time_window_index": 4, "no_incremental_training": fresh_each_window}
    straight = run_experiment(tiny_config(tiny_data, tmp_path / "a", **args), **quiet)
    monkeypatch.setenv("FAIL_ON_WINDOW", "3")
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_experiment(tiny_config(tiny_data, tmp_path / "b", **args), **quiet)
    assert json.loads((tmp_path / "b" / "checkpoint-last" / "experiment.json").read_text())["learners"] == {"model": False, "pop": True}
    monkeypatch.delenv("FAIL_ON_WINDOW")
    CountsWithoutState.fitted.clear()
    resumed = run_experiment(tiny_config(tiny_data, tmp_path / "b", resume=True, **args), **quiet)
    assert [w["metrics"]["eval_/next-item/ndcg_at_20"] for w in resumed.windows] == \
           [w["metrics"]["eval_/next-item/ndcg_at_20"] for w in straight.windows]
    # A model trained from scratch on each window (FT/SWT) needs none of the earlier windows again.
    assert CountsWithoutState.fitted == ([3] if fresh_each_window else [1, 2, 3])


def test_resuming_a_checkpoint_of_the_earlier_most_popular_counting_says_so(tiny_data, tmp_path, caplog, monkeypatch):
    """Before, the comparison beside --no-incremental-training counted every window from the start on: a run of then,
    resumed now, mixes the two ways, and says which windows keep the old figures."""
    import sessrec.experiment

    def as_before(*a, **kw):  # an earlier release's checkpoint: no pop_counts
        experiment = {k: v for k, v in a[5].items() if k != "pop_counts"}
        return save_checkpoint(*a[:5], experiment, *a[6:], **kw)

    args = {"model_type": "vsknn", "no_incremental_training": True, "training_time_window_size": 1}
    monkeypatch.setattr(sessrec.experiment, "save_checkpoint", as_before)
    run_experiment(tiny_config(tiny_data, tmp_path / "old", final_time_window_index=3, **args), printer=lambda *_: None)
    monkeypatch.undo()
    assert "pop_counts" not in json.loads((tmp_path / "old" / "checkpoint-last" / "experiment.json").read_text())
    run_experiment(tiny_config(tiny_data, tmp_path / "old", final_time_window_index=4, resume=True, **args),
                   printer=lambda *_: None)
    assert "whose most-popular comparison beside --no-incremental-training counted every window from the start window" \
           " on: windows 2..3 keep those figures" in caplog.text


def test_a_run_on_the_bundled_sample_of_an_earlier_install_resumes_on_this_one(tmp_path):
    """A run on the sample records the installed package's path: after a new virtualenv or an upgrade that path is gone,
    and the run (or a seeds folder, a study's final seeds) goes on with this install's sample (files checked by size)."""
    from sessrec.checkpoint import config_differences
    from sessrec.data.sample import bundled_sample_path
    from sessrec.experiment import resolve_data

    gone = str(tmp_path / "old-venv" / "lib" / "python3.11" / "site-packages" / "sessrec" / "data" / "sample")
    assert resolve_data(ExperimentConfig(data_path=gone))[0] == bundled_sample_path()
    assert config_differences(ExperimentConfig(data_path=gone), ExperimentConfig(data_path=str(bundled_sample_path()))) == []
    other = tmp_path / "mine" / "sample"  # any other folder is other data
    assert config_differences(ExperimentConfig(data_path=str(other)), ExperimentConfig(data_path=str(bundled_sample_path())))
    with pytest.raises(SessrecError, match="not found"):
        resolve_data(ExperimentConfig(data_path=str(other)))


def test_resume_refuses_a_different_config_and_a_run_without_checkpoint(tiny_data, tmp_path, capsys, caplog):
    quiet = {"printer": lambda *_: None}
    run_experiment(tiny_config(tiny_data, tmp_path / "a", model_type="pop"), **quiet)
    with pytest.raises(SessrecError, match=r"different config \(top_ks: \[10, 20\] -> \[5\]\)"):
        run_experiment(tiny_config(tiny_data, tmp_path / "a", model_type="pop", top_ks=[5], resume=True), **quiet)
    run_experiment(tiny_config(tiny_data, tmp_path / "b", model_type="pop", save_checkpoints=False), **quiet)
    with pytest.raises(SessrecError, match="no checkpoint in"):
        run_experiment(tiny_config(tiny_data, tmp_path / "b", model_type="pop", resume=True), **quiet)
    assert main(["run", "--resume", "--quiet"]) == 2  # needs --output-dir
    # from the command line: said before any data is read (not the defaults' data: the run's own is unknown here)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert main(["run", "--resume", "--output-dir", str(tmp_path / "b")]) == 2
    assert "bundled sample" not in caplog.text and "data checked" not in caplog.text
    assert f"cannot resume: no checkpoint in {tmp_path / 'b'}" in capsys.readouterr().err
    assert main(["run", "--resume", "--output-dir", str(tmp_path / "nowhere")]) == 2
    assert f"cannot resume: {tmp_path / 'nowhere'} not found" in capsys.readouterr().err


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.name != ".lock"}


def test_verify_checkpoint_names_a_truncated_changed_or_missing_file(tmp_path):
    folder = save_checkpoint(tmp_path, 1, ExperimentConfig(model_type="pop"), SCHEMA, {"model": MostPopular(None, SCHEMA)}, {})
    verify_checkpoint(folder)
    size = (folder / "model.safetensors").stat().st_size
    os.truncate(folder / "model.safetensors", size - 10)  # also checkpoint-last's: the same file (hard link)
    with pytest.raises(DamagedCheckpoint, match=rf"checkpoint-last is damaged: model.safetensors has {size - 10:,} bytes, "
                                                 rf"{size:,} when it was saved \(truncated or overwritten\)"):
        verify_checkpoint(tmp_path / "checkpoint-last")
    folder = save_checkpoint(tmp_path, 2, ExperimentConfig(model_type="pop"), SCHEMA, {"model": MostPopular(None, SCHEMA)}, {})
    _flip_a_byte(folder / "rng.safetensors")
    with pytest.raises(DamagedCheckpoint, match=r"rng.safetensors has changed since it was saved \(its SHA-256 differs"):
        verify_checkpoint(folder)
    verify_checkpoint(folder, only=["config.yaml"])  # checks only what it is asked to
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(DamagedCheckpoint, match="manifest.json is unreadable"):
        verify_checkpoint(folder)
    (folder / "manifest.json").unlink()
    with pytest.raises(DamagedCheckpoint, match="manifest.json is missing"):
        verify_checkpoint(folder)
    meta = json.loads((folder / "experiment.json").read_text())
    (folder / "experiment.json").write_text(json.dumps({**meta, "format_version": 1}))
    verify_checkpoint(folder)  # written before manifests existed: cannot be checked, still loads


def _fault_run(tiny_data, out, *extra):
    return main(["run", "--data-path", str(tiny_data), *FAULT_ARGS, "-o", str(out), *extra])


def test_resume_falls_back_to_the_newest_checkpoint_that_verifies(tiny_data, tmp_path, straight_run, caplog):
    out = tmp_path / "run"
    assert _fault_run(tiny_data, out, "--final-time-window-index", "3", "--keep-checkpoints", "2") == 0
    _flip_a_byte(out / "checkpoint-0002" / "model_state.safetensors")  # checkpoint-last's too
    assert main(["run", "--resume", "-o", str(out), "--final-time-window-index", "4", "--quiet"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"checkpoint {out}/checkpoint-last is damaged: model_state.safetensors has changed since it was saved" in warnings[0]
    assert "moved it to checkpoint-last.damaged and resuming from the older checkpoint-0001" in warnings[0]
    assert "checkpoint-0002 is damaged" in warnings[1]
    assert metric_rows(out) == metric_rows(straight_run)  # windows 3 and 4 computed again from window 1's state
    assert train_history(out) == train_history(straight_run)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-0002", "checkpoint-0002.damaged", "checkpoint-0003",
                                                                "checkpoint-last", "checkpoint-last.damaged"]
    assert latest_good_checkpoint(out) == (out / "checkpoint-last", [])


def test_no_checkpoint_verifies_one_line_and_nothing_touched(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert _fault_run(tiny_data, out, "--final-time-window-index", "3") == 0
    os.truncate(out / "checkpoint-last" / "model.safetensors", 100)
    before = _files(out)
    capsys.readouterr()
    assert main(["run", "--resume", "-o", str(out), "--final-time-window-index", "4", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"sessrec: error: cannot resume {out}: checkpoint {out}/checkpoint-last "
                                                   "is damaged: model.safetensors has 100 bytes")
    assert "(and 1 older checkpoint(s) too)" in err and "start the run again with --overwrite-output-dir" in err
    assert _files(out) == before  # results, history and checkpoints untouched
    for command in (["recommend", "--items", "1,2"], ["export", "--format", "torchscript", "--output", str(tmp_path / "m.pt")]):
        assert main([command[0], "--model-dir", str(out / "checkpoint-last"), *command[1:]]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"sessrec: error: checkpoint {out}/checkpoint-last is damaged: model.safetensors has 100 bytes, ")
        assert "load another checkpoint of the run" in err
        assert err.count("\n") == 1


def test_resume_refuses_data_that_changed_since_the_checkpoint(tiny_data, tmp_path):
    quiet = {"printer": lambda *_: None}
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    run_experiment(tiny_config(data, tmp_path / "a", model_type="pop", final_time_window_index=2), **quiet)
    run_experiment(tiny_config(data, tmp_path / "a", model_type="pop", final_time_window_index=3, resume=True), **quiet)
    changed = data / "0002" / "train.parquet"
    pq.write_table(pq.read_table(changed).slice(1), changed)  # prepared again: another window 2
    with pytest.raises(SessrecError, match=rf"cannot resume {tmp_path / 'a'}: the data changed since its checkpoint "
                                           rf"\({changed}: [\d,]+ bytes then, [\d,]+ bytes now\); resume with the data"):
        run_experiment(tiny_config(data, tmp_path / "a", model_type="pop", final_time_window_index=4, resume=True), **quiet)


def test_a_resume_with_another_thread_count_is_warned_and_keep_checkpoints_0_keeps_only_the_last(tiny_data, tmp_path,
                                                                                                  caplog):
    """A resume on another --num-threads (or machine) was silent though CPU sums may change in their last digits; one
    with --keep-checkpoints 0 left the numbered checkpoints written before it."""
    import torch

    out, threads = tmp_path / "run", torch.get_num_threads()
    try:
        _resume_with_other_threads(tiny_data, out, caplog)
    finally:
        torch.set_num_threads(threads)


def _resume_with_other_threads(tiny_data, out, caplog):
    assert _fault_run(tiny_data, out, "--final-time-window-index", "3", "--num-threads", "1", "--keep-checkpoints", "-1") == 0
    assert json.loads((out / "checkpoint-last" / "experiment.json").read_text())["cpu_threads"] == 1
    assert main(["run", "--resume", "-o", str(out), "--final-time-window-index", "4", "--num-threads", "2",
                 "--keep-checkpoints", "0", "--quiet"]) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"{out} was trained with 1 CPU threads and resumes with 2" in " ".join(warnings)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-last"]
    # log.json's PARAMETER record is the resumed run's config (it kept the first part's final window, 3)
    records = [json.loads(line.removeprefix("DLLL ")) for line in (out / "log.json").read_text().splitlines()]
    parameters = [r["data"] for r in records if r["step"] == "PARAMETER"]
    assert len(parameters) == 1 and parameters[0]["final_time_window_index"] == 4 and parameters[0]["num_threads"] == 2


def test_baseline_params_written_another_way_are_the_same_config():
    """``{layers: "24"}`` for ``{layers: 24}``, or a default given: one configuration, which --resume refused as a
    different one (QA helper-62); another value is still a change."""
    from sessrec.checkpoint import config_differences

    def gru(params):
        return ExperimentConfig.from_dict({"model_type": "gru4rec", "baseline_params": params})

    assert config_differences(gru({"layers": 24}), gru({"layers": "24"})) == []
    assert config_differences(gru({"layers": 24}), gru({"layers": 24, "n_epochs": 10})) == []  # 10: the default
    assert config_differences(gru({"layers": 24}), gru({"layers": 32})) == [
        "baseline_params: {'layers': 24} -> {'layers': 32}"]
    assert config_differences(gru({"layers": 24}), gru({"layerz": 24})) == [
        "baseline_params: {'layers': 24} -> {'layerz': 24}"]


@pytest.mark.parametrize("damage, named", [
    (lambda d: (d / "catalog-items.parquet").unlink(), "catalog-items.parquet"),
    (lambda d: (d / "catalog-map-item_id.parquet").write_bytes((d / "catalog-map-item_id.parquet").read_bytes()[:200]),
     "catalog-map-item_id.parquet"),
    (lambda d: (d / "catalog.json").write_text("{bad"), "catalog.json"),
])
def test_a_damaged_catalog_stops_the_run_before_the_folder_is_touched(catalog_data, catalog_run, tmp_path, capsys,
                                                                      damage, named):
    """An overwriting run deleted the old run's checkpoints, then failed copying a missing catalog file ("cannot write
    .catalog.tmp: the result files are intact"); a truncated map was copied as it was, and the run's model could never
    be loaded from original ids (QA helper-67)."""
    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(catalog_data, data)
    shutil.copytree(catalog_run, run, symlinks=True)
    damage(data)
    before = sorted(p.relative_to(run).as_posix() for p in run.rglob("*"))
    assert main(["run", "--data-path", str(data), "-o", str(run), "--overwrite-output-dir", "--d-model", "16",
                 "--n-layer", "1", "--n-head", "2", "--max-steps", "2", "--final-time-window-index", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sessrec: error: cannot read the catalog") and named in err and err.count("\n") == 1, err
    assert sorted(p.relative_to(run).as_posix() for p in run.rglob("*")) == before


def test_an_overwriting_run_that_fails_leaves_no_results_of_the_old_one(tiny_data, tmp_path, capsys):
    """The old run's results.json and eval files stayed beside the new run's config.yaml, and `sessrec report` showed
    them as the new run's, done (QA helper-67)."""
    run = tmp_path / "run"
    args = ["--data-path", str(tiny_data), "-o", str(run), "--d-model", "16", "--n-layer", "1", "--n-head", "2",
            "--max-steps", "2", "--final-time-window-index", "3", "--quiet"]
    assert main(["run", *args]) == 0
    assert (run / "results.json").is_file() and (run / "eval_train_results.csv").is_file()
    assert main(["run", *args, "--overwrite-output-dir", "--model-type", "gpt2", "--task", "clm", "--learning-rate",
                 "1e10"]) == 2
    assert "the training loss is" in capsys.readouterr().err
    left = {p.name for p in run.iterdir()}
    assert not left & {"results.json", "eval_train_results.csv", "eval_results_over_time.txt",
                       "eval_results_avg_over_time.txt", "train_results_over_time.txt"}, left
    assert "gpt2" in (run / "config.yaml").read_text()
    assert main(["report", str(run), "-o", str(tmp_path / "report")]) == 0
    assert "| GPT-2 (CLM) | 1 | 0 of 2 (stopped) | - |" in capsys.readouterr().out


@pytest.mark.parametrize("text, line", [("[1]", "not as sessrec writes it (TypeError: a checkpoint's state"),
                                        ("{not json", "not valid JSON (Expecting property name enclosed in double quotes "
                                                      "at line 1 column 2)"),
                                        ('{"format_version": 1}', "not as sessrec writes it (TypeError")])
def test_a_checkpoint_state_of_another_shape_is_one_line_naming_it(catalog_run, tmp_path, text, line):
    """An AttributeError or JSONDecodeError traceback from recommend, export and serve (QA helper-67)."""
    folder = tmp_path / "ckpt"
    shutil.copytree(catalog_run / "checkpoint-last", folder)
    (folder / "experiment.json").write_text(text)
    with pytest.raises(SessrecError, match=f"^{re.escape(str(folder / 'experiment.json') + ': ' + line)}"):
        read_checkpoint(folder, verify=False)


def test_a_resume_whose_data_lost_its_catalog_is_refused(catalog_data, tmp_path, capsys):
    """The resumed run deleted its own copy of the catalog and saved checkpoints without one: its model could no longer
    be recommended from with original ids (QA helper-69)."""
    data, run = tmp_path / "data", tmp_path / "run"
    shutil.copytree(catalog_data, data)
    args = ["--data-path", str(data), "-o", str(run), "--d-model", "16", "--n-layer", "1", "--n-head", "2",
            "--max-steps", "2", "--quiet"]
    assert main(["run", *args, "--final-time-window-index", "2"]) == 0
    (data / "catalog.json").unlink()
    assert main(["run", "--resume", "-o", str(run), "--final-time-window-index", "3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"cannot resume {run}: its data {data} has lost the catalog the run started with" in err, err
    assert (run / "catalog" / "catalog.json").is_file()
