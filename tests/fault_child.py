"""Run the ``sessrec`` command line in a child process with one fault set up, for the fault tests.

``python tests/fault_child.py ARGS`` is ``sessrec ARGS`` (with ``FRONT_END=paper``:
``python -m t4r_paper_repro.transf_exp_main ARGS``) with, chosen by environment variables:

* ``PAUSE_AT_STEP=N``: before training step N + 1 (counted over the run), write the process id to
  ``$MARK`` and wait (a minute at most) until a signal asks the run to stop, so the test can send
  one mid-window (in a distributed run only the process of ``RANK`` ``$PAUSE_RANK``, if given);
* ``KILL_AT_STEP=N``: before training step N + 1 the process of ``RANK`` ``$KILL_RANK`` (default 1)
  of a distributed run touches ``$MARK`` and sends itself ``$KILL_SIGNAL`` (default SIGKILL;
  SIGSTOP: it hangs);
* ``PAUSE_IN_EVAL=1``: the same at the first scoring call of an evaluation;
* ``PAUSE_AT_LOAD=N``: the same at the N-th window file the run loads (any learner);
* ``PAUSE_IN_SAVE=1``: once a stop is requested, the checkpoint save touches ``$MARK.save`` and
  waits for a second signal;
* ``FULL_DISK_AT=checkpoint:N`` (or ``results:N``): from the checkpoint of window N (the results
  of window N) on, no file may grow (``RLIMIT_FSIZE`` 0, ``SIGXFSZ`` ignored): writes fail with
  EFBIG as they would with ENOSPC on a full disk.
* ``WRITERS=PATH``: each call of the run's writers of the catalog copy and of checkpoints appends
  ``RANK name`` to ``PATH`` (which processes of a distributed run write).

The helpers below start such a child and compare run folders.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

SRC = Path(__file__).resolve().parents[1] / "src"
TIMING = ("runtime", "per_second")


def start_child(args: list[str], **env: str) -> subprocess.Popen:
    """The child, with one thread as in the test process (tests/conftest.py): results match bit for bit."""
    full_env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": str(torch.get_num_threads()), **env}
    return subprocess.Popen([sys.executable, __file__, *args], env=full_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until ``path`` exists (the child reached its pause); fails if the child ended first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the child ended (exit {proc.returncode}) before {path.name}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"the child did not reach {path.name} in {timeout:.0f}s")
        time.sleep(0.02)


def metric_rows(run_dir: Path) -> list[dict]:
    """eval_train_results.csv without the timing columns."""
    with open(run_dir / "eval_train_results.csv") as f:
        return [{k: v for k, v in r.items() if not any(t in k for t in TIMING)} for r in csv.DictReader(f)]


def train_history(run_dir: Path) -> list[dict]:
    lines = [json.loads(x) for x in (run_dir / "history.jsonl").read_text().splitlines()]
    return [x for x in lines if x["type"] == "train"]


def leftovers(run_dir: Path) -> list[str]:
    """Temporary files and folders anywhere under the run folder."""
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.name.endswith((".tmp", ".old")))


def _wait_for_stop(mark: Path) -> None:
    from sessrec.stopping import stop_requested

    mark.write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while stop_requested() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def _install_faults() -> None:
    import resource
    import signal

    import sessrec.checkpoint
    import sessrec.experiment
    import sessrec.outputs
    from sessrec.stopping import stop_requested
    from sessrec.training import NeuralLearner

    mark = Path(os.environ.get("MARK", "mark"))
    if "PAUSE_AT_STEP" in os.environ and os.environ.get("RANK", "0") == os.environ.get("PAUSE_RANK", os.environ.get("RANK", "0")):
        at, train_step = int(os.environ["PAUSE_AT_STEP"]), NeuralLearner._train_step

        def paused_step(self, batch):
            if self.global_step == at:
                _wait_for_stop(mark)
            return train_step(self, batch)

        NeuralLearner._train_step = paused_step
    if "KILL_AT_STEP" in os.environ and os.environ.get("RANK", "0") == os.environ.get("KILL_RANK", "1"):
        at, train_step = int(os.environ["KILL_AT_STEP"]), NeuralLearner._train_step

        def killed_step(self, batch):
            if self.global_step == at:
                mark.touch()
                os.kill(os.getpid(), getattr(signal, os.environ.get("KILL_SIGNAL", "SIGKILL")))
            return train_step(self, batch)

        NeuralLearner._train_step = killed_step
    if "PAUSE_IN_EVAL" in os.environ:
        score, paused = NeuralLearner.score, []

        def paused_score(self, prefix):
            if not paused:
                paused.append(True)
                _wait_for_stop(mark)
            return score(self, prefix)

        NeuralLearner.score = paused_score
    if "PAUSE_AT_LOAD" in os.environ:
        load, calls = sessrec.experiment.load_sessions, []

        def paused_load(*args, **kw):
            calls.append(True)
            if len(calls) == int(os.environ["PAUSE_AT_LOAD"]):
                _wait_for_stop(mark)
            return load(*args, **kw)

        sessrec.experiment.load_sessions = paused_load
    if "PAUSE_IN_SAVE" in os.environ:
        write_state = sessrec.checkpoint.write_state

        def paused_write(path, tree):
            if stop_requested() is not None:
                mark.with_suffix(".save").touch()
                time.sleep(60)  # the second signal raises out of this sleep
            return write_state(path, tree)

        sessrec.checkpoint.write_state = paused_write
    if "FULL_DISK_AT" in os.environ:
        where, window = os.environ["FULL_DISK_AT"].split(":")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

        def disk_full() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

        if where == "checkpoint":
            save = sessrec.experiment.save_checkpoint

            def failing_save(run_dir, t, *args, **kw):
                if t == int(window):
                    disk_full()
                return save(run_dir, t, *args, **kw)

            sessrec.experiment.save_checkpoint = failing_save
        else:
            add_window = sessrec.outputs.OutputWriter.add_window

            def failing_add(self, index, *args, **kw):
                if index == int(window):
                    disk_full()
                return add_window(self, index, *args, **kw)

            sessrec.outputs.OutputWriter.add_window = failing_add
    if "WRITERS" in os.environ:
        for name in ("snapshot_catalog", "save_checkpoint"):
            def recorded(*args, _name=name, _fn=getattr(sessrec.experiment, name), **kw):
                with open(os.environ["WRITERS"], "a") as f:
                    f.write(f"{os.environ.get('RANK', '0')} {_name}\n")
                return _fn(*args, **kw)

            setattr(sessrec.experiment, name, recorded)


if __name__ == "__main__":
    sys.path.remove(str(Path(__file__).parent))  # tests/t4r_paper_repro/ must not hide the package
    _install_faults()
    if os.environ.get("FRONT_END") == "paper":
        from t4r_paper_repro.transf_exp_main import main
    else:
        from sessrec.cli import main
    sys.exit(main(sys.argv[1:]))
