"""Data-parallel training against one process, at the same effective batch (sessions per step).

For each seed, one ``sessrec run`` in one process with ``--per-device-train-batch-size`` N x B,
then the same run under ``torchrun --standalone --nproc-per-node N`` with B per process (gloo on
the CPU unless ``--device cuda``); each is a fresh subprocess on the bundled sample (or
``--data-path``). Prints per run: wall time, training sessions/s (over all processes), NDCG@20
averaged over time; then mean ± std over the seeds and the speed ratio of each seed's pair (the
pairs run back to back, so a ratio is less noisy than the speeds on a shared machine).

    python bench/ddp.py                           # 2 processes of 32 vs 1 of 64, seeds 1 2 3
    python bench/ddp.py --nproc 4 --per-device-batch 16 --seeds 1 2 3 -- --num-train-epochs 2

Arguments after ``--`` are passed to every ``sessrec run``. torchrun gives each of its N processes
one thread; the one process gets ``--threads`` (default N: the same cores; 1 measures how the
processes scale, and stays clear of OpenMP's slowdown when the cores are busy with other work).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe  # bench/machine.py: python puts the script's folder on sys.path

SRC = Path(__file__).resolve().parents[1] / "src"


def run(cmd: list[str], out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    began = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - began
    if done.returncode:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    res = json.loads((out / "results.json").read_text())
    w = res["windows"]
    return {"wall": wall, "sps": sum(x["train_samples_per_second"] for x in w) / len(w),
            "ndcg20": res["aot"]["eval_/next-item/ndcg_at_20"], "steps": sum(x["train_steps"] for x in w)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nproc", type=int, default=2, help="processes of the distributed run (default 2)")
    ap.add_argument("--per-device-batch", type=int, default=32, help="sessions per process and step (default 32)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--threads", type=int, help="threads of the one process (default: --nproc)")
    ap.add_argument("rest", nargs="*", help="sessrec run flags, after --")
    args = ap.parse_args()
    n, b = args.nproc, args.per_device_batch
    threads = args.threads or n
    print(f"machine: {describe()}")
    print(f"one process of {n * b} sessions a step ({threads} threads) vs {n} processes of {b} (1 thread each); "
          f"flags: {' '.join(args.rest) or '(defaults)'}")
    rows: dict[str, list[dict]] = {"1 process": [], f"{n} processes": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            common = ["run", "--seed", str(seed), "--quiet", *args.rest]
            one, many = Path(tmp) / f"one-{seed}", Path(tmp) / f"many-{seed}"
            r1 = run([sys.executable, "-m", "sessrec", *common, "--per-device-train-batch-size", str(n * b),
                      "--num-threads", str(threads), "-o", str(one)], one)
            rn = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(n),
                      "-m", "sessrec", *common, "--per-device-train-batch-size", str(b), "-o", str(many)], many)
            assert r1["steps"] == rn["steps"], (r1, rn)  # the same number of steps of the same size
            rows["1 process"].append(r1)
            rows[f"{n} processes"].append(rn)
            print(f"seed {seed}: 1 process {r1['sps']:7.0f} sessions/s, NDCG@20 {r1['ndcg20']:.4f}, {r1['wall']:6.1f} s | "
                  f"{n} processes {rn['sps']:7.0f} sessions/s, NDCG@20 {rn['ndcg20']:.4f}, {rn['wall']:6.1f} s | "
                  f"speed ratio {rn['sps'] / r1['sps']:.2f}", flush=True)
    print()
    print(f"{'':<14} {'sessions/s':>18} {'NDCG@20 AOT':>20} {'wall s':>14}")
    for name, rs in rows.items():
        cells = []
        for key, fmt in (("sps", ".0f"), ("ndcg20", ".4f"), ("wall", ".1f")):
            vals = [r[key] for r in rs]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):{fmt}} ± {sd:{fmt}}")
        print(f"{name:<14} {cells[0]:>18} {cells[1]:>20} {cells[2]:>14}")
    ratios = [m["sps"] / o["sps"] for o, m in zip(rows["1 process"], rows[f"{n} processes"])]
    print(f"speed ratio {n} processes / 1 process, per seed: {' '.join(f'{r:.2f}' for r in ratios)}")


if __name__ == "__main__":
    main()
