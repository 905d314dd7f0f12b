import pytest
import torch

from sessrec.config import ExperimentConfig
from sessrec.data.loader import SessionTensors, split_last_item
from sessrec.errors import SessrecError
from sessrec.evaluation import evaluate
from sessrec.recommend import recommend, sessions_to_batch
from sessrec.schema import CATEGORICAL, ITEM_ID, FeatureSpec, Schema
from sessrec.training import NeuralLearner

SCHEMA = Schema([FeatureSpec("item", "int", (ITEM_ID, CATEGORICAL), 1, 29)])


class FixedScores:
    """A learner whose scores are given: item j+1 gets scores[j]."""

    scores_are_logits = False
    input_names = ["item"]

    def __init__(self, scores):
        self.scores = torch.tensor(scores, dtype=torch.float32)

    def score(self, prefix):
        return self.scores.expand(prefix["item"].shape[0], -1)


def test_top_k_and_exclude_seen():
    learner = FixedScores([0.1, 0.9, 0.5, 0.7, 0.3])  # items 1..5
    batch = sessions_to_batch([[2, 4], [1]], "item", max_len=4)
    ids, scores = recommend(learner, batch, k=3)
    assert ids.tolist() == [[2, 4, 3], [2, 4, 3]]
    ids, _ = recommend(learner, batch, k=3, exclude_seen=True, item_key="item")
    assert ids.tolist() == [[3, 5, 1], [2, 4, 3]]


def test_sessions_to_batch_keeps_the_most_recent_items():
    b = sessions_to_batch([[1, 2, 3, 4, 5], {"item": [7, 8]}], "item", max_len=3)
    assert b["item"].tolist() == [[3, 4, 5], [7, 8, 0]]
    with pytest.raises(SessrecError, match="no items"):
        sessions_to_batch([[]], "item", max_len=3)


@pytest.mark.parametrize("model_type,task", [("xlnet", "mlm"), ("xlnet", "clm"), ("gpt2", "clm")])
def test_evaluation_equals_recommending_from_the_truncated_session(model_type, task):
    cfg = ExperimentConfig.from_dict({"model_type": model_type, "task": task, "d_model": 16, "n_layer": 1, "n_head": 2,
                                      "max_steps": 5, "quiet": True, "per_device_train_batch_size": 16})
    g = torch.Generator().manual_seed(0)
    items = torch.randint(1, 30, (64, 8), generator=g)
    items[::3, 5:] = 0
    data = SessionTensors({"item": items}, "item")
    learner = NeuralLearner(cfg, SCHEMA)
    learner.fit_window(data, 1)
    metrics = evaluate(learner, data, batch_size=32, top_ks=[10])
    prefix, targets = split_last_item(data.features, "item")
    sessions = [row[row != 0].tolist() for row in prefix["item"]]
    ids, _ = recommend(learner, sessions_to_batch(sessions, "item", 8), k=10)
    hits = (ids == targets.view(-1, 1)).any(1).float().mean().item()
    assert hits == pytest.approx(metrics["recall_at_10"])
