"""sessrec run --seeds: one folder per seed, a mean ± std summary, finished seeds not run again."""

from __future__ import annotations

import json

import pytest

from sessrec.cli import main
from sessrec.errors import SessrecError
from sessrec.multiseed import mean_std, run_seeds, seed_dirs
from tests.conftest import tiny_config


def test_mean_std_is_the_sample_standard_deviation():
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, 1.2909944487358056))
    assert mean_std([0.3]) == (0.3, 0.0)


def test_run_seeds(tiny_data, tmp_path):
    out = tmp_path / "multi"
    lines: list[str] = []
    summary = run_seeds(tiny_config(tiny_data, out), [3, 1], out, printer=lines.append)
    assert [p.name for p in seed_dirs(out)] == ["seed-1", "seed-3"]
    ndcg = [json.loads((out / f"seed-{s}" / "results.json").read_text())["aot"]["eval_/next-item/ndcg_at_20"] for s in (3, 1)]
    assert ndcg[0] != ndcg[1]  # the seed reaches the run
    stats = summary["aot"]["eval_/next-item/ndcg_at_20"]
    assert stats["mean"] == pytest.approx(sum(ndcg) / 2) and stats["std"] == pytest.approx(abs(ndcg[0] - ndcg[1]) / 2 ** 0.5)
    assert json.loads((out / "summary.json").read_text())["seeds"] == [3, 1]
    table = (out / "summary.md").read_text()
    assert "Every seed gave the same results" not in table
    assert "AOT on the validation split over 2 seeds (3 1)" in table and f"{stats['mean']:.4f} ± {stats['std']:.4f}" in table
    assert "| most popular |" in table
    # run again: the finished seeds are read back, not trained again
    lines.clear()
    again = run_seeds(tiny_config(tiny_data, out), [3, 1], out, printer=lines.append)
    assert again["aot"] == summary["aot"] and sum("finished earlier" in line for line in lines) == 2
    # another configuration into the same folder: refused before anything runs, the results kept ...
    before = (out / "seed-3" / "results.json").read_bytes()
    with pytest.raises(SessrecError, match=r"seed-1 was run with another configuration \(learning_rate: 0.003 -> 0.01\): "
                                           r"running it again would replace its results"):
        run_seeds(tiny_config(tiny_data, out, learning_rate=0.01), [1, 3], out, printer=lines.append)
    assert (out / "seed-3" / "results.json").read_bytes() == before
    # ... unless asked: then the seed runs again, not read back
    lines.clear()
    other = run_seeds(tiny_config(tiny_data, out, learning_rate=0.01, overwrite_output_dir=True), [3], out,
                      printer=lines.append)
    assert "running again (its configuration changed: learning_rate)" in lines[0]
    assert other["aot"]["eval_/next-item/ndcg_at_20"]["mean"] != ndcg[0]
    assert "AOT on the validation split over 1 seed (3) (one seed: no standard deviation)" in (out / "summary.md").read_text()
    assert " ± " not in (out / "summary.md").read_text()


def test_a_folder_of_other_files_is_refused(tiny_data, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SessrecError, match=r"is not a --seeds folder \(it holds notes.txt\)"):
        run_seeds(tiny_config(tiny_data, tmp_path), [1], tmp_path)
    assert not seed_dirs(tmp_path)


def test_a_seed_listed_twice_is_an_error(tiny_data, tmp_path):
    with pytest.raises(SessrecError, match="lists a seed twice"):
        run_seeds(tiny_config(tiny_data, tmp_path), [1, 1], tmp_path)


def test_cli_seeds_then_report(tiny_data, tmp_path, capsys):
    out = tmp_path / "multi"
    assert main(["run", "--data-path", str(tiny_data), "-o", str(out), "--d-model", "16", "--n-layer", "1",
                 "--max-steps", "2", "--quiet", "--seeds", "10", "11"]) == 0
    assert "AOT on the validation split over 2 seeds (10 11)" in capsys.readouterr().out
    assert main(["report", str(out), "-o", str(tmp_path / "rep")]) == 0
    assert "seed-10" in (tmp_path / "rep" / "report.md").read_text()


def test_a_finished_seed_on_changed_data_is_run_again_not_read_back(tiny_data, tmp_path):
    """Test files prepared again (a tune's --final-seeds over new data) were read back from the earlier runs."""
    import shutil

    import pyarrow.parquet as pq

    data, out = tmp_path / "data", tmp_path / "multi"
    shutil.copytree(tiny_data, data)
    assert run_seeds(tiny_config(data, out), [1], out, printer=lambda *_: None)
    before = json.loads((out / "seed-1" / "results.json").read_text())["windows"][1]["n_eval_sessions"]
    changed = data / "0003" / "valid.parquet"
    pq.write_table(pq.read_table(changed).slice(1), changed)
    with pytest.raises(SessrecError, match=rf"seed-1 was run on other data \({changed}: [\d,]+ bytes then, [\d,]+ bytes "
                                           r"now\): running it again would replace its results"):
        run_seeds(tiny_config(data, out), [1], out, printer=lambda *_: None)
    lines: list[str] = []
    run_seeds(tiny_config(data, out), [1], out, printer=lines.append, replace_changed=True)
    assert "running again (its data changed)" in lines[0]
    assert json.loads((out / "seed-1" / "results.json").read_text())["windows"][1]["n_eval_sessions"] < before
    # one more window in the data: a seed run "to the last window" would run further now
    whole = tmp_path / "whole"
    assert run_seeds(tiny_config(data, whole, final_time_window_index=None), [1], whole, printer=lambda *_: None)
    last = max(int(p.name) for p in data.iterdir() if p.name.isdigit())
    shutil.copytree(data / f"{last:04d}", data / f"{last + 1:04d}")
    with pytest.raises(SessrecError, match=rf"seed-1 was run on other data \({data}: its last window is {last + 1} now, "
                                           rf"{last} then\)"):
        run_seeds(tiny_config(data, whole, final_time_window_index=None), [1], whole, printer=lambda *_: None)


def test_seeds_of_a_model_without_randomness_are_said_to_be_alike(tiny_data, tmp_path):
    out = tmp_path / "knn"
    run_seeds(tiny_config(tiny_data, out, model_type="vsknn"), [1, 2], out, printer=lambda *_: None)
    assert "Every seed gave the same results: this model uses no randomness here" in (out / "summary.md").read_text()
