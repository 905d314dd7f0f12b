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


# Bad data in the LAST window: found before the output folder is made and before any training.
def _corrupt(table, kind):
    import pyarrow as pa
    import pyarrow.compute as pc

    col = "sess_pid_seq"
    if kind == "item id out of range":  # row 5's items: one id past the catalog
        items = table.column(col).to_pylist()
        items[5] = items[5][:-1] + [200]
        return table.set_column(table.schema.get_field_index(col), col, pa.array(items, pa.list_(pa.int64()))), 5, col
    if kind == "NaN":
        col = "sess_price_log_norm_seq"
        prices = table.column(col).to_pylist()
        prices[7][0] = float("nan")
        return table.set_column(table.schema.get_field_index(col), col, pa.array(prices, pa.list_(pa.float32()))), 7, col
    if kind == "missing column":
        col = "sess_csid_seq"
        return table.drop_columns([col]), None, col
    if kind == "wrong type":  # categorical ids written as floats
        col = "sess_ccid_seq"
        floats = pc.cast(table.column(col), pa.list_(pa.float64()))
        return table.set_column(table.schema.get_field_index(col), col, floats), None, col
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["item id out of range", "NaN", "missing column", "wrong type"])
def test_bad_data_in_the_last_window_stops_before_anything_is_written(tiny_data, tmp_path, kind, capsys):
    import shutil

    import pyarrow.parquet as pq

    from sessrec.cli import main

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    bad_file = data / "0004" / "valid.parquet"
    table, row, column = _corrupt(pq.read_table(bad_file), kind)
    pq.write_table(table, bad_file)
    args = ["run", "--data-path", str(data), "--final-time-window-index", "4", "--d-model", "16", "--n-layer", "1",
            "--n-head", "2", "--max-steps", "2", "--quiet", "--use-side-information-features"]
    out = tmp_path / "out"
    assert main([*args, "-o", str(out)]) == 2
    assert not out.exists()
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line.lower() or "Traceback" in line]
    assert len(err) == 1 and err[0].startswith("sessrec: error: "), err
    assert str(bad_file) in err[0] and "(window 4)" in err[0]
    assert f"'{column}'" in err[0] or f"column(s) {column} of the schema are missing" in err[0]
    if row is not None:
        assert f"row {row}:" in err[0]
    # an existing output folder is left as it was, even with --overwrite-output-dir
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert main([*args, "-o", str(out), "--overwrite-output-dir"]) == 2
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "precious"


def test_data_files_are_those_the_run_reads(tiny_data, tmp_path):
    from sessrec.experiment import data_files

    def names(**kw):
        cfg = tiny_config(tiny_data, tmp_path, **kw)
        return [(w, f"{p.parent.name}/{p.name}") for w, p in data_files(cfg, tiny_data, cfg.start_time_window_index, 4)]

    assert names() == [(1, "0001/train.parquet"), (2, "0002/train.parquet"), (3, "0003/train.parquet"),
                       (2, "0002/valid.parquet"), (3, "0003/valid.parquet"), (4, "0004/valid.parquet")]
    assert names(eval_on_test_set=True, start_time_window_index=2)[-1] == (4, "0004/test.parquet")
    assert [w for w, _ in names(start_time_window_index=3, no_incremental_training=True, training_time_window_size=0)] == [1, 2, 3, 4]


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


def test_options_that_cannot_act_are_warned(tiny_data, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        run_experiment(tiny_config(tiny_data, tmp_path / "pop", model_type="pop", use_side_information_features=True,
                                   final_time_window_index=2), printer=lambda *_: None)
    assert "use_side_information_features has no effect on the pop baseline (it reads item ids only)" in caplog.text


def test_a_baselines_protocol_options_without_effect_are_warned_and_unknown_parameters_refused(tiny_data, tmp_path,
                                                                                            caplog):
    """A sweep of every option (QA helper-41) found these accepted without a word: the last incomplete batch (a
    baseline reads whole windows), a training-window size without --no-incremental-training, neural options from a
    --config file, and any parameter given to pop."""
    import logging

    from sessrec.cli import main

    with caplog.at_level(logging.WARNING):
        run_experiment(tiny_config(tiny_data, tmp_path / "pop", model_type="pop", dataloader_drop_last=True,
                                   training_time_window_size=1, final_time_window_index=2), printer=lambda *_: None)
    assert "dataloader_drop_last has no effect on the pop baseline (it reads whole windows)" in caplog.text
    assert "training_time_window_size has no effect without no_incremental_training" in caplog.text
    (tmp_path / "c.yaml").write_text("model_type: vsknn\nd_model: 32\nlearning_rate: 0.5\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main(["run", "--config", str(tmp_path / "c.yaml"), "--data-path", str(tiny_data), "-o",
                     str(tmp_path / "v"), "--final-time-window-index", "2", "--quiet"]) == 0
    assert "no effect on the vsknn baseline (options of the neural models): --d-model --learning-rate" in caplog.text
    with pytest.raises(SessrecError, match=r"^baseline 'pop' takes no baseline_params \(got bogus_param\)$"):
        run_experiment(tiny_config(tiny_data, tmp_path / "p2", model_type="pop", baseline_params={"bogus_param": 3},
                                   final_time_window_index=2), printer=lambda *_: None)


def test_the_callers_random_state_and_metric_names(tiny_data, tmp_path):
    """From a notebook: the run seeds the global generators for itself, then gives the caller's back; a metric name
    that is not in the results says which are."""
    import random

    import numpy as np
    import torch

    np.random.seed(123), random.seed(1), torch.manual_seed(9)
    expected = (np.random.rand(), random.random(), torch.rand(1).item())
    np.random.seed(123), random.seed(1), torch.manual_seed(9)
    result = run_experiment(tiny_config(tiny_data, tmp_path / "r", final_time_window_index=2), printer=lambda *_: None)
    assert (np.random.rand(), random.random(), torch.rand(1).item()) == expected
    assert result.metric("ndcg_at_20") == result.metric("eval_/next-item/ndcg_at_20")
    with pytest.raises(SessrecError, match=r"no metric 'ndcg@20': the run has .*ndcg_at_20"):
        result.metric("ndcg@20")


def test_a_catalog_of_one_item_is_said_so(tmp_path, caplog):
    """"choose k below 1", which no k can (QA helper-70)."""
    import logging

    from tests.conftest import write_sessions

    for w in (1, 2):
        for split in ("train", "valid", "test"):
            write_sessions(tmp_path / "data" / f"{w:04d}" / f"{split}.parquet", {"item_id": [[1, 1], [1, 1, 1]]})
    with caplog.at_level(logging.WARNING):
        run_experiment(tiny_config(tmp_path / "data", tmp_path / "pop", model_type="pop", final_time_window_index=2),
                       printer=lambda *_: None)
    assert "the catalog has 1 item: every target the model can score is a hit at any k (HR = 1)" in caplog.text
    assert "choose k below" not in caplog.text


def test_top_ks_reaching_the_catalog_are_warned(tiny_data, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING):
        run_experiment(tiny_config(tiny_data, tmp_path / "pop", model_type="pop", top_ks=[10, 199, 500],
                                   final_time_window_index=2), printer=lambda *_: None)
    assert "top_ks 199, 500: not below the catalog's 199 items, where every target the model can score is a hit" \
        in caplog.text


def test_the_most_popular_comparison_scores_the_sessions_the_model_scores(tiny_data, tmp_path):
    """With --compute-metrics-each-n-steps the model is scored on every n-th batch: the most-popular comparison
    (paired with it in the report's t-tests) must be scored on the same sessions."""
    result = run_experiment(tiny_config(tiny_data, tmp_path / "a", model_type="gru", task="clm",
                                        per_device_eval_batch_size=16, compute_metrics_each_n_steps=2),
                            printer=lambda *_: None)
    for w in result.windows:
        assert w["pop"]["eval_n_sessions"] == w["metrics"]["eval_n_sessions"] < w["n_eval_sessions"] * 2


@pytest.mark.parametrize("window_size", [0, 1])  # FT (all windows since 1) and SWT (the last one)
def test_the_most_popular_comparison_counts_the_windows_the_model_trains_on(tiny_data, tmp_path, window_size):
    """Beside a run that trains a fresh model per window, the most-popular comparison equals `--model pop` with the
    same options (it was counted from the start window on, window after window: fewer or more windows)."""
    quiet = {"printer": lambda *_: None}
    args = {"no_incremental_training": True, "training_time_window_size": window_size, "start_time_window_index": 2,
            "final_time_window_index": 4}
    beside = run_experiment(tiny_config(tiny_data, tmp_path / "knn", model_type="vsknn", **args), **quiet)
    alone = run_experiment(tiny_config(tiny_data, tmp_path / "pop", model_type="pop", **args), **quiet)
    assert [w["train_windows"] for w in beside.windows] == ([[1, 2], [1, 2, 3]] if window_size == 0 else [[2], [3]])
    for b, a in zip(beside.windows, alone.windows, strict=True):
        assert {k: v for k, v in b["pop"].items() if "/" in k} == {k: v for k, v in a["metrics"].items() if k in b["pop"]
                                                                   and "/" in k}


def test_a_baselines_neural_options_are_warned_and_make_no_other_algorithm(tiny_data, tmp_path, caplog):
    """`sessrec run --model pop --task rtd --d-model 999`: said once; the run is the same algorithm as without them."""
    import logging

    from sessrec.cli import main
    from sessrec.report import load_run

    base = ["run", "--data-path", str(tiny_data), "--model", "pop", "--final-time-window-index", "2", "--quiet"]
    with caplog.at_level(logging.WARNING):
        assert main([*base, "-o", str(tmp_path / "a"), "--task", "rtd", "--d-model", "999", "--seed", "3"]) == 0
    assert "no effect on the pop baseline (options of the neural models): --task --d-model" in caplog.text
    assert main([*base, "-o", str(tmp_path / "b")]) == 0
    assert load_run(tmp_path / "a").identity == load_run(tmp_path / "b").identity


def test_a_given_schema_far_larger_than_the_datas_is_warned(tiny_data, tmp_path, caplog):
    """The paper's YAML feature configs keep the original data's 390,000 items: on prepared data every evaluation would
    also rank ids that never occur. Warned (naming both files), not refused; an equal schema is not warned about."""
    import logging

    from sessrec.schema import load_schema

    own = load_schema(tiny_data / "schema.pbtxt")
    load_schema(tiny_data / "schema.pbtxt").with_item_cardinality(own.n_items * 10).save(tmp_path / "big.pbtxt")
    with caplog.at_level(logging.WARNING):
        run_experiment(tiny_config(tiny_data, tmp_path / "big", model_type="pop", final_time_window_index=2,
                                   features_schema_path=str(tmp_path / "big.pbtxt")), printer=lambda *_: None)
    assert (f"big.pbtxt gives the item id a cardinality of {own.n_items * 10:,}, the data's own schema "
            f"{tiny_data / 'schema.pbtxt'} {own.n_items:,}: every evaluation also ranks the {own.n_items * 9:,} ids that "
            "never occur") in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        run_experiment(tiny_config(tiny_data, tmp_path / "same", model_type="pop", final_time_window_index=2,
                                   features_schema_path=str(tiny_data / "schema.pbtxt")), printer=lambda *_: None)
    assert "never occur" not in caplog.text


def test_sessions_longer_than_the_model_reads_are_warned(tiny_data, tmp_path, caplog, monkeypatch):
    """Data prepared with --max-session-length 100 and the default session_seq_length_max 20: evaluation held out
    item 20 of longer sessions, not their last, with no word said (QA helper-63)."""
    import logging

    import sessrec.errors

    monkeypatch.setattr(sessrec.errors, "_warned", set())
    for length, warned in ((10, True), (20, False)):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            run_experiment(tiny_config(tiny_data, tmp_path / str(length), model_type="pop", final_time_window_index=2,
                                       session_seq_length_max=length), printer=lambda *_: None)
        assert ("the data's sessions may hold up to 20 interactions (its schema's value_count max: the "
                "--max-session-length it was prepared with) and session_seq_length_max is 10: a longer session is "
                "read as its first 10 (evaluation holds out its item number 10, not its last); pass "
                "--session-seq-length-max 20 to read them whole" in caplog.text) == warned, caplog.text


def test_a_window_of_few_evaluated_sessions_is_warned(realistic_data, tmp_path, caplog):
    """A window of 7 sessions weighs in the average over time as much as one of 450 (the paper's unweighted mean), with
    metrics in steps of 1/n: said, not changed (QA helper-63)."""
    import logging

    with caplog.at_level(logging.WARNING):
        res = run_experiment(tiny_config(realistic_data, tmp_path / "r", model_type="pop", final_time_window_index=4),
                             printer=lambda *_: None)
    few = [f"{w['index']} ({n} session{'s' * (n > 1)})" for w in res.windows if (n := w["n_eval_sessions"]) < 10]
    # one warning under the table, not one between its rows (QA helper-65)
    assert few and caplog.text.count("fewer than 10 evaluated sessions") == 1, caplog.text
    assert (f"window(s) with fewer than 10 evaluated sessions: {', '.join(few)}: their metrics move in steps of 1/n (n "
            "sessions), and each weighs in the averages over time as much as any window") in caplog.text
