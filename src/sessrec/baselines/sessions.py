"""Padded session tensors as the non-neural baselines read them: items, positions, times.

The baselines of the paper read the item id and the session timestamps. Here the timestamps come
from the schema's ``time``-tagged feature when there is one (it is then one of the learner's
``input_names``); as in the original baselines script they are converted to seconds, the unit
being guessed from the magnitude (nanoseconds >= 1e17, microseconds >= 1e14, milliseconds >= 1e11).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from sessrec.schema import FeatureSpec, Schema

log = logging.getLogger(__name__)

# (smallest magnitude, divisor to seconds): ns, us, ms
_UNITS = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))


def time_feature(schema: Schema) -> FeatureSpec | None:
    """The feature holding interaction timestamps (the first ``time``-tagged one), if any."""
    times = [f for f in schema.features if f.is_time]
    if len(times) > 1:
        log.info("several time features (%s): the baselines use %s", ", ".join(f.name for f in times), times[0].name)
    return times[0] if times else None


def seconds_divisor(values: np.ndarray) -> float:
    """Divisor that turns these timestamps into seconds, guessed from their magnitude."""
    big = float(np.abs(values).max()) if values.size else 0.0
    return next((div for low, div in _UNITS if big >= low), 1.0)


def last_values(padded: torch.Tensor, lengths: np.ndarray) -> np.ndarray:
    """Value at the last real position of each row (float64), e.g. the time of a session's last click."""
    values = padded.numpy() if isinstance(padded, torch.Tensor) else padded
    rows = np.arange(values.shape[0])
    return values[rows, np.maximum(lengths - 1, 0)].astype(np.float64)


@dataclass
class Encoded:
    """The distinct (row, item) pairs of padded sessions, sorted by row then item.

    ``last_pos`` is the 1-based position of the item's last occurrence in the row (repeats
    counted, as the original algorithms count them), ``count`` its number of occurrences,
    ``length`` the number of items of each row, repeats included.
    """

    n_rows: int
    row: np.ndarray
    item: np.ndarray
    last_pos: np.ndarray
    count: np.ndarray
    length: np.ndarray

    @property
    def indptr(self) -> np.ndarray:
        return np.concatenate(([0], np.cumsum(np.bincount(self.row, minlength=self.n_rows))))

    @property
    def n_unique(self) -> np.ndarray:
        return np.bincount(self.row, minlength=self.n_rows)


def encode(items: torch.Tensor | np.ndarray, n_items: int) -> Encoded:
    """Distinct items of each right-padded row (0 = padding) with their last position and count."""
    x = items.numpy() if isinstance(items, torch.Tensor) else np.asarray(items)
    rows, cols = np.nonzero(x)
    keys = rows.astype(np.int64) * n_items + x[rows, cols]
    order = np.argsort(keys, kind="stable")  # stable: positions stay increasing within a key
    keys = keys[order]
    new = np.ones(keys.size, dtype=bool)
    new[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], keys.size)
    uniq = keys[starts]
    return Encoded(
        n_rows=x.shape[0],
        row=(uniq // n_items).astype(np.int64),
        item=(uniq % n_items).astype(np.int64),
        last_pos=(cols[order][ends - 1] + 1).astype(np.int64),
        count=(ends - starts).astype(np.int64),
        length=(x != 0).sum(axis=1).astype(np.int64),
    )
