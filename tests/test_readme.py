"""The README's commands are checked: every command of its ```bash blocks is parsed by the real
command-line parser (so each flag it shows exists and is spelled right), the short ones are run on
tiny data, and its statements about bad input are tried.

The commands are found generically (a command added later is checked too); a command that is not
run is in ``NOT_RUN`` with the reason, and a program the test does not know fails it.
"""

from __future__ import annotations

import importlib
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sessrec.cli import build_parser, config_from_args, main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

# Commands shown but not run here (a regular expression matching the start of the command), and why.
NOT_RUN = {
    r"pip install ": "the install command: checked to be the one .ci/run runs",
    r"pytest\b": "the test command (this suite): checked to be the one .ci/run runs",
    r"kill ": "shell job control",
    r"sessrec run --resume\b": "the kill -9 / resume sequence depends on timing; tests/test_checkpoint.py kills a run and resumes it",
    r"sessrec prepare ": "needs the raw public data sets; tests/datasets/ runs each prepare command on small files of their formats",
    r"sessrec run --data-path data/": "needs a data set made by sessrec prepare from the raw public data",
    r"sessrec export .*--format onnx\b": "15-40 s (the ONNX exporter); tests/test_export.py exports a model to ONNX and runs it",
    r"python -m t4r_paper_repro\.": "needs the paper's data sets; tests/t4r_paper_repro/ runs the paper's commands on generated data",
    r"python bench/": "benchmarks: minutes each, some against a local Transformers4Rec install (T4R_WORK)",
    r"sessrec tune .*--storage postgresql": "needs a PostgreSQL server; tests/tuning/ shares an SQLite study between processes",
    r"sessrec serve ": "a server runs until stopped; tests/serve/ starts it (in a process and in threads) and calls it over HTTP",
    r"curl ": "needs a running server; tests/serve/test_app.py sends these requests to one",
    r"torchrun ": "several processes, several nodes: tests/test_distributed.py runs torchrun -m sessrec with 2 gloo "
                  "processes (a run, a stop and its resume, evaluation, failures)",
}
# The paper front ends a README command may call with `python -m` (each has parse_args(argv)).
PAPER_FRONT_ENDS = ("t4r_paper_repro.transf_exp_main", "t4r_paper_repro.baselines_main")
# Appended to every `sessrec run` that is run here (flags override what comes before): seconds, not minutes.
FAST = ["--max-steps", "2", "--d-model", "16", "--n-layer", "1", "--n-head", "2", "--final-time-window-index", "3",
        "--per-device-eval-batch-size", "512", "--quiet", "--overwrite-output-dir"]
# Appended to every `sessrec tune` run here: two tiny trials.
FAST_TUNE = ["--trials", "2", "--max-steps", "2", "--d-model", "16", "--n-layer", "1", "--n-head", "2", "--quiet"]


@dataclass
class Command:
    line: int  # README line where it starts
    text: str  # as shown, continuation lines joined
    argv: list[str]  # without environment assignments, "..." / "[optional ...]" placeholders and a trailing "&"

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.text}"


def blocks(language: str) -> list[tuple[int, str]]:
    """(first line, dedented text) of each fenced block of ``language``, indented ones (in lists) too."""
    pattern = re.compile(rf"^(?P<indent>[ \t]*)```{language}[ \t]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
    found = []
    for m in pattern.finditer(README):
        indent = len(m.group("indent"))
        body = "".join(line[indent:] if line.strip() else line for line in m.group("body").splitlines(keepends=True))
        found.append((README[: m.start("body")].count("\n") + 1, body))
    return found


def commands() -> list[Command]:
    found = []
    for first, body in blocks("bash"):
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            start, text = i, lines[i]
            while text.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text.rstrip()[:-1] + " " + lines[i].strip()
            i += 1
            tokens = shlex.split(text, comments=True)
            while tokens and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", tokens[0]):
                tokens.pop(0)  # VAR=value before the program
            if tokens and tokens[-1] == "&":
                tokens.pop()
            argv, optional = [], False
            for tok in tokens:
                optional = optional or tok.startswith("[")
                if not optional and tok != "...":
                    argv.append(tok)
                optional = optional and not tok.endswith("]")
            if argv:
                found.append(Command(first + start, " ".join(text.split("#")[0].split()), argv))
    return found


def not_run_reason(cmd: Command) -> str | None:
    text = " ".join(cmd.argv)
    return next((why for pattern, why in NOT_RUN.items() if re.match(pattern, text)), None)


COMMANDS = commands()


def test_the_readme_has_commands_to_check():
    programs = {c.argv[0] for c in COMMANDS}
    assert {"sessrec", "pip", "pytest", "python"} <= programs
    assert sum(c.argv[:2] == ["sessrec", "run"] for c in COMMANDS) >= 5


def test_not_run_entries_are_all_used():
    unused = [pattern for pattern in NOT_RUN if not any(re.match(pattern, " ".join(c.argv)) for c in COMMANDS)]
    assert not unused, f"NOT_RUN entries that match no README command: {unused}"


@pytest.mark.parametrize("cmd", COMMANDS, ids=[f"line{c.line}" for c in COMMANDS])
def test_command_parses(cmd, capsys):
    prog, args = cmd.argv[0], cmd.argv[1:]
    if prog == "torchrun":  # its own options by its own parser, then the module's command line
        from torch.distributed.run import get_args_parser

        launch = get_args_parser().parse_args(args)
        assert launch.module, f"{cmd}: torchrun runs a module here (-m sessrec, -m t4r_paper_repro...)"
        prog, args = ("sessrec", launch.training_script_args) if launch.training_script == "sessrec" else (
            "python", ["-m", launch.training_script, *launch.training_script_args])
    if prog == "sessrec":
        try:
            ns = build_parser().parse_args(args)
        except SystemExit:
            pytest.fail(f"{cmd}\n{capsys.readouterr().err}")
        if ns.command == "run" and not getattr(ns, "config", None) and not getattr(ns, "resume", False):
            config_from_args(ns).validate()  # the values too (a --config file is read when the command runs)
    elif prog == "python" and args[:1] == ["-m"]:
        assert args[1] in PAPER_FRONT_ENDS, f"{cmd}: unknown module (add it to PAPER_FRONT_ENDS)"
        importlib.import_module(args[1]).parse_args(args[2:])
    elif prog == "python":
        assert (ROOT / args[0]).is_file(), f"{cmd}: no such script"
    elif prog in ("pip", "pytest"):
        ci = [shlex.split(line, comments=True) for line in (ROOT / ".ci" / "run").read_text().splitlines()]
        assert cmd.argv in ci, f"{cmd}: .ci/run must run the README's install and test commands as they are"
    elif prog == "curl":
        assert not_run_reason(cmd), f"{cmd}: list it in NOT_RUN with the test that sends this request"
    elif prog != "kill":
        pytest.fail(f"{cmd}: a program this test does not know: parse it here, or list it in NOT_RUN")


@pytest.fixture(scope="module")
def workspace(tiny_data, tmp_path_factory) -> Path:
    """A folder to run the README's commands in: DATA is the tiny data set, and each YAML file a
    command names (``--config exp.yaml``) is written from the README block that starts ``# exp.yaml``."""
    ws = tmp_path_factory.mktemp("readme")
    shutil.copytree(tiny_data, ws / "DATA")
    for _, body in blocks("yaml"):
        m = re.match(r"#\s*(\S+\.ya?ml)\b", body)
        if m:
            (ws / m.group(1)).write_text(body)
    return ws


def test_short_commands_run_on_tiny_data(workspace, monkeypatch, capsys):
    """In README order in one folder (later commands use the runs of earlier ones), each `sessrec
    run` made short by FAST; every command must succeed."""
    monkeypatch.chdir(workspace)
    ran = []
    for cmd in COMMANDS:
        if not_run_reason(cmd) or cmd.argv[0] != "sessrec":
            continue
        argv = cmd.argv[1:] + {"run": FAST, "tune": FAST_TUNE}.get(cmd.argv[1], [])
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
        captured = capsys.readouterr()
        assert rc == 0, f"{cmd}\nexit {rc}\n{captured.err[-2000:]}"
        ran.append(cmd.argv[1])
    assert {"run", "report", "recommend", "export"} <= set(ran)


# "Bad input stops the run before anything is written, with one line that names the file, window,
# row and column: <kinds>. The exit code is 2." Each kind the README lists is tried below.
def _bad_input_kinds() -> list[str]:
    m = re.search(r"Bad input stops the run before anything is written, with one line that names the file, window,\s+"
                  r"row and column: (.*?)\.\s+The exit code is 2\.", README, re.S)
    assert m, "the README's statement on bad input has changed: update this test"
    return " ".join(m.group(1).split()).split(", ")


def _rewrite(path: Path, column: str, change) -> None:
    table = pq.read_table(path)
    values = table.column(column).to_pylist()
    array = change(values)
    pq.write_table(table.set_column(table.schema.get_field_index(column), column, array), path)


def _row(values, r, fn):
    values[r] = fn(values[r])
    return values


ITEM, CAT, PRICE = "sess_pid_seq", "sess_ccid_seq", "sess_price_log_norm_seq"
LAST = "0004/valid.parquet"  # the last evaluated window: read after all the training, were it not checked first

# README phrase (a distinctive part of it) -> [(data change, extra flags, what the one line must name)]
BAD_INPUT = {
    "missing data path or window folder": [(lambda d: shutil.rmtree(d), [], ["data path not found"]),
                                           (lambda d: shutil.rmtree(d / "0004"), [], ["0004"])],
    "empty file": [(lambda d: pq.write_table(pq.read_table(d / LAST).slice(0, 0), d / LAST), [], [LAST, "(window 4)", "no sessions"])],
    "not readable parquet": [(lambda d: (d / LAST).write_bytes(b"PAR1 not parquet"), [], [LAST, "(window 4)", "cannot read"])],
    "without an `item_id` feature": [(lambda d: (d / "schema.pbtxt").write_text((d / "schema.pbtxt").read_text().replace(
        'tag: "item_id"', 'tag: "list"')), [], ["item_id"])],
    "schema column missing": [(lambda d: pq.write_table(pq.read_table(d / LAST).drop_columns([CAT]), d / LAST), [],
                               [LAST, "(window 4)", CAT])],
    "item ids < 1 or >= the cardinality": [
        (lambda d: _rewrite(d / LAST, ITEM, lambda v: pa.array(_row(v, 4, lambda s: [0] + s[1:]), pa.list_(pa.int64()))), [],
         [LAST, "(window 4)", "row 4", ITEM]),
        (lambda d: _rewrite(d / LAST, ITEM, lambda v: pa.array(_row(v, 6, lambda s: s[:-1] + [200]), pa.list_(pa.int64()))), [],
         [LAST, "(window 4)", "row 6", ITEM]),
    ],
    "categorical value": [(lambda d: _rewrite(d / LAST, CAT, lambda v: pa.array(_row(v, 2, lambda s: [10_000] + s[1:]),
                                                                                pa.list_(pa.int64()))), [],
                           [LAST, "(window 4)", "row 2", CAT])],
    "scalar where a list": [(lambda d: _rewrite(d / LAST, CAT, lambda v: pa.array([s[0] for s in v], pa.int64())), [],
                             [LAST, "(window 4)", CAT, "list column"])],
    "different lengths": [(lambda d: _rewrite(d / LAST, CAT, lambda v: pa.array(_row(v, 3, lambda s: s + [1]), pa.list_(pa.int64()))),
                           [], [LAST, "(window 4)", "row 3", CAT])],
    "NaN/inf": [(lambda d: _rewrite(d / LAST, PRICE, lambda v: pa.array(_row(v, 1, lambda s: [float(x) for x in ["inf"] + s[1:]]),
                                                                         pa.list_(pa.float32()))), [],
                 [LAST, "(window 4)", "row 1", PRICE])],
    "start >= final window": [(lambda d: None, ["--start-time-window-index", "4"], ["final_time_window_index"])],
}


def test_every_kind_of_bad_input_the_readme_lists_is_tried():
    for kind in _bad_input_kinds():
        matches = [key for key in BAD_INPUT if key in kind]
        assert len(matches) == 1, f"README bad-input kind {kind!r}: no case (or several) in BAD_INPUT: add one"


@pytest.mark.parametrize("case", [(key, i) for key, cases in BAD_INPUT.items() for i in range(len(cases))],
                         ids=lambda c: f"{c[0]}-{c[1]}")
def test_bad_input_stops_before_anything_is_written_with_one_line(tiny_data, tmp_path, capsys, case):
    change, flags, names = BAD_INPUT[case[0]][case[1]]
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    change(data)
    out = tmp_path / "out"
    rc = main(["run", "--data-path", str(data), "-o", str(out), "--final-time-window-index", "4", "--d-model", "16",
               "--n-layer", "1", "--n-head", "2", "--max-steps", "2", "--quiet", "--use-side-information-features", *flags])
    assert rc == 2
    assert not out.exists()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sessrec: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for name in names:
        assert name in lines[0], (name, lines[0])
