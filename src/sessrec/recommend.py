"""Top-k next-item recommendations from a trained learner: the code path evaluation also uses.

    rec = Recommender.load("runs/xlnet/checkpoint-last")
    ids, scores = rec.recommend([[12, 55, 7], [3, 4]], k=10, exclude_seen=True)
"""

from __future__ import annotations

import io
import logging
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from sessrec.data.loader import Batch, load_sessions
from sessrec.errors import SessrecError
from sessrec.io import atomic_write_bytes, read_parquet
from sessrec.learners import Learner, build_learner
from sessrec.schema import Schema

log = logging.getLogger(__name__)

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
        is_int = all(isinstance(v, numbers.Integral) for r in rows for v in r.get(name, []))
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
              item_key: str | None = None, seen: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` item ids and scores ``([B, k], [B, k])`` for the item following each session of ``prefix``.

    With ``exclude_seen``, items already in the session are never recommended: the items of
    ``prefix``, or ``seen`` (``[B, *]`` item ids, 0 = padding) when ``prefix`` holds only the last
    items of longer sessions.
    """
    scores = learner.score(prefix).float().clone()
    if exclude_seen:
        key = item_key or next(iter(prefix))
        seen = (prefix[key] if seen is None else seen).to(scores.device)
        mask = torch.zeros(scores.shape[0], scores.shape[1] + 1, dtype=torch.bool, device=scores.device)
        mask.scatter_(1, seen, True)  # column 0 (padding) absorbs the padded positions
        scores.masked_fill_(mask[:, 1:], float("-inf"))
    k = min(k, scores.shape[1])
    top_scores, top_cols = scores.topk(k, dim=1)
    return top_cols + 1, top_scores


def keep_last(batch: Batch, item_key: str, max_len: int) -> Batch:
    """Right-padded ``[N, max_len]`` tensors holding the **last** ``max_len`` interactions of each session."""
    items = batch[item_key]
    lengths = (items != 0).sum(1, keepdim=True)
    if items.shape[1] <= max_len:
        return {k: torch.nn.functional.pad(v, (0, max_len - v.shape[1])) for k, v in batch.items()}
    index = (lengths - max_len).clamp(min=0) + torch.arange(max_len)
    valid = index < lengths
    index = index.clamp(max=items.shape[1] - 1)
    return {k: torch.where(valid, v.gather(1, index), torch.zeros((), dtype=v.dtype)) for k, v in batch.items()}


class Recommender:
    """A learner loaded from a checkpoint folder (``RUN_DIR/checkpoint-last``), ready to recommend.

    Sessions are item-id lists (``[12, 55, 7]``, oldest first) or, for models trained with side
    information, ``{feature: values}`` dicts with every model input feature. Item ids are the
    encoded ids of the training data (1 .. n_items - 1).
    """

    def __init__(self, learner: Learner, schema: Schema, max_len: int, batch_size: int = 512):
        self.learner = learner
        self.schema = schema
        self.item_key = schema.item_id.name
        self.max_len = max_len
        self.batch_size = batch_size

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Recommender:
        """Rebuild the learner from ``config.yaml`` and ``schema.pbtxt`` and load ``model.safetensors``."""
        from sessrec.checkpoint import (
            DamagedCheckpoint,
            load_learner_state,
            read_checkpoint,
            rng_state,
            set_rng_state,
        )

        path = Path(path)
        try:
            cfg, schema, meta = read_checkpoint(path)
        except DamagedCheckpoint as e:
            raise SessrecError(f"{e}; load another checkpoint of the run (an older checkpoint-NNNN, kept with "
                               "--keep-checkpoints N) or train the model again") from None
        if "in_window" in meta:
            log.warning("checkpoint %s was saved by a run stopped inside window %d (%s): the model is partly trained "
                        "on that window", path, meta["in_window"]["window"], meta["in_window"]["where"])
        if not meta["learners"].get("model"):
            raise SessrecError(f"checkpoint {path} holds no model: model_type '{cfg.model_type}' has no state_dict() "
                               "to save (see sessrec.learners.Learner)")
        cfg.device, cfg.quiet = device, True
        outside = rng_state()  # building a learner seeds the global RNGs; leave the caller's alone
        try:
            learner = build_learner(cfg, schema)
        finally:
            set_rng_state(outside)
        learner.load_state_dict(load_learner_state(path, "model", weights_only=True))
        return cls(learner, schema, cfg.session_seq_length_max, cfg.per_device_eval_batch_size)

    @property
    def input_names(self) -> list[str]:
        return list(self.learner.input_names)

    @property
    def side_features(self) -> list[str]:
        """Input features besides the item id (empty for a model trained on item ids only)."""
        return [n for n in self.input_names if n != self.item_key]

    def recommend(self, sessions: Sequence[SessionLike], k: int = 10,
                  exclude_seen: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` item ids and scores ``([N, k], [N, k])`` for the item following each session."""
        if self.side_features and any(not isinstance(s, Mapping) for s in sessions):
            raise SessrecError(f"this model was trained with side information ({', '.join(self.side_features)}): "
                               f"give each session as a dict with '{self.item_key}' and those features, not item ids alone")
        batch = sessions_to_batch(sessions, self.item_key, self.max_len)
        seen = None
        if exclude_seen:  # every item of the session, also those before the last max_len the model reads
            items = [list(s[self.item_key]) if isinstance(s, Mapping) else list(s) for s in sessions]
            seen = sessions_to_batch(items, self.item_key, max(map(len, items)))[self.item_key]
        return self.recommend_batch(batch, k, exclude_seen, seen)

    def recommend_batch(self, batch: Batch, k: int = 10, exclude_seen: bool = False,
                        seen: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Like :meth:`recommend` for right-padded ``[N, L]`` tensors keyed by feature name, in chunks.
        ``seen``: the sessions' item ids ``[N, *]`` that ``exclude_seen`` excludes, when ``batch`` holds
        only the last items of longer sessions (default: ``batch``'s items)."""
        if k < 1:
            raise SessrecError(f"k must be >= 1 (got {k})")
        missing = [n for n in self.input_names if n not in batch]
        if missing:
            raise SessrecError(f"sessions lack the model input feature(s) {', '.join(missing)}")
        self._check_values(batch)
        batch = {n: batch[n] for n in self.input_names}
        n = batch[self.item_key].shape[0]
        if seen is not None:
            self._check_values({self.item_key: seen})
        else:
            seen = batch[self.item_key]
        parts = [recommend(self.learner, {name: v[i:i + self.batch_size] for name, v in batch.items()}, k,
                           exclude_seen, self.item_key, seen[i:i + self.batch_size]) for i in range(0, n, self.batch_size)]
        return torch.cat([p[0] for p in parts]).cpu(), torch.cat([p[1] for p in parts]).cpu()

    def recommend_file(self, input_path: str | Path, output_path: str | Path, k: int = 10,
                       exclude_seen: bool = False) -> int:
        """Sessions of a parquet file (list columns, one row per session) → a parquet file with the
        input's non-list columns (e.g. a session id) plus ``item_ids`` and ``scores`` lists; returns the row count."""
        input_path = Path(input_path)
        try:
            table = read_parquet(input_path)
        except (OSError, pa.ArrowInvalid) as e:
            raise SessrecError(f"cannot read parquet file {input_path}: {e}") from None
        missing = [n for n in self.input_names if n not in table.column_names]
        if missing:
            raise SessrecError(f"{input_path}: column(s) {', '.join(missing)} missing (the model reads {', '.join(self.input_names)})")
        longest = pc.max(pc.list_value_length(table.column(self.item_key))).as_py() or 1
        specs = [self.schema[n] for n in self.input_names]
        data = load_sessions(input_path, self.schema, max(longest, self.max_len), specs)
        ids, scores = self.recommend_batch(keep_last(data.features, self.item_key, self.max_len), k, exclude_seen, data.items)
        keep = [c for c in table.column_names if not pa.types.is_list(table.schema.field(c).type)
                and not pa.types.is_large_list(table.schema.field(c).type)]
        out = table.select(keep).append_column("item_ids", pa.array(ids.tolist(), pa.list_(pa.int64())))
        out = out.append_column("scores", pa.array(scores.tolist(), pa.list_(pa.float32())))
        buf = io.BytesIO()
        pq.write_table(out, buf)
        atomic_write_bytes(output_path, buf.getvalue())
        return out.num_rows

    def _check_values(self, batch: Batch) -> None:
        """Ids outside a table would fail deep inside torch: say which feature and value instead."""
        for name in self.input_names:
            spec = self.schema[name]
            if name not in batch or not spec.is_categorical:
                continue
            v = batch[name]
            if v.is_floating_point():
                raise SessrecError(f"feature '{name}' must hold integer ids")
            card = spec.cardinality
            bad = (v < 0) | (v >= card) if card is not None else v < 0
            if bad.any():
                value = int(v[bad][0])
                what = "item id" if spec.is_item_id else f"'{name}' value"
                raise SessrecError(f"{what} {value} is outside this model's range 1..{(card or 1) - 1}")
