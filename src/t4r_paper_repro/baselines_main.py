"""``python -m t4r_paper_repro.baselines_main ARGS``: the paper's baseline command lines.

The original ``hf4rec.baselines.recsys_baselines_main`` took the same arguments as the
Transformer script plus ``--eval_baseline_cpu_parallel`` and the algorithm's hyper-parameters as
``--<model_type>-<param> value`` (e.g. ``--vsknn-k 600 --vsknn-remind True``), cast to
bool/int/float/str and passed to the algorithm: here they become
``ExperimentConfig.baseline_params``. ``--no_incremental_training --training_time_window_size W``
retrain from scratch on the last W windows (0: all past windows), as GRU4Rec (FT/SWT) ran.
Options of the neural models have no effect on a baseline and are listed once on stderr.
"""

from __future__ import annotations

import sys
from dataclasses import replace

from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
from t4r_paper_repro import entry_point, print_notes
from t4r_paper_repro.arguments import (
    ARGS,
    BASELINE,
    DATA,
    OUTPUT,
    Arg,
    build_parser,
    parse,
    split_algorithm_params,
    to_config,
)

PROG = "t4r_paper_repro.baselines_main"
PAPER_BASELINES = ("vsknn", "stan", "vstan", "gru4rec", "narm")
_PARALLEL = ("no effect: evaluation is vectorised in one process (the original split the sessions over "
             "--workers_count joblib workers and averaged the per-chunk means)")
BASELINE_ARGS = [replace(a, note="no effect (see --eval_baseline_cpu_parallel)") if a.name == "workers_count" else a for a in ARGS] + [
    Arg("eval_baseline_cpu_parallel", bool, False, BASELINE, note=_PARALLEL),
]
# the arguments that matter to a baseline; the other model/objective/training options do not
APPLIES = {a.name for a in BASELINE_ARGS if a.family in (DATA, OUTPUT, BASELINE)} | {
    "model_type", "seed", "eval_on_last_item_seq_only", "per_device_eval_batch_size", "compute_metrics_each_n_steps", "no_cuda"}


def parse_args(argv: list[str]) -> tuple[ExperimentConfig, list[str]]:
    """(config, notes to print) from a baseline command line."""
    rest, raw_params = split_algorithm_params(argv)
    for key in raw_params:  # --data-path: a misspelt argument, not an algorithm's parameter
        if key.replace("-", "_") in {a.name for a in BASELINE_ARGS}:
            raise SessrecError(f"unrecognized argument --{key} (did you mean --{key.replace('-', '_')}?)")
    values, given = parse(build_parser(PROG, BASELINE_ARGS), rest, BASELINE_ARGS)
    ignored = sorted(given - APPLIES)
    defaults = {a.name: a.default for a in BASELINE_ARGS}
    values.update({n: defaults[n] for n in ignored})
    cfg, notes = to_config(values, given - set(ignored), BASELINE_ARGS)
    if ignored:
        notes.append("no effect on the baselines (options of the neural models): " + " ".join(f"--{n}" for n in ignored))
    params = {}
    for key, (alg, value) in raw_params.items():
        if alg != cfg.model_type:
            raise SessrecError(f"--{key}: a parameter of '{alg}', but --model_type is '{cfg.model_type}'")
        params[key[len(alg) + 1:]] = value
    cfg.baseline_params = params
    return cfg, notes


def check_available(model_type: str) -> None:
    """A clear exit for a baseline that ``sessrec.baselines`` does not (yet) provide."""
    from sessrec.baselines import BASELINES
    from sessrec.bodies import BODIES

    available = ", ".join(sorted(BASELINES))
    if model_type in BASELINES:
        return
    if model_type in BODIES:
        raise SessrecError(f"--model_type {model_type} is a neural model: run it with python -m t4r_paper_repro.transf_exp_main")
    if model_type in PAPER_BASELINES:
        raise SessrecError(f"--model_type {model_type}: this baseline is not yet available in sessrec.baselines (available: {available})")
    raise SessrecError(f"--model_type {model_type}: unknown baseline (available: {available})")


def run(argv: list[str]) -> int:
    cfg, notes = parse_args(argv)
    check_available(cfg.model_type)
    print_notes(PROG, notes)
    from sessrec.experiment import run_experiment

    run_experiment(cfg)
    return 0


def main(argv: list[str] | None = None) -> int:
    return entry_point(PROG, run, argv, {a.name for a in BASELINE_ARGS})


if __name__ == "__main__":
    sys.exit(main())
