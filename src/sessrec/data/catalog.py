"""The catalog of a prepared data set: original ids ↔ model ids, and each item's latest side features.

``sessrec prepare`` writes it next to the windows (:mod:`sessrec.datasets.catalog`); a run copies it into its folder and into every
checkpoint, so that a model folder alone answers in the ids of the raw data (``sessrec recommend``,
``sessrec serve``):

* ``catalog.json``: the files below, and how each model input feature is rebuilt at serving time
* ``catalog-map-<feature>.parquet``: ``raw`` (the original value), ``id`` (the model's id) and
  ``count`` (interactions in the prepared windows), for the item id and every categorical feature;
  values encoded as "unknown" (empty, rare) have no row: they map to the feature's ``unknown_id``
* ``catalog-items.parquet``: one row per item id: ``id``, ``raw``, ``count``, ``first_seen`` and
  ``last_seen`` (epoch seconds), and every side feature's value at the item's latest interaction

At serving time a session is its items' original ids, optionally with the interactions' times and
per-interaction feature values. Features with a rebuild rule (hour and weekday sin/cos, item age)
are computed from the times as ``sessrec prepare`` computed them; the others come from the request
when it sends them, else from the item table (see README "Serving").
"""

from __future__ import annotations

import decimal
import json
import math
import numbers
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sessrec.errors import SessrecError, listed

FORMAT = 1
META = "catalog.json"
ITEMS = "catalog-items.parquet"
ITEM_COLUMNS = ("id", "raw", "count", "first_seen", "last_seen")


def map_file(feature: str) -> str:
    return "catalog-map-" + re.sub(r"[^A-Za-z0-9_.-]", "_", feature) + ".parquet"


def catalog_files(folder: str | Path) -> list[str]:
    """Names of the catalog's files in ``folder`` (``catalog.json`` last), or ``[]`` when it has none."""
    folder = Path(folder)
    if not (folder / META).is_file():
        return []
    meta = _read_meta(folder)
    return [*(m["file"] for m in meta["maps"].values()), meta["items"], META]


# ---- rebuild rules: features computed from the interactions' times -------------------------------
def time_rule(part: str, fn: str, timezone: str, fractional_hour: bool) -> dict:
    """``sin``/``cos`` of the hour of day (period 24; ``hour + minute / 60`` when ``fractional_hour``)
    or of the weekday (Monday = 1, period 7) in ``timezone``, as ``sessrec.datasets.features.cyclic``."""
    return {"from": "time", "part": part, "fn": fn, "timezone": timezone, "fractional_hour": fractional_hour}


def age_rule(unit_ms: float, whole_units: bool, mean: float, std: float) -> dict:
    """``(log1p(max(0, time - first_seen) / unit) - mean) / std``: the item's age (in whole units when
    ``whole_units``), standardised."""
    # 12 significant digits: the statistics are sums in an order that depends on prepare's buckets, so their
    # last bits vary between runs; the features are float32, so the rounding never shows in them
    return {"from": "age", "unit_ms": unit_ms, "whole_units": whole_units, "mean": float(f"{mean:.12g}"),
            "std": float(f"{std:.12g}")}


def rebuild(rule: Mapping[str, Any], times_s: np.ndarray, first_seen_s: np.ndarray) -> np.ndarray:
    """A rule's float32 values for interactions at ``times_s`` (epoch seconds) of items first seen at ``first_seen_s``."""
    if rule["from"] == "time":
        zone = ZoneInfo(rule["timezone"])
        values = []
        for t in times_s.tolist():
            local = datetime.fromtimestamp(math.floor(t * 1000) / 1000, zone)  # whole milliseconds, as prepared
            if rule["part"] == "hour":
                values.append(local.hour + (local.minute / 60.0 if rule["fractional_hour"] else 0.0))
            else:
                values.append(local.isoweekday())
        period = 24 if rule["part"] == "hour" else 7
        angle = (np.asarray(values, dtype=np.float64) + 1e-8) / period * (2 * math.pi)
        return (np.sin(angle) if rule["fn"] == "sin" else np.cos(angle)).astype(np.float32)
    if rule["from"] == "age":
        age = (times_s * 1000.0 - first_seen_s * 1000.0) / rule["unit_ms"]
        age = np.clip(np.floor(age) if rule["whole_units"] else age, 0.0, None)
        if not rule["std"] > 0:  # as prepare standardises a constant (sessrec.datasets.features.standardize)
            return np.zeros(len(age), dtype=np.float32)
        return ((np.log1p(age) - rule["mean"]) / rule["std"]).astype(np.float32)
    raise SessrecError(f"unknown rebuild rule {rule!r} in {META}")


# ---- reading (recommend, serve) --------------------------------------------------------------------
def _read_meta(folder: Path) -> dict:
    try:
        meta = json.loads((folder / META).read_text())
        if meta.get("format", 0) > FORMAT:
            raise SessrecError(f"{folder / META} was written by a newer sessrec (format {meta['format']})")
        meta["maps"], meta["items"], meta["item"]  # noqa: B018 (the keys every reader needs)
        return meta
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SessrecError(f"cannot read the catalog {folder / META}: {e}") from None


_CANONICAL_INT = re.compile(r"-?[1-9][0-9]*|0")  # the text Python's str() gives an int (ASCII digits only)


def int_of_text(text: str) -> int | None:
    """The integer an id's text stands for: only the text Python writes for it (``42``, not ``042``, ``+42``,
    ``4_2`` or other scripts' digits); None for other text."""
    if not _CANONICAL_INT.fullmatch(text):
        return None
    try:
        return int(text)
    except ValueError:  # beyond Python's limit on the digits of a text integer
        return None


@dataclass
class IdMap:
    """Original values ↔ ids of one feature."""

    name: str
    to_id: dict[Any, int]
    raw: list[Any]  # by id; None where no original value maps to the id
    count: np.ndarray  # by id
    unknown_id: int | None
    numeric: bool  # the original values are integers

    def lookup(self, value: Any) -> int | None:
        """The id of an original value, or None when unknown. Values are matched exactly; integers and their
        decimal text are one value (``"42"`` and ``42``), but only the text ``str(42)`` is 42: ``"042"``,
        ``"+42"``, ``"4_2"``, ``" 42"`` or other scripts' digits are not. A whole float (``42.0``, as pandas writes
        an integer column with a missing value) is its integer, as ``sessrec prepare`` reads it. A value that is
        not text, a number or None (a list, a dict) is an error, not an unknown value."""
        if value is not None and not isinstance(value, (str, bytes, numbers.Number)):
            raise SessrecError(f"{value!r} is not an original value (text or a number)")
        if self.numeric:
            if whole_float(value):
                if abs(value) >= 2**53:  # it may stand for another id: refused, not an unknown value nobody sent
                    raise SessrecError(float_beyond_ids(value))
                value = int(value)
            if isinstance(value, str):
                value = int_of_text(value)
                if value is None:
                    return None
            elif not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                return None
            else:
                value = int(value)
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            value = str(value)
        elif whole_float(value) and abs(value) < 2**53:  # 12.0 is 12 here too: the text "12"
            value = str(int(value))
        return self.to_id.get(value)

    def written_otherwise(self, values: Iterable[Any]) -> str:
        """A hint for unknown values of an integer catalog: the first text that spells one of its ids in another way
        (``'42.0'`` from a float column, ``'042'``, ``'+42'``), which is matched as written and so unknown; else ''."""
        if not self.numeric:
            return ""
        for value in values:
            if isinstance(value, str):
                try:
                    number = decimal.Decimal(value.strip())
                except decimal.InvalidOperation:
                    continue
                if (number.is_finite() and number.adjusted() < 40 and number == number.to_integral_value()
                        and int(number) in self.to_id):  # (an exponent of 1e9 would take int() minutes)
                    return (f" ({value!r} is not how the catalog writes item {int(number)}: its ids are integers, "
                            f"matched as written; give {int(number)})")
        return ""

    @classmethod
    def read(cls, path: Path, name: str, unknown_id: int | None) -> IdMap:
        table = pq.read_table(path)
        raw, ids, count = table.column("raw"), table.column("id").to_numpy(), table.column("count").to_numpy()
        values = raw.to_pylist()
        size = int(ids.max(initial=0)) + 1
        by_id: list[Any] = [None] * size
        counts = np.zeros(size, dtype=np.int64)
        for v, i in zip(values, ids.tolist()):
            by_id[i] = v
        counts[ids] = count
        return cls(name, dict(zip(values, ids.tolist())), by_id, counts, unknown_id, pa.types.is_integer(raw.type))


@dataclass
class Encoded:
    """A session in model ids: ``ids`` of its items in the catalog (oldest first), their side ``features``
    (each as long as ``ids``), and the original values it names as unknown: skipped (not in the catalog), or
    kept where the model reads them without evidence (a baseline's untrained items)."""

    ids: np.ndarray
    features: dict[str, np.ndarray]
    unknown: list[Any]


class Catalog:
    """A catalog read back: :meth:`encode` turns a session of original ids into model inputs,
    :meth:`decode` model ids into original ones."""

    def __init__(self, folder: Path, meta: dict, maps: dict[str, IdMap], items: pa.Table):
        self.folder, self.meta, self.maps = folder, meta, maps
        self.item = maps[meta["item"]]
        self.rules: dict[str, dict] = meta.get("rebuild", {})
        self.time_column: str | None = meta.get("time_column")
        self.time_unit_ms: float | None = meta.get("time_unit_ms")
        size = len(self.item.raw)
        ids = items.column("id").to_numpy()
        self.first_seen = np.zeros(size)
        self.first_seen[ids] = items.column("first_seen").to_numpy()
        self.item_features: dict[str, np.ndarray] = {}
        for name in items.column_names:
            if name in ITEM_COLUMNS:
                continue
            values = items.column(name).to_numpy(zero_copy_only=False)
            column = np.zeros(size, dtype=np.int64 if np.issubdtype(values.dtype, np.integer) else np.float32)
            column[ids] = values
            self.item_features[name] = column
        self._decode = np.array(self.item.raw, dtype=object)

    @classmethod
    def load(cls, folder: str | Path) -> Catalog | None:
        """The catalog in ``folder`` (a prepared data folder or a checkpoint), or None when it has none."""
        folder = Path(folder)
        if not (folder / META).is_file():
            return None
        meta = _read_meta(folder)
        path = folder / META
        try:
            maps = {}
            for name, m in meta["maps"].items():
                path = folder / m["file"]
                maps[name] = IdMap.read(path, name, m.get("unknown_id"))
            path = folder / meta["items"]
            items = pq.read_table(path)
        except (OSError, pa.ArrowInvalid, KeyError, TypeError) as e:
            cause = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise SessrecError(f"cannot read the catalog file {path}: {cause}") from None
        return cls(folder, meta, maps, items)

    def check_ids(self, n_items: int) -> None:
        """Refuse a catalog with more item ids than a model (or a data schema) of ``n_items`` ids: other data's."""
        if len(self.item.raw) > n_items:
            raise SessrecError(f"the catalog in {self.folder} has item ids up to {len(self.item.raw) - 1}, the model "
                               f"only up to {n_items - 1}: they come from different data")

    @property
    def n_items(self) -> int:
        """Items with an original id (model ids 1 .. n_items)."""
        return sum(v is not None for v in self.item.raw)

    @property
    def numeric_ids(self) -> bool:
        return self.item.numeric

    def source(self, feature: str) -> str:
        """Where :meth:`encode` takes a model input feature from (for ``/metadata`` and the README)."""
        if feature == self.item.name:
            return "the request's items (original ids)"
        if feature == self.time_column:
            return "the interaction times (the request's clock when it sends none)"
        if feature in self.rules:
            rule = self.rules[feature]
            what = (f"{rule['part']} {rule['fn']} in {rule['timezone']}" if rule["from"] == "time" else "item age")
            return f"rebuilt from the interaction times ({what}; the request's clock when it sends none)"
        kind = "original values" if feature in self.maps else "model values"
        return f"the request's features.{feature} ({kind}) if sent, else the item table (the item's latest interaction)"

    def decode(self, ids: Iterable[int]) -> list[Any]:
        """Original ids of model item ids."""
        return self._decode[np.fromiter(ids, dtype=np.int64)].tolist()

    def encode(self, items: Sequence[Any], inputs: Sequence[str], timestamps: Sequence[float] | None = None,
               features: Mapping[str, Sequence[Any]] | None = None, strict: bool = False,
               now: float | None = None, known: np.ndarray | None = None) -> Encoded:
        """Model inputs ``inputs`` (feature names, the item id among them) of a session of original
        item ids. ``timestamps`` (epoch seconds, one per item; default: ``now``, the current time) feed
        the rebuilt features; ``features`` holds per-item values sent by the client (original values
        for categorical features, model values for continuous ones; not the rebuilt ones). Unknown items are skipped (an
        error with ``strict``); a session left with no item is an error. ``known``: the ids the model reads (a
        baseline's trained items, by id), where it does not read every id of the catalog: the others are named
        unknown too, but stay in the session, where the model reads them as evaluation does (a kNN method counts
        their positions); a session of only such items has no item known to the model."""
        n = len(items)
        if timestamps is not None and len(timestamps) != n:
            raise SessrecError(f"timestamps has {len(timestamps)} values for {n} items")
        sent_times = None if timestamps is None else _timestamps(timestamps)  # checked even where no feature reads them
        features = dict(features or {})
        for name, values in features.items():
            if name not in inputs or name == self.item.name:
                usable = ", ".join(x for x in inputs if x != self.item.name) or "none: the model reads item ids only"
                raise SessrecError(f"features.{name} is not a side feature of this model (its side features: {usable})")
            if name in self.rules or name == self.time_column:  # sent values would replace them unseen
                raise SessrecError(f"features.{name} is rebuilt from the interaction times: send 'timestamps' instead")
            if len(values) != n:
                raise SessrecError(f"features.{name} has {len(values)} values for {n} items")
        ids, keep, unknown = [], [], []
        n_known = 0
        for i, raw in enumerate(items):
            try:
                found = self.item.lookup(raw)
            except SessrecError as e:
                raise SessrecError(f"items: {e}") from None
            if found is None:
                unknown.append(raw)
                continue
            ids.append(found)
            keep.append(i)
            if known is None or known[found]:
                n_known += 1
            else:
                unknown.append(raw)
        if unknown and strict:
            raise unknown_items(unknown, self.item.written_otherwise(unknown))
        if not n_known:
            raise no_known_item(unknown, self.item.written_otherwise(unknown))
        id_array = np.asarray(ids, dtype=np.int64)
        out: dict[str, np.ndarray] = {}
        times = None
        for name in inputs:
            if name == self.item.name:
                continue
            if name in features:
                out[name] = self._sent(name, [features[name][i] for i in keep])
            elif name in self.rules or name == self.time_column:
                if times is None:
                    times = (np.full(len(ids), time.time() if now is None else now) if sent_times is None else
                             sent_times[keep])
                out[name] = (rebuild(self.rules[name], times, self.first_seen[id_array]) if name in self.rules
                             else self._data_times(times))
            elif name in self.item_features:
                out[name] = self.item_features[name][id_array]
            else:
                raise SessrecError(f"the catalog in {self.folder} has no values of the model input feature '{name}'")
        return Encoded(id_array, out, unknown)

    def _data_times(self, times_s: np.ndarray) -> np.ndarray:
        """Epoch seconds in the unit of the data's time column (float64), for a model that reads the times."""
        if self.time_unit_ms is None:
            raise SessrecError(f"the catalog in {self.folder} does not say the unit of its time column "
                               f"'{self.time_column}' (written by an older sessrec prepare): prepare the data again")
        return times_s * (1000.0 / self.time_unit_ms)

    def _sent(self, name: str, values: list[Any]) -> np.ndarray:
        if name in self.maps:
            m = self.maps[name]
            ids = []
            for v in values:
                try:
                    found = m.lookup(v)
                except SessrecError as e:
                    raise SessrecError(f"features.{name}: {e}") from None
                if found is None:
                    if m.unknown_id is None:
                        raise SessrecError(f"features.{name}: unknown value {v!r} (this feature has no 'unknown' id)")
                    found = m.unknown_id
                ids.append(found)
            return np.asarray(ids, dtype=np.int64)
        return model_floats(name, values)


def whole_float(value: Any) -> bool:
    """A float (Python's or numpy's) that is a whole number, such as ``42.0``: what pandas and JSON writers make of an
    integer id; it stands for its integer (from 2**53 on, see :func:`float_beyond_ids`)."""
    return isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer()


def float_beyond_ids(value: float) -> str:
    """Why a whole float from 2**53 on is refused where integer ids go (items, numeric categorical values)."""
    return (f"{value!r} is a float beyond 2**53, which cannot hold every integer id exactly (pandas makes one of an "
            "integer column with a missing value): send ids as integers or text")


class NoKnownItem(SessrecError):
    """A session without items, or whose items are all unknown to the model."""


def _first_ids(unknown: Sequence[Any]) -> str:
    """The first five ids of ``unknown`` and how many more there are."""
    return listed(unknown, 5, repr)


def no_known_item(unknown: Sequence[Any], hint: str = "") -> NoKnownItem:
    """The error of a session left without items: the ids that were not known, if any (and ``hint``, see
    :meth:`IdMap.written_otherwise`)."""
    if not unknown:
        return NoKnownItem("the session has no items")
    return NoKnownItem(f"the session has no item known to the model (unknown: {_first_ids(unknown)}){hint}")


def unknown_items(unknown: Sequence[Any], hint: str = "") -> SessrecError:
    """The error of a strict request with items the model does not know."""
    return SessrecError(f"{len(unknown)} unknown item(s): {_first_ids(unknown)}{hint}")


FLOAT32_MAX = float(np.finfo(np.float32).max)
FIRST_YEAR_S = -62_104_060_800  # 0002-01-01 in epoch seconds: a day's margin for the zones west of UTC


def is_number(value: Any) -> bool:
    """A real number: Python's or numpy's (``np.int64``, ``np.float32``), not a boolean."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def model_floats(name: str, values: Sequence[Any]) -> np.ndarray:
    """A continuous feature's values sent by a client, as the model's float32; NaN, infinities and numbers beyond
    float32 (they would become infinities) are refused."""
    if any(not is_number(v) or not abs(v) <= FLOAT32_MAX for v in values):
        raise SessrecError(f"features.{name} must hold finite numbers (within float32, |x| <= {FLOAT32_MAX:.4g})")
    return np.asarray(values, dtype=np.float32)


def _timestamps(values: list[Any]) -> np.ndarray:
    if not all(map(is_number, values)):
        raise SessrecError("timestamps must be numbers (epoch seconds)")
    out = np.asarray(values, dtype=np.float64)
    # prepare reads the years 1-9999; beyond the year 5000 a time is almost surely milliseconds
    if not np.isfinite(out).all() or (out < FIRST_YEAR_S).any() or (out > 1e11).any():
        raise SessrecError("timestamps must be epoch seconds (not milliseconds) between the years 2 and 5000")
    return out
