"""Fit and evaluation time per window of the kNN baselines (V-SkNN, STAN, VSTAN).

Synthetic e-commerce-like sessions (generated here, no download): a Zipf-popular catalog of
``sessions / 10`` items, sessions of 2..20 clicks (mean ~5.5, like REES46) that mostly stay in
one of 100 item groups, one window a day. For each size, every method is fitted on ``--windows``
consecutive windows (incrementally: the store grows) and, after each fit, evaluated on the next
window's ``--eval-fraction`` of sessions with :func:`sessrec.evaluation.evaluate` (the code path
of ``sessrec run``: last item of each session, full catalog). Hyper-parameters: the paper's tuned
REES46 values (``--params paper``) or the original defaults (``--params default``).

    python bench/knn_baselines.py                       # 10k and 100k sessions per window
    python bench/knn_baselines.py --sizes 10000 --methods vsknn
    python bench/knn_baselines.py --sizes 20000 --items 172523 --windows 1   # a large catalog's evaluation
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from machine import describe  # bench/machine.py: python puts the script's folder on sys.path
from sessrec.baselines import BASELINES
from sessrec.config import ExperimentConfig
from sessrec.data.loader import SessionTensors
from sessrec.evaluation import evaluate
from sessrec.schema import ITEM_ID, LIST, TIME, FeatureSpec, Schema

PAPER_REES46 = {  # Appendix C / the paper's command lines
    "vsknn": {"k": 600, "sample_size": 2500, "weighting": "same", "weighting_score": "linear", "idf_weighting": 10,
              "remind": True, "push_reminders": True},
    "stan": {"k": 500, "sample_size": 10000, "lambda_spw": 5.49, "lambda_snh": 100, "lambda_inh": 1.3725, "remind": True},
    "vstan": {"k": 1300, "sample_size": 8500, "lambda_spw": 5.49, "lambda_snh": 80, "lambda_inh": 2.745,
              "lambda_ipw": 5.49, "lambda_idf": 5, "remind": True},
}
MAX_LEN = 20
DAY = 86400.0


class Catalog:
    """Zipf-popular items in 100 groups: sessions mostly stay in one group."""

    def __init__(self, rng: np.random.Generator, n_items: int, groups: int = 100):
        self.n_items = n_items
        group_of = rng.integers(0, groups, n_items)
        self.pop = np.concatenate(([0.0], rng.permutation(1.0 / np.arange(1, n_items))))
        self.members = [np.flatnonzero((group_of == g) & (self.pop > 0)) for g in range(groups)]
        self.member_p = [self.pop[m] / self.pop[m].sum() for m in self.members]
        self.group_p = np.array([self.pop[m].sum() for m in self.members]) / self.pop.sum()

    def window(self, rng: np.random.Generator, n_sessions: int, day: int) -> SessionTensors:
        """``n_sessions`` sessions of one day as padded tensors (items and click times in seconds)."""
        lengths = np.minimum(2 + rng.geometric(0.28, n_sessions) - 1, MAX_LEN)
        homes = rng.choice(len(self.members), n_sessions, p=self.group_p)
        items = np.zeros((n_sessions, MAX_LEN), dtype=np.int64)
        for r in range(n_sessions):  # generation is not what is measured
            local = rng.choice(self.members[homes[r]], lengths[r], p=self.member_p[homes[r]])
            anywhere = rng.choice(self.n_items, lengths[r], p=self.pop / self.pop.sum())
            items[r, : lengths[r]] = np.where(rng.random(lengths[r]) < 0.8, local, anywhere)
        start = day * DAY + np.sort(rng.uniform(0, DAY, n_sessions))
        steps = np.cumsum(rng.exponential(60.0, (n_sessions, MAX_LEN)), axis=1)
        times = np.where(items > 0, start[:, None] + steps, 0.0)
        return SessionTensors({"item": torch.from_numpy(items), "t": torch.from_numpy(times)}, "item")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="training sessions per window")
    ap.add_argument("--windows", type=int, default=2, help="training windows (each followed by an evaluation)")
    ap.add_argument("--eval-fraction", type=float, default=0.1, help="evaluated sessions per window, as a fraction of the size")
    ap.add_argument("--methods", nargs="+", default=list(PAPER_REES46), choices=list(PAPER_REES46))
    ap.add_argument("--params", choices=("paper", "default"), default="paper")
    ap.add_argument("--eval-batch-size", type=int, default=512)
    ap.add_argument("--items", type=int, help="catalog size (default: a tenth of the sessions, at least 1,000)")
    args = ap.parse_args(argv)
    print(f"machine: {describe()}, numpy {np.__version__}; shared with other jobs: timings are indicative")
    print(f"{'method':>6} {'sessions':>8} {'items':>7} {'window':>6} {'in store':>8} {'fit s':>7} {'eval n':>6} "
          f"{'eval s':>7} {'eval sess/s':>11} {'HR@20':>6}")
    for size in args.sizes:
        n_items = args.items or max(1000, size // 10)
        rng = np.random.default_rng(size)
        catalog = Catalog(rng, n_items)
        windows = [catalog.window(rng, size, d) for d in range(args.windows)]
        n_eval = max(1, int(size * args.eval_fraction))
        evals = [catalog.window(rng, n_eval, d + 1) for d in range(args.windows)]
        schema = Schema([FeatureSpec("item", "int", (ITEM_ID, LIST), 1, n_items - 1), FeatureSpec("t", "float", (TIME, LIST))])
        for method in args.methods:
            params = PAPER_REES46[method] if args.params == "paper" else {}
            learner = BASELINES[method](ExperimentConfig(model_type=method, baseline_params=params), schema)
            for w, (train, ev) in enumerate(zip(windows, evals), start=1):
                t0 = time.perf_counter()
                learner.fit_window(train, w)
                fit = time.perf_counter() - t0
                m = evaluate(learner, ev, args.eval_batch_size, [20])
                print(f"{method:>6} {size:>8} {n_items:>7} {w:>6} {len(learner.store):>8} {fit:>7.2f} "
                      f"{int(m['n_sessions']):>6} {m['runtime']:>7.2f} {m['samples_per_second']:>11.0f} {m['recall_at_20']:>6.3f}")


if __name__ == "__main__":
    main()
