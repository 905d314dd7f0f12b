"""Every model end to end on realistic click-log windows (``write_realistic_windows``): repeats, single
clicks, sessions longer than the maximum length, items first seen in the evaluated window (the
largest id among them), a window smaller than one batch, side features with unknown values and
outliers. Each run is checked for real properties, then served (``recommend``, ``export``) and
reported; a few are killed with ``kill -9`` and resumed.

The runs are made once per session (``runs``) and shared by the tests that read them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from sessrec.baselines import BASELINES
from sessrec.bodies import BODIES
from sessrec.checkpoint import find_checkpoint
from sessrec.cli import main
from sessrec.config import ExperimentConfig
from sessrec.experiment import run_experiment
from sessrec.recommend import Recommender
from sessrec.tasks import OBJECTIVES
from tests.bodies.pairs import ALL_PAIRS
from tests.conftest import keep_first_click
from tests.test_checkpoint import KILLER, SRC, _metric_rows

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")

TINY = {"d_model": 16, "n_layer": 1, "n_head": 2, "max_steps": 2, "per_device_train_batch_size": 32,
        "per_device_eval_batch_size": 64, "eval_steps_on_train_set": 1, "quiet": True}
BASELINE_PARAMS = {
    "pop": {},
    "vsknn": {"k": 20, "sample_size": 100, "weighting": "quadratic", "idf_weighting": 10},
    "stan": {"k": 20, "sample_size": 100},
    "vstan": {"k": 20, "sample_size": 100, "lambda_idf": 5},
    "gru4rec": {"layers": 16, "n_epochs": 1, "batch_size": 32, "n_sample": 16},
}


def config(data: Path, out: Path, model: str, task: str = "clm", side: bool = False, **overrides) -> ExperimentConfig:
    values = {**TINY, "data_path": str(data), "output_dir": str(out), "model_type": model, "task": task,
              "use_side_information_features": side}
    if model in BASELINES:
        values["baseline_params"] = BASELINE_PARAMS[model]
    return ExperimentConfig.from_dict({**values, **overrides})


@pytest.fixture(scope="session")
def runs(realistic_data, tmp_path_factory):
    """``runs(model, task, side)``: the output folder of that run on the realistic data, made on first use."""
    root = tmp_path_factory.mktemp("realistic-runs")
    done: dict[tuple, Path] = {}

    def get(model: str, task: str = "clm", side: bool = False) -> Path:
        key = (model, task, side)
        if key not in done:
            out = root / f"{model.replace(':', '_')}-{task}-{'side' if side else 'ids'}"
            run_experiment(config(realistic_data, out, model, task, side), printer=lambda *_: None)
            done[key] = out
        return done[key]

    return get


def sessions_of(data: Path, window: int, split: str = "valid") -> list[list[int]]:
    return pq.read_table(data / f"{window:04d}" / f"{split}.parquet", columns=["item_id"]).column("item_id").to_pylist()


def check_run(out: Path, data: Path, logits: bool = True) -> dict:
    """The properties every run must have on the realistic data; returns its results.json."""
    res = json.loads((out / "results.json").read_text())
    assert [w["index"] for w in res["windows"]] == [2, 3, 4]
    for w in res["windows"]:
        assert w["n_eval_sessions"] == sum(len(s) >= 2 for s in sessions_of(data, w["index"]))
        ranking = {k: v for k, v in w["metrics"].items() if "/next-item/" in k}
        assert len(ranking) == 12  # eval and train, ndcg/recall/mrr at 10 and 20
        assert all(v is not None and 0.0 <= v <= 1.0 for v in ranking.values()), ranking
        loss = w["metrics"].get("eval_/loss")
        assert (loss is not None and math.isfinite(loss)) == logits
        for k in (10, 20):
            assert w["metrics"][f"eval_/next-item/mrr_at_{k}"] <= w["metrics"][f"eval_/next-item/ndcg_at_{k}"] \
                <= w["metrics"][f"eval_/next-item/recall_at_{k}"]
    key = "eval_/next-item/ndcg_at_20"
    assert res["aot"][key] == pytest.approx(sum(w["metrics"][key] for w in res["windows"]) / 3)
    return res


def check_recommendations(folder: Path, data: Path, tmp_path: Path) -> None:
    """``sessrec recommend --exclude-seen`` on the last window: k distinct valid ids per session, none of its items."""
    out = tmp_path / f"recs-{folder.parent.name}.parquet"  # one file per run: --output never replaces one
    assert main(["recommend", "--model-dir", str(folder), "--input", str(data / "0004" / "valid.parquet"),
                 "--output", str(out), "-k", "10", "--exclude-seen"]) == 0
    got = pq.read_table(out).to_pydict()
    sessions = sessions_of(data, 4)
    assert len(got["item_ids"]) == len(sessions) and len(got["session_id"]) == len(sessions)
    for ids, scores, session in zip(got["item_ids"], got["scores"], sessions):
        assert len(set(ids)) == 10 and all(1 <= i <= 300 for i in ids)
        assert not set(ids) & set(session), (ids, session)  # long sessions included: every item of the session
        assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize("model,task", ALL_PAIRS)
def test_every_architecture_and_objective(model, task, runs, realistic_data, tmp_path):
    for side in (False, True):
        out = runs(model, task, side)
        check_run(out, realistic_data)
        check_recommendations(out / "checkpoint-last", realistic_data, tmp_path)
    # the side-information model (several inputs) exported; the exported graph scores real sessions as the model does
    assert main(["export", "--model-dir", str(out / "checkpoint-last"), "--format", "torchscript",
                 "--output", str(tmp_path / "m.pt")]) == 0
    rec = Recommender.load(out / "checkpoint-last")
    reads_time = ["timestamp"] if model == "hstu" else []  # HSTU's time bias reads the interactions' times
    assert rec.side_features == ["category", "device", "price", "item_age_days", *reads_time]
    from sessrec.data.loader import load_sessions

    valid = load_sessions(realistic_data / "0004" / "valid.parquet", rec.schema, 20, [rec.schema[n] for n in rec.input_names])
    with torch.no_grad():
        exported = torch.jit.load(str(tmp_path / "m.pt"))(*(valid.features[n] for n in rec.input_names))
        assert torch.allclose(exported, rec.learner.score(valid.features), atol=1e-4)


@pytest.mark.parametrize("model", sorted(BASELINES))
def test_every_baseline(model, runs, realistic_data, tmp_path, capsys):
    out = runs(model)
    check_run(out, realistic_data, logits=False)
    check_recommendations(out / "checkpoint-last", realistic_data, tmp_path)
    # the saved model is the evaluated one: its last window's metrics again, from the checkpoint
    from sessrec.data.loader import load_sessions
    from sessrec.evaluation import evaluate

    rec = Recommender.load(out)
    valid = load_sessions(realistic_data / "0004" / "valid.parquet", rec.schema, 20,
                          [rec.schema[n] for n in rec.input_names])
    last = json.loads((out / "results.json").read_text())["windows"][-1]["metrics"]
    again = evaluate(rec.learner, valid, 64, [20])
    assert again["ndcg_at_20"] == pytest.approx(last["eval_/next-item/ndcg_at_20"], abs=1e-12)


def test_invalid_pairs_are_one_line_errors_that_write_nothing(realistic_data, tmp_path, capsys):
    names = sorted(BODIES) + ["hf:LlamaModel"]
    invalid = [(m, t) for m in names for t in OBJECTIVES if (m, t) not in ALL_PAIRS]
    assert len(invalid) == len(names) * len(OBJECTIVES) - len(ALL_PAIRS) > 0
    for model, task in invalid:
        out = tmp_path / f"{model.replace(':', '_')}-{task}"
        assert main(["run", "--data-path", str(realistic_data), "--model", model, "--task", task, "-o", str(out),
                     "--d-model", "16", "--n-head", "2", "--n-layer", "1", "--quiet"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("sessrec: error: ") and model in err[0] and task in err[0], err
        assert not out.exists()  # the fixed command line can run into the same folder


@pytest.mark.parametrize("model,task,side", [("xlnet", "plm", True), ("electra", "rtd", True), ("gru4rec", "clm", False)])
def test_same_seed_same_metrics(model, task, side, runs, realistic_data, tmp_path):
    again = run_experiment(config(realistic_data, tmp_path / "again", model, task, side), printer=lambda *_: None)
    first = json.loads((runs(model, task, side) / "results.json").read_text())

    def no_time(windows):
        return [{k: v for k, v in w["metrics"].items() if "runtime" not in k and "per_second" not in k} for w in windows]

    assert no_time(first["windows"]) == no_time(json.loads(json.dumps(again.windows)))


@pytest.mark.filterwarnings("error::UserWarning")  # matplotlib's, when the legend of many runs did not fit
def test_report_of_every_run(runs, realistic_data, tmp_path, capsys):
    folders = [runs(m, t, s) for m, t in ALL_PAIRS for s in (False, True)] + [runs(b) for b in sorted(BASELINES)]
    assert main(["report", *map(str, folders), "-o", str(tmp_path / "report")]) == 0
    capsys.readouterr()
    rows = {r["algorithm"]: r for r in _csv(tmp_path / "report" / "report.csv")}
    assert len(rows) == len(folders)  # one row per run: every label is told apart
    for folder in folders:
        res = json.loads((folder / "results.json").read_text())
        matching = [r for r in rows.values() if r["HR@20"] and float(r["HR@20"]) == pytest.approx(res["aot"]["eval_/next-item/recall_at_20"])
                    and float(r["NDCG@20"]) == pytest.approx(res["aot"]["eval_/next-item/ndcg_at_20"])]
        assert matching and all(r["windows"] == "3" and r["status"] == "done" for r in matching)
    assert (tmp_path / "report" / "metrics_per_window.png").stat().st_size > 0


def test_a_window_without_a_session_to_evaluate(realistic_data, tmp_path, capsys):
    """Window 2's valid file holds single clicks only: its metrics are undefined (NaN), the averages
    over time are those of windows 3 and 4, and the report counts 2 evaluated windows."""
    data = tmp_path / "data"
    shutil.copytree(realistic_data, data)
    keep_first_click(data / "0002" / "valid.parquet")
    for model in ("gpt2", "vsknn"):
        out = tmp_path / model
        res = run_experiment(config(data, out, model), printer=print)
        first, rest = res.windows[0], res.windows[1:]
        assert first["n_eval_sessions"] == 0 and first["pop"]["eval_n_sessions"] == 0
        assert all(math.isnan(v) for k, v in first["metrics"].items() if k.startswith("eval_/"))
        for key in ("eval_/next-item/ndcg_at_20", "eval_/next-item/recall_at_10") + (("eval_/loss",) if model == "gpt2" else ()):
            assert res.aot[key] == pytest.approx(sum(w["metrics"][key] for w in rest) / 2)
            assert res.pop_aot[key.replace("/loss", "/next-item/mrr_at_20")] >= 0
        assert "NDCG@20 AOT" in capsys.readouterr().out
        saved = json.loads((out / "results.json").read_text())
        assert saved["windows"][0]["metrics"]["eval_/next-item/ndcg_at_20"] is None
        assert main(["report", str(out), "-o", str(tmp_path / f"report-{model}")]) == 0
        rows = _csv(tmp_path / f"report-{model}" / "report.csv")
        assert [r["windows"] for r in rows] == ["2", "2"]  # the model and the most-popular comparison
        assert float(rows[0]["NDCG@20"]) == pytest.approx(res.aot["eval_/next-item/ndcg_at_20"])


def _csv(path: Path) -> list[dict]:
    import csv

    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---- kill -9, then --resume ----------------------------------------------------------------------------
KNN_KILLER = """
import os, signal, sys
from sessrec.baselines.knn import KnnLearner
fit = KnnLearner.fit_window
def dying_fit(self, data, window):
    if window == int(os.environ["KILL_AT_WINDOW"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return fit(self, data, window)
KnnLearner.fit_window = dying_fit
from sessrec.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_then_resume_gives_the_uninterrupted_results(realistic_data, tmp_path):
    """A real ``sessrec run`` killed after its checkpoint of window 2 (the tiny one), in window 3; resumed.
    Two steps a window: step 5 is window 3's second; with drop_last window 2 has no step, so step 3 is."""
    cases = {  # name: (killer script, its environment, model flags)
        "gpt2-clm": (KILLER, {"KILL_AT_STEP": "5"}, ["--model", "gpt2", "--task", "clm", "--use-side-information-features"]),
        "bert-mlm": (KILLER, {"KILL_AT_STEP": "5"}, ["--model", "bert", "--task", "mlm"]),
        "xlnet-rtd": (KILLER, {"KILL_AT_STEP": "3"}, ["--model", "xlnet", "--task", "rtd", "--dataloader-drop-last"]),
        "vsknn": (KNN_KILLER, {"KILL_AT_WINDOW": "3"}, ["--model", "vsknn", "--baseline-params", "{k: 20, sample_size: 100}"]),
        # random sampling drew from a generator the resumed run had not advanced over the evaluations it skips
        "stan-random": (KNN_KILLER, {"KILL_AT_WINDOW": "3"},
                        ["--model", "stan", "--baseline-params", "{k: 20, sample_size: 5, sampling: random}"]),
    }
    common = ["run", "--data-path", str(realistic_data), "--d-model", "16", "--n-layer", "1", "--n-head", "2",
              "--max-steps", "2", "--per-device-train-batch-size", "32", "--eval-steps-on-train-set", "1",
              "--logging-steps", "1", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": str(torch.get_num_threads())}
    procs = {name: subprocess.Popen([sys.executable, "-c", script, *common, *flags, "-o", str(tmp_path / name)],
                                    env={**env, **kill_env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for name, (script, kill_env, flags) in cases.items()}
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == -9, (name, err)
    for name, (_, _, flags) in cases.items():
        killed = tmp_path / name
        assert json.loads((find_checkpoint(killed) / "experiment.json").read_text())["trained_window"] == 2
        assert main(["run", "--resume", "-o", str(killed), "--quiet"]) == 0
        assert main([*common, *flags, "-o", str(tmp_path / f"{name}-straight")]) == 0
        assert _metric_rows(killed) == _metric_rows(tmp_path / f"{name}-straight"), name
        assert [r["index"] for r in _metric_rows(killed)] == ["2", "3", "4"]
