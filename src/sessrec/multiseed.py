"""One configuration, several seeds: ``OUT/seed-100/``, ``OUT/seed-101/``, ... and a summary.

The paper reports each algorithm as the mean over 5 runs of its best configuration with different
seeds. :func:`run_seeds` runs them one after the other (a finished seed is read back, not run
again, and an interrupted one resumes from its checkpoint), then writes ``OUT/summary.json`` and
``OUT/summary.md``: every averaged-over-time metric as mean ± sample standard deviation over the
seeds, next to the most-popular ranking of the same windows. ``sessrec report OUT`` makes the
paper's table (with significance marks) from such a folder.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
from sessrec.io import atomic_write_text, check_output_folder
from sessrec.outputs import finished_results

SEED_PREFIX = "seed-"


def seed_dirs(folder: str | Path) -> list[Path]:
    """The ``seed-N`` run folders of a multi-seed output, by seed."""
    found = [p for p in Path(folder).glob(SEED_PREFIX + "*") if p.is_dir() and p.name[len(SEED_PREFIX):].lstrip("-").isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(SEED_PREFIX):]))


def _earlier_config(run_dir: Path) -> ExperimentConfig | None:
    """The config a seed folder was run with, if it has one."""
    try:
        return ExperimentConfig.from_yaml(run_dir / "config.yaml")
    except (SessrecError, OSError):
        return None


def _differences(earlier: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """Result-changing differences (the data folder compared resolved; the default is the bundled sample)."""
    from sessrec.checkpoint import config_differences

    new = copy.deepcopy(new)
    if not new.data_path:
        from sessrec.data.sample import bundled_sample_path

        new.data_path = str(bundled_sample_path())
    diffs = config_differences(earlier, new)
    if new.final_time_window_index is not None and earlier.final_time_window_index != new.final_time_window_index:
        diffs.append("final_time_window_index")
    return diffs


def run_seeds(cfg: ExperimentConfig, seeds: Sequence[int], out_dir: str | Path, printer: Callable[[str], None] = print,
              runner: Callable[..., Any] | None = None, replace_changed: bool = False) -> dict[str, Any]:
    """Run ``cfg`` once per seed into ``out_dir/seed-N`` and write the summary; returns it. A seed folder run with
    another configuration is refused (its results would be lost) unless ``cfg.overwrite_output_dir`` or
    ``replace_changed`` (a folder the caller owns, such as a study's final runs)."""
    if not seeds:
        raise SessrecError("--seeds needs at least one seed")
    if len(set(seeds)) != len(seeds):
        raise SessrecError(f"--seeds lists a seed twice: {' '.join(map(str, seeds))}")
    if runner is None:
        from sessrec.experiment import run_experiment as runner
    out = Path(out_dir)
    if not (cfg.overwrite_output_dir or replace_changed):
        _check_folder(out, cfg, seeds)
    rows: list[dict[str, Any]] = []
    for i, seed in enumerate(seeds, 1):
        run_dir, one, diffs = _seed_run(cfg, out, seed)
        changed = bool(diffs)
        done = finished_results(run_dir) if run_dir.is_dir() and not changed else None
        if done is not None and not cfg.overwrite_output_dir:
            printer(f"seed {seed} ({i}/{len(seeds)}): finished earlier, read from {run_dir}")
        else:
            # an interrupted seed continues from its checkpoint; a fresh folder, or one of another config, starts over
            one.resume = not changed and run_dir.is_dir() and any(run_dir.glob("checkpoint-*"))
            if not one.resume and run_dir.is_dir() and any(run_dir.iterdir()):
                one.overwrite_output_dir = True
            what = "resuming" if one.resume else _running_again(diffs) if changed else "running"
            printer(f"seed {seed} ({i}/{len(seeds)}): {what} into {run_dir}")
            runner(one, printer=printer)
            done = finished_results(run_dir)
            if done is None:
                raise SessrecError(f"seed {seed}: the run in {run_dir} did not finish")
        rows.append({"seed": seed, "output_dir": str(run_dir), "aot": done["aot"], "pop_aot": done.get("pop_aot", {})})
    summary = summarize(rows)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    split = "test" if cfg.eval_on_test_set else "validation"
    atomic_write_text(out / "summary.md", render_summary(summary, cfg.top_ks, split))
    printer(render_summary(summary, cfg.top_ks, split))
    return summary


def _what_changed(diffs: list[str]) -> str:
    return "data" if all(d.startswith("data (") for d in diffs) else "configuration"


def _running_again(diffs: list[str]) -> str:
    """``running again (its data changed)`` or ``... (its configuration changed: key, key)``."""
    kind = _what_changed(diffs)
    keys = "" if kind == "data" else f": {', '.join(d.split(':')[0] for d in diffs[:4])}"
    return f"running again (its {kind} changed{keys})"


def _run_with(diffs: list[str]) -> str:
    """``with another configuration (a: x -> y)`` or ``on other data (FILE: ...)``."""
    if _what_changed(diffs) == "data":
        return f"on other data ({diffs[0][len('data ('):-1]})"
    return f"with another configuration ({'; '.join(diffs[:4])}{'; ...' if len(diffs) > 4 else ''})"


def _seed_run(cfg: ExperimentConfig, out: Path, seed: int) -> tuple[Path, ExperimentConfig, list[str]]:
    """A seed's run folder, its config, and how that differs from the config of an earlier run there (if any)."""
    run_dir = out / f"{SEED_PREFIX}{seed}"
    one = copy.deepcopy(cfg)
    one.seed, one.output_dir = seed, str(run_dir)
    earlier = _earlier_config(run_dir)
    diffs = _differences(earlier, one) if earlier is not None else []
    if earlier is not None and not diffs:
        changed = _data_changed(run_dir, earlier, one)
        if changed:
            diffs.append(f"data ({changed})")
    return run_dir, one, diffs


def _data_changed(run_dir: Path, earlier: ExperimentConfig, new: ExperimentConfig) -> str | None:
    """The data file that changed since the seed's run (its checkpoint keeps the sizes of the files it read), or the
    data's last window where ``new`` runs to the last one, if any: a finished seed on other data is run again, not
    read back."""
    from sessrec.checkpoint import find_checkpoint
    from sessrec.experiment import data_change

    if not earlier.data_path:
        return None
    if new.final_time_window_index is None and earlier.final_time_window_index is not None:  # "to the last window"
        from sessrec.data.windows import discover_windows

        found = discover_windows(earlier.data_path, earlier.time_window_folder_pad_digits)
        if found and found[-1] != earlier.final_time_window_index:
            return f"{earlier.data_path}: its last window is {found[-1]} now, {earlier.final_time_window_index} then"
    folder = find_checkpoint(run_dir)
    if folder is None:  # --no-save-checkpoints: nothing tells
        return None
    try:
        saved = json.loads((folder / "experiment.json").read_text()).get("data_files", {})
    except (OSError, ValueError):
        return None
    return data_change(Path(earlier.data_path), saved)


def _check_folder(out: Path, cfg: ExperimentConfig, seeds: Sequence[int]) -> None:
    """Before any run: ``out`` holds nothing but seed folders and summaries, and no seed folder of another config."""
    check_output_folder(out, "--output-dir")
    if not out.is_dir():
        return
    ours = {"summary.json", "summary.md"} | {p.name for p in seed_dirs(out)}
    foreign = sorted(p.name for p in out.iterdir() if p.name not in ours and not p.name.startswith("."))
    if foreign:
        raise SessrecError(f"output folder {out} is not a --seeds folder (it holds {', '.join(foreign[:3])}"
                           f"{', ...' if len(foreign) > 3 else ''}); choose another --output-dir, or pass "
                           "--overwrite-output-dir")
    for seed in seeds:
        run_dir, _, diffs = _seed_run(cfg, out, seed)
        if diffs:
            raise SessrecError(f"{run_dir} was run {_run_with(diffs)}: running it again would replace its results; "
                               "choose another --output-dir, or pass --overwrite-output-dir")


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and standard deviation over seeds of every AOT metric all seeds have."""
    def stats(key: str) -> dict[str, dict[str, float]]:
        dicts = [r[key] for r in rows if r[key]]
        if len(dicts) != len(rows):
            return {}
        common = set(dicts[0]).intersection(*dicts[1:])
        return {k: dict(zip(("mean", "std"), mean_std([d[k] for d in dicts]))) for k in sorted(common)
                if all(isinstance(d[k], (int, float)) for d in dicts)}

    return {"seeds": [r["seed"] for r in rows], "runs": rows, "aot": stats("aot"), "pop_aot": stats("pop_aot")}


def render_summary(summary: dict[str, Any], top_ks: Sequence[int], split: str) -> str:
    """A Markdown table: NDCG, HR and MRR at each cut-off on ``split``, mean ± std over the seeds."""
    names = [f"ndcg_at_{k}" for k in top_ks] + [f"recall_at_{k}" for k in top_ks] + [f"mrr_at_{max(top_ks)}"]
    heads = [n.replace("ndcg_at_", "NDCG@").replace("recall_at_", "HR@").replace("mrr_at_", "MRR@") for n in names]
    several = len(summary["seeds"]) > 1
    lines = [f"AOT on the {split} split over {len(summary['seeds'])} seed{'s' if several else ''} "
             f"({' '.join(map(str, summary['seeds']))})"
             + (": mean ± std" if several else " (one seed: no standard deviation)"), "",
             "| | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for label, key in (("model", "aot"), ("most popular", "pop_aot")):
        stats = summary[key]
        if stats:
            cells = []
            for n in names:
                s = stats.get(f"eval_/next-item/{n}")
                cells.append("-" if s is None else f"{s['mean']:.4f} ± {s['std']:.4f}" if several else f"{s['mean']:.4f}")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    model = [summary["aot"].get(f"eval_/next-item/{n}") for n in names]
    if several and model and all(s is not None and s["std"] == 0 for s in model):
        lines += ["", "Every seed gave the same results: this model uses no randomness here (a kNN baseline that "
                  "samples its candidates by recency, most popular), so one seed is enough."]
    return "\n".join(lines) + "\n"
