"""Training steps over a 1M-item catalog: full softmax (in chunks) and sampled softmax, within 8 GB.

Each mode runs in its own subprocess so its peak RSS is its own. Prints the time of a training
step (after warm-up) and the peak resident memory per mode:

    python bench/scale_catalog.py                       # 1M items, d_model 128, GPT-2 CLM, batch 256
    python bench/scale_catalog.py --items 200000 --model xlnet --task mlm
    python bench/scale_catalog.py --items 172523 --d-model 64 --batch 192 --model electra --task rtd [--rtd-sample-from-batch]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from machine import describe  # bench/machine.py: python puts the script's folder on sys.path


def one_mode(args: argparse.Namespace) -> dict:
    import torch

    from sessrec.config import ExperimentConfig
    from sessrec.schema import CATEGORICAL, ITEM_ID, FeatureSpec, Schema
    from sessrec.training import NeuralLearner

    schema = Schema([FeatureSpec("item", "int", (ITEM_ID, CATEGORICAL), 1, args.items - 1)])
    cfg = ExperimentConfig.from_dict(dict(
        model_type=args.model, task=args.task, d_model=args.d_model, n_layer=2, n_head=8, dropout=0.0,
        per_device_train_batch_size=args.batch, sampled_softmax=args.mode == "sampled",
        sampled_softmax_max_n_samples=args.negatives, quiet=True,
        **({"rtd_sample_from_batch": args.rtd_sample_from_batch} if args.task == "rtd" else {})))
    learner = NeuralLearner(cfg, schema)
    g = torch.Generator().manual_seed(0)
    # Zipf-like item ids (rank = id - 1), sessions of 20 items
    ranks = torch.floor(torch.exp(torch.rand(args.steps + 1, args.batch, 20, generator=g) * torch.log(torch.tensor(args.items - 1.0))))
    batches = [{"item": (r.long() + 1).clamp(max=args.items - 1)} for r in ranks]
    learner._train_step(batches[0])  # warm-up
    start = time.perf_counter()
    for b in batches[1:]:
        loss = learner._train_step(b)
    step = (time.perf_counter() - start) / args.steps
    return {"mode": args.mode, "step_s": step, "loss": float(loss), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "parameters": learner.n_parameters}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--model", default="gpt2")
    ap.add_argument("--task", default="clm")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--negatives", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--rtd-sample-from-batch", action="store_true", help="RTD's generator samples among the batch's masked items")
    ap.add_argument("--mode", choices=["full", "sampled"], help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.mode:
        print(json.dumps(one_mode(args)))
        return
    print(f"machine: {describe()}")
    print(f"{args.items:,} items, d_model {args.d_model}, {args.model}-{args.task}, batch {args.batch} x 20 items")
    print("| softmax | step time | peak RSS | parameters |\n|---|---|---|---|")
    failed = False
    for mode in ("full", "sampled"):
        cmd = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:]), "--mode", mode]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            failed = True
            print(f"| {mode} | failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode} | | |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        label = "full (chunked)" if mode == "full" else f"sampled ({args.negatives} draws, logQ)"
        print(f"| {label} | {r['step_s']:.2f} s | {r['peak_rss_mb']:,.0f} MB | {r['parameters']:,} |", flush=True)
    if failed:
        sys.exit("scale_catalog: a mode failed (its row above says why)")


if __name__ == "__main__":
    main()
