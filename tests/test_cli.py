import argparse
import csv
import os
import subprocess
import sys

import pytest

from sessrec.cli import Parser, build_parser, main, run_guarded
from sessrec.errors import SessrecError


def test_run_writes_the_original_output_files(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["run", "--data-path", str(tiny_data), "--output-dir", str(out), "--d-model", "16", "--n-layer", "1",
               "--n-head", "2", "--max-steps", "2", "--final-time-window-index", "3", "--quiet", "--model", "gpt2", "--task", "clm"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "AOT" in printed and "most-popular" in printed
    for name in ("eval_train_results.csv", "eval_results_over_time.txt", "train_results_over_time.txt",
                 "eval_results_avg_over_time.txt", "results.json", "config.yaml", "log.json", "history.jsonl"):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader(open(out / "eval_train_results.csv")))
    assert [r["index"] for r in rows] == ["2", "3"]
    assert {"eval_/next-item/ndcg_at_20", "eval_/next-item/recall_at_10", "eval_/next-item/mrr_at_20",
            "train_/next-item/ndcg_at_20"} <= set(rows[0])
    avg = (out / "eval_results_avg_over_time.txt").read_text().splitlines()
    assert avg[:2] == ["", "***** Eval results (avg over time) *****"]  # leading blank line, as the original
    assert any(line.startswith("eval_/next-item/ndcg_at_20_AOT = ") for line in avg)
    assert "***** eval results (time index): 2)*****" in (out / "eval_results_over_time.txt").read_text()
    assert all(line.startswith("DLLL {") for line in (out / "log.json").read_text().splitlines())


def test_yaml_config_and_flag_override(tiny_data, tmp_path):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text(f"data_path: {tiny_data}\nd_model: 8\nn_head: 2\nn_layer: 1\nmax_steps: 1\nfinal_time_window_index: 2\nquiet: true\n")
    out = tmp_path / "o"
    assert main(["run", "--config", str(cfg), "--d-model", "12", "--output-dir", str(out)]) == 0
    assert "d_model: 12" in (out / "config.yaml").read_text()


@pytest.mark.parametrize("args,message", [
    (["--data-path", "/nonexistent/data"], "data path not found: /nonexistent/data"),
    (["--d-modle", "3"], None),
    (["--data-path", "EMPTY"], "data path EMPTY holds no window folders with a train.parquet (0001/train.parquet, ...): "
                               "give the folder of the window folders, e.g. what `sessrec prepare` wrote"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, args, message):
    (tmp_path / "EMPTY").mkdir()
    proc = subprocess.run([sys.executable, "-m", "sessrec.cli", "run", "--output-dir", str(tmp_path / "x"), *args],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    if message:
        assert proc.stderr.strip().splitlines()[-1] == f"sessrec: error: {message}"


def test_bad_window_range_and_schema(tiny_data, tmp_path, capsys):
    assert main(["run", "--data-path", str(tiny_data), "--final-time-window-index", "9", "-o", str(tmp_path / "a")]) == 2
    assert "0005" in capsys.readouterr().err
    bad_schema = tmp_path / "s.pbtxt"
    bad_schema.write_text('feature { name: "x" type: INT int_domain { max: 3 } annotation { tag: "categorical" } }')
    assert main(["run", "--data-path", str(tiny_data), "--schema", str(bad_schema), "-o", str(tmp_path / "b")]) == 2
    assert "no feature is tagged 'item_id'" in capsys.readouterr().err


def test_sample_data_command(tmp_path, monkeypatch):
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    out = tmp_path / "sample"
    assert main(["sample-data", str(out)]) == 0
    assert os.environ["ARROW_DEFAULT_MEMORY_POOL"] == "system"  # main ran setup_process
    assert (out / "schema.pbtxt").is_file() and (out / "0006" / "test.parquet").is_file()
    assert main(["sample-data", str(out)]) == 2  # refuses to overwrite


def test_boolean_flags():
    from sessrec.cli import build_parser, config_from_args

    def cfg(*flags):
        return config_from_args(build_parser().parse_args(["run", *flags]))

    assert cfg("--no-incremental-training").no_incremental_training is True
    assert cfg("--no_incremental_training", "false").no_incremental_training is False
    assert cfg("--eval-on-test-set").eval_on_test_set is True
    assert cfg("--eval-on-test-set", "False").eval_on_test_set is False
    assert cfg("--no-mf-constrained-embeddings").mf_constrained_embeddings is False
    assert cfg().mf_constrained_embeddings is True


@pytest.mark.parametrize("flag", ["--baseline-params", "--model-config"])
def test_a_mapping_flag_of_bad_yaml_is_a_one_line_error(flag, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["run", "--model", "vsknn", flag, "{k: 5"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "not valid YAML" in err and "Traceback" not in err and err.count("\n") == 0


def test_baseline_params_need_a_baseline(tiny_data, tmp_path, capsys):
    assert main(["run", "--data-path", str(tiny_data), "--baseline-params", "{k: 5}", "-o", str(tmp_path / "x")]) == 2
    assert "baseline_params is for the baselines" in capsys.readouterr().err


def test_command_lines_give_pyarrow_the_c_allocator(monkeypatch):
    """setup_process (both command lines call it first) makes pyarrow allocate through malloc, unless
    the user chose a pool; checked in a fresh interpreter, where pyarrow reads the choice."""
    code = ("from sessrec.cli import setup_process; setup_process(); import pyarrow as pa; "
            "print(pa.default_memory_pool().backend_name)")
    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "system"
    monkeypatch.setenv("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "jemalloc"


def _all_parsers(parser):
    """The parser and every sub-command parser below it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _all_parsers(sub)


def test_no_parser_accepts_abbreviated_flags():
    parsers = list(_all_parsers(build_parser()))
    names = {p.prog for p in parsers}
    assert {"sessrec run", "sessrec report", "sessrec recommend", "sessrec export", "sessrec sample-data",
            "sessrec prepare", "sessrec prepare rees46", "sessrec prepare events"} <= names
    assert [p.prog for p in parsers if p.allow_abbrev] == []
    # a sub-command added later inherits it
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert sub.add_parser("later").allow_abbrev is False
    with pytest.raises(ValueError, match="abbreviated"):
        Parser(allow_abbrev=True)


@pytest.mark.parametrize("argv,flag", [
    (["run", "--d-mod", "8"], "--d-mod"),
    (["run", "--learning-r", "0.1"], "--learning-r"),
    (["report", "r", "--no-p"], "--no-p"),
    (["recommend", "--model-dir", "m", "--ite", "1"], "--ite"),
    (["export", "--model-dir", "m", "--format", "onnx", "--out", "x"], "--out"),
    (["prepare", "events", "--input", "x.csv", "--item-col", "i", "--time-col", "t", "--output", "o", "--time-z", "UTC"],
     "--time-z"),
])
def test_abbreviated_flags_are_errors(argv, flag, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert f"unrecognized arguments: {flag}" in capsys.readouterr().err


@pytest.mark.parametrize("argv,line", [
    (["run", "--d-mod", "8"], "sessrec run: error: unrecognized arguments: --d-mod 8 (--d-mod: did you mean --d-model?); "
                              "see sessrec run --help"),
    (["export", "--model-dir", "m", "--fromat", "onnx"], "sessrec export: error: the following arguments are required: "
                                                         "--format (--fromat: did you mean --format?)"),
    (["run", "--d-model", "abc"], "sessrec run: error: argument --d-model/--d_model: invalid int value: 'abc'"),
    (["recommend", "--model-dir", "m", "--items", "1,2", "--timestamps", "-100,-50"],
     "sessrec recommend: error: argument --timestamps: expected one argument (a value that starts with '-' is written "
     "--timestamps=-100,-50); see sessrec recommend --help"),
    (["recommend", "--model-dir", "m", "--items", "1,2", "--timestamps", "--k"],
     "sessrec recommend: error: argument --timestamps: expected one argument (--k: did you mean -k?)"),
])
def test_a_command_line_mistake_is_one_line_with_the_closest_flag(argv, line, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith(line), err


def test_a_torchrun_worker_ends_at_once_with_its_code_and_its_output_flushed(tmp_path):
    """A worker of a torchrun job ends by ``os._exit`` after the command (no C++ destructors of the
    process group's threads, which can abort a clean exit): its code and output are kept, and
    interpreter-exit hooks do not run. Outside torchrun the exit is the normal one."""
    script = ("import atexit, sys\n"
              "import sessrec.distributed\n"
              "from sessrec.cli import run_guarded\n"
              "atexit.register(lambda: print('normal interpreter exit'))\n"
              "def command():\n"
              "    print('the command ran', end='')\n"
              "    return 3\n"
              "sys.exit(run_guarded('sessrec', command))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "TORCHELASTIC_RUN_ID")}
    plain = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    worker = subprocess.run([sys.executable, "-c", script], env={**env, "WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "x"},
                            capture_output=True, text=True, timeout=120)
    assert (plain.returncode, plain.stdout) == (3, "the command rannormal interpreter exit\n")
    assert (worker.returncode, worker.stdout) == (3, "the command ran")


@pytest.mark.parametrize("error, line", [
    (PermissionError(13, "Permission denied", "runs/x/results.json"), "runs/x/results.json: Permission denied"),
    (OSError("Read-only file system (os error 30): out/.o.tmp/_work\n\nThis error occurred with the following context"),
     "Read-only file system (os error 30): out/.o.tmp/_work"),
])
def test_an_os_error_is_one_line(error, line, capsys):
    """A folder that cannot be written, met below the commands' own checks (polars' and pyarrow's writers too)."""
    def command():
        raise error

    assert run_guarded("sessrec", command) == 2
    assert capsys.readouterr().err == f"sessrec: error: {line}\n"


@pytest.mark.parametrize("stop", [SessrecError("bad row 7"), KeyboardInterrupt(), OSError(28, "No space left", "o/x")])
def test_a_stop_in_a_progress_bar_is_said_on_a_line_of_its_own(stop, capsys):
    """A bar's line ends with a carriage return: in a log file (not a terminal) the error line went on after the bar's
    text, ``reading: 30%|███ | 3/10sessrec: error: ...`` (QA helper-65)."""
    from tqdm import tqdm

    def command():
        bar = tqdm(total=10, desc="reading", file=sys.stderr, mininterval=0, leave=False)
        bar.update(3)
        raise stop

    assert run_guarded("sessrec", command) in (2, 130)
    err = capsys.readouterr().err
    assert "3/10" in err and "\nsessrec: " in err and err.split("\n")[-2].startswith("sessrec: "), repr(err)


def test_progress_bars_draw_on_a_terminal_only(tiny_data, tmp_path):
    """Into a log file a bar wrote carriage-return redraws (10 a second), and the next line went on after its text:
    ``reading: 0.00 events [00:00, ? events/s]    sessrec: error: a.tsv, line 11: ...`` (QA helper-65)."""
    bad = tmp_path / "a.csv"
    bad.write_text("session,item,ts\ns1,i1,1710316800\ns1,i2,\n")
    for argv in (["prepare", "events", "--input", str(bad), "--session-col", "session", "--item-col", "item",
                  "--time-col", "ts", "-o", str(tmp_path / "p")],
                 ["run", "--data-path", str(tiny_data), "-o", str(tmp_path / "r"), "--model", "gru4rec",
                  "--baseline-params", "{n_epochs: 1, layers: 8, batch_size: 8, n_sample: 4}",
                  "--final-time-window-index", "2"]):
        proc = subprocess.run([sys.executable, "-m", "sessrec", *argv], capture_output=True, timeout=300)  # bytes: text
        assert b"\r" not in proc.stderr and b"\r" not in proc.stdout, proc.stderr[-300:]  # mode reads \r as \n
    assert proc.returncode == 0 and b"done in" in proc.stdout, proc.stderr


@pytest.mark.parametrize("flags, line", [
    # 800 TB: beyond any machine's address space, so it fails at once whatever the memory overcommit policy
    (["--d-model", str(10**12), "--n-head", "1"], "cannot build model_type xlnet: out of memory ("),
    (["--d-model", "16", "--n-head", "1", "--model-config", "{d_inner: -4}"],
     "cannot build model_type xlnet: a size is negative (Trying to create tensor with negative dimension -4"),
])
def test_a_model_torch_cannot_build_is_one_line_and_no_folder(tiny_data, tmp_path, capsys, flags, line):
    """Deep torch tracebacks, exit 1 (QA helper-67)."""
    out = tmp_path / "run"
    assert main(["run", "--data-path", str(tiny_data), "-o", str(out), "--n-layer", "1", "--max-steps", "1",
                 "--final-time-window-index", "2", "--quiet", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sessrec: error: {line}") and err.count("\n") == 1 and not out.exists(), err


def test_a_mapping_option_takes_a_yaml_file_of_the_mapping(tmp_path):
    """``--model-config`` showed the metavar YAML, yet a YAML file was refused (QA helper-67)."""
    params = tmp_path / "params.yaml"
    params.write_text("k: 50\nsample_size: 500\n")
    args = build_parser().parse_args(["run", "--model", "vsknn", "--baseline-params", str(params),
                                      "--model-config", "{d_inner: 64}"])
    assert args.baseline_params == {"k": 50, "sample_size": 500} and args.model_config == {"d_inner": 64}
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(SessrecError, match="expected a mapping"):
        build_parser().parse_args(["run", "--baseline-params", str(tmp_path / "list.yaml")])


def test_outputs_that_are_files_are_named(tmp_path, capsys):
    a_file = tmp_path / "results.csv"
    a_file.write_text("keep me")
    for argv, flag in [(["report", str(tmp_path), "-o", str(a_file)], "--output"),
                       (["prepare", "events", "--input", str(a_file), "--item-col", "i", "--time-col", "t", "--session-col", "s", "--output",
                         str(a_file / "sub")], "--output")]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"sessrec: error: {flag} ") and "is a file, not a folder" in err and len(err.splitlines()) == 1
    assert a_file.read_text() == "keep me"


def test_version_and_a_closed_pipe(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == "sessrec 0.1.0"
    # `sessrec run --list-presets | head -1`: the reader stopped early, which is no error (it printed
    # "sessrec: error: [Errno 32] Broken pipe"); run in a child, whose stdout the handler redirects
    script = ("import sys\nfrom sessrec.cli import run_guarded\n"
              "def command():\n    raise BrokenPipeError(32, 'Broken pipe')\n"
              "sys.exit(run_guarded('sessrec', command))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stderr) == (0, "")
