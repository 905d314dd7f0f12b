"""Item id only vs the paper's three side-information variants, on the bundled sample data.

Runs the incremental protocol once per variant (same seed, same config: the ``sessrec run``
defaults unless flags say otherwise) and prints a Markdown table of the AOT metrics. Run:

    python bench/side_info_table.py                       # the default short config, the default seed
    python bench/side_info_table.py --seeds 1 2 3         # mean ± std over seeds
    python bench/side_info_table.py --num-train-epochs 2 --variants item-id concat

Any ``sessrec run`` flag is accepted and applies to every variant.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from machine import describe  # bench/machine.py: python puts the script's folder on sys.path
from sessrec.cli import add_config_arguments, config_from_args
from sessrec.experiment import run_experiment

SIDE = {"use_side_information_features": True}
# The paper's variants (RQ3, its appendix C), with the sizes scaled to the sample data.
VARIANTS: dict[str, dict] = {
    "item-id": {},
    "concat": {**SIDE},
    "concat+sohe": {**SIDE, "numeric_features_project_to_embedding_dim": 16,
                    "numeric_features_soft_one_hot_encoding_num_embeddings": 10},
    "elementwise": {**SIDE, "input_features_aggregation": "elementwise_sum_multiply_item_embedding"},
}


def flags(values: dict) -> str:
    out = []
    for k, v in values.items():
        out.append(f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}"))
    return " ".join(out) or "(none)"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    ap.add_argument("--seeds", nargs="+", type=int, help="one run per seed and variant (default: the config's seed)")
    add_config_arguments(ap)
    args = ap.parse_args(argv)
    rows = []
    for name in args.variants:
        runs = []
        for seed in args.seeds or [config_from_args(args).seed]:
            cfg = config_from_args(args).update({**VARIANTS[name], "seed": seed}, source=f"variant {name}")
            cfg.quiet = True
            with tempfile.TemporaryDirectory() as tmp:
                cfg.output_dir = tmp
                start = time.perf_counter()
                res = run_experiment(cfg, printer=lambda *_: None)
                runs.append((res, time.perf_counter() - start))
            print(f"{name} seed {seed}: NDCG@20 AOT {res.metric('ndcg_at_20'):.4f} ({runs[-1][1]:.0f} s)", flush=True)
        rows.append((name, runs))
    n = len(rows[0][1])

    def mean(runs, metric: str) -> str:
        values = [r.metric(metric) for r, _ in runs]
        return f"{statistics.mean(values):.4f}" + (f" ± {statistics.stdev(values):.4f}" if n > 1 else "")

    base = next((statistics.mean(r.metric("ndcg_at_20") for r, _ in runs) for name, runs in rows if name == "item-id"), None)
    print(f"\nmachine: {describe()}")
    print(f"{n} seed(s): mean" + (" ± std over seeds" if n > 1 else ""))
    print("| variant | flags | NDCG@20 | HR@20 | MRR@20 | NDCG@20 vs item-id | wall s per run |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in rows:
        ndcg = statistics.mean(r.metric("ndcg_at_20") for r, _ in runs)
        rel = "" if base is None or name == "item-id" else f"{100 * (ndcg / base - 1):+.1f} %"
        print(f"| {name} | `{flags(VARIANTS[name])}` | {mean(runs, 'ndcg_at_20')} | {mean(runs, 'recall_at_20')} | "
              f"{mean(runs, 'mrr_at_20')} | {rel} | {statistics.mean(w for _, w in runs):.0f} |")
    pop = rows[0][1][0][0].pop_aot
    if pop:
        print(f"| most-popular | | {pop['eval_/next-item/ndcg_at_20']:.4f} | {pop['eval_/next-item/recall_at_20']:.4f} | "
              f"{pop['eval_/next-item/mrr_at_20']:.4f} | | |")


if __name__ == "__main__":
    main()
