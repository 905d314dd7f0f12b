"""Started by tests/test_distributed.py under torchrun: every process evaluates one window with the
model of a checkpoint (``evaluate`` with the processes' group), for each case of a JSON list, and
rank 0 writes the metrics of every case to a JSON file.

    torchrun --standalone --nproc-per-node 2 tests/distributed_child.py MODEL_DIR DATA_FILE OUT.json CASES_JSON

A case is the keyword arguments of :func:`sessrec.evaluation.evaluate` (``batch_size``,
``last_item_only``, ``each_n_batches``, ``max_batches``) and ``"pop": true`` for the most-popular
ranking fitted on ``DATA_FILE`` instead of the model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def evaluate_cases(model_dir: str, data_file: str, cases: list[dict], group) -> list[dict]:
    """The metrics of each case, evaluated by ``group``'s processes (the test calls it in one process too)."""
    from sessrec.baselines.pop import MostPopular
    from sessrec.data.loader import load_sessions
    from sessrec.evaluation import evaluate
    from sessrec.recommend import Recommender

    rec = Recommender.load(model_dir)
    data = load_sessions(data_file, rec.schema, rec.max_len)
    pop = MostPopular(rec.learner.cfg, rec.schema)
    pop.fit_window(data, 1)
    out = []
    for case in cases:
        kw = {k: v for k, v in case.items() if k != "pop"}
        learner = pop if case.get("pop") else rec.learner
        out.append(evaluate(learner, data, top_ks=[5, 10, 20], group=group, **kw))
    return out


if __name__ == "__main__":
    sys.path.remove(str(Path(__file__).parent))
    from sessrec import distributed

    model_dir, data_file, out_file, cases = sys.argv[1:5]
    group = distributed.init("cpu", 60)
    results = evaluate_cases(model_dir, data_file, json.loads(cases), group)
    if group.is_main:
        Path(out_file).write_text(json.dumps(results))
    distributed.shutdown()
