"""What tuning buys: an algorithm's untuned default against its tuned configuration, over seeds.

    python bench/tune_gain.py --data-path DATA --model xlnet --task mlm --trials 30 --out bench-out/tune
    python bench/tune_gain.py ... --fixed "--d-model 64 --n-layer 1 --num-train-epochs 3"   # a small budget

Steps, each a normal sessrec command run in this process:
1. ``sessrec tune`` (pruning on) for ``--trials`` trials on the validation split of the first half;
2. the same study without pruning for ``--trials-no-prune`` trials, for the time per trial without it;
3. ``sessrec run --seeds`` of the untuned default and of ``best.yaml``, on the test split of all
   windows, seeds ``--seeds``.
Prints NDCG@20 AOT mean ± std for both, most-popular, the seconds per trial with and without
pruning, and the paired t-test over seeds (the same seed is the same data order for both).
"""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from scipy import stats

from machine import describe  # bench/machine.py: python puts the script's folder on sys.path
from sessrec.cli import main as sessrec_main


def sessrec(argv: list[str]) -> None:
    """One sessrec command; stop here if it did not succeed (a stopped tune is continued by re-running this)."""
    rc = sessrec_main(argv)
    if rc:
        raise SystemExit(rc)


def aot(folder: Path, seeds: list[int], key: str = "eval_/next-item/ndcg_at_20") -> tuple[list[float], list[float]]:
    runs = [json.loads((folder / f"seed-{s}" / "results.json").read_text()) for s in seeds]
    return [r["aot"][key] for r in runs], [r["pop_aot"][key] for r in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-path")
    parser.add_argument("--model", default="xlnet")
    parser.add_argument("--task", default="mlm")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--trials-no-prune", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104])
    parser.add_argument("--fixed", default="", help="sessrec run flags fixed for default and tuning alike")
    parser.add_argument("--out", default="bench-out/tune")
    args = parser.parse_args()
    out = Path(args.out)
    data = ["--data-path", args.data_path] if args.data_path else []
    common = [*data, "--model", args.model, "--task", args.task, *shlex.split(args.fixed), "--quiet"]
    timings = {}
    for label, extra, n in (("pruned", [], args.trials), ("unpruned", ["--no-prune"], args.trials_no_prune)):
        if n <= 0:
            continue
        start = time.time()
        sessrec(["tune", *common, "-o", str(out / f"tune-{label}"), "--trials", str(n), *extra])
        summary = json.loads((out / f"tune-{label}" / "tune.json").read_text())
        timings[label] = (summary["seconds_per_trial"], summary["trials"], time.time() - start)
    sessrec(["run", *common, "--eval-on-test-set", "--seeds", *map(str, args.seeds), "-o", str(out / "default")])
    sessrec(["run", "--config", str(out / "tune-pruned" / "best.yaml"), "--quiet", "--seeds", *map(str, args.seeds),
             "-o", str(out / "tuned")])
    default, pop = aot(out / "default", args.seeds)
    tuned, _ = aot(out / "tuned", args.seeds)

    def ms(xs: list[float]) -> str:
        import statistics

        return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.4f}"

    print(f"\nmachine: {describe()}")
    print(f"{args.model}-{args.task} on {args.data_path or 'the bundled sample'}, fixed: {args.fixed or '-'}; "
          f"test NDCG@20 AOT over seeds {' '.join(map(str, args.seeds))}")
    print(f"  most popular : {ms(pop)}")
    print(f"  untuned      : {ms(default)}  ({sum(default) / sum(pop):.2f}x most popular)")
    print(f"  tuned        : {ms(tuned)}  ({sum(tuned) / sum(pop):.2f}x most popular)")
    if len(args.seeds) > 1:
        t = stats.ttest_rel(tuned, default)
        print(f"  tuned - untuned: {sum(tuned) / len(tuned) - sum(default) / len(default):+.4f} (paired t over seeds: p = {t.pvalue:.3g})")
    for label, (secs, counts, wall) in timings.items():
        print(f"  tuning {label:<9}: {counts.get('complete', 0)} complete, {counts.get('pruned', 0)} pruned; seconds per trial: "
              f"complete {secs['complete'] or 0:.1f}, pruned {secs['pruned'] or 0:.1f}, all {secs['all_finished'] or 0:.1f}; wall {wall:.0f} s")


if __name__ == "__main__":
    main()
