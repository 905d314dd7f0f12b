"""Every (architecture, objective) pair of the paper trains and evaluates through ``sessrec run``."""

import json

import pytest

from sessrec.cli import main
from tests.bodies.pairs import PAPER_PAIRS


@pytest.mark.parametrize("model_type,task", PAPER_PAIRS)
def test_sessrec_run(model_type, task, tiny_data, tmp_path, capsys):
    out = tmp_path / f"{model_type}-{task}"
    args = ["run", "--data-path", str(tiny_data), "-o", str(out), "--model", model_type, "--task", task,
            "--d-model", "16", "--n-layer", "1", "--n-head", "2", "--max-steps", "2", "--final-time-window-index", "2",
            "--eval-steps-on-train-set", "1", "--quiet"]
    if model_type == "albert":
        args += ["--num-hidden-groups", "-1"]
    if task == "rtd":
        args += ["--rtd-tied-generator", "--rtd-sample-from-batch"]
    assert main(args) == 0
    assert f"{model_type}-{task}" in capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    metrics = res["windows"][0]["metrics"]
    assert 0.0 <= metrics["eval_/next-item/ndcg_at_20"] <= 1.0 and metrics["eval_/loss"] > 0
    assert res["windows"][0]["n_eval_sessions"] > 0
