import json

import pytest

from sessrec.checkpoint import latest_good_checkpoint
from sessrec.cli import main
from sessrec.errors import SessrecError
from sessrec.experiment import run_experiment, training_windows
from sessrec.recommend import Recommender
from tests.conftest import FAULT_ARGS, tiny_config
from tests.fault_child import leftovers, metric_rows, start_child, train_history


def test_same_seed_same_metrics(tiny_data, tmp_path):
    a = run_experiment(tiny_config(tiny_data, tmp_path / "a"), printer=lambda *_: None)
    b = run_experiment(tiny_config(tiny_data, tmp_path / "b"), printer=lambda *_: None)
    assert _same_except_time(a.aot, b.aot)
    c = run_experiment(tiny_config(tiny_data, tmp_path / "c", seed=1), printer=lambda *_: None)
    assert c.metric("ndcg_at_20") != a.metric("ndcg_at_20") or c.aot["eval_/loss"] != a.aot["eval_/loss"]



@pytest.mark.parametrize("model,task", [("gpt2", "clm"), ("xlnet", "mlm")])
def test_library_model_with_attention_groups_is_deterministic(tiny_data, tmp_path, model, task):
    """--compat t4r-23.12 end to end, with batches large enough for attention groups and dropout on."""
    kw = dict(model_type=model, task=task, compat="t4r-23.12", per_device_train_batch_size=160, dropout=0.1,
              use_side_information_features=True, layer_norm_featurewise=True)
    a = run_experiment(tiny_config(tiny_data, tmp_path / "a", **kw), printer=lambda *_: None)
    b = run_experiment(tiny_config(tiny_data, tmp_path / "b", **kw), printer=lambda *_: None)
    assert _same_except_time(a.aot, b.aot) and 0.0 < a.metric("recall_at_20") <= 1.0

def _same_except_time(x, y):
    keys = [k for k in x if "runtime" not in k and "per_second" not in k]
    return all(x[k] == y[k] for k in keys)


def test_aot_is_the_unweighted_mean_of_windows(tiny_data, tmp_path):
    res = run_experiment(tiny_config(tiny_data, tmp_path / "r", final_time_window_index=4), printer=lambda *_: None)
    assert [w["index"] for w in res.windows] == [2, 3, 4]
    key = "eval_/next-item/ndcg_at_20"
    assert res.aot[key] == pytest.approx(sum(w["metrics"][key] for w in res.windows) / 3)
    saved = json.loads((res.output_dir / "results.json").read_text())
    assert saved["aot"][key] == pytest.approx(res.aot[key])
    assert saved["windows"][0]["n_eval_sessions"] > 0 and "pop" in saved["windows"][0]


def test_pop_model_runs_alone(tiny_data, tmp_path):
    res = run_experiment(tiny_config(tiny_data, tmp_path / "p", model_type="pop"), printer=lambda *_: None)
    assert 0.0 < res.metric("recall_at_20") < 1.0
    assert "eval_/loss" not in res.aot


def test_refuses_non_empty_output_dir(tiny_data, tmp_path):
    out = tmp_path / "full"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(SessrecError, match="not empty"):
        run_experiment(tiny_config(tiny_data, out), printer=lambda *_: None)
    assert (out / "keep.txt").read_text() == "precious"


def test_training_windows_modes(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path)
    assert training_windows(cfg, 5) == [5]
    cfg.no_incremental_training = True
    assert training_windows(cfg, 5) == [1, 2, 3, 4, 5]
    cfg.training_time_window_size = 2
    assert training_windows(cfg, 5) == [4, 5]


@pytest.mark.parametrize("where,failed,evaluated", [("checkpoint:2", ".checkpoint-0002.tmp/model.safetensors", [2, 3]),
                                                     ("results:3", "history.jsonl", [2])])
def test_a_full_disk_stops_the_run_with_one_line_and_resume_continues(tiny_data, tmp_path, straight_run, where, failed, evaluated):
    """From the checkpoint of window 2 (the results of window 3) on, no file can grow: the run stops,
    says where and why, leaves no temporary file, keeps the last checkpoint; --resume then finishes it."""
    out = tmp_path / "run"
    child = start_child(["run", "--data-path", str(tiny_data), *FAULT_ARGS, "-o", str(out)], FULL_DISK_AT=where)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 2, err
    assert err.splitlines()[-1] == (f"sessrec: error: cannot write {out}/{failed}: File too large [EFBIG]; the result "
                                    "files and the newest checkpoint (checkpoint-last) are intact: free some space, then "
                                    f"continue with `sessrec run --resume --output-dir {out}`")
    assert "Traceback" not in err
    assert leftovers(out) == []
    assert latest_good_checkpoint(out) == (out / "checkpoint-last", [])
    assert json.loads((out / "checkpoint-last" / "experiment.json").read_text())["trained_window"] == 1
    Recommender.load(out / "checkpoint-last")
    assert [int(r["index"]) for r in metric_rows(out)] == evaluated
    assert [w["index"] for w in json.loads((out / "results.json").read_text())["windows"]] == evaluated
    assert main(["run", "--resume", "-o", str(out), "--quiet"]) == 0
    assert metric_rows(out) == metric_rows(straight_run)
    assert train_history(out) == train_history(straight_run)
