"""Distributed runs (torchrun, gloo on the CPU): batches shared out, evaluation gathered exactly,
rank 0 alone writing, a signal stopping every process at the same step, resume, and a process
that dies or hangs making the others stop with one line."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sessrec.data.loader import SessionTensors, iterate_batches, n_batches
from sessrec.distributed import (
    SINGLE,
    CollectiveFailed,
    Echo,
    Group,
    PeerLost,
    is_comm_failure,
    rank_seed,
    short_reason,
)
from sessrec.errors import SessrecError
from tests.conftest import FAULT_ARGS, tiny_config
from tests.fault_child import leftovers, metric_rows, train_history, wait_for

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
# FAULT_ARGS's run (3 windows of 6 steps) with 2 processes of 32 sessions: 64 a step, as one process of 64
ARGS2 = [*FAULT_ARGS, "--per-device-train-batch-size", "32"]


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", **extra}


def torchrun(args: list[str], log_dir: Path | None, **env: str) -> subprocess.Popen:
    """``torchrun --standalone --nproc-per-node 2 ARGS``, each worker's output in ``log_dir`` (None:
    the workers write to torchrun's own output, with it)."""
    logs = ["--log-dir", str(log_dir), "--redirects", "3"] if log_dir else []
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *logs, *args]
    return subprocess.Popen(cmd, env=_env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def worker_log(log_dir: Path, rank: int, stream: str = "stderr") -> str:
    (path,) = log_dir.glob(f"*/attempt_0/{rank}/{stream}.log")
    return path.read_text()


def finish(proc: subprocess.Popen, timeout: float = 180) -> str:
    """torchrun's output once it ended; past ``timeout`` it and its workers are killed and the test fails."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in [proc.pid, *_descendants(proc.pid)]:  # the workers run in sessions of their own
            os.kill(pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"torchrun did not end in {timeout:.0f} s:\n{out}")
    return out


def _descendants(pid: int) -> list[int]:
    """The processes started by ``pid`` and by them (Linux: /proc)."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        of = todo.pop()
        kids = [p for p, pp in parent.items() if pp == of]
        found += kids
        todo += kids
    return found


# ---- batches shared out ------------------------------------------------------------------------------
def test_the_shares_of_a_batch_are_the_batch_of_one_process():
    data = SessionTensors({"item": torch.arange(1, 24).view(-1, 1)}, "item")  # 23 sessions
    order = torch.randperm(23, generator=torch.Generator().manual_seed(0))
    whole = [b["item"].view(-1) for b in iterate_batches(data, 9, order=order)]  # 9, 9, 5
    for n in (2, 3):
        shares = [list(iterate_batches(data, 9, order=order, part=(r, n))) for r in range(n)]
        for step, batch in enumerate(whole):
            parts = [shares[r][step]["item"].view(-1) for r in range(n)]
            assert torch.equal(torch.cat(parts), batch)  # contiguous, in rank order
            assert max(len(p) for p in parts) - min(len(p) for p in parts) <= 1
    # a last batch of fewer sessions than processes is left out (each would not get one)
    assert n_batches(23, 9, False, min_last=5) == 3 and n_batches(23, 9, False, min_last=6) == 2
    assert len(list(iterate_batches(data, 9, part=(0, 6)))) == 2
    assert n_batches(23, 9, True, min_last=2) == 2 and n_batches(27, 9, False, min_last=4) == 3


def test_one_process_collectives_are_the_identity():
    assert not SINGLE.distributed and SINGLE.is_main
    assert SINGLE.broadcast({"a": 1}) == {"a": 1} and SINGLE.all_gather(3) == [3]
    assert SINGLE.mean_and_stop(torch.tensor(2.5)) == (2.5, None) and SINGLE.stop_signal() is None
    with SINGLE.together():
        pass
    assert SINGLE.on_main(lambda: 7) == 7
    with pytest.raises(RuntimeError, match="gloo"), SINGLE.failures_said():
        raise RuntimeError("[pair.cc:1] gloo: connection closed")  # one process has no peers to lose
    assert rank_seed(42, 0) != rank_seed(42, 1) != rank_seed(43, 1) and rank_seed(42, 1) == rank_seed(42, 1)


def test_a_failed_collective_is_said_in_one_line():
    group = Group(rank=1, size=4, timeout_s=60)
    gloo = RuntimeError("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
                        "[127.0.0.1]:57041. This is typically caused by a remote worker crashing. Check the logs of the "
                        "remote worker before reporting an error. GLHF! 🏖️")
    assert is_comm_failure(gloo) and is_comm_failure(RuntimeError("Application timeout caused pair closure"))
    assert is_comm_failure(CollectiveFailed("anything a collective of Group raised"))
    assert not is_comm_failure(RuntimeError("shape mismatch")) and not is_comm_failure(ValueError("gloo"))
    assert not is_comm_failure(torch.OutOfMemoryError("NCCL allocator: out of memory"))
    assert short_reason(gloo) == "Connection closed by peer [127.0.0.1]:57041"
    with pytest.raises(PeerLost) as e, group.failures_said(lambda: "runs/x"):
        raise gloo
    assert str(e.value) == ("process 1 of 4 lost contact with the other processes of the run (Connection closed by peer "
                            "[127.0.0.1]:57041): one of them died, was killed or did not answer within --ddp-timeout (60 s); "
                            "stopping; the newest complete checkpoint is kept: continue with torchrun launched as "
                            "before (4 processes) running `-m sessrec run --resume --output-dir runs/x`")
    with pytest.raises(ValueError), group.failures_said():
        raise ValueError("not a collective")  # other errors pass as they are
    assert Echo("x").echo


# ---- refused, or accepted, under torchrun --------------------------------------------------------------
@pytest.fixture
def launched_env(monkeypatch):
    for k, v in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(k, v)


def test_baselines_seeds_and_tune_refuse_torchrun(launched_env, tiny_data, tmp_path, capsys, monkeypatch):
    from sessrec.cli import main
    from sessrec.experiment import run_experiment

    with pytest.raises(SessrecError, match="model_type vsknn is a baseline: it trains in one process"):
        run_experiment(tiny_config(tiny_data, tmp_path / "x", model_type="vsknn"))
    assert main(["run", "--data-path", str(tiny_data), "--seeds", "1", "2", "-o", str(tmp_path / "s")]) == 2
    assert main(["tune", "--data-path", str(tiny_data), "-o", str(tmp_path / "t")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("sessrec: error: --seeds runs the seeds one after the other in one process, not under torchrun")
    assert err[1].startswith("sessrec: error: sessrec tune runs each trial in one process, not under torchrun")
    assert not any(tmp_path.iterdir())  # nothing written
    # every process meets these refusals before joining: each machine's first process says them (another machine's
    # command line may differ: its rank 0 may never meet them), the machine's other processes do not
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert main(["run", "--data-path", str(tiny_data), "--seeds", "1", "2", "-o", str(tmp_path / "s")]) == 2
    assert main(["run", "--data-path", str(tiny_data), "--model", "pop", "-o", str(tmp_path / "p")]) == 2
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "2")  # the first process of the second machine
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main(["run", "--data-path", str(tiny_data), "--model", "pop", "-o", str(tmp_path / "p")]) == 2
    assert capsys.readouterr().err.startswith("sessrec: error: model_type pop is a baseline")


def test_the_paper_front_end_accepts_local_rank_under_torchrun(launched_env, monkeypatch):
    from t4r_paper_repro.transf_exp_main import parse_args

    assert parse_args(["--output_dir", "o", "--local_rank", "0"])[0].output_dir == "o"
    assert parse_args(["--output_dir", "o", "--local-rank=0"])[0].output_dir == "o"  # torch.distributed.launch's spelling
    with pytest.raises(SessrecError, match="--local_rank 1 but the launcher set LOCAL_RANK=0"):
        parse_args(["--output_dir", "o", "--local_rank", "1"])
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(SessrecError, match="only a distributed launcher passes it"):
        parse_args(["--output_dir", "o", "--local_rank", "0"])


# ---- evaluation: N processes = 1 process -----------------------------------------------------------------
def test_the_evaluation_of_two_processes_equals_one(tiny_data, tmp_path):
    """The same checkpoint, 2 gloo processes vs 1: every metric equal (to the last bit here; the
    issue asks 1e-6), whatever the batches: an odd number of them, every position scored, every
    other batch, a cut-off, the most-popular ranking."""
    from sessrec.experiment import run_experiment
    from tests.distributed_child import evaluate_cases

    run_experiment(tiny_config(tiny_data, tmp_path / "run", final_time_window_index=2, compare_with_pop=False))
    model, window = tmp_path / "run" / "checkpoint-last", tiny_data / "0002" / "valid.parquet"
    cases = [{"batch_size": 64}, {"batch_size": 7}, {"batch_size": 10, "last_item_only": False},
             {"batch_size": 5, "each_n_batches": 2}, {"batch_size": 4, "max_batches": 3}, {"batch_size": 9, "pop": True}]
    proc = torchrun([str(TESTS / "distributed_child.py"), str(model), str(window), str(tmp_path / "two.json"),
                     json.dumps(cases)], tmp_path / "logs")
    out = finish(proc)
    assert proc.returncode == 0, out + worker_log(tmp_path / "logs", 0) + worker_log(tmp_path / "logs", 1)
    two = json.loads((tmp_path / "two.json").read_text())
    one = evaluate_cases(str(model), str(window), cases, SINGLE)
    for case, a, b in zip(cases, one, two):
        assert a["n_sessions"] == b["n_sessions"] > 0, case
        metrics = [k for k in a if k not in ("runtime", "samples_per_second", "steps_per_second")]
        assert {k for k in metrics if "_at_" in k} == {f"{m}_at_{k}" for m in ("ndcg", "recall", "mrr") for k in (5, 10, 20)}
        for k in metrics:
            assert abs(a[k] - b[k]) <= 1e-6, (case, k, a[k], b[k])
        assert a["ndcg_at_20"] == b["ndcg_at_20"], case  # the same sums added in the same order


# ---- a run: outputs, a signal, resume ------------------------------------------------------------------
@pytest.fixture(scope="module")
def straight2(tiny_data, tmp_path_factory) -> Path:
    """ARGS2 run by ``torchrun -m sessrec``, uninterrupted."""
    base = tmp_path_factory.mktemp("straight2")
    proc = torchrun(["-m", "sessrec", "run", "--data-path", str(tiny_data), *ARGS2, "-o", str(base / "run")], base / "logs")
    out = finish(proc)
    assert proc.returncode == 0, out + worker_log(base / "logs", 0) + worker_log(base / "logs", 1)
    return base


def test_rank_0_alone_prints_and_writes(straight2, straight_run):
    run, logs = straight2 / "run", straight2 / "logs"
    assert "2 processes, 64 sessions a step" in worker_log(logs, 0, "stdout")
    assert worker_log(logs, 1, "stdout") == ""  # the table is rank 0's
    assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in straight_run.iterdir())
    assert sorted(p.name for p in (run / "checkpoint-last").iterdir()) == sorted(
        [p.name for p in (straight_run / "checkpoint-last").iterdir()] + ["ranks.safetensors"])
    meta = json.loads((run / "checkpoint-last" / "experiment.json").read_text())
    assert meta["world_size"] == 2 and meta["trained_window"] == 3
    assert [x["step"] for x in train_history(run)] == list(range(1, 19))
    rows = metric_rows(run)
    assert [r["index"] for r in rows] == ["2", "3", "4"] and all(float(r["eval_n_sessions"]) > 0 for r in rows)


def test_rank_0_alone_copies_the_catalog_into_the_run_and_its_checkpoints(catalog_data, tmp_path):
    """On data made by ``sessrec prepare`` rank 0 copies its catalog into RUN_DIR/catalog/ and into
    each checkpoint (in the manifest, so checked when loaded); rank 1 writes neither."""
    from sessrec.checkpoint import verify_checkpoint
    from sessrec.data.catalog import Catalog, catalog_files

    run, writers = tmp_path / "run", tmp_path / "writers.txt"
    proc = torchrun([str(TESTS / "fault_child.py"), "run", "--data-path", str(catalog_data), *ARGS2, "-o", str(run)],
                    tmp_path / "logs", WRITERS=str(writers))
    out = finish(proc)
    assert proc.returncode == 0, out + worker_log(tmp_path / "logs", 0) + worker_log(tmp_path / "logs", 1)
    calls = writers.read_text().splitlines()
    assert calls[0] == "0 snapshot_catalog" and set(calls[1:]) == {"0 save_checkpoint"}, calls
    files = catalog_files(catalog_data)
    for folder in (run / "catalog", run / "checkpoint-last"):
        assert all((folder / f).read_bytes() == (catalog_data / f).read_bytes() for f in files)
    manifest = json.loads((run / "checkpoint-last" / "manifest.json").read_text())
    assert set(files) <= set(manifest["files"])
    verify_checkpoint(run / "checkpoint-last")
    assert Catalog.load(run / "checkpoint-last").n_items == Catalog.load(catalog_data).n_items


def test_sigterm_to_one_process_stops_every_one_at_one_step_and_resume_continues_exactly(tiny_data, tmp_path,
                                                                                          straight2, capsys):
    """SIGTERM reaches rank 1 alone (a signal reaches the processes of a job one by one, or one node
    only) while it waits before step 9 and rank 0 waits for it: both stop after that step, rank 0
    saves the checkpoint and says so; a resume with one process is refused, with two it ends as
    the uninterrupted run."""
    from sessrec.cli import main

    out, mark, logs = tmp_path / "run", tmp_path / "mark", tmp_path / "logs"
    proc = torchrun([str(TESTS / "fault_child.py"), "run", "--data-path", str(tiny_data), *ARGS2, "-o", str(out)], logs,
                    PAUSE_AT_STEP="8", PAUSE_RANK="1", MARK=str(mark))
    wait_for(mark, proc)
    while not mark.read_text():  # written just after it was created
        time.sleep(0.01)
    time.sleep(0.2)
    os.kill(int(mark.read_text()), signal.SIGTERM)
    finish(proc, 90)
    assert proc.returncode != 0  # torchrun's own code when its workers exit 143
    err0, err1 = worker_log(logs, 0).splitlines(), worker_log(logs, 1).splitlines()
    assert err0[-1] == (f"sessrec: stopped by SIGTERM in window 2 after step 3 of 6; checkpoint saved in {out}/checkpoint-last; "
                        f"continue with torchrun launched as before (2 processes) running `-m sessrec run --resume "
                        f"--output-dir {out}`")
    assert err1[-1].startswith("sessrec: SIGTERM received: stopping at the next safe point")  # rank 1 says nothing more
    assert not any(x.startswith("sessrec: SIGTERM") for x in err0)  # rank 0 got no signal: it stopped with rank 1
    meta = json.loads((out / "checkpoint-last" / "experiment.json").read_text())
    assert meta["in_window"] == {"window": 2, "where": "after step 3 of 6", "fit": None} and meta["world_size"] == 2
    assert [x["step"] for x in train_history(out)] == list(range(1, 10))

    assert main(["run", "--resume", "-o", str(out), "--quiet"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"sessrec: error: cannot resume {out}: the run was made by 2 processes, this is 1; the number of processes sets "
        "the sessions of a step: resume it with 2 processes (torchrun --nnodes x --nproc-per-node = 2)")
    resumed = torchrun(["-m", "sessrec", "run", "--resume", "-o", str(out), "--quiet"], tmp_path / "logs-resume")
    text = finish(resumed)
    assert resumed.returncode == 0, text + worker_log(tmp_path / "logs-resume", 0)
    assert metric_rows(out) == metric_rows(straight2 / "run")
    assert train_history(out) == train_history(straight2 / "run")
    assert leftovers(out) == []


# ---- a process dies or hangs -------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(args: list[str], tmp_path: Path, **env: str) -> list[subprocess.Popen]:
    """Two processes started as torchrun would start them, without its agent (which would stop the
    survivor itself): what the other nodes of a multi-node run see when a node goes."""
    base = _env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), WORLD_SIZE="2", **env)
    return [subprocess.Popen([sys.executable, str(TESTS / "fault_child.py"), *args], env={**base, "RANK": str(r), "LOCAL_RANK": str(r)},
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for r in (0, 1)]


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_a_process_that_dies_or_hangs_stops_the_other_with_one_line(tiny_data, tmp_path, how):
    """Rank 1 is killed (or stopped: it hangs) before step 9. Rank 0 exits 2 within seconds (the
    connection closes), or within --ddp-timeout (5 s) for the silent one, saying so in one line;
    the checkpoint of window 1 stays good."""
    from sessrec.checkpoint import latest_good_checkpoint

    out, mark = tmp_path / "run", tmp_path / "mark"
    args = ["run", "--data-path", str(tiny_data), *ARGS2, "--ddp-timeout", "5", "-o", str(out)]
    survivor, victim = _two_processes(args, tmp_path, KILL_AT_STEP="8", KILL_SIGNAL=how, MARK=str(mark))
    try:
        wait_for(mark, survivor)
        began = time.monotonic()
        _, err = survivor.communicate(timeout=60)
        took = time.monotonic() - began
    finally:
        victim.kill()
        victim.communicate()
    assert survivor.returncode == 2, err
    assert took < (5 if how == "SIGKILL" else 5 + 15), took
    lines = [x for x in err.splitlines() if not x.startswith("INFO ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    reason = r"(Read error \S+: )?Connection (reset|closed) by peer" if how == "SIGKILL" else r"(Timed out waiting 5000ms|Application timeout caused pair closure)"
    assert re.match(rf"sessrec: error: process 0 of 2 lost contact with the other processes of the run \({reason}", lines[0]), lines[0]
    assert lines[0].endswith(f"(5 s); stopping; the newest complete checkpoint is kept: continue with torchrun launched "
                             f"as before (2 processes) running `-m sessrec run --resume --output-dir {out}`")
    assert latest_good_checkpoint(out) == (out / "checkpoint-last", [])
    assert json.loads((out / "checkpoint-last" / "experiment.json").read_text())["trained_window"] == 1


def test_under_torchrun_a_killed_process_ends_the_run(tiny_data, tmp_path):
    """torchrun's agent sees the death and stops the other worker; that worker has said why in one line."""
    out, mark, logs = tmp_path / "run", tmp_path / "mark", tmp_path / "logs"
    proc = torchrun([str(TESTS / "fault_child.py"), "run", "--data-path", str(tiny_data), *ARGS2, "-o", str(out)], logs,
                    KILL_AT_STEP="8", MARK=str(mark))
    wait_for(mark, proc)
    began = time.monotonic()
    said = finish(proc, 60)
    assert proc.returncode != 0 and time.monotonic() - began < 30
    log = worker_log(logs, 0)
    lines = [x for x in log.splitlines() if x.startswith("sessrec:")]
    assert f'File "{SRC}' not in log
    assert lines and lines[-1].startswith("sessrec: error: process 0 of 2 lost contact with the other processes of "
                                          "the run"), f"rank 0 said:\n{log[-3000:]}\ntorchrun said:\n{said[-3000:]}"


def test_a_write_error_of_rank_0_stops_the_other_process_quietly(tiny_data, tmp_path):
    """The disk fills while rank 0 writes the checkpoint of window 2: rank 0 says so in one line, rank
    1 (waiting for rank 0's write to end) stops too, without a line of its own, and nothing hangs.
    (The workers write to torchrun's output: a file of their own could not grow either.)"""
    out = tmp_path / "run"
    proc = torchrun([str(TESTS / "fault_child.py"), "run", "--data-path", str(tiny_data), *ARGS2, "-o", str(out)], None,
                    FULL_DISK_AT="checkpoint:2")
    text = finish(proc, 120)
    assert proc.returncode != 0
    said = [x for x in text.splitlines() if x.startswith("sessrec:")]
    assert len(said) == 2 and said[0].startswith("sessrec: xlnet-mlm on"), text  # rank 0's first line, then one error
    assert said[1].startswith(f"sessrec: error: cannot write {out}/.checkpoint-0002.tmp/"), text
    assert f'File "{SRC}' not in text  # no traceback from a worker (torchrun prints its own)
    assert json.loads((out / "checkpoint-last" / "experiment.json").read_text())["trained_window"] == 1


def test_the_paper_front_end_under_torchrun_says_things_once(tiny_data, tmp_path):
    """A paper command under torchrun: its notes and the simulated-inference check come once (rank 0)."""
    out = tmp_path / "paper"
    proc = torchrun(["-m", "t4r_paper_repro.transf_exp_main", "--output_dir", str(out), "--data_path", str(tiny_data),
                     "--features_schema_path", str(tiny_data / "schema.pbtxt"), "--model_type", "xlnet", "--mlm",
                     "--d_model", "16", "--n_layer", "1", "--n_head", "2", "--max_steps", "3", "--final_time_window_index", "3",
                     "--per_device_train_batch_size", "32", "--eval_steps_on_train_set", "1", "--disable_tqdm",
                     "--validate_every", "10"], None)
    text = finish(proc)
    assert proc.returncode == 0, text
    assert text.count("t4r_paper_repro.transf_exp_main: --validate_every 10: no effect") == 1, text
    assert text.count("simulated inference: recall@10") == 1, text
    assert (out / "eval_results_over_time.txt").read_text().count("Recall@10 of simulated inference") == 1


def test_a_non_finite_loss_is_said_by_rank_0_only(tiny_data, tmp_path):
    """Every process sees the mean loss, NaN if one of them has NaN: all stop at that step, and the
    processes but rank 0 stop quietly (rank 0 says it). Here rank 1 of 2, its collectives stubbed."""
    import math

    from sessrec.data.loader import load_sessions
    from sessrec.experiment import resolve_data
    from sessrec.learners import build_learner

    class Rank1(Group):
        def stop_signal(self):
            return None

        def mean_and_stop(self, value):
            return math.nan, None

    cfg = tiny_config(tiny_data, tmp_path)
    data_path, schema = resolve_data(cfg)
    learner = build_learner(cfg, schema)
    learner.group = Rank1(rank=1, size=2)
    with pytest.raises(Echo, match="the training loss is nan in window 1 at step 1 of 3"):
        learner.fit_window(load_sessions(data_path / "0001" / "train.parquet", schema, 20), 1)


def test_processes_started_with_different_options_are_refused():
    """Rank 0's config is the run's: a machine started with another learning rate (or data folder) would be overruled
    without a word. Its own device, threads and verbosity may differ."""
    from types import SimpleNamespace

    from sessrec.config import ExperimentConfig
    from sessrec.errors import EveryProcessError
    from sessrec.experiment import run_config

    def group_of(*configs):
        return SimpleNamespace(all_gather=lambda mine: [mine, *configs])

    base = ExperimentConfig(data_path="/data", learning_rate=0.003)
    assert run_config(group_of(ExperimentConfig(data_path="/data", learning_rate=0.003, num_threads=4, quiet=True)), base) is base
    with pytest.raises(EveryProcessError, match=r"^the processes of this distributed run were started with different "
                                                r"options \(data_path '/data' on rank 0, '/other' on rank 2; learning_rate "
                                                r"0.003 on rank 0, 0.01 on rank 2\): start every machine with the same"):
        run_config(group_of(base, ExperimentConfig(data_path="/other", learning_rate=0.01)), base)
