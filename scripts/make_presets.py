"""Write ``src/sessrec/presets/<data set>/<group>.yaml`` from the paper's 65 published command lines.

    python scripts/make_presets.py          # rewrite the preset files
    python scripts/make_presets.py --check  # exit 1 if a file differs from what it would write

Each command line goes through the paper front end (``t4r_paper_repro``), which maps the original
arguments onto :class:`sessrec.ExperimentConfig`; the preset keeps the keys whose value differs
from sessrec's default, minus the paths, window range and operational switches of that machine.
``tests/test_presets.py`` runs the check, so the presets cannot drift from the commands. The
``recent/`` presets (models published after the paper) are written by hand and left alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ROOT / "tests" / "data" / "paper_commands.txt"
FEATURE_CONFIGS = ROOT / "tests" / "data" / "feature_configs"
PRESETS = ROOT / "src" / "sessrec" / "presets"
DATASETS = {"ECOMMERCE": "rees46", "REES46": "rees46", "YOOCHOOSE": "yoochoose", "G1": "g1", "ADRESSA": "adressa"}
FEATURE_FOLDERS = {"rees46": "ecommerce_rees46", "yoochoose": "ecom_yoochoose", "g1": "news_g1", "adressa": "news_adressa"}
SIDE_INFO = {"CONCAT": "concat", "CONCAT + SOFT ONE-HOT ENCODING": "concat-sohe", "ELEMENTWISE": "elementwise"}
BASELINE_NAMES = {"V-SKNN": "vsknn", "STAN": "stan", "VSTAN": "vstan", "GRU4REC (FT)": "gru4rec-ft", "GRU4REC (SWT)": "gru4rec-swt"}
# Preset folders written by hand (models after the paper), left alone by this script.
HAND_WRITTEN = {"recent"}
# Keys that belong to the machine or the data at hand, not to the configuration.
LEAVE_OUT = {"data_path", "features_schema_path", "output_dir", "overwrite_output_dir", "start_time_window_index",
             "final_time_window_index", "time_window_folder_pad_digits", "report_to", "logging_steps", "save_checkpoints",
             "keep_checkpoints", "fp16", "bf16", "device", "num_threads", "logging_dir", "run_name", "experiments_group",
             "quiet", "resume"}
# The baseline front end parses the Transformer arguments too (with HF defaults); only these apply to a baseline.
BASELINE_KEYS = {"model_type", "baseline_params", "eval_on_test_set", "seed", "no_incremental_training",
                 "training_time_window_size", "eval_on_last_item_seq_only", "session_seq_length_max"}


def preset_name(title: str, argv: list[str]) -> str:
    """``rees46/xlnet-mlm`` style name of a command."""
    parts = [p.strip() for p in title.split("|")]
    dataset = DATASETS[parts[0].split()[0].upper()]
    group = parts[-1].upper()
    if group in BASELINE_NAMES:
        return f"{dataset}/{BASELINE_NAMES[group]}"
    model = argv[argv.index("--model_type") + 1]
    task = next((t for t in ("plm", "rtd", "mlm") if f"--{t}" in argv), "clm")
    name = f"{model}-{task}"
    if group in SIDE_INFO:
        name += "-" + SIDE_INFO[group]
    return f"{dataset}/{name}"


def preset_values(module: str, argv: list[str], dataset: str) -> dict:
    from sessrec.config import ExperimentConfig

    argv = list(argv)
    argv[argv.index("--output_dir") + 1] = "presets-out"
    argv[argv.index("--data_path") + 1] = "DATA"
    fc = argv.index("--feature_config") + 1
    argv[fc] = str(FEATURE_CONFIGS / FEATURE_FOLDERS[dataset] / Path(argv[fc]).name)
    if "baselines" in module:
        from t4r_paper_repro.baselines_main import parse_args

        cfg, _ = parse_args(argv)
    else:
        from t4r_paper_repro.transf_exp_main import parse_args

        cfg, _, _ = parse_args(argv)
    default = ExperimentConfig().to_dict()
    keep = BASELINE_KEYS if "baselines" in module else set(default) - LEAVE_OUT
    # floats as printed by the tuner: 0.30000000000000004 -> 0.3
    return {k: float(f"{v:.10g}") if isinstance(v, float) else v for k, v in cfg.to_dict().items()
            if k in keep and v != default[k]}


def render(title: str, values: dict) -> str:
    return (f"# {title}\n# The paper's best configuration for this group, from its published command line\n"
            "# (written by scripts/make_presets.py; run: sessrec run --preset NAME --data-path DATA).\n"
            + yaml.safe_dump(values, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the files on disk")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    wanted: dict[Path, str] = {}
    from t4r_paper_repro.commands import read_commands

    for title, module, cmd in read_commands(COMMANDS):
        name = preset_name(title, cmd)
        path = PRESETS / f"{name}.yaml"
        if path in wanted:
            raise SystemExit(f"two commands map to the preset {name}")
        wanted[path] = render(title, preset_values(module, cmd, name.split("/")[0]))
    on_disk = {p for p in PRESETS.glob("*/*.yaml") if p.parent.name not in HAND_WRITTEN}
    stale = sorted(on_disk - set(wanted))
    differ = sorted(p for p, text in wanted.items() if not p.is_file() or p.read_text() != text)
    if args.check:
        for p in stale + differ:
            print(f"out of date: {p.relative_to(ROOT)}")
        return 1 if stale or differ else 0
    for p in stale:
        p.unlink()
    for p in differ:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(wanted[p])
    print(f"{len(wanted)} presets in {PRESETS.relative_to(ROOT)} ({len(differ)} written, {len(stale)} removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
