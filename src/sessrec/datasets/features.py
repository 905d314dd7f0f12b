"""Engineered features of the paper's preprocessing: cyclic time, standardisation, GaussRank.

Each is a small polars expression or numpy function so that every data set module composes the
same pieces (Appendix B of the paper; the formulas are those of the original notebooks).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import polars as pl

from sessrec.data.catalog import time_rule

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def local_time(t_ms: str, timezone: str) -> pl.Expr:
    """Event time (epoch milliseconds, UTC) as a datetime in ``timezone`` (UTC: the naive datetime, the same
    fields without the time zone conversion)."""
    utc = pl.from_epoch(pl.col(t_ms), "ms")
    return utc if timezone == "UTC" else utc.dt.replace_time_zone("UTC").dt.convert_time_zone(timezone)


def cyclic(value: pl.Expr, period: float, sin_name: str, cos_name: str) -> list[pl.Expr]:
    """``sin/cos(2π (value + 1e-8) / period)``, the notebooks' ``get_cicled_feature_value``."""
    angle = (value.cast(pl.Float64) + 1e-8) / period * (2 * math.pi)
    return [angle.sin().cast(pl.Float32).alias(sin_name), angle.cos().cast(pl.Float32).alias(cos_name)]


def _looked_up(key: pl.Expr, n: int, value: Callable[[pl.Expr], pl.Expr], period: float, sin_name: str,
               cos_name: str) -> list[pl.Expr]:
    """:func:`cyclic` of ``value(key)`` for an integer ``key`` in ``[0, n)``, computed once per key and looked up:
    the same values, without a sine and a cosine per event."""
    table = pl.select(k=pl.int_range(n)).select(cyclic(value(pl.col("k")), period, "sin", "cos"))
    return [pl.lit(table["sin"]).gather(key).alias(sin_name), pl.lit(table["cos"]).gather(key).alias(cos_name)]


def hour_weekday(t_ms: str, timezone: str, fractional_hour: bool, names: tuple[str, str, str, str]) -> list[pl.Expr]:
    """Hour of day (period 24; ``hour + minute/60`` when ``fractional_hour``) and weekday (Monday = 1, period 7)
    as sin/cos, in local time. ``names`` = hour sin, hour cos, weekday sin, weekday cos."""
    local = local_time(t_ms, timezone)
    if fractional_hour:  # the minute of the day
        hour = _looked_up(local.dt.hour().cast(pl.Int32) * 60 + local.dt.minute(), 24 * 60,
                          lambda k: (k // 60).cast(pl.Float64) + (k % 60).cast(pl.Float64) / 60.0, 24, *names[:2])
    else:
        hour = _looked_up(local.dt.hour(), 24, lambda k: k.cast(pl.Float64), 24, *names[:2])
    return hour + _looked_up(local.dt.weekday(), 8, lambda k: k, 7, *names[2:])


def hour_weekday_rules(timezone: str, fractional_hour: bool, names: tuple[str, str, str, str]) -> dict[str, dict]:
    """How serving rebuilds the features of :func:`hour_weekday` from interaction times (``Recipe.serving``)."""
    parts = (("hour", "sin"), ("hour", "cos"), ("weekday", "sin"), ("weekday", "cos"))
    return {name: time_rule(part, fn, timezone, fractional_hour) for name, (part, fn) in zip(names, parts)}


def age_days_rule(stats_key: str, whole_days: bool = False) -> dict:
    """How serving rebuilds a standardised ``log1p`` of the days since the item was first seen
    (``Recipe.serving``); the mean and standard deviation are those the recipe's ``fit`` put under ``stats_key``."""
    return {"from": "age", "unit_ms": DAY_MS, "whole_units": whole_days, "stats": stats_key}


def mean_std(lf: pl.LazyFrame, expr: pl.Expr) -> tuple[float, float]:
    """Mean and standard deviation of ``expr`` over ``lf`` (one streaming pass; where a sum of the values or of their
    squares overflowed, two more, on the values scaled down by a power of two: one value of 1e160 made the deviation
    inf, and every standardised value 0)."""
    row = lf.select(expr.mean().alias("m"), expr.std().alias("s")).collect().row(0)
    mean, std = (float(v or 0.0) for v in row)
    if not (math.isfinite(mean) and math.isfinite(std)):  # a sum of the values or of their squares overflowed
        top = float(lf.select(expr.abs().max()).collect().item() or 0.0)
        scale = math.ldexp(1.0, math.frexp(top)[1] - 1)  # exact: the values keep their digits
        row = lf.select((expr / scale).mean().alias("m"), (expr / scale).std().alias("s")).collect().row(0)
        mean, std = float(row[0] or 0.0) * scale, float(row[1] or 0.0) * scale
    if std <= 1e-12 * abs(mean):  # a constant summed in streaming chunks: 0.2 5,000 times has a spread of 6e-18, and
        std = 0.0  # dividing by it turned rounding residues into values of +-4
    return mean, std


def standardize(expr: pl.Expr, mean: float, std: float) -> pl.Expr:
    """``(x - mean) / std`` as float32; 0 where the spread is 0 (``x - mean`` kept the mean's rounding error: 16384
    for a column of 1e20), a missing value staying missing."""
    if std > 0:
        return ((expr - mean) / std).cast(pl.Float32)
    return (expr * 0.0).cast(pl.Float32)


def gauss_rank_fit(values: np.ndarray, epsilon: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Fit the GaussRank scaler of the original notebooks (``gauss_rank.py``): the rank of each distinct
    value scaled linearly to ``[-1 + eps, 1 - eps]``. Returns (sorted distinct values, scaled ranks)."""
    x = np.unique(values[np.isfinite(values)])
    bound = 1.0 - epsilon
    if x.size < 2:
        return x, np.zeros_like(x)
    rank = np.arange(x.size, dtype=np.float64)
    scaled = np.clip(rank / ((x.size - 1) / 2.0 * bound) - bound, -bound, bound)
    return x, scaled


def gauss_rank_apply(values: np.ndarray, fitted: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``erfinv`` of the linearly interpolated scaled rank (values outside the fitted range are clamped)."""
    from scipy.special import erfinv  # imported here: scipy.special takes a second to import

    x, scaled = fitted
    if x.size == 0:
        return np.zeros(values.shape, dtype=np.float32)
    return erfinv(np.interp(values, x, scaled)).astype(np.float32)


def gini(counts: np.ndarray) -> float:
    """Gini coefficient of item popularity (the notebooks' ``gini_index``): 0 = uniform, → 1 = concentrated."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = x.size
    if n == 0 or x.sum() == 0:
        return 0.0
    index = np.arange(1, n + 1)
    return float(np.sum((2 * index - n - 1) * x) / (n * x.sum()))
