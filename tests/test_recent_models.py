"""The recent models end to end: ``sessrec run`` of SASRec and HSTU, and of the gBCE and BPR-max
losses, on tiny data, then resume, recommend and export from their checkpoints."""

from __future__ import annotations

import pytest
import yaml

from sessrec.cli import main
from sessrec.export import export_model
from sessrec.recommend import Recommender

RUNS = {
    "sasrec": ["--model-type", "sasrec", "--task", "clm"],
    "hstu": ["--model-type", "hstu", "--task", "clm"],
    "gbce": ["--model-type", "sasrec", "--task", "clm", "--loss-type", "gbce", "--gbce-t", "0.5", "--num-negatives", "16"],
    "bpr-max": ["--model-type", "gpt2", "--task", "clm", "--loss-type", "bpr_max", "--num-negatives", "8"],
    "gbce-mlm": ["--model-type", "bert", "--task", "mlm", "--loss-type", "gbce"],
}
FAST = ["--d-model", "16", "--n-head", "2", "--n-layer", "1", "--max-steps", "3", "--per-device-train-batch-size", "32",
        "--eval-steps-on-train-set", "1", "--quiet"]


def _aot(out):
    """The averaged metrics (not the speeds) of a run."""
    return [line for line in (out / "eval_results_avg_over_time.txt").read_text().splitlines() if "_at_" in line]


@pytest.mark.parametrize("name", sorted(RUNS))
def test_run_resume_recommend(tiny_data, tmp_path, name):
    out = tmp_path / name
    base = ["run", "--data-path", str(tiny_data), "-o", str(out), *RUNS[name], *FAST]
    assert main([*base, "--final-time-window-index", "3"]) == 0
    assert (out / "checkpoint-last").is_dir()
    # continue the run to window 4; the same run straight through gives the same metrics
    assert main(["run", "-o", str(out), "--resume", "--final-time-window-index", "4", "--quiet"]) == 0
    straight = tmp_path / f"{name}-straight"
    assert main(["run", "--data-path", str(tiny_data), "-o", str(straight), *RUNS[name], *FAST,
                 "--final-time-window-index", "4"]) == 0
    assert _aot(out) == _aot(straight)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["model_type"] == RUNS[name][1]
    rec = Recommender.load(out / "checkpoint-last")
    sessions = [[1, 2, 3], [5]]
    if name == "hstu":  # the sample data has a time column: HSTU reads it, and a session gives its times
        assert rec.input_names[-1] == "sess_etime_seq"
        sessions = [{rec.item_key: s, "sess_etime_seq": [1.6e9 + 60.0 * i for i in range(len(s))]} for s in sessions]
    got = rec.recommend(sessions, k=5, internal_ids=True)
    assert [len(r) for r in got.ids] == [5, 5]
    if name == "hstu":
        result = export_model(out / "checkpoint-last", "torchscript", tmp_path / "hstu.pt")
        assert result.input_names == rec.input_names and result.max_abs_diff < 1e-4
