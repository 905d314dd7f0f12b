"""Top-k next-item recommendations from a trained learner: the code path evaluation also uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from sessrec.data.loader import Batch
from sessrec.errors import SessrecError
from sessrec.learners import Learner

SessionLike = Sequence[int] | Mapping[str, Sequence[float]]


def sessions_to_batch(sessions: Sequence[SessionLike], item_key: str, max_len: int) -> Batch:
    """Right-padded tensors from sessions given as item-id lists or ``{feature: values}`` dicts.

    Sessions longer than ``max_len`` keep their **last** ``max_len`` interactions: the most recent
    context is what predicts the next item.
    """
    rows: list[Mapping[str, Sequence[float]]] = [s if isinstance(s, Mapping) else {item_key: list(s)} for s in sessions]
    if not rows:
        raise SessrecError("no sessions to recommend for")
    names = list(rows[0])
    if item_key not in names:
        raise SessrecError(f"sessions must contain the item id feature '{item_key}'")
    batch: Batch = {}
    for name in names:
        is_int = all(isinstance(v, int) for r in rows for v in r.get(name, []))
        out = torch.zeros(len(rows), max_len, dtype=torch.int64 if is_int else torch.float32)
        for i, r in enumerate(rows):
            if name not in r:
                raise SessrecError(f"session {i} has no feature '{name}'")
            values = list(r[name])[-max_len:]
            if len(values) != len(list(r[item_key])[-max_len:]):
                raise SessrecError(f"session {i}: feature '{name}' has {len(r[name])} values but '{item_key}' has {len(r[item_key])}")
            if values:
                out[i, : len(values)] = torch.tensor(values, dtype=out.dtype)
        batch[name] = out
    lengths = (batch[item_key] != 0).sum(1)
    if (lengths == 0).any():
        raise SessrecError(f"session {int((lengths == 0).nonzero()[0])} has no items")
    return batch


@torch.no_grad()
def recommend(learner: Learner, prefix: Batch, k: int = 10, exclude_seen: bool = False,
              item_key: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` item ids and scores ``([B, k], [B, k])`` for the item following each session of ``prefix``.

    With ``exclude_seen``, items already in the session are never recommended.
    """
    scores = learner.score(prefix).float().clone()
    if exclude_seen:
        key = item_key or next(iter(prefix))
        seen = prefix[key].to(scores.device)
        mask = torch.zeros(scores.shape[0], scores.shape[1] + 1, dtype=torch.bool, device=scores.device)
        mask.scatter_(1, seen, True)  # column 0 (padding) absorbs the padded positions
        scores.masked_fill_(mask[:, 1:], float("-inf"))
    k = min(k, scores.shape[1])
    top_scores, top_cols = scores.topk(k, dim=1)
    return top_cols + 1, top_scores
