"""Every (architecture, objective) pair of the paper, and the recommender-native models published
since (SASRec+, gSASRec, HSTU), on the bundled sample data, as a Markdown table.

Each pair runs ``sessrec run`` with its defaults (6 daily windows, d_model 64, 2 layers, batch
64) in a short run (``SHORT_RUN``: 2 epochs per window instead of 5) plus the few per-model
settings below; flags given on the command line override all of them. The table gives NDCG@20
and HR@20 averaged over time next to the most-popular ranking on the same windows, and the
training speed. Run::

    python bench/models_table.py                                    # all pairs
    python bench/models_table.py --only xlnet-rtd gru-clm --num-train-epochs 5   # any sessrec run flag
    python bench/models_table.py --only gpt2-clm xlnet-mlm sasrec-clm sasrec-clm-gbce hstu-clm \
        --seeds 100 101 102 --d-model 64 --n-layer 1 --num-train-epochs 3 --eval-on-test-set [--data-path DATA]

With ``--seeds`` every pair runs once per seed, the pairs interleaved (all pairs for a seed, then
the next seed) so that the load of the machine falls on them alike, and the table gives the mean
and standard deviation over the seeds. The recent models must reach GPT-2 (CLM)'s NDCG@20 AOT
minus 5 % (``RECENT``, checked when GPT-2 (CLM) is in the table). Training sessions/s depend on
what else runs on the machine: compare them within one invocation.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from machine import describe  # bench/machine.py: python puts the script's folder on sys.path
from sessrec.cli import add_config_arguments
from sessrec.config import ExperimentConfig
from sessrec.errors import SessrecError
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
    # After the paper: SASRec with the full cross-entropy (SASRec+, Klenitskiy & Vasilev 2023), with gBCE
    # (gSASRec, Petrov & Macdonald 2023: t 0.75, 256 negatives by default), and HSTU (Zhai et al. 2024).
    ("SASRec+ (CLM, cross-entropy)", "sasrec", "clm", {}),
    ("gSASRec (CLM, gBCE)", "sasrec", "clm", {"loss_type": "gbce"}),
    ("HSTU (CLM)", "hstu", "clm", {}),
]
RECENT = ("sasrec-clm", "sasrec-clm-gbce", "hstu-clm")
TOLERANCE = 0.05  # a recent model's NDCG@20 AOT may be at most this fraction below GPT-2 (CLM)'s


def key(model: str, task: str, settings: dict) -> str:
    """The name ``--only`` selects a pair by: ``model-task``, plus ``-loss`` for a loss other than the cross-entropy."""
    loss = settings.get("loss_type", "cross_entropy")
    return f"{model}-{task}" + ("" if loss == "cross_entropy" else f"-{loss}")


def spread(values: list[float], fmt: str) -> str:
    """``mean ± sd`` over seeds (the mean alone for one seed)."""
    mean = statistics.fmean(values)
    return format(mean, fmt) + (f" ± {format(statistics.stdev(values), fmt)}" if len(values) > 1 else "")


def flag(name: str, value) -> str:
    """The ``sessrec run`` flag that sets ``name`` to ``value``."""
    dashed = name.replace("_", "-")
    if isinstance(value, bool):
        return f"--{dashed}" if value else f"--no-{dashed}"
    return f"--{dashed} {value}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", metavar="MODEL-TASK", help="run only these pairs, e.g. xlnet-mlm gru-clm sasrec-clm-gbce")
    ap.add_argument("--config", help="YAML config applied to every pair (flags override it)")
    ap.add_argument("--seeds", nargs="+", type=int, metavar="SEED", help="run every pair with each seed, interleaved")
    add_config_arguments(ap)
    args = ap.parse_args(argv)
    pairs = [p for p in PAIRS if not args.only or key(p[1], p[2], p[3]) in args.only]
    if not pairs:
        ap.error(f"--only matches no pair (choose from {', '.join(key(m, t, s) for _, m, t, s in PAIRS)})")
    given = {k: v for k, v in vars(args).items() if k in ExperimentConfig.__dataclass_fields__}
    seeds = args.seeds or [given.get("seed", ExperimentConfig().seed)]
    results: dict[str, list[tuple[float, float, float, float, float, float]]] = {key(m, t, s): [] for _, m, t, s in pairs}
    started = time.perf_counter()
    for seed in seeds:
        for label, model, task, settings in pairs:
            cfg = ExperimentConfig.from_yaml(args.config) if args.config else ExperimentConfig()
            cfg.update({**SHORT_RUN, "model_type": model, "task": task, **settings, **given, "seed": seed, "quiet": True})
            with tempfile.TemporaryDirectory() as tmp:
                cfg.output_dir = tmp
                t0 = time.perf_counter()
                res = run_experiment(cfg, printer=lambda *_: None)
                wall = time.perf_counter() - t0
            speed = sum(w["train_samples_per_second"] for w in res.windows) / len(res.windows)
            row = (res.metric("ndcg_at_20"), res.metric("recall_at_20"), res.pop_aot["eval_/next-item/ndcg_at_20"],
                   res.pop_aot["eval_/next-item/recall_at_20"], speed, wall)
            results[key(model, task, settings)].append(row)
            print(f"seed {seed} | {label} | NDCG@20 {row[0]:.4f} | {speed:,.0f} sessions/s | {wall:.0f} s",
                  file=sys.stderr, flush=True)  # progress
    rows, failures = [], []
    for label, model, task, settings in pairs:
        got = results[key(model, task, settings)]
        cols = [[r[i] for r in got] for i in range(6)]
        flags = " ".join(flag(k, v) for k, v in settings.items())
        rows.append(f"| {label} | `--model {model} --task {task}{' ' + flags if flags else ''}` | {spread(cols[0], '.4f')} "
                    f"| {spread(cols[1], '.4f')} | {statistics.fmean(cols[2]):.4f} | {statistics.fmean(cols[3]):.4f} "
                    f"| {spread(cols[4], ',.0f')} | {statistics.fmean(cols[5]):.0f} |")
        if statistics.fmean(cols[0]) <= statistics.fmean(cols[2]):
            failures.append(f"{label}: not better than most-popular on NDCG@20 AOT")
    gpt2 = results.get("gpt2-clm")
    if gpt2:
        floor = (1 - TOLERANCE) * statistics.fmean(r[0] for r in gpt2)
        for name in RECENT:
            if results.get(name) and statistics.fmean(r[0] for r in results[name]) < floor:
                failures.append(f"{name}: NDCG@20 AOT below GPT-2 (CLM)'s minus {TOLERANCE:.0%} ({floor:.4f})")
    print(f"machine: {describe()}; seeds {' '.join(map(str, seeds))}; total {time.perf_counter() - started:.0f} s\n")
    print("| model | flags | NDCG@20 AOT | HR@20 AOT | most-popular NDCG@20 | most-popular HR@20 | train sessions/s | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    if failures:
        print("\n" + "\n".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SessrecError as e:  # e.g. a --model-config option that one of the models does not know
        sys.exit(f"models_table.py: {e}")
