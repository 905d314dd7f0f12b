"""Parquet list columns → right-padded tensors, once per window; batches are slices.

One row of a window file is one session; every per-interaction feature is a list column in
chronological order. Each list is cut to its first ``max_len`` values and padded with 0 on the
right. All checks happen here, once, with errors naming the file, column and row.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from sessrec.errors import SessrecError
from sessrec.io import read_parquet
from sessrec.schema import FeatureSpec, Schema

log = logging.getLogger(__name__)

Batch = dict[str, torch.Tensor]


@dataclass
class SessionTensors:
    """All sessions of one file (or several), as ``[n_sessions, max_len]`` tensors keyed by feature name."""

    features: Batch
    item_key: str
    source: str = ""

    def __len__(self) -> int:
        return int(self.features[self.item_key].shape[0])

    @property
    def items(self) -> torch.Tensor:
        return self.features[self.item_key]

    @property
    def lengths(self) -> torch.Tensor:
        return (self.items != 0).sum(dim=1)

    def subset(self, index: torch.Tensor) -> SessionTensors:
        return SessionTensors({k: v[index] for k, v in self.features.items()}, self.item_key, self.source)

    def min_length(self, n: int) -> SessionTensors:
        """Only sessions with at least ``n`` items (evaluation needs a prefix and a target)."""
        keep = self.lengths >= n
        return self if bool(keep.all()) else self.subset(keep.nonzero().squeeze(1))

    @staticmethod
    def concat(parts: Sequence[SessionTensors]) -> SessionTensors:
        first = parts[0]
        feats = {k: torch.cat([p.features[k] for p in parts]) for k in first.features}
        return SessionTensors(feats, first.item_key, " + ".join(p.source for p in parts))


def load_sessions(path: str | Path, schema: Schema, max_len: int, features: Sequence[FeatureSpec] | None = None,
                  window: int | None = None, beyond: str = "") -> SessionTensors:
    """Read ``features`` (default: all schema features) of one parquet file into padded tensors. ``beyond``: what to
    do about an item id past the schema's (default: data read for training, whose schema is to fix)."""
    path, where, feats = _open(path, schema, features, window)
    table = _read(path, [f.name for f in feats], where)
    item = schema.item_id
    offsets, values = _checked_column(table, item, where, schema, beyond=beyond)
    lengths = np.diff(offsets)
    out: Batch = {item.name: _pad(values, offsets, max_len)}
    for f in feats:
        if f is not item:
            f_offsets, f_values = _checked_column(table, f, where, schema, lengths)
            out[f.name] = _pad(f_values, f_offsets, max_len)
    return SessionTensors(out, item.name, str(path))


def check_sessions(path: str | Path, schema: Schema, features: Sequence[FeatureSpec] | None = None,
                   window: int | None = None) -> int:
    """Every check :func:`load_sessions` makes, without building tensors, so that bad data in any
    window stops a run before it writes or trains anything. One column is read at a time (memory:
    one column plus the sessions' lengths). Returns the number of sessions."""
    path, where, feats = _open(path, schema, features, window)
    item = schema.item_id
    lengths = None
    for f in [item] + [f for f in feats if f is not item]:
        offsets, _ = _checked_column(_read(path, [f.name], where), f, where, schema, lengths)
        if lengths is None:
            lengths = np.diff(offsets)
    return int(lengths.size)


def _open(path: str | Path, schema: Schema, features: Sequence[FeatureSpec] | None,
          window: int | None) -> tuple[Path, str, list[FeatureSpec]]:
    """(path, how errors name the file, the features to read with the item id first) once the file's
    footer says it has sessions and every column asked for."""
    path = Path(path)
    where = f"{path}" + (f" (window {window})" if window is not None else "")
    feats = list(features) if features is not None else list(schema.features)
    if schema.item_id not in feats:
        feats.insert(0, schema.item_id)
    try:
        with pq.ParquetFile(path) as f:
            available, n_rows = set(f.schema_arrow.names), f.metadata.num_rows
    except (OSError, pa.ArrowInvalid) as e:
        raise SessrecError(f"cannot read parquet file {where}: {_one_line(e)}") from None
    missing = [f.name for f in feats if f.name not in available]
    if missing:
        raise SessrecError(f"{where}: column(s) {', '.join(missing)} of the schema are missing from the parquet file")
    if n_rows == 0:
        raise SessrecError(f"{where}: the file has no sessions")
    return path, where, feats


def _read(path: Path, columns: list[str], where: str) -> pa.Table:
    try:
        return read_parquet(path, columns)
    except (OSError, pa.ArrowInvalid) as e:
        raise SessrecError(f"cannot read parquet file {where}: {_one_line(e)}") from None


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())  # pyarrow's messages can span lines


def _checked_column(table: pa.Table, f: FeatureSpec, where: str, schema: Schema,
                    item_lengths: np.ndarray | None = None, beyond: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(offsets, flat values) of one list column once it passed every check: the item id's (no
    ``item_lengths``), or another feature's, whose lists must be as long as the item id's."""
    offsets, values = _list_column(table, f, where)
    if item_lengths is None:
        return offsets, _check_items(values, np.diff(offsets), f, where, schema.n_items, offsets, beyond)
    lengths = np.diff(offsets)
    bad = np.nonzero(lengths != item_lengths)[0]
    if bad.size:
        r = int(bad[0])
        raise SessrecError(f"{where}: row {r}: list column '{f.name}' has {lengths[r]} values but '{schema.item_id.name}' has {item_lengths[r]}")
    return offsets, _check_values(values, f, where, offsets)


def _list_column(table: pa.Table, f: FeatureSpec, where: str) -> tuple[np.ndarray, np.ndarray]:
    col = table.column(f.name)
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)):
        raise SessrecError(f"{where}: column '{f.name}' must be a list column (one list per session), found {col.type}")
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if arr.null_count:
        r = int(np.nonzero(~arr.is_valid().to_numpy(zero_copy_only=False))[0][0])
        raise SessrecError(f"{where}: row {r}: column '{f.name}' is null")
    offsets = _numpy(arr.offsets).astype(np.int64)
    flat = arr.values.slice(int(offsets[0]), int(offsets[-1] - offsets[0]))
    offsets = offsets - offsets[0]
    if flat.null_count:
        pos = int(np.nonzero(~flat.is_valid().to_numpy(zero_copy_only=False))[0][0])
        r = int(np.searchsorted(offsets, pos, side="right") - 1)
        raise SessrecError(f"{where}: row {r}: column '{f.name}' contains a null value")
    vt = flat.type
    if f.dtype == "int" and not pa.types.is_integer(vt):
        raise SessrecError(f"{where}: column '{f.name}' must hold integers (schema type INT), found {vt}")
    if f.dtype == "float" and not (pa.types.is_floating(vt) or pa.types.is_integer(vt)):
        raise SessrecError(f"{where}: column '{f.name}' must hold numbers (schema type FLOAT), found {vt}")
    return offsets, _numpy(flat)


def _numpy(arr: pa.Array) -> np.ndarray:
    """A null-free numeric arrow array as a numpy view of its buffer. Not ``arr.to_numpy()``:
    pyarrow's conversion imports pandas on first use (+40 MB resident memory, measured)."""
    dtype = np.dtype(arr.type.to_pandas_dtype())
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


def _row_of(offsets: np.ndarray, flat_pos: int) -> int:
    return int(np.searchsorted(offsets, flat_pos, side="right") - 1)


def _check_items(values: np.ndarray, lengths: np.ndarray, item: FeatureSpec, where: str, n_items: int,
                 offsets: np.ndarray, beyond: str = "") -> np.ndarray:
    empty = np.nonzero(lengths == 0)[0]
    if empty.size:
        raise SessrecError(f"{where}: row {int(empty[0])}: session has no items in '{item.name}'")
    if values.size:
        lo, hi = int(values.min()), int(values.max())
        if lo < 1:
            pos = int(np.argmin(values))
            what = "negative" if lo < 0 else "reserved for padding"
            raise SessrecError(f"{where}: row {_row_of(offsets, pos)}: item id {lo} in '{item.name}' is {what}")
        if hi >= n_items:
            pos = int(np.argmax(values))
            raise SessrecError(
                f"{where}: row {_row_of(offsets, pos)}: item id {hi} in '{item.name}' is >= the schema cardinality {n_items} "
                f"(int_domain max {n_items - 1}); "
                + (beyond or "fix the schema's int_domain max (a YAML feature config's cardinality)")
            )
    return values.astype(np.int64, copy=False)  # after the checks: a uint64 id past int64 read as negative


def _check_values(values: np.ndarray, f: FeatureSpec, where: str, offsets: np.ndarray) -> np.ndarray:
    if f.dtype == "int":
        values = values.astype(np.int64, copy=False)
        card = f.cardinality
        if f.is_categorical and values.size:
            if values.min() < 0:
                pos = int(np.argmin(values))
                raise SessrecError(f"{where}: row {_row_of(offsets, pos)}: categorical feature '{f.name}' has a negative value {int(values[pos])}")
            if card is not None and values.max() >= card:
                pos = int(np.argmax(values))
                raise SessrecError(
                    f"{where}: row {_row_of(offsets, pos)}: categorical feature '{f.name}' has value {int(values[pos])} >= its cardinality {card}"
                )
        return values
    # timestamps keep float64: float32 would round epoch seconds to minutes
    values = values.astype(np.float64 if f.is_time else np.float32, copy=False)
    if (f.is_continuous or f.is_time) and values.size:
        finite = np.isfinite(values)
        if not finite.all():  # a NaN time made the kNN baselines' time weights NaN: every score 0, without a word
            pos = int(np.nonzero(~finite)[0][0])
            what = "time feature" if f.is_time else "continuous feature"
            raise SessrecError(
                f"{where}: row {_row_of(offsets, pos)}: {what} '{f.name}' has a non-finite value ({values[pos]}); "
                "fill or drop NaN/inf values before training"
            )
    return values


def _pad(values: np.ndarray, offsets: np.ndarray, max_len: int) -> torch.Tensor:
    """Right-pad flat list values into ``[n_rows, max_len]``, keeping the first ``max_len`` of each row."""
    lengths = np.diff(offsets)
    n = lengths.size
    out = np.zeros((n, max_len), dtype=values.dtype)
    rows = np.repeat(np.arange(n), lengths)
    pos = np.arange(values.size) - np.repeat(offsets[:-1], lengths)
    keep = pos < max_len
    out[rows[keep], pos[keep]] = values[keep]
    return torch.from_numpy(out)


def iterate_batches(data: SessionTensors, batch_size: int, drop_last: bool = False, order: torch.Tensor | None = None,
                    start: int = 0, part: tuple[int, int] = (0, 1)) -> Iterator[Batch]:
    """Yield batches as slices of the window tensors, in ``order`` (a permutation of the sessions)
    when given, from batch ``start`` on (a training epoch continued after a stop).

    With ``part=(r, n)`` only the ``r``-th of ``n`` contiguous, near-equal parts of each batch (one
    process's share of a batch split among ``n``); a last batch of fewer than ``n`` sessions,
    which could not give every part one, is left out (see :func:`n_batches`)."""
    r, n_parts = part
    n = len(data)
    for b in range(start, n_batches(n, batch_size, drop_last, n_parts)):
        lo, m = b * batch_size, min(batch_size, n - b * batch_size)
        sl = slice(lo + r * m // n_parts, lo + (r + 1) * m // n_parts)
        if order is None:
            yield {k: v[sl] for k, v in data.features.items()}
        else:
            idx = order[sl]
            yield {k: v[idx] for k, v in data.features.items()}


def n_batches(n: int, batch_size: int, drop_last: bool, min_last: int = 1) -> int:
    """Batches of ``n`` sessions; a last incomplete one counts unless ``drop_last`` or it has fewer than ``min_last``."""
    full, rest = divmod(n, batch_size)
    return full + int(not drop_last and rest >= max(1, min_last))


def split_last_item(batch: Batch, item_key: str) -> tuple[Batch, torch.Tensor]:
    """(the sessions without their last item, the last item ids). Sessions need >= 2 items."""
    items = batch[item_key]
    last = (items != 0).sum(dim=1) - 1
    rows = torch.arange(items.shape[0])
    targets = items[rows, last]
    prefix = {}
    for k, v in batch.items():
        v = v.clone()
        v[rows, last] = 0
        prefix[k] = v
    return prefix, targets
