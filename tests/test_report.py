import csv
import json
import math
import shutil

import pytest

from sessrec.cli import main
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
from sessrec.outputs import OutputWriter
from sessrec.report import canonical_metrics, compare, group_runs, load_run, make_report, render_markdown
from sessrec.runlock import RunLock

K = "eval_/next-item/"


def metrics(v: float) -> dict[str, float]:
    """Every table metric derived from one number, so expectations are easy to compute by hand."""
    return {f"{K}ndcg_at_10": v / 2, f"{K}ndcg_at_20": v, f"{K}recall_at_10": v, f"{K}recall_at_20": 2 * v,
            f"{K}mrr_at_20": v / 4, "eval_/loss": 5.0, "eval_runtime": 0.1}


def metrics_at(v: float, ks: tuple[int, ...]) -> dict[str, float]:
    """NDCG, HR and MRR at each of ``ks`` (a run made with ``--top-ks``), NDCG@k = v * k / 100."""
    return {f"{K}{name}_at_{k}": v * k / 100 * factor for k in ks for name, factor in (("ndcg", 1), ("recall", 2), ("mrr", 0.5))}


def fake_run(out, values: dict[int, float], model="xlnet", task="mlm", seed=42, finish=True, pop=0.05, ks=None, **cfg):
    """A run folder written by the real OutputWriter, with given per-window NDCG@20 values (no training); with ``ks``,
    the metrics of :func:`metrics_at`."""
    config = ExperimentConfig.from_dict({"data_path": "/data/rees46", "output_dir": str(out), "model_type": model,
                                         "task": task, "seed": seed, "final_time_window_index": 1 + 3, **cfg})
    out.mkdir(parents=True)
    writer = OutputWriter(out, config, {})
    sink = writer.history_sink()
    for step, index in enumerate(values, 1):
        sink.append({"step": step, "window": index - 1, "loss": 6.0 - step, "lr": 0.001})
        pop_metrics = {f"{K}ndcg_at_20": pop, f"{K}recall_at_20": 2 * pop} if ks is None else metrics_at(pop, ks)
        writer.add_window(index, metrics(values[index]) if ks is None else metrics_at(values[index], ks),
                          {"pop": pop_metrics, "n_eval_sessions": 100 + index})
    if finish:
        writer.finish({}, {"total_seconds": 1.0})
    return out


def test_canonical_metric_names_of_both_scripts():
    assert canonical_metrics({f"{K}ndcg_at_20": 0.5, "eval_recall@10": "0.25", "eval_/loss": 3.0, "train_/next-item/ndcg_at_20": 1}) == \
        {("ndcg", 20): 0.5, ("recall", 10): 0.25}


def test_seeds_are_one_row_and_the_paired_t_test_is_over_windows(tmp_path):
    a1 = fake_run(tmp_path / "a1", {2: 0.30, 3: 0.40, 4: 0.50}, seed=1)
    a2 = fake_run(tmp_path / "a2", {2: 0.32, 3: 0.42, 4: 0.52}, seed=2)
    b = fake_run(tmp_path / "b", {2: 0.11, 3: 0.31, 4: 0.21}, model="gpt2", task="clm")
    groups = group_runs([load_run(p) for p in (a1, a2, b)])
    assert [(g.label, len(g.runs)) for g in groups] == [("XLNet (MLM)", 2), ("GPT-2 (CLM)", 1), ("Most popular", 1)]
    aot = groups[0].aot()[("ndcg", 20)]
    assert aot == pytest.approx([0.40, 0.42])
    (c,) = [c for c in compare(groups) if c.metric == ("ndcg", 20) and c.b == "GPT-2 (CLM)"]
    # per-window means of A (0.31, 0.41, 0.51) minus B: 0.2, 0.1, 0.3 -> mean 0.2, sd 0.1, t = 0.2 / (0.1 / sqrt 3)
    t = 2 * math.sqrt(3)
    assert (c.a, c.n_windows, c.mean_diff, c.t) == ("XLNet (MLM)", 3, pytest.approx(0.2), pytest.approx(t))
    assert c.p == pytest.approx(1 - t / math.sqrt(2 + t * t))  # two-sided p of Student's t with 2 degrees of freedom
    assert c.p_bonferroni == pytest.approx(3 * c.p)  # three rows, three pairs
    md = render_markdown(groups, compare(groups))
    assert "| XLNet (MLM) | 2 | 3 | 0.2050 ± 0.0071 | 0.4100 ± 0.0141 |" in md
    assert "*" not in md.split("\n\n")[0]  # p_bonferroni = 0.22: nobody is significantly best


def test_a_run_of_the_same_algorithm_data_and_seed_counts_once(tmp_path):
    """A copied folder, or one seed run twice (a tune's --final-seeds and best.yaml's --seeds): one run, not two (two
    would halve the spread), and the report says which was left out."""
    a1 = fake_run(tmp_path / "a1", {2: 0.30, 3: 0.40, 4: 0.50}, seed=1)
    a2 = fake_run(tmp_path / "a2", {2: 0.32, 3: 0.42, 4: 0.52}, seed=2)
    shutil.copytree(a1, tmp_path / "copy")
    other = fake_run(tmp_path / "other", {2: 0.30, 3: 0.40, 4: 0.50}, seed=1, dropout=0.3)  # another config
    report = make_report([a1, a2, tmp_path / "copy", other], tmp_path / "report")
    assert [(g.label.split()[0], len(g.runs)) for g in report.groups] == [("XLNet", 2), ("XLNet", 1), ("Most", 1)]
    note = f"left out: the same algorithm, data and seed (1) as {a1}"
    written = (tmp_path / "report" / "report.md").read_text()
    assert f"- `{tmp_path / 'copy'}`: {note}" in written and written.count(note) == 1  # named once, in the run list
    assert note in report.markdown  # what is printed
    # a stopped copy given first: the run that evaluated more windows is kept
    stopped = fake_run(tmp_path / "stopped", {2: 0.1}, seed=1, finish=False)
    again = make_report([stopped, a1], tmp_path / "report2")
    assert [r.path for r in again.groups[0].runs] == [a1]
    assert f"left out: the same algorithm, data and seed (1) as {a1}" in again.markdown


def test_rows_evaluated_on_different_windows_are_noted(tmp_path):
    a = fake_run(tmp_path / "a", {2: 0.30, 3: 0.40, 4: 0.50})
    b = fake_run(tmp_path / "b", {2: 0.11, 3: 0.31}, model="gpt2", task="clm")
    md = make_report([a, b], tmp_path / "report").markdown
    assert ("The rows were evaluated on different windows (XLNet (MLM): 2..4; GPT-2 (CLM): 2..3; Most popular: 2..4): "
            "their averages are not over the same days") in md
    assert "different windows" not in make_report([a], tmp_path / "one").markdown


def test_star_marks_a_row_significantly_better_than_all_others(tmp_path):
    a = fake_run(tmp_path / "a", {2: 0.50, 3: 0.62, 4: 0.55, 5: 0.71, 6: 0.58}, final_time_window_index=6)
    b = fake_run(tmp_path / "b", {2: 0.10, 3: 0.13, 4: 0.11, 5: 0.16, 6: 0.12}, model="gpt2", task="clm", final_time_window_index=6)
    groups = group_runs([load_run(a), load_run(b)])
    table = render_markdown(groups, compare(groups)).split("\n\n")[0]
    assert "| XLNet (MLM) | 1 | 5 | 0.2960* | 0.5920* |" in table
    assert "0.1240 |" in table and "0.1240*" not in table


def test_data_sets_are_told_apart_by_their_path_not_their_folder_name(tmp_path):
    """Two data folders named alike are two data sets: their runs are neither one row nor compared, and each keeps
    its own most-popular row."""
    a = fake_run(tmp_path / "a", {2: 0.30, 3: 0.40, 4: 0.50}, data_path="/one/data", pop=0.05)
    b = fake_run(tmp_path / "b", {2: 0.11, 3: 0.31, 4: 0.21}, model="gpt2", task="clm", data_path="/two/data", pop=0.2)
    c = fake_run(tmp_path / "c", {2: 0.12, 3: 0.32, 4: 0.22}, model="gpt2", task="clm", data_path="/three/rees46")
    groups = group_runs([load_run(p) for p in (a, b, c)])
    assert [(g.label, g.dataset) for g in groups] == [
        ("XLNet (MLM)", "/one/data"), ("GPT-2 (CLM)", "/two/data"), ("GPT-2 (CLM)", "rees46"),
        ("Most popular", "/one/data"), ("Most popular", "/two/data"), ("Most popular", "rees46")]
    assert all(c.b == "Most popular" or c.a == "Most popular" for c in compare(groups))  # no cross-data pair


def test_one_data_folder_by_a_relative_and_an_absolute_path_or_a_link_is_one_data_set(tmp_path, monkeypatch):
    """`sessrec run --data-path data/rees46 -o runs/a` stores the path as typed, tune's final runs it resolved: a
    relative path is read from where the run was started (the run folder less its relative output_dir), so the
    report (run from anywhere) has one data set, one most-popular row and the tests between the two."""
    proj = tmp_path / "proj"
    (proj / "data" / "rees46").mkdir(parents=True)
    (tmp_path / "link").symlink_to(proj / "data" / "rees46")
    monkeypatch.chdir(proj)
    a = fake_run(proj / "runs" / "a", {2: 0.30, 3: 0.40, 4: 0.50}, data_path="data/rees46", output_dir="runs/a")
    b = fake_run(proj / "tune" / "final" / "seed-1", {2: 0.11, 3: 0.31, 4: 0.21}, model="gpt2", task="clm",
                 data_path=str(proj / "data" / "rees46"), output_dir="tune/final/seed-1")
    c = fake_run(proj / "runs" / "c", {2: 0.12, 3: 0.32, 4: 0.22}, model="vsknn", task="clm", data_path=str(tmp_path / "link"))
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    groups = group_runs([load_run(p) for p in (a, b, c)])
    assert [(g.label, g.dataset) for g in groups] == [("XLNet (MLM)", "rees46"), ("GPT-2 (CLM)", "rees46"),
                                                      ("V-SkNN", "rees46"), ("Most popular", "rees46")]
    assert {(c.a, c.b) for c in compare(groups) if c.metric == ("ndcg", 20)} >= {("XLNet (MLM)", "GPT-2 (CLM)"),
                                                                                 ("XLNet (MLM)", "V-SkNN")}
    # two folders of one name stay two data sets, labelled by their paths (relative to here when under it)
    (other / "data" / "rees46").mkdir(parents=True)
    d = fake_run(other / "runs" / "d", {2: 0.2, 3: 0.2, 4: 0.2}, data_path="data/rees46", output_dir="runs/d")
    assert [g.dataset for g in group_runs([load_run(a), load_run(d)], with_pop=False)] == \
        [str(proj / "data" / "rees46"), "data/rees46"]


def test_runs_copied_from_another_machine_keep_their_data_set(tmp_path, monkeypatch):
    """Runs made elsewhere (/cluster/u) and copied here: an absolute data path under the place the run folder was
    made in, and missing here, is read under where it is now, where the data is."""
    proj = tmp_path / "proj"
    (proj / "data" / "rees46").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    a = fake_run(proj / "runs" / "a", {2: 0.30, 3: 0.40, 4: 0.50}, data_path="/cluster/u/data/rees46",
                 output_dir="/cluster/u/runs/a")
    b = fake_run(proj / "runs" / "b", {2: 0.11, 3: 0.31, 4: 0.21}, model="gpt2", task="clm", data_path="data/rees46",
                 output_dir="runs/b")
    assert [g.dataset for g in group_runs([load_run(a), load_run(b)])] == ["rees46"] * 3


def test_runs_scored_on_test_and_on_validation_are_not_compared(tmp_path):
    a = fake_run(tmp_path / "a", {2: 0.30, 3: 0.40, 4: 0.50}, eval_on_test_set=True)
    b = fake_run(tmp_path / "b", {2: 0.11, 3: 0.31, 4: 0.21}, model="gpt2", task="clm")
    groups = group_runs([load_run(p) for p in (a, b)])
    assert [(g.label, g.dataset) for g in groups] == [("XLNet (MLM)", "rees46 (test)"), ("GPT-2 (CLM)", "rees46 (validation)"),
                                                      ("Most popular", "rees46 (test)"), ("Most popular", "rees46 (validation)")]
    assert all("Most popular" in (c.a, c.b) for c in compare(groups))


def test_runs_scored_on_other_predictions_are_not_compared_nor_seeds_of_one_row(tmp_path):
    """Every position against the last item, sessions cut at 8 against 20, every 2nd batch: other examples scored,
    so each is its own comparison with its own most-popular row, also for runs that differ in nothing else."""
    a = fake_run(tmp_path / "a", {2: 0.30, 3: 0.40, 4: 0.50}, model="gpt2", task="clm")
    b = fake_run(tmp_path / "b", {2: 0.11, 3: 0.31, 4: 0.21}, model="vsknn", eval_on_last_item_seq_only=False, pop=0.07)
    c = fake_run(tmp_path / "c", {2: 0.12, 3: 0.32, 4: 0.22}, model="gpt2", task="clm", seed=2, session_seq_length_max=8)
    d = fake_run(tmp_path / "d", {2: 0.13, 3: 0.33, 4: 0.23}, model="gpt2", task="clm", seed=3,
                 compute_metrics_each_n_steps=2, per_device_eval_batch_size=64)
    groups = group_runs([load_run(p) for p in (a, b, c, d)])
    assert [(g.label, g.dataset) for g in groups if g.label != "Most popular"] == [
        ("GPT-2 (CLM)", "rees46 [last item, max length 20]"), ("V-SkNN", "rees46 [every position, max length 20]"),
        ("GPT-2 (CLM)", "rees46 [last item, max length 8]"),
        ("GPT-2 (CLM)", "rees46 [last item, max length 20, 1 in 2 batches of 64]")]
    pops = {g.dataset: g.per_window[2][("ndcg", 20)] for g in groups if g.label == "Most popular"}
    assert len(pops) == 4 and pops["rees46 [every position, max length 20]"] == 0.07
    assert all("Most popular" in (x.a, x.b) for x in compare(groups))  # each row only against its own reference


def test_runs_whose_most_popular_comparisons_count_other_windows_get_a_row_each(tmp_path):
    """Beside a sliding-window run the comparison counts its last w windows, beside an incremental one every window so
    far: one row each, labelled, whatever the order the runs are given in (one arbitrary run's row before)."""
    a = fake_run(tmp_path / "a", {2: 0.30, 3: 0.40, 4: 0.50}, model="gpt2", task="clm", pop=0.05)
    b = fake_run(tmp_path / "b", {2: 0.11, 3: 0.31, 4: 0.21}, model="vsknn", no_incremental_training=True,
                 training_time_window_size=1, pop=0.07)
    for order in ((a, b), (b, a)):
        pops = {g.label: g.per_window[2][("ndcg", 20)] for g in group_runs([load_run(p) for p in order])
                if g.is_pop_reference}
        assert pops == {"Most popular (training windows 1..t)": 0.05, "Most popular (the last 1 training window)": 0.07}


def test_same_label_rows_are_told_apart_by_their_config(tmp_path):
    a = fake_run(tmp_path / "a", {2: 0.3}, d_model=64)
    b = fake_run(tmp_path / "b", {2: 0.2}, d_model=128)
    assert [g.label for g in group_runs([load_run(a), load_run(b)], with_pop=False)] == \
        ["XLNet (MLM) d_model=64", "XLNet (MLM) d_model=128"]


def test_rows_alike_in_their_first_differing_keys_still_get_labels_of_their_own(tmp_path):
    """Three trials: the keys that tell them apart are shown (not the first three that differ anywhere), so that no
    two rows share a label, by which their tests and stars are matched."""
    a = fake_run(tmp_path / "a", {2: 0.3, 3: 0.4}, learning_rate=0.001)
    b = fake_run(tmp_path / "b", {2: 0.2, 3: 0.1}, learning_rate=0.003)
    c = fake_run(tmp_path / "c", {2: 0.1, 3: 0.3}, learning_rate=0.001, dropout=0.3, input_dropout=0.2, item_embedding_dim=32)
    groups = group_runs([load_run(p) for p in (a, b, c)], with_pop=False)
    assert [g.label for g in groups] == ["XLNet (MLM) dropout=0.1, learning_rate=0.001",
                                         "XLNet (MLM) dropout=0.1, learning_rate=0.003",
                                         "XLNet (MLM) dropout=0.3, learning_rate=0.001"]
    assert len({(x.a, x.b) for x in compare(groups)}) == 3


def test_a_run_made_before_a_key_existed_is_a_seed_of_the_same_row(tmp_path):
    """An older results.json lacks a config key added since: it means that key's default, not another algorithm."""
    a = fake_run(tmp_path / "a", {2: 0.3, 3: 0.4}, seed=1)
    b = fake_run(tmp_path / "b", {2: 0.2, 3: 0.1, 4: 0.2}, seed=2)
    results = json.loads((b / "results.json").read_text())
    del results["config"]["attn_type"]
    (b / "results.json").write_text(json.dumps(results))
    groups = group_runs([load_run(p) for p in (a, b)], with_pop=False)
    assert [(g.label, len(g.runs)) for g in groups] == [("XLNet (MLM)", 2)]


def test_rows_no_key_tells_apart_are_labelled_by_their_folders_and_compared_by_their_own_windows(tmp_path):
    """Two original-script folders, one log.json with a key the other lacks (None there): other rows, no key to show."""
    folders = []
    for name, extra, rows in (("t4r-a", {"foo": None}, "2,0.25,0.5\n3,0.35,0.6\n"), ("t4r-b", {}, "2,0.2,0.4\n3,0.3,0.5\n4,0.1,0.2\n")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "eval_train_results.csv").write_text(f"index,{K}ndcg_at_20,{K}recall_at_20\n{rows}")
        param = {"model_type": "xlnet", "mlm": True, "seed": 5, "data_path": "/data/rees46", **extra}
        (folder / "log.json").write_text("DLLL " + json.dumps({"type": "LOG", "step": "PARAMETER", "data": param}) + "\n")
        folders.append(folder)
    groups = group_runs([load_run(p) for p in folders], with_pop=False)
    assert [g.label for g in groups] == ["XLNet (MLM) [T4R] (t4r-a)", "XLNet (MLM) [T4R] (t4r-b)"]
    (c,) = [c for c in compare(groups) if c.metric == ("ndcg", 20)]
    assert c.n_windows == 2 and c.mean_diff == pytest.approx(0.05)


def test_the_bonferroni_factor_counts_the_tests_made_on_the_metric(tmp_path):
    """Four rows, but one was made with --top-ks 5 10 (no NDCG@20): 3 tests of NDCG@20, not the 6 pairs."""
    a = fake_run(tmp_path / "a", {2: 0.30, 3: 0.40, 4: 0.50})
    b = fake_run(tmp_path / "b", {2: 0.11, 3: 0.31, 4: 0.21}, model="gpt2", task="clm")
    c = fake_run(tmp_path / "c", {2: 0.2, 3: 0.25, 4: 0.3}, model="bert", ks=(5, 10), top_ks=[5, 10])
    groups = group_runs([load_run(p) for p in (a, b, c)])
    tests = [x for x in compare(groups) if x.metric == ("ndcg", 20)]
    assert len(groups) == 4 and len(tests) == 3
    assert all(x.p_bonferroni == pytest.approx(min(1.0, 3 * x.p)) for x in tests)


def test_report_of_a_run_in_progress_and_of_an_original_script_folder(tmp_path, capsys):
    running = fake_run(tmp_path / "running", {2: 0.3}, finish=False)
    with open(running / "history.jsonl", "a") as f:
        f.write('{"type": "train", "step": 9, "lo')  # the writer is in the middle of a line
    starting = tmp_path / "starting"  # still in its first window: config and loss only
    starting.mkdir()
    (starting / "config.yaml").write_text(ExperimentConfig(model_type="gpt2", task="clm", data_path="/data/rees46",
                                                                  final_time_window_index=4).to_yaml())
    (starting / "history.jsonl").write_text('{"type": "train", "step": 1, "window": 1, "loss": 7.5, "lr": 0.1}\n')
    t4r = tmp_path / "t4r"
    t4r.mkdir()
    (t4r / "eval_train_results.csv").write_text(f"index,{K}ndcg_at_20,{K}recall_at_20,eval_/loss\n2,0.25,0.5,4.0\n3,0.35,0.6,3.9\n")
    param = {"model_type": "xlnet", "mlm": True, "seed": 5, "data_path": "/data/rees46", "logging_dir": "runs/Nov27_10-00",
             "eval_on_last_item_seq_only": True}  # as every paper command passes it (the script's default is False)
    (t4r / "log.json").write_text("DLLL " + json.dumps({"type": "LOG", "step": "PARAMETER", "data": param}) + "\n")

    out = tmp_path / "report"
    with RunLock.acquire(running):  # a process runs it; nothing holds `starting`: it was stopped
        assert main(["report", str(running), str(starting), str(t4r), str(running), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| XLNet (MLM) | 1 | 1 of 3 (running) | 0.1500 | 0.3000 |" in printed
    assert "| XLNet (MLM) [T4R] | 1 | 2 | - | 0.3000 | - | 0.5500 | - |" in printed
    assert "| GPT-2 (CLM) | 1 | 0 of 3 (stopped) | - |" in printed
    assert "| Most popular | 1 | 1 of 3 (running) |" in printed  # from the running run's comparison
    md = (out / "report.md").read_text()
    assert "Scored on the validation split. Values are averages over time" in md
    assert "`" + str(running) + "`: in progress (1 of 3 windows)" in md
    assert "`" + str(starting) + "`: stopped after 0 of 3 windows (sessrec run --resume continues it)" in md
    rows = list(csv.DictReader(open(out / "report.csv")))
    assert [r["algorithm"] for r in rows] == ["XLNet (MLM)", "GPT-2 (CLM)", "XLNet (MLM) [T4R]", "Most popular"]
    assert {r["split"] for r in rows} == {"validation"}
    assert rows[2]["seeds"] == "5" and float(rows[2]["NDCG@20"]) == pytest.approx(0.30)
    assert load_run(running).loss == [(1, 5.0, 1)]  # the half-written line is skipped
    for png in ("metrics_per_window.png", "training_loss.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    per_window = list(csv.DictReader(open(out / "per_window.csv")))
    assert {(r["algorithm"], r["window"]) for r in per_window} >= {("XLNet (MLM) [T4R]", "3"), ("XLNet (MLM)", "2")}
    # each window's evaluated sessions beside its metrics (a window of one session weighs as any other; QA helper-63)
    assert {(r["algorithm"], r["window"], r["n_eval_sessions"]) for r in per_window} >= {
        ("XLNet (MLM)", "2", "102"), ("Most popular", "2", "102"), ("XLNet (MLM) [T4R]", "3", "")}


def test_a_stopped_seed_is_averaged_over_the_windows_every_seed_has(tmp_path):
    """Seed 2 stopped after window 2: the row averages both seeds over window 2 only, and says it."""
    done = fake_run(tmp_path / "s1", {2: 0.30, 3: 0.40, 4: 0.50}, seed=1)
    stopped = fake_run(tmp_path / "s2", {2: 0.20}, seed=2, finish=False)
    (group, _) = group_runs([load_run(done), load_run(stopped)])
    assert list(group.per_window) == [2] and group.aot()[("ndcg", 20)] == pytest.approx([0.30, 0.20])
    md = render_markdown([group], compare([group]))
    assert "| XLNet (MLM) | 2 | 1 of 3 (stopped) | 0.1250 ± 0.0354 | 0.2500 ± 0.0707 |" in md


def test_not_a_run_folder(tmp_path):
    with pytest.raises(SessrecError, match="is not a run folder"):
        make_report([tmp_path], tmp_path / "r")
    assert main(["report", str(tmp_path / "missing")]) == 2
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(SessrecError, match=r"notes.txt is a file: give run folders"):
        make_report([tmp_path / "notes.txt"], tmp_path / "r")


def test_a_run_copied_without_its_data_keeps_the_data_it_read(tmp_path, monkeypatch):
    """Runs archived elsewhere without their data: the recorded data path still exists, so it is kept (it was read
    under the archive's folder, which has no data, and the copy became a data set of its own)."""
    data = tmp_path / "w" / "mydata"
    data.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "w")
    a = fake_run(tmp_path / "w" / "runs" / "r1", {2: 0.30, 3: 0.40, 4: 0.50}, data_path=str(data),
                 output_dir=str(tmp_path / "w" / "runs" / "r1"))
    b = fake_run(tmp_path / "w" / "runs" / "r2", {2: 0.11, 3: 0.31, 4: 0.21}, model="gpt2", task="clm",
                 data_path=str(data), output_dir=str(tmp_path / "w" / "runs" / "r2"))
    archived = tmp_path / "w" / "archive" / "rep" / "runs" / "r2"
    shutil.copytree(b, archived)
    assert [g.dataset for g in group_runs([load_run(a), load_run(archived)])] == ["mydata"] * 3


def test_options_that_cannot_act_make_no_other_algorithm(tmp_path):
    """A CLM run recorded with the original's mlm_probability (a preset of an earlier release) and one without: one
    algorithm, two seeds; a dropout differs: two."""
    a = fake_run(tmp_path / "a", {2: 0.30, 3: 0.40}, model="gpt2", task="clm", seed=1, mlm_probability=0.15)
    b = fake_run(tmp_path / "b", {2: 0.32, 3: 0.42}, model="gpt2", task="clm", seed=2)
    c = fake_run(tmp_path / "c", {2: 0.32, 3: 0.42}, model="gpt2", task="clm", seed=2, dropout=0.3)
    groups = group_runs([load_run(p) for p in (a, b, c)], with_pop=False)
    assert sorted(len(g.runs) for g in groups) == [1, 2]


def test_runs_made_with_other_cutoffs_get_their_own_columns(tmp_path):
    """Runs made with --top-ks 1 3 5 have none of the @10/@20 columns (every cell was '-'): the table, report.csv,
    per_window.csv, the t-tests and the plots use the two largest cutoffs they have instead."""
    a = fake_run(tmp_path / "a", {2: 0.30, 3: 0.40, 4: 0.50}, ks=(1, 3, 5), compare_with_pop=False)
    b = fake_run(tmp_path / "b", {2: 0.10, 3: 0.20, 4: 0.15}, ks=(1, 3, 5), model="gpt2", task="clm", compare_with_pop=False)
    report = make_report([a, b], tmp_path / "report")
    head = "| Algorithm | Runs | Windows | NDCG@3 | NDCG@5 | HR@3 | HR@5 | MRR@3 | MRR@5 |"
    assert head in report.markdown
    assert "| XLNet (MLM) | 1 | 3 | 0.0120 | 0.0200 | 0.0240 | 0.0400 | 0.0060 | 0.0100 |" in report.markdown
    assert "Paired t-tests over evaluated windows (NDCG@5, HR@5;" in report.markdown
    with open(tmp_path / "report" / "per_window.csv") as f:
        assert list(csv.DictReader(f))[0]["NDCG@5"] == "0.015"
    with open(tmp_path / "report" / "report.csv") as f:
        assert float(next(csv.DictReader(f))["HR@5"]) == pytest.approx(0.04)
    # beside runs with the usual cutoffs: the usual columns and theirs (their row was all '-': QA helper-70)
    c = fake_run(tmp_path / "c", {2: 0.30, 3: 0.40, 4: 0.50}, model="bert", compare_with_pop=False)
    both = make_report([a, c], tmp_path / "report2").markdown.replace("*", "")  # (XLNet beats its most-popular row)
    assert ("| Algorithm | Runs | Windows | NDCG@3 | NDCG@5 | NDCG@10 | NDCG@20 | HR@3 | HR@5 | HR@10 | HR@20 | MRR@3 | "
            "MRR@5 | MRR@20 |") in both
    assert "| XLNet (MLM) | 1 | 3 | 0.0120 | 0.0200 | - | - | 0.0240 | 0.0400 | - | - | 0.0060 | 0.0100 | - |" in both
    assert "| BERT (MLM) | 1 | 3 | - | - | 0.2000 | 0.4000 | - | - | 0.4000 | 0.8000 | - | - | 0.1000 |" in both
    d = fake_run(tmp_path / "d", {2: 0.30, 3: 0.40, 4: 0.50}, model="gpt2", task="clm", compare_with_pop=False)
    assert "| Algorithm | Runs | Windows | NDCG@10 | NDCG@20 | HR@10 | HR@20 | MRR@20 |" in \
        make_report([c, d], tmp_path / "report3").markdown  # all with the usual ones: only those


def test_a_report_that_fails_midway_leaves_the_previous_report_whole(tmp_path, monkeypatch):
    """A full disk (or a kill) while a report is written again left the new report.md and CSVs beside the old
    report.html and plots: the files are now written aside and moved in together."""
    from sessrec import report as report_module
    from sessrec.io import WriteError

    a = fake_run(tmp_path / "a", {2: 0.30, 3: 0.40, 4: 0.50})
    b = fake_run(tmp_path / "b", {2: 0.10, 3: 0.20, 4: 0.15}, model="gpt2", task="clm")
    make_report([a], tmp_path / "rep")
    before = {p.name: p.read_bytes() for p in (tmp_path / "rep").iterdir()}

    def full(path, data):  # the plots are written last: the tables of the new report are written by then
        raise WriteError(path, OSError(28, "No space left on device"))

    monkeypatch.setattr(report_module, "atomic_write_bytes", full)
    with pytest.raises(SessrecError, match=f"^cannot write {tmp_path / 'rep' / 'metrics_per_window.png'}: No space left on device"):
        make_report([a, b], tmp_path / "rep")
    assert {p.name: p.read_bytes() for p in (tmp_path / "rep").iterdir()} == before  # no staging folder left either
    monkeypatch.undo()
    report = make_report([a, b], tmp_path / "rep")
    assert "GPT-2 (CLM)" in (tmp_path / "rep" / "report.md").read_text()
    assert all(p.parent == tmp_path / "rep" and p.exists() for p in report.files)


@pytest.mark.parametrize("edit, cause", [
    (lambda r: [], "TypeError"),
    (lambda r: {}, "KeyError: 'config'"),
    (lambda r: {**r, "config": "x"}, "TypeError: its config is not a mapping with a model_type"),
    (lambda r: {**r, "config": {k: v for k, v in r["config"].items() if k != "model_type"}}, "TypeError: its config"),
    (lambda r: {**r, "windows": None}, "TypeError"),
    (lambda r: {**r, "windows": [{**r["windows"][0], "index": "two"}]}, "ValueError"),
    (lambda r: {**r, "windows": [{**r["windows"][0], "metrics": {f"{K}ndcg_at_20": "abc"}}]}, "ValueError"),
])
def test_a_hand_edited_results_file_is_one_line_naming_it(tmp_path, capsys, edit, cause):
    """Valid JSON of another shape was a TypeError, KeyError, AttributeError or ValueError traceback (QA helper-67)."""
    run = fake_run(tmp_path / "run", {2: 0.2, 3: 0.3})
    results = json.loads((run / "results.json").read_text())
    (run / "results.json").write_text(json.dumps(edit(results)))
    assert main(["report", str(run), "-o", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sessrec: error: {run / 'results.json'}: not as sessrec writes it ({cause}") and \
        err.endswith("; was it edited by hand?\n") and err.count("\n") == 1, err


def test_files_that_are_not_utf8_are_one_line_naming_them(tmp_path, capsys, tiny_data):
    """UnicodeDecodeError tracebacks from a config, a search space, a schema, a results file (QA helper-67)."""
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe d_model: 8\n")
    run = fake_run(tmp_path / "run", {2: 0.2})
    (run / "results.json").write_bytes(b"\xff" + (run / "results.json").read_bytes())
    tune = tmp_path / "tune"
    for argv, named in [(["run", "--config", str(bad)], bad),
                        (["run", "--data-path", str(tiny_data), "--schema", str(bad)], bad),
                        (["tune", "--data-path", str(tiny_data), "--model", "gpt2", "--task", "clm", "--space", str(bad),
                          "-o", str(tune)],
                         bad),
                        (["report", str(run), "-o", str(tmp_path / "r")], run / "results.json")]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"{named}: not UTF-8 text (byte 0xff at offset 0)" in err and err.count("\n") == 1, err


def test_a_hand_edited_tune_summary_is_one_line_naming_it(tmp_path, capsys):
    study = tmp_path / "study"
    study.mkdir()
    for summary in ([1], {"trials": 5}):
        (study / "tune.json").write_text(json.dumps(summary))
        assert main(["report", str(study), "-o", str(tmp_path / "r")]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"sessrec: error: {study / 'tune.json'}: not as sessrec writes it (TypeError: a study's "
                              "summary is a mapping") and err.count("\n") == 1, err


def test_every_architecture_has_its_display_name(tmp_path):
    """SASRec and HSTU rows read 'sasrec (CLM)' beside 'GPT-2 (CLM)' (QA helper-70)."""
    from sessrec.bodies import BODIES
    from sessrec.report import _NAMES

    assert set(BODIES) <= set(_NAMES)
    run = load_run(fake_run(tmp_path / "s", {2: 0.2}, model="sasrec", task="clm"))
    assert run.label == "SASRec (CLM)"
