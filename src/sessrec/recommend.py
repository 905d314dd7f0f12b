"""Top-k next-item recommendations from a trained learner: the code path evaluation also uses.

    rec = Recommender.load("runs/xlnet/checkpoint-last")
    recs = rec.recommend([[1004856, 1005115], [12]], k=10, exclude_seen=True)
    recs.ids, recs.scores, recs.unknown

A model trained on data made by ``sessrec prepare`` carries its catalog (:mod:`sessrec.data.catalog`):
sessions and answers are then in the original item ids, and side features come from the catalog.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import math
import numbers
import os
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from sessrec.config import ExperimentConfig
from sessrec.data.catalog import Catalog, Encoded, NoKnownItem, is_number, model_floats, no_known_item
from sessrec.data.loader import Batch, load_sessions
from sessrec.errors import SessrecError
from sessrec.io import atomic_write_bytes, check_output_file, read_parquet
from sessrec.learners import Learner, build_learner
from sessrec.schema import Schema

log = logging.getLogger(__name__)

SessionLike = Sequence[Any] | Mapping[str, Any]
Scorer = Callable[[Batch], torch.Tensor]  # right-padded input features -> [batch, n_items - 1] scores


def sessions_to_batch(sessions: Sequence[SessionLike], item_key: str, max_len: int,
                      float64: Collection[str] = ()) -> Batch:
    """Right-padded tensors from sessions given as item-id lists or ``{feature: values}`` dicts.

    Sessions longer than ``max_len`` keep their **last** ``max_len`` interactions: the most recent
    context is what predicts the next item. Non-integer features are float32, those named in
    ``float64`` float64 (interaction times: float32 rounds epoch seconds to 128 s).
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
        out = torch.zeros(len(rows), max_len, dtype=torch.int64 if is_int else torch.float64 if name in float64 else torch.float32)
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
    key = item_key or next(iter(prefix))
    return top_k(learner.score(prefix), k, (prefix[key] if seen is None else seen) if exclude_seen else None)


def top_k(scores: torch.Tensor, k: int, seen: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-``k`` item ids and scores of ``[B, n_items - 1]`` scores (column j = item j + 1), never one
    of ``seen`` (``[B, *]`` item ids, 0 = padding; a row of zeros excludes nothing).

    The seen items are dropped from the top ``k + len(seen)`` rather than masked in the scores: no
    copy of the ``[B, n_items]`` scores (a third of the time of a batch of 64 over 50,000 items,
    measured). Where fewer than ``k`` items remain, the row ends with -inf scores."""
    scores = scores.float()
    n = scores.shape[1]
    if seen is None or not (seen > 0).any():
        top_scores, top_cols = scores.topk(min(k, n), dim=1)
        return top_cols + 1, top_scores
    seen = seen.to(scores.device)
    top_scores, top_cols = scores.topk(min(k + int((seen > 0).sum(1).max()), n), dim=1)
    ids = top_cols + 1
    hit = (ids.unsqueeze(2) == seen.unsqueeze(1)).any(2)  # padding (0) is never an item id
    order = torch.sort(hit.to(torch.int8), dim=1, stable=True).indices[:, : min(k, n)]  # the others first, in order
    return ids.gather(1, order), top_scores.masked_fill(hit, float("-inf")).gather(1, order)


def rows(ids: torch.Tensor, scores: torch.Tensor, k: int | Sequence[int]) -> tuple[list[list[int]], list[list[float]]]:
    """Top-k tensors as lists, row i cut to ``k[i]`` items and to those not excluded (an excluded
    item scores -inf: with ``exclude_seen`` and k near the catalog size fewer than k may remain); an item scored
    NaN or +inf (a diverged model) is no recommendation either."""
    ks = [k] * len(ids) if isinstance(k, int) else k
    id_rows, score_rows = [], []
    for n, row_ids, row_scores in zip(ks, ids.tolist(), scores.tolist()):
        kept = [(i, s) for i, s in zip(row_ids, row_scores) if math.isfinite(s)][:n]  # NaN (topk puts it first) too
        id_rows.append([i for i, _ in kept])
        score_rows.append([s for _, s in kept])
    return id_rows, score_rows


def encoded_batch(sessions: Sequence[Encoded], item_key: str, max_len: int) -> tuple[Batch, torch.Tensor]:
    """Right-padded ``[N, max_len]`` model inputs of encoded sessions (their last ``max_len`` items),
    and ``[N, longest]`` of all their item ids (what ``exclude_seen`` excludes)."""
    n = len(sessions)
    longest = max(len(s.ids) for s in sessions)
    seen = np.zeros((n, longest), dtype=np.int64)
    arrays = {item_key: np.zeros((n, max_len), dtype=np.int64)}
    for name, values in sessions[0].features.items():
        arrays[name] = np.zeros((n, max_len), dtype=values.dtype)
    for i, s in enumerate(sessions):
        seen[i, : len(s.ids)] = s.ids
        last = len(s.ids) - min(len(s.ids), max_len)
        arrays[item_key][i, : len(s.ids) - last] = s.ids[last:]
        for name, values in s.features.items():
            arrays[name][i, : len(values) - last] = values[last:]
    return {name: torch.from_numpy(a) for name, a in arrays.items()}, torch.from_numpy(seen)


@dataclass
class Recommendations:
    """Top-k items per session, best first: ``ids`` (original ids when the model has a catalog, else
    model ids), ``scores`` (the model's scores), and ``unknown``: per session, the original ids it
    skipped because the catalog does not know them."""

    ids: list[list[Any]]
    scores: list[list[float]]
    unknown: list[list[Any]] = field(default_factory=list)


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


def _flag(value: Any, name: str) -> bool:
    """``value`` as a bool (numpy's too, as pandas rows give it); anything else is an error: ``"no"`` or ``[True]``
    would be read as true."""
    if not isinstance(value, (bool, np.bool_)):
        raise SessrecError(f"{name} must be True or False (got {value!r})")
    return bool(value)


def _whole(value: Any, name: str) -> int:
    """``value`` as an int (numpy's integers too); a bool, a fraction or text is an error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SessrecError(f"{name} must be a whole number (got {value!r})")
    return int(value)


class Recommender:
    """A learner loaded from a checkpoint folder (``RUN_DIR/checkpoint-last``), ready to recommend.

    With a catalog (data made by ``sessrec prepare``), a session is a list of original item ids
    (oldest first) or ``{"items": [...], "timestamps": [...], "features": {name: [...]}}`` (times in
    epoch seconds and per-item feature values, both optional): side features come from the catalog.
    Without one (or with ``internal_ids=True``), sessions are model item ids (1 .. n_items - 1):
    id lists or, for models trained with side information, ``{feature: values}`` dicts with every
    model input feature.
    """

    def __init__(self, learner: Learner, schema: Schema, max_len: int, batch_size: int = 512,
                 catalog: Catalog | None = None):
        self.learner = learner
        self.schema = schema
        self.item_key = schema.item_id.name
        self.max_len = max_len
        self.batch_size = batch_size
        self.catalog = catalog
        if catalog is not None:
            catalog.check_ids(schema.n_items)

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Recommender:
        """Rebuild the learner from ``config.yaml`` and ``schema.pbtxt``, load ``model.safetensors``
        and the catalog when the checkpoint has one."""
        from sessrec.checkpoint import DamagedCheckpoint, model_checkpoint, read_checkpoint

        if not isinstance(path, (str, os.PathLike)):
            raise SessrecError(f"path must be a run or checkpoint folder (got {path!r})")
        path, run_dir = model_checkpoint(Path(path))  # a run folder: its newest checkpoint
        if run_dir is not None:
            log.info("%s is a run folder: loading its newest checkpoint that verifies, %s", run_dir, path.name)
        try:  # a run folder's checkpoint was just verified, picking it
            cfg, schema, meta = read_checkpoint(path, verify=run_dir is None)
        except DamagedCheckpoint as e:
            raise SessrecError(f"{e}; load another checkpoint of the run (an older checkpoint-NNNN, kept with "
                               "--keep-checkpoints N) or train the model again") from None
        return cls.from_checkpoint(path, cfg, schema, meta, device)

    @classmethod
    def from_checkpoint(cls, path: Path, cfg: ExperimentConfig, schema: Schema, meta: dict[str, Any],
                        device: str = "cpu", shown: Path | None = None) -> Recommender:
        """:meth:`load` of a checkpoint already read (and verified) by :func:`sessrec.checkpoint.read_checkpoint`;
        ``shown`` names it in messages where ``path`` is a copy of it (the server loads a copy)."""
        from sessrec.checkpoint import load_learner_state, model_window, rng_state, set_rng_state

        shown = shown or path
        if "in_window" in meta and model_window(meta) == meta["trained_window"]:  # stopped while training
            log.warning("checkpoint %s was saved by a run stopped inside window %d (%s): the model is partly trained "
                        "on that window", shown, meta["in_window"]["window"], meta["in_window"]["where"])
        try:
            cfg = dataclasses.replace(cfg, device=device, quiet=True).validate()  # a copy, the device checked
        except SessrecError as e:
            where = "" if str(e).startswith("device ") else f"checkpoint {shown / 'config.yaml'}: "
            raise SessrecError(f"{where}{e}") from None
        outside = rng_state()  # building a learner seeds the global RNGs; leave the caller's alone
        try:
            learner = build_learner(cfg, schema)
        finally:
            set_rng_state(outside)
        if not meta["learners"].get("model"):
            why = ("it was saved by an earlier sessrec, which saved none for it: run it again with this version"
                   if hasattr(learner, "state_dict") else "it has no state_dict() to save (see sessrec.learners.Learner)")
            raise SessrecError(f"checkpoint {shown} holds no model of model_type '{cfg.model_type}': {why}")
        try:
            learner.load_state_dict(load_learner_state(path, "model", weights_only=True))
        except SessrecError as e:
            raise SessrecError(f"checkpoint {shown}: {e}") from None
        return cls(learner, schema, cfg.session_seq_length_max, cfg.per_device_eval_batch_size, Catalog.load(path))

    @functools.cached_property
    def known_items(self) -> np.ndarray | None:
        """The learner's ``known_items`` (see :class:`sessrec.learners.Learner`), taken once: it is O(catalog) and a
        loaded model does not train further."""
        return getattr(self.learner, "known_items", None)

    @property
    def input_names(self) -> list[str]:
        """The features a recommendation needs: those the learner's ``score`` reads."""
        return list(getattr(self.learner, "scoring_names", self.learner.input_names))

    @property
    def unscored(self) -> set[str]:
        """Features the learner was trained with but does not score with (a baseline's times): a session may still
        carry them, as sessions did before scoring from fewer features; they are ignored."""
        return set(self.learner.input_names) - set(self.input_names)

    @property
    def side_features(self) -> list[str]:
        """Input features besides the item id (empty for a model trained on item ids only)."""
        return [n for n in self.input_names if n != self.item_key]

    def recommend(self, sessions: Sequence[SessionLike], k: int = 10, exclude_seen: bool = False, *,
                  strict: bool = False, internal_ids: bool = False) -> Recommendations:
        """Top-``k`` items and scores for the item following each session (fewer when ``exclude_seen``
        leaves fewer). With a catalog, unknown original ids are skipped (listed in ``unknown``; an
        error with ``strict``)."""
        k = _whole(k, "k")
        exclude_seen, strict, internal_ids = (_flag(v, n) for v, n in ((exclude_seen, "exclude_seen"), (strict, "strict"),
                                                                       (internal_ids, "internal_ids")))
        if isinstance(sessions, (str, bytes, Mapping)):
            raise SessrecError("give a list of sessions ([[5, 10, 20]] or [{...}]), not one session")
        sessions = list(sessions)  # a generator too
        if self.catalog is not None and not internal_ids:
            encoded = [self.encode(s, strict, where=f"session {i}: ") for i, s in enumerate(sessions)]
            if not encoded:
                raise SessrecError("no sessions to recommend for")
            out = Recommendations([], [], [e.unknown for e in encoded])
            for i in range(0, len(encoded), self.batch_size):
                ids, scores = rows(*self.recommend_encoded(encoded[i:i + self.batch_size], k, exclude_seen), k)
                out.ids += [self.catalog.decode(row) for row in ids]
                out.scores += scores
            return out
        sessions = [self._model_id_session(s, i) for i, s in enumerate(sessions)]
        if self.side_features and any(not isinstance(s, Mapping) for s in sessions):
            raise SessrecError(f"this model reads more than item ids ({', '.join(self.side_features)}): "
                               f"give each session as a dict with '{self.item_key}' and those features, not item ids alone")
        batch = sessions_to_batch(sessions, self.item_key, self.max_len,
                                  float64=[n for n in self.input_names if self.schema[n].is_time])
        seen = None
        if exclude_seen:  # every item of the session, also those before the last max_len the model reads
            items = [list(s[self.item_key]) if isinstance(s, Mapping) else list(s) for s in sessions]
            seen = sessions_to_batch(items, self.item_key, max(map(len, items)))[self.item_key]
        ids, scores = rows(*self.recommend_batch(batch, k, exclude_seen, seen), k)
        return Recommendations(ids, scores, [[] for _ in sessions])

    def _model_id_session(self, session: Any, i: int) -> list | dict:
        """A session of model ids (a list, or a dict of feature lists) as lists, checked: ids are whole numbers from 1
        (0 is padding: it would change the answer unseen), a dict holds only the model's features, and its continuous
        features are finite."""
        if isinstance(session, Mapping):
            extra = sorted(set(session) - set(self.input_names) - self.unscored)
            if extra:
                hint = ("with internal_ids=True a session holds model values, no original ids" if self.catalog is not None
                        else "sessions of original ids need the run's catalog")
                raise SessrecError(f"session {i}: {', '.join(map(repr, extra))} is not a feature of this model (it reads "
                                   f"{', '.join(self.input_names)}; {hint})")
            out = {n: _values(v, f"session {i}: ", n) for n, v in session.items() if n not in self.unscored}
            for n, values in out.items():
                if self.schema[n].is_continuous and not self.schema[n].is_time:
                    model_floats(n, values)
            ids = out.get(self.item_key, [])
        else:
            out = ids = _values(session, f"session {i}: ", self.item_key)
        self._check_model_ids(ids, f"session {i}: ")
        return out

    def _check_model_ids(self, ids: Sequence[Any], where: str) -> None:
        """Model item ids are whole numbers 1 .. n_items - 1 (0 is padding: it would change the answer unseen);
        checked before a tensor is made of them (a 20-digit id overflowed there)."""
        bad = [v for v in ids if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1]
        if bad:
            raise SessrecError(f"{where}item id {bad[0]!r} is not a model id (whole numbers from 1; 0 is padding)")
        beyond = [v for v in ids if v >= self.schema.n_items]
        if beyond:
            raise SessrecError(f"{where}item id {beyond[0]} is outside this model's range 1..{self.schema.n_items - 1}")


    def encode(self, session: SessionLike, strict: bool = False, now: float | None = None, where: str = "") -> Encoded:
        """A session (item ids, or a dict with ``items`` and optionally ``timestamps`` and ``features``)
        as model ids and features: by the catalog from original ids, else from model ids (then
        ``features`` must hold every side feature in model values)."""
        if isinstance(session, Mapping):
            extra = set(session) - {"items", "timestamps", "features"}
            if extra or "items" not in session:
                raise SessrecError(f"{where}a session is a list of item ids or a dict with 'items' and optionally "
                                   f"'timestamps' and 'features' (got keys {', '.join(map(str, session))})")
            items, times, feats = session["items"], session.get("timestamps"), session.get("features")
        else:
            items, times, feats = session, None, None
        items = _values(items, where, "items")
        if times is not None:  # a generator or an array too, as for items
            times = _values(times, where, "timestamps")
        if feats is not None:
            if not isinstance(feats, Mapping):
                raise SessrecError(f"{where}features must map feature names to lists of values (got {feats!r})")
            feats = {name: _values(values, where, f"features.{name}") for name, values in feats.items()}
        try:
            if self.catalog is not None:
                return self.catalog.encode(items, self.input_names, times, feats, strict, now, self.known_items)
            return self._encode_model_ids(items, times, feats or {})
        except NoKnownItem as e:
            raise NoKnownItem(f"{where}{e}") from None
        except SessrecError as e:
            raise SessrecError(f"{where}{e}") from None

    def _encode_model_ids(self, items: list[Any], times: Any, features: Mapping[str, Any]) -> Encoded:
        """A session of model ids, with every side feature in ``features`` (model values): what a model
        without a catalog needs. An id outside the model's range is an error, as in :meth:`recommend`."""
        if times is not None:
            raise SessrecError("timestamps need a catalog to rebuild features from (this model has none): "
                               "send the model's feature values in 'features'")
        missing = [n for n in self.side_features if n not in features]
        extra = [n for n in features if n not in self.side_features and n not in self.unscored]
        if missing or extra:
            raise SessrecError(f"this model has no catalog: 'features' must hold exactly its side features "
                               f"({', '.join(self.side_features) or 'none'}) in model values")
        if not items:
            raise no_known_item([])
        self._check_model_ids(items, "")
        out = {}
        for name in self.side_features:
            values = features[name]
            if len(values) != len(items):
                raise SessrecError(f"features.{name} has {len(values)} values for {len(items)} items")
            spec = self.schema[name]
            if any(not is_number(v) or not np.isfinite(v) for v in values):
                raise SessrecError(f"features.{name} must hold finite numbers")
            if spec.is_categorical:
                card = spec.cardinality or 0
                if any(not isinstance(v, numbers.Integral) or not 0 <= v < card for v in values):
                    raise SessrecError(f"features.{name} must hold ids 0..{card - 1}")
            out[name] = (np.asarray(values, dtype=np.int64) if spec.is_categorical else np.asarray(values, dtype=np.float64)
                         if spec.is_time else model_floats(name, values))
        return Encoded(np.asarray(items, dtype=np.int64), out, [])

    def _check_k(self, k: int) -> None:
        """``k`` between 1 and the number of items the model can recommend (as the server says)."""
        limit = self.schema.n_items - 1
        if not 1 <= k <= limit:
            raise SessrecError(f"k must be between 1 and {limit} (the items of the catalog), got {k}")

    def recommend_encoded(self, sessions: Sequence[Encoded], k: int | Sequence[int] = 10,
                          exclude_seen: bool | Sequence[bool] = False,
                          scorer: Scorer | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``max(k)`` model ids and scores ``([N, max k], [N, max k])`` of encoded sessions in one
        batch; ``k`` and ``exclude_seen`` may differ per session (then read row i's first ``k[i]``).
        ``scorer``: what turns the input tensors into scores (default: the learner)."""
        ks = [k] * len(sessions) if isinstance(k, int) else list(k)
        excl = [exclude_seen] * len(sessions) if isinstance(exclude_seen, bool) else list(exclude_seen)
        self._check_k(min(ks))
        self._check_k(max(ks))
        batch, seen = encoded_batch(sessions, self.item_key, self.max_len)
        if any(excl):
            seen = seen * torch.tensor(excl, dtype=torch.int64).view(-1, 1)  # rows that keep seen items: no mask
        with torch.no_grad():
            scores = (scorer or self.learner.score)({n: batch[n] for n in self.input_names})
        return top_k(scores, max(ks), seen if any(excl) else None)

    def recommend_batch(self, batch: Batch, k: int = 10, exclude_seen: bool = False,
                        seen: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` model ids and scores ``([N, k], [N, k])`` for right-padded ``[N, L]`` tensors keyed
        by feature name (model ids), in chunks. ``seen``: the sessions' item ids ``[N, *]`` that
        ``exclude_seen`` excludes, when ``batch`` holds only the last items of longer sessions
        (default: ``batch``'s items)."""
        self._check_k(k)
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
                       exclude_seen: bool = False, strict: bool = False, internal_ids: bool = False,
                       overwrite: bool = False) -> int:
        """Sessions of a parquet file (one row per session) → a parquet file with the input's non-list
        columns (e.g. a session id) plus ``item_ids`` and ``scores`` lists; returns the row count.

        With a catalog the input has an ``items`` list column of original ids, optionally
        ``timestamps`` and list columns of side features (see :meth:`encode`), and the output an
        ``unknown`` count per row; otherwise (or with ``internal_ids``) list columns of the model's
        input features in model ids. ``output_path`` must not exist unless ``overwrite``, and may never be
        the input nor lie inside a checkpoint or prepared data folder (:func:`sessrec.io.check_output_file`)."""
        k = _whole(k, "k")
        exclude_seen, strict, internal_ids, overwrite = (
            _flag(v, n) for v, n in ((exclude_seen, "exclude_seen"), (strict, "strict"), (internal_ids, "internal_ids"),
                                     (overwrite, "overwrite")))
        input_path = Path(input_path)
        check_output_file(output_path, "--output", [("--input", input_path)], overwrite)
        try:
            table = read_parquet(input_path)
        except (OSError, pa.ArrowInvalid) as e:
            raise SessrecError(f"cannot read parquet file {input_path}: {e}") from None
        with_catalog = self.catalog is not None and not internal_ids
        keep = [c for c in table.column_names if not pa.types.is_list(table.schema.field(c).type)
                and not pa.types.is_large_list(table.schema.field(c).type)]  # list columns are the sessions
        answers = ["item_ids", "scores", *(["unknown"] if with_catalog else [])]
        taken = [c for c in table.column_names if c in answers]
        if taken:  # the output would hold two columns of that name (no parquet reader accepts it), or drop the input's
            raise SessrecError(f"{input_path}: column {taken[0]!r} has the name of an answer column the output adds "
                               f"({', '.join(answers)}); rename or drop it (an earlier output's answers, for instance)")
        if with_catalog:
            ids, scores, unknown = self._recommend_table(table, input_path, k, exclude_seen, strict)
        else:
            ids, scores, unknown = self._recommend_table_internal(table, input_path, k, exclude_seen)
        out = table.select(keep)
        id_type = pa.int64() if self.catalog is None or internal_ids or self.catalog.numeric_ids else pa.string()
        out = out.append_column("item_ids", pa.array(ids, pa.list_(id_type)))
        out = out.append_column("scores", pa.array(scores, pa.list_(pa.float32())))
        if unknown is not None:
            out = out.append_column("unknown", pa.array(unknown, pa.int64()))
        buf = io.BytesIO()
        pq.write_table(out, buf)
        atomic_write_bytes(output_path, buf.getvalue())
        return out.num_rows

    def _recommend_table(self, table: pa.Table, path: Path, k: int, exclude_seen: bool,
                         strict: bool) -> tuple[list, list, list[int]]:
        if "items" not in table.column_names:
            raise SessrecError(f"{path}: no 'items' column; this model has a catalog, so each row is a session of "
                               "original item ids in a list column 'items' (or pass --internal-ids for model ids "
                               f"in columns {', '.join(self.input_names)})")
        columns = {c: table.column(c).to_pylist() for c in table.column_names}
        sent = [n for n in self.side_features if n in columns]
        ids: list = []
        scores: list = []
        unknown: list[int] = []
        empty = 0
        for start in range(0, table.num_rows, self.batch_size):
            encoded: list[Encoded | None] = []
            for r in range(start, min(start + self.batch_size, table.num_rows)):
                session = {"items": columns["items"][r] or [],
                           "features": {n: columns[n][r] for n in sent}}
                if "timestamps" in columns:
                    session["timestamps"] = columns["timestamps"][r]
                try:
                    encoded.append(self.encode(session, strict, where=f"{path}, row {r}: "))
                except NoKnownItem:  # one such session does not stop a file: its row is empty (strict refuses it)
                    if strict:
                        raise
                    encoded.append(None)
            scored = [e for e in encoded if e is not None]
            answers = iter(zip(*rows(*self.recommend_encoded(scored, k, exclude_seen), k))) if scored else iter(())
            for e, r in zip(encoded, range(start, start + len(encoded))):
                row_ids, row_scores = next(answers) if e is not None else ([], [])
                ids.append(self.catalog.decode(row_ids))
                scores.append(row_scores)
                unknown.append(len(e.unknown) if e is not None else len(columns["items"][r] or []))
                empty += e is None
        if empty:
            log.warning("%s: %d of %d sessions have no item known to the model: their rows are empty (--strict refuses "
                        "them)", path, empty, table.num_rows)
        return ids, scores, unknown

    def _recommend_table_internal(self, table: pa.Table, path: Path, k: int, exclude_seen: bool) -> tuple[list, list, None]:
        missing = [n for n in self.input_names if n not in table.column_names]
        if missing:
            raise SessrecError(f"{path}: column(s) {', '.join(missing)} missing (the model reads {', '.join(self.input_names)})")
        kind = table.schema.field(self.item_key).type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
            raise SessrecError(f"{path}: column '{self.item_key}' must be a list column (one list per session), found {kind}")
        longest = pc.max(pc.list_value_length(table.column(self.item_key))).as_py() or 1
        specs = [self.schema[n] for n in self.input_names]
        data = load_sessions(path, self.schema, max(longest, self.max_len), specs,
                             beyond=f"the model knows item ids 1..{self.schema.n_items - 1} only")
        ids, scores = rows(*self.recommend_batch(keep_last(data.features, self.item_key, self.max_len), k, exclude_seen,
                                                 data.items), k)
        return ids, scores, None

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


def _values(values: Any, where: str, name: str) -> list:
    """A session's list of values (item ids, a feature's values); a scalar or text is one line naming ``where``."""
    if isinstance(values, (str, bytes, numbers.Number)) or values is None:
        raise SessrecError(f"{where}{name} must be a list of values (got {values!r}); a list of sessions is "
                           "[[5, 10, 20], ...], not [5, 10, 20]")
    try:
        return list(values)
    except TypeError:
        raise SessrecError(f"{where}{name} must be a list of values (got {values!r})") from None
