"""``sessrec run --model <baseline>`` end to end on tiny data: the same protocol and output files."""

import json

import pytest

from sessrec.cli import main

RUNS = {
    "pop": [],
    "vsknn": ["--baseline-params", "{k: 50, sample_size: 200, weighting: quadratic, idf_weighting: 10}"],
    "stan": ["--baseline-params", "{k: 50, sample_size: 500, lambda_spw: 1.02, lambda_snh: 5, lambda_inh: 2.05}"],
    "vstan": ["--baseline-params", "{k: 50, sample_size: 500, lambda_ipw: 1.02, lambda_idf: 5}"],
    "gru4rec": ["--baseline-params", "{layers: 16, n_epochs: 1, batch_size: 32, n_sample: 32, loss: top1-max, "
                                     "final_act: tanh, constrained_embedding: true}"],
}


@pytest.mark.parametrize("model", list(RUNS))
def test_sessrec_run_each_baseline(model, tiny_data, tmp_path, capsys):
    out = tmp_path / model
    assert main(["run", "--model", model, "--data-path", str(tiny_data), "--output-dir", str(out), "--quiet",
                 "--final-time-window-index", "3", *RUNS[model]]) == 0
    printed = capsys.readouterr().out
    assert "AOT" in printed
    res = json.loads((out / "results.json").read_text())
    ndcg = res["aot"]["eval_/next-item/ndcg_at_20"]
    assert 0.0 < ndcg < 1.0
    assert [w["index"] for w in res["windows"]] == [2, 3]
    if model != "pop":  # the kNN methods and GRU4Rec beat the popularity floor even on this tiny data
        assert ndcg > res["pop_aot"]["eval_/next-item/ndcg_at_20"]


def test_gru4rec_ft_and_swt_retrain_on_past_windows(tiny_data, tmp_path):
    for size, windows in ((0, [[1], [1, 2], [1, 2, 3]]), (2, [[1], [1, 2], [2, 3]])):
        out = tmp_path / f"w{size}"
        assert main(["run", "--model", "gru4rec", "--data-path", str(tiny_data), "--output-dir", str(out), "--quiet",
                     "--no_incremental_training", "--training_time_window_size", str(size),
                     "--baseline-params", "{layers: 8, n_epochs: 1, batch_size: 64, n_sample: 16}"]) == 0
        res = json.loads((out / "results.json").read_text())
        assert [w["train_windows"] for w in res["windows"]] == windows
        assert res["windows"][1]["n_train_sessions"] == 2 * res["windows"][0]["n_train_sessions"]


def test_bad_baseline_parameter_exits_2_with_one_line(tiny_data, tmp_path, capsys):
    rc = main(["run", "--model", "stan", "--data-path", str(tiny_data), "--output-dir", str(tmp_path / "x"),
               "--baseline-params", "{lambda_snhh: 3}"])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sessrec: error: baseline_params: unknown parameter 'lambda_snhh' for stan (did you mean "
                   "'lambda_snh'?); known: k, sample_size, sampling, remind, extend, lambda_spw, lambda_snh, lambda_inh"]
