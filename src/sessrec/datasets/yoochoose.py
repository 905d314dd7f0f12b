"""YOOCHOOSE (RecSys Challenge 2015) ``yoochoose-clicks.dat`` → daily windows.

    sessrec prepare yoochoose --input yoochoose-clicks.dat --output DATA

Paper steps (NVTabular notebook ``yoochoose-ETL-NVT`` of the ``recsys2021`` tag): sessions =
``SessionID``, sorted by time; consecutive repeats removed; first 20 interactions; sessions of
>= 2; item and category ids by decreasing frequency (category ``0``, "unknown" in the challenge
data, and empty values → id 1); item age in whole days since the item was first seen, log1p,
standardised; hour and weekday sin/cos (UTC); daily windows by session start, train = all the
day's sessions, valid and test = two disjoint random 10 % subsets of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import polars as pl

from sessrec.datasets.features import (
    DAY_MS,
    age_days_rule,
    hour_weekday,
    hour_weekday_rules,
    mean_std,
    standardize,
)
from sessrec.datasets.pipeline import Categorical, Continuous, Options, PrepareResult, Recipe, Source, prepare
from sessrec.datasets.raw import (
    ISO_TIME,
    LINE,
    YOOCHOOSE_COLUMNS,
    as_int,
    as_time_ms,
    convert,
    csv_batches,
    csv_scan,
    existing_files,
    first_line,
    in_input_order,
    iso_millis,
    looks_like,
)
from sessrec.errors import SessrecError
from sessrec.schema import CATEGORICAL, CONTINUOUS, ITEM_ID, LIST

PAPER = {"days": 182, "windows": 182, "items": 50_549, "sessions": 6_756_575, "interactions": 26_478_390,
         "mean_session_length": 3.83, "gini_item_popularity": 0.89}
CONVERSIONS = {
    "session_id": as_int(),
    "timestamp": as_time_ms("%Y-%m-%dT%H:%M:%S%.fZ", "2014-04-07T10:51:09.277Z", fast=iso_millis),
    "item_id": as_int(),
}
REQUIRED = ("timestamp",)  # a click without a session or an item is dropped (and counted) when sessions are built


def _check_first_line(path: Path) -> None:
    line = first_line(path) or ""
    fields = line.split(",")
    if len(fields) != 4 or not ISO_TIME.match(fields[1].strip().strip('"')):
        raise SessrecError(f"{path}, line 1: not a YOOCHOOSE clicks file (header-less SessionID,Timestamp,ItemID,"
                           f"Category with an ISO time): {line[:160]!r}{looks_like(line)}")


def _events() -> list[pl.Expr]:
    """The converted raw columns → the pipeline's event columns."""
    category = pl.col("category").str.strip_chars()
    return [pl.col("timestamp").alias("t"), pl.col("item_id").alias("item"), pl.col("session_id").alias("session"),
            pl.when(category != "").then(category).alias("category")]  # spaces only: empty, id 1


def _read_file(path: Path) -> Iterator[pl.DataFrame]:
    _check_first_line(path)
    for batch in csv_batches(path, YOOCHOOSE_COLUMNS, YOOCHOOSE_COLUMNS, has_header=False):
        yield convert(batch, CONVERSIONS, path, has_header=False, required=REQUIRED).select(LINE, *_events())


def read_events(paths: list[Path]) -> Iterator[pl.DataFrame]:
    return in_input_order(paths, _read_file)


TIME_FEATURES = ("timestamp_hour_sin-list", "timestamp_hour_cos-list", "timestamp_wd_sin-list", "timestamp_wd_cos-list")


def _scan_file(path: Path) -> pl.LazyFrame:
    _check_first_line(path)
    return csv_scan(path, YOOCHOOSE_COLUMNS, CONVERSIONS, REQUIRED, has_header=False).select(_events())


def source(paths: list[Path]) -> Source:
    """The clicks files: :func:`read_events`, and the same as one lazy query with strict conversions (fast path)."""
    return Source(lambda: read_events(paths), sum(p.stat().st_size for p in paths),
                  lambda: pl.concat([_scan_file(p) for p in paths]))


def _age_log_days() -> pl.Expr:
    return ((pl.col("t") - pl.col("first_t")) // DAY_MS).clip(lower_bound=0).cast(pl.Float64).log1p()


def fit(lf: pl.LazyFrame, items: pl.DataFrame) -> dict:
    return {"age": mean_std(lf.join(items.lazy().select("item", "first_t"), on="item"), _age_log_days())}


def transform(df: pl.DataFrame, stats: dict) -> pl.DataFrame:
    return df.with_columns(
        standardize(_age_log_days(), *stats["age"]).alias("timestamp_age_days_norm-list"),
        *hour_weekday("t", "UTC", False, TIME_FEATURES),
    )


def recipe() -> Recipe:
    cyc = (LIST, CONTINUOUS)
    return Recipe(
        name="yoochoose",
        item=Categorical("item", "item_id-list", (ITEM_ID, LIST, CATEGORICAL, "item")),
        categoricals=(Categorical("category", "category-list", (LIST, CATEGORICAL, "item"), unknown_slot=True,
                                  unknown_values=("0",)),),
        continuous=(Continuous("timestamp_age_days_norm-list", ("item", LIST, CONTINUOUS)),
                    Continuous("timestamp_hour_cos-list", cyc, -1.0, 1.0),
                    Continuous("timestamp_hour_sin-list", cyc, -1.0, 1.0),
                    Continuous("timestamp_wd_sin-list", cyc, -1.0, 1.0),
                    Continuous("timestamp_wd_cos-list", cyc, -1.0, 1.0)),
        time_name="timestamp-list", time_unit_ms=1000, fit=fit, transform=transform, paper_stats=PAPER,
        serving={**hour_weekday_rules("UTC", False, TIME_FEATURES),
                 "timestamp_age_days_norm-list": age_days_rule("age", whole_days=True)},
    )


def run(args, opts: Options) -> PrepareResult:
    return prepare(recipe(), source(existing_files(args.input, "input file")), opts)
