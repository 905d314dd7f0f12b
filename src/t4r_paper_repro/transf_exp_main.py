"""``python -m t4r_paper_repro.transf_exp_main ARGS``: the paper's Transformer (and GRU) command lines.

Take a command line of the paper (``python3 -m hf4rec.recsys_main ...``) or of the released
example (``python transf_exp_main.py ...``), change only the module name and the data, feature
config / schema and output paths::

    python -m t4r_paper_repro.transf_exp_main --output_dir runs/xlnet-mlm --overwrite_output_dir \\
        --do_train --do_eval --data_path DATA --feature_config FEATURES.yaml \\
        --model_type xlnet --mlm --attn_type bi --d_model 448 ...

Each argument keeps its original meaning and default (``arguments.py``); arguments that cannot
apply here are reported once on stderr, unknown ones are errors. After the incremental run the
"simulated inference" check of the released script runs (``--simulated_inference False`` skips it).
"""

from __future__ import annotations

import sys

from sessrec import launch
from sessrec.config import ExperimentConfig
from t4r_paper_repro import entry_point, print_notes
from t4r_paper_repro.arguments import ARGS, OUTPUT, Arg, build_parser, parse, to_config

PROG = "t4r_paper_repro.transf_exp_main"
# sessrec's own addition: the released script always ran the check (and asserted on it)
EXTRA = [Arg("simulated_inference", bool, True, OUTPUT, help="after the run, compare top-10 recommendations with the evaluation")]


def parse_args(argv: list[str]) -> tuple[ExperimentConfig, list[str], bool]:
    """(config, notes to print, run the simulated-inference check?) from a command line."""
    values, given = parse(build_parser(PROG, ARGS, EXTRA), argv, ARGS + EXTRA)
    cfg, notes = to_config(values, given)
    return cfg, notes, values["simulated_inference"]


def run(argv: list[str]) -> int:
    cfg, notes, check = parse_args(argv)
    if launch.rank() == 0:  # under torchrun: once
        print_notes(PROG, notes)
    from sessrec.experiment import run_experiment  # torch: only once the command line is known to be good
    from t4r_paper_repro.inference_check import run_check

    result = run_experiment(cfg)
    if check and launch.rank() == 0:  # under torchrun: once, by the process that writes the run's files
        run_check(result, cfg)
    return 0


def main(argv: list[str] | None = None) -> int:
    return entry_point(PROG, run, argv, {a.name for a in ARGS + EXTRA})


if __name__ == "__main__":
    sys.exit(main())
