"""The quick bench scripts run end to end at tiny sizes: a code change elsewhere once broke
``bench/scale_catalog.py`` (a loss tensor in its JSON) and the script still exited 0. The figures
are not checked (they are measured, not asserted); that each script runs and prints its table is.
The slow ones (minutes, or a Transformers4Rec install) are run by hand: see the README."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"

TINY = {
    "scale_catalog.py": (["--items", "2000", "--d-model", "16", "--batch", "4", "--steps", "1"],
                         "| sampled (1000 draws, logQ) |"),
    "checkpoint_faults.py": (["--items", "1000", "--d-model", "32", "--steps", "1", "--repeats", "1"],
                             "per-step checks (stop requested, loss finite)"),
    "knn_baselines.py": (["--sizes", "1000", "--windows", "1", "--methods", "vsknn", "stan"], " stan     1000"),
}


@pytest.mark.parametrize("script", sorted(TINY))
def test_a_quick_bench_script_runs_and_prints_its_figures(script):
    args, expected = TINY[script]
    out = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert expected in out.stdout and out.stdout.startswith("machine: "), out.stdout


def test_scale_catalog_fails_when_a_mode_fails():
    bad = ["--items", "2000", "--d-model", "16", "--batch", "4", "--steps", "1", "--model", "electra", "--task", "rtd"]
    out = subprocess.run([sys.executable, str(BENCH / "scale_catalog.py"), *bad], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 1 and "| full | failed: sessrec.errors.SessrecError" in out.stdout
