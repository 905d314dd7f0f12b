import importlib.machinery
import importlib.util
import sys
import types

import pytest

from sessrec import loggers
from sessrec.errors import SessrecError
from sessrec.experiment import run_experiment
from tests.conftest import tiny_config

HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None
HAS_WANDB = importlib.util.find_spec("wandb") is not None


@pytest.mark.parametrize("env,mode", [
    ({}, "offline"),  # never the network unless asked for
    ({"WANDB_MODE": "dryrun"}, "offline"),
    ({"WANDB_MODE": "offline"}, "offline"),
    ({"WANDB_MODE": "online"}, "online"),
    ({"WANDB_MODE": "disabled"}, None),
    ({"WANDB_DISABLED": "true"}, None),
])
def test_wandb_mode_follows_the_environment(monkeypatch, env, mode):
    for name in ("WANDB_MODE", "WANDB_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert loggers.wandb_mode() == mode


def test_report_to_names(monkeypatch):
    monkeypatch.setattr(loggers, "_installed", lambda package: package == "tensorboard")
    assert loggers.resolve_report_to("none") == [] and loggers.resolve_report_to("") == []
    assert loggers.resolve_report_to("all") == ["tensorboard"]  # only what is installed
    assert loggers.resolve_report_to("tensorboard,tensorboard") == ["tensorboard"]
    with pytest.raises(SessrecError, match="wandb is not installed"):
        loggers.resolve_report_to("wandb")
    with pytest.raises(SessrecError, match="unknown logger 'mlflow'"):
        loggers.resolve_report_to("mlflow")
    monkeypatch.setattr(loggers, "_installed", lambda package: True)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert loggers.resolve_report_to("all") == ["tensorboard"]
    assert loggers.resolve_report_to("wandb") == []  # asked for, but switched off by the environment


def test_unknown_logger_fails_before_anything_is_written(tiny_data, tmp_path):
    with pytest.raises(SessrecError, match="unknown logger"):
        run_experiment(tiny_config(tiny_data, tmp_path / "o", report_to="neptune"), printer=lambda *_: None)
    assert not (tmp_path / "o").exists()


class _FakeRun:
    def __init__(self, **kwargs):
        self.init = kwargs
        self.logged, self.defined, self.summary, self.finished = [], {}, {}, False

    def define_metric(self, name, step_metric=None):
        self.defined[name] = step_metric

    def log(self, values):
        self.logged.append(values)

    def finish(self):
        self.finished = True


def test_wandb_logger_records_loss_windows_and_aot(tiny_data, tmp_path, monkeypatch):
    runs = []
    fake = types.ModuleType("wandb")
    fake.__spec__ = importlib.machinery.ModuleSpec("wandb", None)
    fake.init = lambda **kw: runs.append(_FakeRun(**kw)) or runs[-1]
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_DISABLED", raising=False)
    res = run_experiment(tiny_config(tiny_data, tmp_path / "w", report_to="wandb", logging_steps=1, run_name="r1",
                                     experiments_group="g"), printer=lambda *_: None)
    (run,) = runs
    assert run.init["mode"] == "offline" and run.init["dir"] == str(res.output_dir)
    assert (run.init["name"], run.init["group"], run.init["config"]["d_model"]) == ("r1", "g", 16)
    assert run.defined["train/*"] == "train/global_step" and run.defined["eval_*"] == "window"
    losses = [r for r in run.logged if "train/loss" in r]
    assert [r["train/global_step"] for r in losses] == [1, 2, 3, 4, 5, 6]  # 3 steps in each of 2 windows
    windows = [r for r in run.logged if "window" in r]
    assert [w["window"] for w in windows] == [2, 3]
    assert windows[0]["eval_/next-item/ndcg_at_20"] == res.windows[0]["metrics"]["eval_/next-item/ndcg_at_20"]
    assert "pop/eval_/next-item/ndcg_at_20" in windows[0] and windows[0]["info/n_train_sessions"] > 0
    assert run.summary["eval_/next-item/ndcg_at_20_AOT"] == res.metric("ndcg_at_20") and run.finished
    assert run.summary["pop/eval_/next-item/ndcg_at_20_AOT"] == res.pop_aot["eval_/next-item/ndcg_at_20"]


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard is not installed (optional extra sessrec[loggers])")
def test_tensorboard_event_files(tiny_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = run_experiment(tiny_config(tiny_data, tmp_path / "tb", report_to="tensorboard", logging_steps=2), printer=lambda *_: None)
    events = EventAccumulator(str(res.output_dir / "runs")).Reload()
    ndcg = events.Scalars("eval_/next-item/ndcg_at_20")
    assert [e.step for e in ndcg] == [2, 3]
    assert ndcg[1].value == pytest.approx(res.windows[1]["metrics"]["eval_/next-item/ndcg_at_20"])
    assert [e.step for e in events.Scalars("train/loss")] == [2, 4, 6]
    assert events.Scalars("eval_/next-item/ndcg_at_20_AOT")[0].value == pytest.approx(res.metric("ndcg_at_20"))
    assert events.Scalars("pop/eval_/next-item/ndcg_at_20_AOT")[0].value == pytest.approx(
        res.pop_aot["eval_/next-item/ndcg_at_20"])  # the most-popular ranking's AOT too


@pytest.mark.skipif(not HAS_WANDB, reason="wandb is not installed (optional extra sessrec[loggers])")
def test_real_wandb_offline_writes_a_local_run(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    res = run_experiment(tiny_config(tiny_data, tmp_path / "wb", report_to="wandb"), printer=lambda *_: None)
    assert any((res.output_dir / "wandb").glob("offline-run-*"))
