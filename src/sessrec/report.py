"""``sessrec report``: a table in the layout of the paper's Table 2, significance tests and plots.

Reads run folders written by ``sessrec run`` (``results.json`` and ``history.jsonl``, both
rewritten or appended after every window, so a run still in progress can be reported) or by the
original Transformers4Rec script (``eval_train_results.csv`` and ``log.json``).

Rows are algorithms labelled by model and objective (``XLNet (MLM)``); runs whose configs differ
only in the seed (and output paths) are one row, shown as mean ± standard deviation of their
averages over time (AOT). Each row's value is the AOT, the unweighted mean over evaluated windows.

Significance, as in the paper (paired t-test, Bonferroni correction, p < 0.05), with the pairing
done over **evaluated windows**: window w is the same evaluation data for every run, so the
per-window difference between two rows removes the day-to-day variation of difficulty, and the
test asks whether one row is better consistently over time. Seeds are not a pairing (seed 3 of
one model shares nothing with seed 3 of another); with several seeds a row's per-window value is
the mean over its seeds. Every pair of rows on the same data is tested on the windows both have;
the Bonferroni factor is the number of pairs. ``*`` marks a row significantly better than every
other row on the same data for that metric.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import re
import warnings
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sessrec.config import ExperimentConfig, inert_with_task, neural_only_options
from sessrec.errors import SessrecError
from sessrec.io import atomic_write_bytes, atomic_write_text, check_output_folder, files_together, reading
from sessrec.report_html import Table, render_html
from sessrec.runlock import is_locked, own_temporary, remove_dead_temporaries

# (metric, k) columns of the table, where the runs have them all (see table_metrics); HR@k is the original's
# recall@k (one relevant item per session).
METRICS: list[tuple[str, int]] = [("ndcg", 10), ("ndcg", 20), ("recall", 10), ("recall", 20), ("mrr", 20)]
PLOTTED: list[tuple[str, int]] = [("ndcg", 20), ("recall", 20)]
REPORT_FILES = ("report.md", "report.html", "report.csv", "comparisons.csv", "per_window.csv", "metrics_per_window.png",
                "training_loss.png")
ALPHA = 0.05
_DISPLAY = {"ndcg": "NDCG", "recall": "HR", "mrr": "MRR"}
_NAMES = {"xlnet": "XLNet", "gpt2": "GPT-2", "transfoxl": "Transformer-XL", "albert": "ALBERT", "bert": "BERT",
          "electra": "ELECTRA", "gru": "GRU", "lstm": "LSTM", "sasrec": "SASRec", "hstu": "HSTU",
          "pop": "Most popular", "vsknn": "V-SkNN",
          "stan": "STAN", "vstan": "VSTAN", "gru4rec": "GRU4Rec", "gru4rec_ft": "GRU4Rec (FT)",
          "gru4rec_swt": "GRU4Rec (SWT)"}
_BASELINES = {"pop", "vsknn", "stan", "vstan", "gru4rec", "gru4rec_ft", "gru4rec_swt", "sknn", "ar", "sr"}
# Keys that never make two runs different algorithms: the seed, output and logging places, operational switches.
_NOT_IDENTITY = {"seed", "resume", "quiet", "device", "num_threads", "logging_steps", "save_checkpoints",
                 "keep_checkpoints", "overwrite_output_dir", "final_time_window_index", "wandb_run_name",
                 "compare_with_pop", "eval_steps_on_train_set", "per_device_eval_batch_size", "report_to",
                 "experiments_group"}
# What a sessrec run's config means where it does not say (a results.json made before a key existed).
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ExperimentConfig) if f.default is not dataclasses.MISSING}
# The original transf_exp_main's, for a log.json that lacks the key.
_ORIGINAL_DEFAULTS = {"eval_on_last_item_seq_only": False, "session_seq_length_max": 20, "compute_metrics_each_n_steps": 1}
_METRIC_KEY = re.compile(r"^eval_?/?(?:next-item/)?(ndcg|recall|mrr)(?:_at_|@)(\d+)$")


def metric_name(metric: tuple[str, int]) -> str:
    return f"{_DISPLAY[metric[0]]}@{metric[1]}"


def _reported(groups: list[Group]) -> set[tuple[str, int]]:
    return {m for g in groups for w in g.per_window.values() for m in w}


def table_metrics(groups: list[Group]) -> list[tuple[str, int]]:
    """The table's columns: :data:`METRICS` that the runs have, and for each row that lacks one of them (a run made
    with other ``--top-ks``, e.g. ``1 3 5``, whose columns were all '-', also beside runs that have them) the two
    largest cutoffs each of NDCG, HR and MRR that it has."""
    own = [mine for g in groups if (mine := _reported([g]))]
    lacking = [mine for mine in own if not all(m in mine for m in METRICS)]
    if not own or not lacking:
        return METRICS
    columns = {m for m in METRICS if any(m in mine for mine in own)}
    for mine in lacking:
        columns |= {(name, k) for name in _DISPLAY for k in sorted(k for n, k in mine if n == name)[-2:]}
    order = list(_DISPLAY)
    return sorted(columns, key=lambda m: (order.index(m[0]), m[1]))


def plotted_metrics(groups: list[Group]) -> list[tuple[str, int]]:
    """The metrics plotted per window and tested in report.md: :data:`PLOTTED`, or the largest cutoff of each."""
    have = _reported(groups)
    if not have or all(m in have for m in PLOTTED):
        return PLOTTED
    return [(name, max(k for n, k in have if n == name)) for name, _ in PLOTTED if any(n == name for n, _ in have)] or PLOTTED


def canonical_metrics(row: dict[str, Any]) -> dict[tuple[str, int], float]:
    """``{("ndcg", 20): 0.21, ...}`` from result keys of either sessrec or the original script; undefined
    values (a window without a session to evaluate: null, empty or NaN) are left out."""
    out = {}
    for key, value in row.items():
        m = _METRIC_KEY.match(key)
        if m and value not in (None, "") and not math.isnan(float(value)):
            out[(m.group(1), int(m.group(2)))] = float(value)
    return out


def _evaluated(windows: list[tuple[int, dict[tuple[str, int], float]]]) -> dict[int, dict[tuple[str, int], float]]:
    """Window -> metrics, for the windows that have any (the others had no session to evaluate)."""
    return {w: m for w, m in windows if m}


@dataclass
class Run:
    """One run folder: its identity, per-window metrics and training-loss points."""

    path: Path
    model_type: str
    task: str | None
    seed: int | None
    dataset: str | tuple[str, str, str]  # (data path, split, protocol) as read; its short name once grouped (group_runs)
    identity: dict[str, Any]  # the config without seed, paths and switches: equal identity = same algorithm
    windows: dict[int, dict[tuple[str, int], float]]  # evaluated window -> metrics
    pop_windows: dict[int, dict[tuple[str, int], float]] = field(default_factory=dict)
    sessions: dict[int, int] = field(default_factory=dict)  # evaluated window -> its evaluated sessions, where known
    loss: list[tuple[int, float, int]] = field(default_factory=list)  # (global step, training loss, window)
    expected_windows: int | None = None
    finished: bool = True
    running: bool = False  # unfinished, and a process holds its folder now (else it was stopped)
    original_script: bool = False  # written by the original Transformers4Rec script

    @property
    def label(self) -> str:
        name = _NAMES.get(self.model_type, self.model_type)
        if self.task and self.model_type not in _BASELINES:
            name += f" ({self.task.upper()})"
        return name + (" [T4R]" if self.original_script else "")

    @property
    def status(self) -> str:
        if self.finished:
            return "done"
        total = f" of {self.expected_windows}" if self.expected_windows else ""
        if self.running:
            return f"in progress ({len(self.windows)}{total} windows)"
        return f"stopped after {len(self.windows)}{total} windows (sessrec run --resume continues it)"


def _existing_folder(path: str | Path) -> Path:
    path = Path(path)
    if path.is_file():
        raise SessrecError(f"{path} is a file: give run folders (a `sessrec run` --output-dir)")
    if not path.is_dir():
        raise SessrecError(f"run folder not found: {path}")
    return path


def load_run(path: str | Path) -> Run:
    """Read a run folder of ``sessrec run`` (finished or not) or of the original script."""
    path = _existing_folder(path)
    if (path / "results.json").is_file() or (path / "config.yaml").is_file():
        return _load_sessrec_run(path)
    if (path / "eval_train_results.csv").is_file():
        return _load_original_run(path)
    raise SessrecError(f"{path} is not a run folder: no results.json, config.yaml or eval_train_results.csv")


def _load_sessrec_run(path: Path) -> Run:
    if (path / "results.json").is_file():
        with reading(path / "results.json"):  # a file cut short (a kill, a full disk): "not valid JSON"
            results = json.loads((path / "results.json").read_text())
            cfg = _config(results["config"])
            windows = _evaluated([(int(w["index"]), canonical_metrics(w["metrics"])) for w in results["windows"]])
            pop = _evaluated([(int(w["index"]), canonical_metrics(w["pop"])) for w in results["windows"] if w.get("pop")])
            sessions = {int(w["index"]): int(w["n_eval_sessions"]) for w in results["windows"] if "n_eval_sessions" in w}
            finished = "total_seconds" in results
    else:  # still training its first window
        import yaml

        with reading(path / "config.yaml"):
            try:
                cfg = _config(yaml.safe_load((path / "config.yaml").read_text()))
            except yaml.YAMLError as e:
                raise SessrecError(f"{path / 'config.yaml'}: invalid YAML ({str(e).splitlines()[0]})") from None
        windows, pop, sessions, finished = {}, {}, {}, False
    start, final = cfg.get("start_time_window_index"), cfg.get("final_time_window_index")
    dataset = _dataset_key(cfg, path)
    return Run(path=path, model_type=cfg["model_type"], task=cfg.get("task"), seed=cfg.get("seed"),
               dataset=dataset, identity=_identity({**_DEFAULTS, **cfg}),  # a key added since: its default
               windows=windows, pop_windows=pop, sessions=sessions, loss=_read_loss(path / "history.jsonl"),
               expected_windows=(final - start) if start and final else None, finished=finished,
               running=not finished and is_locked(path))


def _config(cfg: Any) -> dict[str, Any]:
    """A run's config as its results hold it: a mapping with a model_type (raises as :func:`reading` turns into a line
    naming the file)."""
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model_type"), str):
        raise TypeError("its config is not a mapping with a model_type")
    return cfg


def _load_original_run(path: Path) -> Run:
    """A run folder of the original ``transf_exp_main``: metrics from the CSV, parameters from log.json."""
    params: dict[str, Any] = {}
    log_file = path / "log.json"
    if log_file.is_file():
        with reading(log_file):
            for line in log_file.read_text().splitlines():
                try:
                    record = json.loads(line.removeprefix("DLLL "))
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and record.get("step") == "PARAMETER":
                    params.update(record.get("data", {}))
    with reading(path / "eval_train_results.csv"):
        with open(path / "eval_train_results.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and "index" not in rows[0]:
            raise SessrecError(f"{path / 'eval_train_results.csv'}: no 'index' column (the evaluated window)")
        windows = _evaluated([(int(float(r["index"])), canonical_metrics(r)) for r in rows])
    task = "rtd" if params.get("rtd") else "plm" if params.get("plm") else "mlm" if params.get("mlm") else "clm"
    return Run(path=path, model_type=str(params.get("model_type", path.name)), task=task if params else None,
               seed=params.get("seed"), dataset=_dataset_key({**_ORIGINAL_DEFAULTS, **params}, path),
               identity=_identity(params) if params else {"folder": str(path)}, windows=windows,
               original_script=True)  # the script writes the CSV once, after its last window


def _identity(cfg: dict[str, Any]) -> dict[str, Any]:
    # options that cannot act (a baseline's d_model, mlm_probability under CLM) make no other algorithm
    inert = (set(neural_only_options()) if cfg.get("model_type") in _BASELINES
             else set(inert_with_task(str(cfg.get("task")), str(cfg.get("model_type")))))
    return {k: v for k, v in cfg.items()
            if k not in _NOT_IDENTITY | inert and not any(s in k for s in ("dir", "path", "name"))}


def _dataset_key(cfg: dict[str, Any], run_dir: Path | None = None) -> tuple[str, str, str]:
    """The evaluation data of a run (its config ``cfg``): its data folder, resolved (one folder given as a relative
    and as an absolute path, or through a link, is one data set; two folders of one name are two), its split and
    its :func:`_protocol`: runs scored on test and on validation, or on other predictions, are never compared. See
    :func:`_locate_data`."""
    split, protocol = "test" if cfg.get("eval_on_test_set") else "validation", _protocol(cfg)
    if not cfg.get("data_path"):
        return "sample", split, protocol
    p = _locate_data(cfg["data_path"], run_dir, cfg.get("output_dir"))
    return ("sample" if p.parts[-2:] == ("data", "sample") else str(p)), split, protocol


def _protocol(cfg: dict[str, Any]) -> str:
    """Which predictions a run scored, in words: runs that differ in it were scored on other examples (another
    target per session, sessions cut elsewhere, other batches), so pairing their windows compares nothing."""
    last = cfg.get("eval_on_last_item_seq_only", _DEFAULTS["eval_on_last_item_seq_only"])
    length = cfg.get("session_seq_length_max") or _DEFAULTS["session_seq_length_max"]
    words = ["last item" if last else "every position", f"max length {length}"]
    every = int(cfg.get("compute_metrics_each_n_steps") or 1)
    if every > 1:
        batch = cfg.get("per_device_eval_batch_size") or _DEFAULTS["per_device_eval_batch_size"]
        words.append(f"1 in {every} batches of {batch}")
    return ", ".join(words)


def _locate_data(data_path: str, run_dir: Path | None, output_dir: str | None) -> Path:
    """Where a run's data folder is on this machine, as far as its folder tells: a relative data path is relative to
    the folder the run was started in, which is the run folder less its recorded relative ``output_dir`` (both paths
    were given from there; else this process's folder is taken); where a recorded absolute ``output_dir`` is no
    longer where the run folder is (copied from another machine or folder), an absolute data path under the old
    place that does not exist is taken under the new one where it exists there. Links are followed where the path
    exists."""
    data = Path(os.path.normpath(data_path))
    started_in, moved = None, None
    if run_dir is not None and output_dir:
        out = Path(os.path.normpath(output_dir))
        places = list(dict.fromkeys([Path(os.path.abspath(run_dir)), run_dir.resolve()]))
        if not out.is_absolute() and ".." not in out.parts:
            started_in = next((Path(*h.parts[: len(h.parts) - len(out.parts)]) for h in places
                               if h.parts[len(h.parts) - len(out.parts):] == out.parts), None)
        elif out.is_absolute() and out not in places:
            here = places[0]
            n = 0  # the trailing folders the recorded and the present place share
            while n < min(len(here.parts), len(out.parts)) - 1 and here.parts[-1 - n] == out.parts[-1 - n]:
                n += 1
            if n:
                moved = (Path(*out.parts[: len(out.parts) - n]), Path(*here.parts[: len(here.parts) - n]))
    if not data.is_absolute():
        data = (started_in or Path.cwd()) / data
    elif moved is not None and data.is_relative_to(moved[0]) and not data.exists():
        # the recorded data is not here: read it where the run folder's move took it, if it is there
        candidate = moved[1] / data.relative_to(moved[0])
        data = candidate if candidate.exists() else data
    return data.resolve()


def _short_dataset_names(keys: set[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """Each data set's folder name, or its whole path where two data sets share a folder name (relative to this
    process's folder when under it); with the split where the runs were scored on more than one, and the
    protocol where on more than one."""
    names = {k: Path(k[0]).name or k[0] for k in keys}
    clash = {n for n in names.values() if len({k[0] for k in keys if names[k] == n}) > 1}
    splits, protocols = len({k[1] for k in keys}) > 1, len({k[2] for k in keys}) > 1
    return {k: (_readable(k[0]) if n in clash else n) + (f" ({k[1]})" if splits else "")
            + (f" [{k[2]}]" if protocols else "") for k, n in names.items()}


def _readable(path: str) -> str:
    """An absolute path relative to this process's folder when it lies under it."""
    try:
        return str(Path(path).relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def _read_loss(history: Path) -> list[tuple[int, float, int]]:
    """Training-loss points of ``history.jsonl``; a half-written last line (run in progress) is skipped."""
    if not history.is_file():
        return []
    points = []
    with reading(history):
        for line in history.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and record.get("type") == "train" and record.get("loss") is not None:
                points.append((int(record["step"]), float(record["loss"]), int(record.get("window", 0))))
    return points


# ---- rows ---------------------------------------------------------------------------------------------
@dataclass
class Group:
    """One row of the table: runs of one algorithm that differ only in their seed."""

    label: str
    dataset: str
    runs: list[Run]
    per_window: dict[int, dict[tuple[str, int], float]]  # mean over the runs, of the windows every run has
    is_pop_reference: bool = False
    split: str = ""  # "test" or "validation": what the runs were scored on

    def aot(self) -> dict[tuple[str, int], list[float]]:
        """Each metric's AOT per run (one value per run), over the windows every run of the row has evaluated (a
        stopped seed does not mix its first windows' average with the others' full one)."""
        out: dict[tuple[str, int], list[float]] = defaultdict(list)
        for run in self.runs:
            for metric in dict.fromkeys(m for w in run.windows.values() for m in w):
                values = [w[metric] for index, w in run.windows.items() if index in self.per_window and metric in w]
                if values:
                    out[metric].append(float(np.mean(values)))
        return out

    @property
    def status(self) -> str:
        unfinished = [r for r in self.runs if not r.finished]
        return "done" if not unfinished else unfinished[0].status


def group_runs(runs: list[Run], with_pop: bool = True) -> list[Group]:
    """Rows in first-seen order; labels made unique with the config keys that tell rows apart. Runs of different
    data sets (told by their data paths, splits and protocols: :func:`_dataset_key`) are never one row nor compared."""
    names = _short_dataset_names({r.dataset for r in runs})
    split_of = {names[k]: k[1] for k in {r.dataset for r in runs}}
    runs = [dataclasses.replace(r, dataset=names[r.dataset]) for r in runs]
    by_key: dict[str, list[Run]] = {}
    for run in runs:
        key = json.dumps({"dataset": run.dataset, **run.identity}, sort_keys=True, default=str)
        by_key.setdefault(key, []).append(run)
    groups = [Group(rs[0].label, rs[0].dataset, rs, _mean_windows([r.windows for r in rs]), split=split_of[rs[0].dataset])
              for rs in by_key.values()]
    _disambiguate(groups)
    if with_pop:
        for dataset in dict.fromkeys(g.dataset for g in groups):
            own = {_pop_counting(g.runs[0]) for g in groups if g.dataset == dataset and g.runs[0].model_type == "pop"}
            by_counting: dict[str, list[Run]] = {}
            for r in (r for g in groups if g.dataset == dataset for r in g.runs if r.pop_windows):
                by_counting.setdefault(_pop_counting(r), []).append(r)
            for counting, sources in by_counting.items():
                if counting in own:  # a `--model pop` run of these windows is the row
                    continue
                source = max(sources, key=lambda r: len(r.pop_windows))
                pseudo = Run(path=source.path, model_type="pop", task=None, seed=None, dataset=dataset,
                             identity={}, windows=source.pop_windows, sessions=source.sessions, finished=source.finished,
                             expected_windows=source.expected_windows, running=source.running)
                label = "Most popular" + (f" ({counting})" if len(by_counting) > 1 else "")
                groups.append(Group(label, dataset, [pseudo], dict(source.pop_windows), is_pop_reference=True,
                                    split=split_of[dataset]))
    return groups


def _pop_counting(run: Run) -> str:
    """The training windows a run's most-popular comparison counted for window t: the model's own (all since window
    1, or the last w, with --no-incremental-training), or every one since the start window (incremental)."""
    ident = run.identity
    if ident.get("no_incremental_training"):
        w = int(ident.get("training_time_window_size") or 0)
        return f"the last {w} training window{'s' if w > 1 else ''}" if w else "training windows 1..t"
    return f"training windows {int(ident.get('start_time_window_index') or 1)}..t"


def _mean_windows(runs_windows: list[dict[int, dict[tuple[str, int], float]]]) -> dict[int, dict[tuple[str, int], float]]:
    """Per window, the mean over the runs, of the windows every run has evaluated."""
    out: dict[int, dict[tuple[str, int], float]] = {}
    for w in sorted(set.intersection(*(set(rw) for rw in runs_windows)) if runs_windows else ()):
        rows = [rw[w] for rw in runs_windows if w in rw]
        out[w] = {m: float(np.mean([r[m] for r in rows if m in r])) for m in {m for r in rows for m in r}}
    return out


def _disambiguate(groups: list[Group]) -> None:
    same: dict[tuple[str, str], list[Group]] = defaultdict(list)
    for g in groups:
        same[(g.label, g.dataset)].append(g)
    for clash in same.values():
        if len(clash) < 2:
            continue
        keys = sorted({k for g in clash for k in g.runs[0].identity})

        def values(g: Group, chosen: list[str]) -> tuple[str, ...]:
            return tuple(json.dumps(g.runs[0].identity.get(k), default=str) for k in chosen)

        # the differing keys that tell the rows apart (a key is taken where it splits rows still alike), so that
        # no two rows share a label: their tests and stars are matched by it
        chosen: list[str] = []
        for k in keys:
            if len({values(g, chosen) for g in clash}) == len(clash):
                break
            if len({values(g, chosen + [k]) for g in clash}) > len({values(g, chosen) for g in clash}):
                chosen.append(k)
        for g in clash:
            g.label += "".join(f"{', ' if i else ' '}{k}={g.runs[0].identity.get(k)}" for i, k in enumerate(chosen))
        if len({g.label for g in clash}) < len(clash):  # told apart only by a key one config lacks: by folder
            for g in clash:
                g.label += f" ({g.runs[0].path.name})"


# ---- significance -------------------------------------------------------------------------------------
@dataclass
class Comparison:
    dataset: str
    metric: tuple[str, int]
    a: str
    b: str
    mean_diff: float  # mean over common windows of (a - b)
    t: float
    p: float
    p_bonferroni: float
    n_windows: int


def compare(groups: list[Group]) -> list[Comparison]:
    """Paired t-tests over the evaluated windows two rows share, for every metric and pair of rows on the same data."""
    from scipy import stats

    out: list[Comparison] = []
    for dataset in dict.fromkeys(g.dataset for g in groups):
        rows = [g for g in groups if g.dataset == dataset]
        pairs = [(a, b) for i, a in enumerate(rows) for b in rows[i + 1:]]
        for metric in table_metrics(groups):
            shared = [[w for w in a.per_window if w in b.per_window and metric in a.per_window[w]
                       and metric in b.per_window[w]] for a, b in pairs]
            n_tests = sum(len(common) >= 2 for common in shared)  # the Bonferroni factor: tests made
            for (a, b), common in zip(pairs, shared):
                if not common:
                    continue
                x = np.array([a.per_window[w][metric] for w in common])
                y = np.array([b.per_window[w][metric] for w in common])
                t, p = math.nan, math.nan
                if len(common) >= 2:
                    if np.all(x == y):
                        t, p = 0.0, 1.0
                    else:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", RuntimeWarning)  # constant differences: t = ±inf
                            res = stats.ttest_rel(x, y)
                        t, p = float(res.statistic), float(res.pvalue)
                out.append(Comparison(dataset, metric, a.label, b.label, float(np.mean(x - y)), t, p,
                                      min(1.0, p * n_tests) if not math.isnan(p) else math.nan, len(common)))
    return out


def significantly_best(groups: list[Group], comparisons: list[Comparison]) -> set[tuple[str, str, tuple[str, int]]]:
    """(dataset, label, metric) of rows significantly better than every other row on the same data
    (every row that has the metric on shared windows)."""
    best = set()
    for dataset in dict.fromkeys(g.dataset for g in groups):
        labels = [g.label for g in groups if g.dataset == dataset]
        if len(labels) < 2:
            continue
        for metric in table_metrics(groups):
            for label in labels:
                tests = [c for c in comparisons if c.dataset == dataset and c.metric == metric and label in (c.a, c.b)]
                if tests and all((c.mean_diff > 0 if c.a == label else c.mean_diff < 0) and c.p_bonferroni < ALPHA
                                 for c in tests):
                    best.add((dataset, label, metric))
    return best


# ---- rendering ----------------------------------------------------------------------------------------
def _std(values: list[float]) -> float:
    """Sample standard deviation (n - 1), 0 for a single value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _cell(values: list[float], star: bool) -> str:
    if not values:
        return "-"
    text = f"{np.mean(values):.4f}"
    if len(values) > 1:
        text += f" ± {_std(values):.4f}"
    return text + ("*" if star else "")


def _windows_cell(g: Group) -> str:
    """Windows in the row's averages (those all its runs have); for unfinished runs, of how many, and whether a
    process still runs one."""
    done = len(g.per_window)
    if g.status == "done":
        return str(done)
    state = "running" if any(r.running for r in g.runs if not r.finished) else "stopped"
    total = g.runs[0].expected_windows
    return f"{done} ({state})" if total is None else f"{done} of {total} ({state})"


def table_rows(groups: list[Group]) -> list[dict[str, Any]]:
    """One dict per row: label, data, runs, seeds, windows, status, then ``mean``/``std`` per metric."""
    rows = []
    for g in groups:
        aot = g.aot()
        row: dict[str, Any] = {"algorithm": g.label, "data": g.dataset, "split": g.split, "runs": len(g.runs),
                               "seeds": " ".join(str(r.seed) for r in g.runs if r.seed is not None),
                               "windows": len(g.per_window), "status": g.status}
        for metric in table_metrics(groups):
            values = aot.get(metric, [])
            row[f"{metric_name(metric)}"] = float(np.mean(values)) if values else None
            row[f"{metric_name(metric)} std"] = _std(values) if len(values) > 1 else None
        rows.append(row)
    return rows


TABLE_NOTE = ("Values are averages over time (AOT: the unweighted mean over evaluated windows); with several seeds, "
              "mean ± standard deviation over the seeds. `*`: significantly better than every other row on the same "
              f"data (paired t-test over evaluated windows, Bonferroni-corrected, p < {ALPHA}).")


def table_note(groups: list[Group]) -> str:
    """:data:`TABLE_NOTE`, after the split the rows were scored on: a validation table must not read as a test one."""
    splits = sorted({g.split for g in groups if g.split}, reverse=True)  # test first
    if not splits:
        return TABLE_NOTE
    scored = f"the {splits[0]} split" if len(splits) == 1 else "the test and the validation splits (separate rows)"
    return f"Scored on {scored}. {TABLE_NOTE}"


def results_table(groups: list[Group], comparisons: list[Comparison]) -> Table:
    """The paper's Table 2 layout: one row per algorithm, AOT per metric, ``*`` where significantly best."""
    best = significantly_best(groups, comparisons)
    several = len({g.dataset for g in groups}) > 1
    metrics = table_metrics(groups)
    head = ["Algorithm"] + (["Data"] if several else []) + ["Runs", "Windows"] + [metric_name(m) for m in metrics]
    first_metric = len(head) - len(metrics)
    table = Table(head, [], numeric=set(range(first_metric - 2, len(head))))
    for i, g in enumerate(groups):
        aot = g.aot()
        cells = [g.label] + ([g.dataset] if several else []) + [str(len(g.runs)), _windows_cell(g)]
        for j, m in enumerate(metrics):
            star = (g.dataset, g.label, m) in best
            cells.append(_cell(aot.get(m, []), star))
            if star:
                table.marked.add((i, first_metric + j))
        table.rows.append(cells)
        if g.is_pop_reference:
            table.muted_rows.add(i)
    return table


def comparisons_table(groups: list[Group], comparisons: list[Comparison]) -> Table:
    """The pairwise tests of the plotted metrics; Bonferroni-significant p-values marked."""
    several = len({g.dataset for g in groups}) > 1
    head = ["Data"] * several + ["Metric", "A", "B", "mean A − B", "t", "p", "p (Bonferroni)", "windows"]
    table = Table(head, [], numeric=set(range(3 + several, len(head))))
    plotted = plotted_metrics(groups)
    for i, c in enumerate(c for c in comparisons if c.metric in plotted):
        table.rows.append([c.dataset] * several + [metric_name(c.metric), c.a, c.b, f"{c.mean_diff:+.4f}", _num(c.t, ".2f"),
                                                  _num(c.p, ".3g"), _num(c.p_bonferroni, ".3g"), str(c.n_windows)])
        if c.p_bonferroni < ALPHA:
            table.marked.add((i, len(head) - 2))
    return table


def render_markdown(groups: list[Group], comparisons: list[Comparison]) -> str:
    """The table (with ``*`` marks) and the pairwise tests, as Markdown."""
    lines = results_table(groups, comparisons).markdown() + ["", table_note(groups), *_window_differences(groups)]
    tests, plotted = comparisons_table(groups, comparisons), plotted_metrics(groups)
    if tests.rows:
        lines += ["", f"Paired t-tests over evaluated windows ({', '.join(metric_name(m) for m in plotted)}; "
                  "all metrics in comparisons.csv):", "", *tests.markdown()]
        if any(c.n_windows < 2 for c in comparisons if c.metric in plotted):
            lines += ["", "A t-test needs at least 2 shared windows: n/a where there is only one."]
    return "\n".join(lines) + "\n"


def _window_differences(groups: list[Group]) -> list[str]:
    """A note per data set whose rows were evaluated on different windows: their averages are over different days."""
    def span(ws: list[int]) -> str:
        return f"{ws[0]}..{ws[-1]}" if ws == list(range(ws[0], ws[-1] + 1)) else ", ".join(map(str, ws))

    notes = []
    for dataset in dict.fromkeys(g.dataset for g in groups):
        rows = [(g.label, sorted(g.per_window)) for g in groups if g.dataset == dataset and g.per_window]
        if len({tuple(ws) for _, ws in rows}) > 1:
            notes += ["", f"The rows{f' of {dataset}' if len({g.dataset for g in groups}) > 1 else ''} were evaluated "
                          f"on different windows ({'; '.join(f'{label}: {span(ws)}' for label, ws in rows)}): their "
                          "averages are not over the same days; each t-test below uses the windows its two rows share."]
    return notes


def _num(v: float, fmt: str) -> str:
    return "n/a" if math.isnan(v) else format(v, fmt)


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    return buf.getvalue()


# ---- plots --------------------------------------------------------------------------------------------
def plot_windows(groups: list[Group], path: Path) -> None:
    """NDCG@20 and HR@20 (:func:`plotted_metrics`) per evaluated window, one line per row (band: ± std over seeds),
    one chart per data set."""
    plt = _pyplot()
    datasets = list(dict.fromkeys(g.dataset for g in groups if g.per_window)) or ["(no evaluated window yet)"]
    plotted = plotted_metrics(groups)
    fig, axes = plt.subplots(len(datasets), len(plotted), figsize=(6.0 * len(plotted), 3.8 * len(datasets)), squeeze=False)
    for row, dataset in enumerate(datasets):
        for col, metric in enumerate(plotted):
            ax = axes[row][col]
            for g in (g for g in groups if g.dataset == dataset):
                ws = [w for w in sorted(g.per_window) if metric in g.per_window[w]]
                if not ws:
                    continue
                ys = np.array([g.per_window[w][metric] for w in ws])
                style = dict(linestyle="--", color="0.4") if g.is_pop_reference else {}
                ax.plot(ws, ys, marker="o", markersize=3, label=g.label, **style)
                if len(g.runs) > 1:
                    sd = np.array([_std([r.windows[w][metric] for r in g.runs if metric in r.windows.get(w, {})]) for w in ws])
                    ax.fill_between(ws, ys - sd, ys + sd, alpha=0.2, color=ax.lines[-1].get_color())
            ax.set_title(f"{metric_name(metric)} per window" + (f" — {dataset}" if len(datasets) > 1 else ""))
            ax.set_xlabel("evaluated window")
            ax.set_ylabel(metric_name(metric))
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3)
        if axes[row][0].lines:
            _legend(axes[row][0], axes[row][-1])
    _save(fig, path)


def plot_loss(runs: list[Run], labels: dict[Path, str], path: Path) -> bool:
    """Training loss over global steps, one line per run; False (no file) when no run logged a loss."""
    runs = [r for r in runs if r.loss]
    if not runs:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 4.2))
    for r in runs:
        steps, losses, _ = zip(*r.loss)
        ax.plot(steps, losses, linewidth=1.2, label=labels[r.path])
    first = runs[0].loss  # where its windows start: the learning-rate schedule restarts there
    for (s0, _, w0), (s1, _, w1) in zip(first, first[1:]):
        if w1 != w0:
            ax.axvline((s0 + s1) / 2, color="0.75", linewidth=0.8, linestyle=":")
    ax.set_xlabel("training step (dotted lines: a new window starts)")
    ax.set_ylabel("training loss")
    ax.set_title("Training loss")
    ax.grid(alpha=0.3)
    _legend(ax, ax)
    _save(fig, path)
    return True


def _legend(source, beside) -> None:
    """The legend of ``source``'s lines: inside it when short, else to the right of ``beside`` (a
    legend of many runs does not fit over the plot)."""
    if len(source.lines) <= 8:
        source.legend(fontsize=8)
        return
    handles, labels = source.get_legend_handles_labels()
    legend = beside.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0),
                           ncol=math.ceil(len(handles) / 24))
    legend.set_in_layout(False)  # tight_layout sizes the plots; savefig's tight box then takes the legend in


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight", bbox_extra_artists=fig.legends + [
        a.get_legend() for a in fig.axes if a.get_legend() is not None])
    _pyplot().close(fig)
    atomic_write_bytes(path, buf.getvalue())


# ---- the command --------------------------------------------------------------------------------------
@dataclass
class Report:
    groups: list[Group]
    comparisons: list[Comparison]
    markdown: str
    files: list[Path]


def expand_folders(folders: list[str | Path]) -> tuple[list[Path], list[Path]]:
    """(run folders, tuning folders) of the given folders: a run folder is itself; a ``sessrec run
    --seeds`` folder gives its ``seed-N`` runs; a ``sessrec tune`` folder gives its final runs (if
    any) and its tuning history."""
    from sessrec.multiseed import seed_dirs

    runs: list[Path] = []
    tunes: list[Path] = []
    for p in map(_existing_folder, folders):
        if (p / "tune.json").is_file():
            tunes.append(p)
            runs += seed_dirs(p / "final")
        elif any((p / name).is_file() for name in ("results.json", "config.yaml", "eval_train_results.csv")):
            runs.append(p)
        elif seed_dirs(p):
            runs += seed_dirs(p)
        else:
            raise SessrecError(f"{p} is not a run folder (no results.json, config.yaml or eval_train_results.csv), "
                               "a 'sessrec run --seeds' folder (seed-N/) or a 'sessrec tune' folder (tune.json)")
    return runs, tunes


def make_report(run_dirs: list[str | Path], output: str | Path, with_pop: bool = True) -> Report:
    """Read the runs, write ``report.md``, ``report.html``, ``report.csv``, ``comparisons.csv``,
    ``per_window.csv`` and the PNGs."""
    out = Path(output)
    check_output_folder(out, "--output")
    paths, tunes = expand_folders(run_dirs)
    runs, seen, copies = [], set(), []
    for p in paths:
        if p.resolve() in seen:  # the same folder given twice is one run
            continue
        seen.add(p.resolve())
        run = load_run(p)
        twin = next((r for r in runs if run.seed is not None and (r.seed, r.dataset, r.identity) == (run.seed, run.dataset,
                                                                                                      run.identity)), None)
        if twin is None:
            runs.append(run)
            continue
        # a copy, or the same seed run twice (a tune's --final-seeds and best.yaml's --seeds): counted once, the one
        # that evaluated more windows kept (a stopped copy given first left the finished one out)
        if len(run.windows) > len(twin.windows):
            runs[runs.index(twin)], (run, twin) = run, (twin, run)
        copies.append((run.path, f"left out: the same algorithm, data and seed ({run.seed}) as {twin.path}"))
    groups = group_runs(runs, with_pop=with_pop)
    comparisons = compare(groups)
    markdown = table_markdown = render_markdown(groups, comparisons)
    if copies:  # report.md names them in its run list; the printed report here
        markdown += "".join(f"\n`{path}` {note}.\n" for path, note in copies)
    if not runs and tunes:
        markdown = (f"No runs to tabulate: {', '.join(f'`{t}`' for t in tunes)} hold(s) no final runs (`sessrec tune "
                    "... --final-seeds 5` makes them); the tuning history is in report.html.\n")
        table_markdown = markdown
    statuses = [(r.path, r.status) for r in runs] + copies
    if out.is_dir():
        remove_dead_temporaries(out, ".report.tmp")
    with files_together(out, own_temporary(out, ".report.tmp"), REPORT_FILES) as stage:
        files = _write_report(stage, groups, comparisons, runs, statuses, table_markdown, tunes)
    return Report(groups, comparisons, markdown, [out / f.name for f in files])


def _write_report(stage: Path, groups: list[Group], comparisons: list[Comparison], runs: list[Run],
                  statuses: list[tuple[Path, str]], table_markdown: str, tunes: list[Path]) -> list[Path]:
    """The report's files in ``stage``; returns them in the order they are listed."""
    files = [stage / "report.md", stage / "report.csv", stage / "comparisons.csv", stage / "per_window.csv",
             stage / "metrics_per_window.png"]
    atomic_write_text(files[0], "# sessrec report\n\n" + "\n".join(f"- `{path}`: {status}" for path, status in statuses)
                      + "\n\n" + table_markdown)
    atomic_write_text(files[1], _csv(table_rows(groups)))
    metrics = table_metrics(groups)
    atomic_write_text(files[2], _csv([{"data": c.dataset, "metric": metric_name(c.metric), "a": c.a, "b": c.b,
                                       "mean_a_minus_b": c.mean_diff, "t": c.t, "p": c.p,
                                       "p_bonferroni": c.p_bonferroni, "n_windows": c.n_windows} for c in comparisons]))
    atomic_write_text(files[3], _csv([{"algorithm": g.label, "data": g.dataset, "split": g.split, "run": str(r.path),
                                       "seed": r.seed,
                                       "window": w, "n_eval_sessions": r.sessions.get(w),
                                       **{metric_name(m): r.windows[w].get(m) for m in metrics}}
                                      for g in groups for r in g.runs for w in sorted(r.windows)]))
    plot_windows(groups, files[4])
    labels = {r.path: g.label + (f" seed {r.seed}" if len(g.runs) > 1 else "") for g in groups if not g.is_pop_reference for r in g.runs}
    if plot_loss(runs, labels, stage / "training_loss.png"):
        files.append(stage / "training_loss.png")
    html = render_html(results_table(groups, comparisons) if runs else None, comparisons_table(groups, comparisons),
                       table_note(groups), [(str(path), status) for path, status in statuses], [f for f in files if f.suffix == ".png"],
                       tunes)
    atomic_write_text(stage / "report.html", html)
    files.insert(1, stage / "report.html")
    return files
