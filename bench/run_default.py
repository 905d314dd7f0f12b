"""Speed and memory of the default job (`sessrec run` on the bundled sample data).

Prints training sessions/s, evaluation sessions/s (full-catalog last-item ranking) and the peak
resident memory of this process. Run: ``python bench/run_default.py [--model gpt2 --task clm ...]``
(any ``sessrec run`` flag is accepted).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time

from machine import describe  # bench/machine.py: python puts the script's folder on sys.path
from sessrec.cli import add_config_arguments, config_from_args
from sessrec.experiment import run_experiment


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--config")
    add_config_arguments(ap)
    args = ap.parse_args(argv)
    cfg = config_from_args(args)
    cfg.quiet = True
    with tempfile.TemporaryDirectory() as tmp:
        cfg.output_dir = tmp
        start = time.perf_counter()
        res = run_experiment(cfg, printer=lambda *_: None)
        wall = time.perf_counter() - start
    w = res.windows
    train_sps = sum(x["train_samples_per_second"] for x in w) / len(w)
    eval_sps = sum(x["metrics"]["eval_samples_per_second"] for x in w) / len(w)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"machine: {describe()}")
    print(f"model: {cfg.model_type} ({cfg.task}), d_model {cfg.d_model}, {cfg.n_layer} layers, batch {cfg.per_device_train_batch_size}")
    print(f"wall time        {wall:8.1f} s for {len(w)} windows")
    print(f"train sessions/s {train_sps:8.0f}")
    print(f"eval sessions/s  {eval_sps:8.0f}")
    print(f"peak RSS         {peak_mb:8.0f} MB")
    print(f"NDCG@20 AOT      {res.metric('ndcg_at_20'):8.4f} (most popular {res.pop_aot.get('eval_/next-item/ndcg_at_20', float('nan')):.4f})")


if __name__ == "__main__":
    main()
