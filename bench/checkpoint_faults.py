"""What the fault handling costs: the checkpoint manifest (size + SHA-256 of every file) on a
checkpoint of a realistic size, and the per-step checks (stop requested? loss finite?).

    python bench/checkpoint_faults.py                  # 50,000 items, d_model 256, XLNet-MLM (~176 MB)
    python bench/checkpoint_faults.py --items 200000 --d-model 448 --steps 1   # a ~1 GB checkpoint

Prints the checkpoint's size, the time to save it (manifest included) and the time the manifest
took within it, the time to verify it before loading, and the per-step checks against a step.
All figures come from one invocation, so ratios between them hold on a shared machine.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
import timeit
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=3, help="training steps timed")
    args = ap.parse_args(argv)

    import torch

    from machine import describe  # bench/machine.py: python puts the script's folder on sys.path
    from sessrec.checkpoint import file_sha256, save_checkpoint, verify_checkpoint
    from sessrec.config import ExperimentConfig
    from sessrec.schema import CATEGORICAL, ITEM_ID, FeatureSpec, Schema
    from sessrec.stopping import stop_requested
    from sessrec.training import NeuralLearner

    print(f"machine: {describe()}")
    schema = Schema([FeatureSpec("item", "int", (ITEM_ID, CATEGORICAL), 1, args.items - 1)])
    cfg = ExperimentConfig.from_dict(dict(model_type="xlnet", task="mlm", d_model=args.d_model, n_layer=2, n_head=8,
                                          per_device_train_batch_size=64, quiet=True))
    learner = NeuralLearner(cfg, schema)
    batch = {"item": torch.randint(1, args.items, (64, 20), generator=torch.Generator().manual_seed(0))}
    learner._train_step(batch)  # optimizer moments exist, as after a window
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = float(learner._train_step(batch))  # the float the training loop checks
    step = (time.perf_counter() - start) / args.steps

    with tempfile.TemporaryDirectory() as tmp:
        saves, hashes, verifies = [], [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            folder = save_checkpoint(Path(tmp), 1, cfg, schema, {"model": learner}, {"windows": []})
            saves.append(time.perf_counter() - start)
            files = [p for p in folder.iterdir() if p.name != "manifest.json"]
            start = time.perf_counter()
            for p in files:
                file_sha256(p)
            hashes.append(time.perf_counter() - start)
            start = time.perf_counter()
            verify_checkpoint(folder)
            verifies.append(time.perf_counter() - start)
        size = sum(p.stat().st_size for p in folder.iterdir())
    save, digest, verify = min(saves), min(hashes), min(verifies)
    print(f"{learner.n_parameters:,} parameters ({args.items:,} items, d_model {args.d_model}): checkpoint {size / 1e6:.0f} MB")
    print(f"save {save:.2f} s, of which the manifest's SHA-256 {digest:.2f} s ({digest / save:.0%}); "
          f"verify before loading {verify:.2f} s ({size / 1e6 / verify:.0f} MB/s); best of {args.repeats}")
    n = 1_000_000
    checks = timeit.timeit(lambda: stop_requested() is not None or not math.isfinite(loss), number=n) / n
    print(f"per-step checks (stop requested, loss finite) {checks * 1e9:.0f} ns vs a training step of {step * 1e3:.0f} ms "
          f"(batch 64 x 20): {checks / step:.1e} of a step")


if __name__ == "__main__":
    main()
