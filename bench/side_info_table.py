"""Item id only vs the paper's three side-information variants, on the bundled sample data.

Runs the incremental protocol once per variant (same seed, same config: the ``sessrec run``
defaults unless flags say otherwise) and prints a Markdown table of the AOT metrics. Run:

    PYTHONPATH=src python bench/side_info_table.py                    # the default short config
    PYTHONPATH=src python bench/side_info_table.py --num-train-epochs 2 --variants item-id concat

Any ``sessrec run`` flag is accepted and applies to every variant.
"""

from __future__ import annotations

import argparse
import tempfile
import time

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
    add_config_arguments(ap)
    args = ap.parse_args(argv)
    rows = []
    for name in args.variants:
        cfg = config_from_args(args).update(VARIANTS[name], source=f"variant {name}")
        cfg.quiet = True
        with tempfile.TemporaryDirectory() as tmp:
            cfg.output_dir = tmp
            start = time.perf_counter()
            res = run_experiment(cfg, printer=lambda *_: None)
            rows.append((name, res, time.perf_counter() - start))
        print(f"{name}: NDCG@20 AOT {res.metric('ndcg_at_20'):.4f} ({rows[-1][2]:.0f} s)", flush=True)
    base = next((r.metric("ndcg_at_20") for n, r, _ in rows if n == "item-id"), None)
    pop = rows[0][1].pop_aot.get("eval_/next-item/ndcg_at_20")
    print()
    print("| variant | flags | NDCG@20 | HR@20 | MRR@20 | vs item-id | wall s |")
    print("|---|---|---|---|---|---|---|")
    for name, res, wall in rows:
        ndcg = res.metric("ndcg_at_20")
        rel = "" if base is None or name == "item-id" else f"{100 * (ndcg / base - 1):+.1f} %"
        print(f"| {name} | `{flags(VARIANTS[name])}` | {ndcg:.4f} | {res.metric('recall_at_20'):.4f} | "
              f"{res.metric('mrr_at_20'):.4f} | {rel} | {wall:.0f} |")
    if pop is not None:
        print(f"| most-popular | | {pop:.4f} | {rows[0][1].pop_aot['eval_/next-item/recall_at_20']:.4f} | "
              f"{rows[0][1].pop_aot['eval_/next-item/mrr_at_20']:.4f} | | |")


if __name__ == "__main__":
    main()
