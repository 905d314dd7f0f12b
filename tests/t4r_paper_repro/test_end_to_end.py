"""Paper command lines run end to end on generated data in each data set's layout.

Each command keeps every published flag; only the module, data, feature-config and output paths
change, and a few overrides are appended so that a run takes seconds (they win: last value).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sessrec.baselines import BASELINES
from sessrec.experiment import resolve_data, run_experiment
from sessrec.learners import build_learner
from t4r_paper_repro import baselines_main, transf_exp_main
from t4r_paper_repro.arguments import split_algorithm_params
from tests.t4r_paper_repro.paper import (
    argv_of,
    paper_commands,
    small_feature_configs,
    small_schema_pbtxt,
    write_datasets,
)

FAST = ["--final_time_window_index", "3", "--max_steps", "3", "--d_model", "32", "--per_device_train_batch_size", "32",
        "--per_device_eval_batch_size", "64", "--eval_steps_on_train_set", "1", "--disable_tqdm", "--report_to", "none"]
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper")
    configs = small_feature_configs(root / "feature_configs")
    return write_datasets(root / "data", configs), configs


def _argv(title: str, dataset: str, paths, out: Path, extra=()) -> list[str]:
    data, configs = paths
    return argv_of(title, dataset).rewritten(data, configs, out) + FAST + list(extra)


def _rows(out: Path) -> list[dict]:
    return list(csv.DictReader(open(out / "eval_train_results.csv")))


def test_rees46_xlnet_mlm_writes_the_original_outputs(paths, tmp_path, capsys):
    out = tmp_path / "xlnet-mlm"
    assert transf_exp_main.main(_argv("XLNet (MLM)", "ecommerce", paths, out)) == 0
    captured = capsys.readouterr()
    for note in ("--fp16: no CUDA device here", "--data_loader_engine nvtabular:", "--similarity_type concat_mlp: no effect",
                 "--validate_every 10: no effect", "--save_steps 0: sessrec checkpoints after every window"):
        assert captured.err.count(note) == 1, note
    rows = _rows(out)
    assert not list(out.glob("checkpoint-*"))  # --save_steps 0: no checkpoints, as the paper's commands meant
    assert [r["index"] for r in rows] == ["2", "3"]
    keys = {f"{p}_/next-item/{m}_at_{k}" for p in ("eval", "train") for m in ("ndcg", "recall") for k in (10, 20)}
    keys |= {f"{p}_{s}" for p in ("eval", "train") for s in ("runtime", "samples_per_second", "steps_per_second")}
    assert keys | {"eval_/loss", "train_/loss"} <= set(rows[0])
    evaluated = (out / "eval_results_over_time.txt").read_text()
    assert evaluated.startswith("\n***** eval results (time index): 2)*****\n")
    assert "***** Recall@10 of simulated inference = " in evaluated.splitlines()[-1]
    recall = float(evaluated.splitlines()[-1].split("= ")[1].split(" ")[0])
    assert recall == pytest.approx(float(rows[-1]["eval_/next-item/recall_at_10"]))  # same window, same code path
    assert (out / "train_results_over_time.txt").read_text().startswith("\n***** train results (time index): 2)*****\n")
    aot = (out / "eval_results_avg_over_time.txt").read_text().splitlines()
    assert aot[:2] == ["", "***** Eval results (avg over time) *****"]
    assert any(line.startswith("eval_/next-item/ndcg_at_20_AOT = ") for line in aot)
    records = [json.loads(line[len("DLLL "):]) for line in (out / "log.json").read_text().splitlines()]
    assert records[0]["step"] == "PARAMETER" and records[0]["data"]["model_type"] == "xlnet"
    assert [r["step"] for r in records[1:]] == [[2], [2], [3], [3], []]
    assert set(records[1]["data"]) == {k for k in rows[0] if k.startswith("train_")}
    assert set(records[2]["data"]) == {k for k in rows[0] if k.startswith("eval_")}
    assert all(k.endswith("_AOT") for k in records[-1]["data"])
    assert list(records[0]) == ["timestamp", "datetime", "elapsedtime", "type", "step", "data"]
    assert " " in records[0]["datetime"] and "T" not in records[0]["datetime"]  # str(datetime), as DLLogger


def test_g1_gpt2_clm(paths, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    out = tmp_path / "gpt2"
    assert transf_exp_main.main(_argv("GPT-2 (CLM)", "g1_news", paths, out)) == 0
    assert os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "system"  # the entry point ran sessrec.cli.setup_process
    captured = capsys.readouterr()
    assert "gpt2-clm on" in captured.out and "simulated inference: recall@10" in captured.out
    assert captured.err.count("t4r_paper_repro.transf_exp_main: --fp16: no CUDA device here, training in float32") == 1
    assert len(_rows(out)) == 2


def test_module_entry_point_and_its_one_line_errors(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-m", "t4r_paper_repro.transf_exp_main", "--output_dir", str(tmp_path), "--d_modle", "8"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("t4r_paper_repro.transf_exp_main: error: unrecognized argument --d_modle (did you mean --d_model?); "
                                   "the accepted arguments are listed by --help and in the README")
    proc = subprocess.run([sys.executable, "-m", "t4r_paper_repro.baselines_main", "--help"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "--eval_baseline_cpu_parallel" in proc.stdout


def test_adressa_side_information_from_the_feature_config(paths, tmp_path):
    cfg, _, _ = transf_exp_main.parse_args(_argv("CONCAT", "adressa", paths, tmp_path / "concat"))
    cfg.compare_with_pop = False
    result = run_experiment(cfg, printer=lambda *_: None)
    assert {"article_id", "city", "referrer_class", "hour_sin", "item_age_hours_norm"} <= set(result.learner.input_names)
    assert "timestamp" not in result.learner.input_names  # a control feature of the YAML: loaded, never an input
    assert 0.0 <= result.metric("ndcg_at_20") <= 1.0


def test_rees46_schema_pbtxt_with_use_side_information_features(paths, tmp_path):
    """The README route of the released example: --features_schema_path plus --use_side_information_features."""
    argv = _argv("CONCAT", "ecommerce", paths, tmp_path / "pbtxt")
    i = argv.index("--feature_config")
    argv[i:i + 2] = ["--features_schema_path", str(small_schema_pbtxt("ecommerce", tmp_path)), "--use_side_information_features"]
    cfg, _, _ = transf_exp_main.parse_args(argv)
    cfg.compare_with_pop = False
    result = run_experiment(cfg, printer=lambda *_: None)
    assert {"sess_pid_seq", "sess_bid_seq", "sess_price_log_norm_seq"} <= set(result.learner.input_names)


def test_yoochoose_xlnet_clm_retrained_on_a_sliding_window(paths, tmp_path):
    out = tmp_path / "swt"
    extra = ["--no_incremental_training", "--training_time_window_size", "2", "--final_time_window_index", "4",
             "--simulated_inference", "False"]
    assert transf_exp_main.main(_argv("XLNet (CLM)", "yoochoose", paths, out, extra)) == 0
    windows = json.loads((out / "results.json").read_text())["windows"]
    assert [w["train_windows"] for w in windows] == [[1], [1, 2], [2, 3]]
    assert [w["n_train_sessions"] for w in windows] == [120, 240, 240]  # 120 training sessions per generated window
    assert "Recall@10 of simulated inference" not in (out / "eval_results_over_time.txt").read_text()


def test_baseline_command(paths, tmp_path, capsys):
    vsknn = _argv("V-SKNN", "ecommerce", paths, tmp_path / "vsknn")
    rc = baselines_main.main(vsknn)
    if "vsknn" not in BASELINES:
        assert rc == 2
        assert capsys.readouterr().err.strip().endswith("--model_type vsknn: this baseline is not yet available in sessrec.baselines "
                                                        f"(available: {', '.join(sorted(BASELINES))})")
        assert not (tmp_path / "vsknn").exists()
    else:
        assert rc == 0 and len(_rows(tmp_path / "vsknn")) == 2
    pop, _ = split_algorithm_params(vsknn)  # the same command without the --vsknn-* parameters
    pop[pop.index("--model_type") + 1] = "pop"
    pop[pop.index("--output_dir") + 1] = str(tmp_path / "pop")
    assert baselines_main.main(pop) == 0
    rows = _rows(tmp_path / "pop")
    assert [r["index"] for r in rows] == ["2", "3"] and "eval_/loss" not in rows[0]


TRANSFORMER_COMMANDS = [c for c in paper_commands() if not c.is_baseline]


def test_every_transformer_command_builds_its_model(paths, tmp_path):
    """Every published Transformer/GRU command builds the model and objective it names."""
    data, configs = paths
    built = set()
    for cmd in TRANSFORMER_COMMANDS:
        cfg, _, _ = transf_exp_main.parse_args(cmd.rewritten(data, configs, tmp_path / "x") + FAST)
        build_learner(cfg, resolve_data(cfg)[1])
        built.add((cfg.model_type, cfg.task))
    assert {("gpt2", "clm"), ("xlnet", "clm"), ("xlnet", "mlm"), ("xlnet", "plm"), ("xlnet", "rtd"), ("electra", "rtd"),
            ("transfoxl", "clm"), ("albert", "mlm"), ("gru", "clm")} <= built, built


def _one_command_per_pair() -> list:
    """The first command of each (--model_type, objective flag) pair."""
    seen, out = set(), []
    for cmd in TRANSFORMER_COMMANDS:
        pair = (cmd.value("--model_type"), next((f for f in ("--mlm", "--plm", "--rtd") if f in cmd.argv), "clm"))
        if pair not in seen:
            seen.add(pair)
            out.append(cmd)
    return out


@pytest.mark.parametrize("cmd", _one_command_per_pair(), ids=lambda c: f"{c.dataset}:{c.title}")
def test_each_architecture_and_objective_runs_to_completion(paths, tmp_path, cmd):
    data, configs = paths
    out = tmp_path / "run"
    assert transf_exp_main.main(cmd.rewritten(data, configs, out) + FAST + ["--simulated_inference", "False"]) == 0
    rows = _rows(out)
    assert [r["index"] for r in rows] == ["2", "3"] and all(0.0 <= float(r["eval_/next-item/ndcg_at_20"]) <= 1.0 for r in rows)


def test_bad_data_in_the_last_window_stops_the_paper_command_before_anything_is_written(tiny_data, tmp_path, capsys):
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    bad = data / "0004" / "test.parquet"
    table = pq.read_table(bad)
    items = table.column("sess_pid_seq").to_pylist()
    items[3][0] = 0  # padding id inside a session
    pq.write_table(table.set_column(table.schema.get_field_index("sess_pid_seq"), "sess_pid_seq",
                                    pa.array(items, pa.list_(pa.int64()))), bad)
    out = tmp_path / "out"
    argv = ["--output_dir", str(out), "--data_path", str(data), "--model_type", "xlnet", "--mlm", "--d_model", "16",
            "--n_head", "2", "--n_layer", "1", "--max_steps", "2", "--final_time_window_index", "4", "--eval_on_test_set",
            "--disable_tqdm", "--report_to", "none"]
    assert transf_exp_main.main(argv) == 2
    assert not out.exists()
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"t4r_paper_repro.transf_exp_main: error: {bad} (window 4): row 3: item id 0 in 'sess_pid_seq' "
                   "is reserved for padding")


@pytest.mark.parametrize("model_type", ["sasrec", "hstu"])
def test_the_paper_front_end_runs_the_recent_bodies(paths, tmp_path, capsys, model_type):
    """``--model_type sasrec`` / ``hstu`` go through the original arguments like the paper's models (CLM: no objective flag)."""
    argv = _argv("GPT-2 (CLM)", "g1_news", paths, tmp_path / model_type)
    argv[argv.index("--model_type") + 1] = model_type
    cfg, _, _ = transf_exp_main.parse_args(argv)
    assert (cfg.model_type, cfg.task) == (model_type, "clm")
    assert transf_exp_main.main(argv) == 0
    assert len(_rows(tmp_path / model_type)) == 2
    with_mlm = _argv("GPT-2 (CLM)", "g1_news", paths, tmp_path / "mlm", extra=["--mlm"])
    with_mlm[with_mlm.index("--model_type") + 1] = model_type
    capsys.readouterr()
    assert transf_exp_main.main(with_mlm) == 2
    assert f"error: model_type '{model_type}' is causal only: use task clm" in capsys.readouterr().err
