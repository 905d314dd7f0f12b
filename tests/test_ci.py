"""CI runs every test: with SESSREC_CI=1 (set by .ci/run) a skipped test fails the run."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

TESTS = '''
import pytest

def test_runs():
    pass

@pytest.mark.skipif(True, reason="needs the moon")
def test_skipped():
    pass

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False
'''


def _pytest(tmp_path, source, ci):
    (tmp_path / "test_sample.py").write_text(source)
    env = {**os.environ, "SESSREC_CI": "1" if ci else "0", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.strict_ci", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_sample.py")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)


def test_a_skip_fails_in_ci_only(tmp_path):
    local = _pytest(tmp_path, TESTS, ci=False)
    assert local.returncode == 0 and "1 passed, 1 skipped, 1 xfailed" in local.stdout, local.stdout
    ci = _pytest(tmp_path, TESTS, ci=True)
    assert ci.returncode == 1, ci.stdout
    assert "1 passed, 1 xfailed, 1 error" in ci.stdout and "SESSREC_CI=1 runs every test: Skipped: needs the moon" in ci.stdout


def test_a_module_skipped_at_import_fails_in_ci(tmp_path):
    source = 'import pytest\npytest.importorskip("no_such_package_here")\n\ndef test_x():\n    pass\n'
    assert _pytest(tmp_path, source, ci=False).returncode == 5  # nothing ran, nothing failed
    ci = _pytest(tmp_path, source, ci=True)
    assert ci.returncode != 0 and "no_such_package_here" in ci.stdout, ci.stdout


def test_ci_script_runs_the_suite_strictly():
    script = (ROOT / ".ci" / "run").read_text()
    assert "export SESSREC_CI=1" in script
