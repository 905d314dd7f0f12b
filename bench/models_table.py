"""Every (architecture, objective) pair of the paper on the bundled sample data, as a Markdown table.

Each pair runs ``sessrec run`` with its defaults (6 daily windows, d_model 64, 2 layers, batch
64) in a short run (``SHORT_RUN``: 2 epochs per window instead of 5) plus the few per-model
settings below; flags given on the command line override all of them. The table gives NDCG@20
and HR@20 averaged over time next to the most-popular ranking on the same windows, and the
training speed. Run::

    python bench/models_table.py                                    # all pairs
    python bench/models_table.py --only xlnet-rtd gru-clm --num-train-epochs 5   # any sessrec run flag

Training sessions/s depend on what else runs on the machine: compare them within one invocation.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from machine import describe  # bench/machine.py: python puts the script's folder on sys.path
from sessrec.cli import add_config_arguments
from sessrec.config import ExperimentConfig
from sessrec.experiment import run_experiment

SHORT_RUN = {"num_train_epochs": 2.0}

# (label, model, task, settings on top of the `sessrec run` defaults)
PAIRS: list[tuple[str, str, str, dict]] = [
    ("GPT-2 (CLM)", "gpt2", "clm", {}),
    ("Transformer-XL (CLM)", "transfoxl", "clm", {}),
    ("XLNet (CLM)", "xlnet", "clm", {}),
    ("XLNet (MLM)", "xlnet", "mlm", {}),
    ("XLNet (PLM)", "xlnet", "plm", {"plm_probability": 0.5, "plm_max_span_length": 3}),
    # The paper's RTD runs: the generator shares the transformer, replacements come from the batch, discriminator weight 1.
    ("XLNet (RTD)", "xlnet", "rtd", {"rtd_tied_generator": True, "rtd_sample_from_batch": True, "rtd_discriminator_loss_weight": 1.0}),
    ("BERT (MLM)", "bert", "mlm", {}),
    ("ALBERT, no sharing (MLM)", "albert", "mlm", {"num_hidden_groups": -1}),  # the paper's "BERT (MLM)" row
    ("ELECTRA (RTD)", "electra", "rtd", {"rtd_tied_generator": True, "rtd_sample_from_batch": True, "rtd_discriminator_loss_weight": 1.0}),
    ("GRU (CLM)", "gru", "clm", {}),
]


def flag(name: str, value) -> str:
    """The ``sessrec run`` flag that sets ``name`` to ``value``."""
    dashed = name.replace("_", "-")
    if isinstance(value, bool):
        return f"--{dashed}" if value else f"--no-{dashed}"
    return f"--{dashed} {value}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", metavar="MODEL-TASK", help="run only these pairs, e.g. xlnet-mlm gru-clm")
    ap.add_argument("--config", help="YAML config applied to every pair (flags override it)")
    add_config_arguments(ap)
    args = ap.parse_args(argv)
    pairs = [p for p in PAIRS if not args.only or f"{p[1]}-{p[2]}" in args.only]
    if not pairs:
        ap.error(f"--only matches no pair (choose from {', '.join(f'{m}-{t}' for _, m, t, _ in PAIRS)})")
    rows, failures = [], []
    started = time.perf_counter()
    given = {k: v for k, v in vars(args).items() if k in ExperimentConfig.__dataclass_fields__}
    for label, model, task, settings in pairs:
        cfg = ExperimentConfig.from_yaml(args.config) if args.config else ExperimentConfig()
        cfg.update({**SHORT_RUN, "model_type": model, "task": task, **settings, **given, "quiet": True})
        with tempfile.TemporaryDirectory() as tmp:
            cfg.output_dir = tmp
            t0 = time.perf_counter()
            res = run_experiment(cfg, printer=lambda *_: None)
            wall = time.perf_counter() - t0
        ndcg, hr = res.metric("ndcg_at_20"), res.metric("recall_at_20")
        pop_ndcg, pop_hr = res.pop_aot["eval_/next-item/ndcg_at_20"], res.pop_aot["eval_/next-item/recall_at_20"]
        speed = sum(w["train_samples_per_second"] for w in res.windows) / len(res.windows)
        flags = " ".join(flag(k, v) for k, v in settings.items())
        rows.append(f"| {label} | `--model {model} --task {task}{' ' + flags if flags else ''}` | {ndcg:.4f} | {hr:.4f} "
                    f"| {pop_ndcg:.4f} | {pop_hr:.4f} | {speed:,.0f} | {wall:.0f} |")
        print(rows[-1], file=sys.stderr, flush=True)  # progress
        if ndcg <= pop_ndcg:
            failures.append(label)
    print(f"machine: {describe()}; total {time.perf_counter() - started:.0f} s\n")
    print("| model | flags | NDCG@20 AOT | HR@20 AOT | most-popular NDCG@20 | most-popular HR@20 | train sessions/s | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if failures:
        print(f"\nNOT better than most-popular on NDCG@20 AOT: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
