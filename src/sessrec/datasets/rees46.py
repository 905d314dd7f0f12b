"""REES46 "eCommerce behavior data from multi category store" (Kaggle), monthly CSVs → daily windows.

    sessrec prepare rees46 --input 2019-Oct.csv [2019-Nov.csv ...] --output DATA

Paper steps (PySpark notebooks 01-03 of the ``recsys2021`` tag): sessions = ``user_session``;
consecutive repeats of an item in a session removed (``--repeats user`` is notebook 01's default
instead: only the first (user, product) interaction of the whole data is kept); first 20
interactions; sessions of >= 2; ids by decreasing frequency, 0 = padding, 1 = null/unknown for the
category and brand columns; price log1p standardised, price relative to the average of its
category_id, product recency (log1p days since first seen, standardised), hour and weekday sin/cos
(UTC); daily windows by session start, each day shuffled into 80/10/10 % train/valid/test.
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
    LINE,
    REES46_COLUMNS,
    as_float,
    as_int,
    as_time_ms,
    check_header,
    convert,
    csv_batches,
    csv_scan,
    existing_files,
    in_input_order,
)
from sessrec.schema import CATEGORICAL, CONTINUOUS, ITEM_ID, LIST

PAPER = {"days": 31, "windows": 31, "items": 156_516, "sessions": 3_268_268, "interactions": 17_967_918,
         "mean_session_length": 5.49, "gini_item_popularity": 0.86}

ITEM = "item"
TIME_FEATURES = ("sess_et_hour_sin_seq", "sess_et_hour_cos_seq", "sess_et_dayofweek_sin_seq", "sess_et_dayofweek_cos_seq")
CONVERSIONS = {
    "event_time": as_time_ms("%Y-%m-%d %H:%M:%S UTC", "2019-10-01 00:00:00 UTC"),
    "product_id": as_int(),
    "category_id": as_int(),
    "price": as_float(finite=True),
    "user_id": as_int(),
}
# the features need these; an event without a product (item) or a user_session is dropped (and counted)
REQUIRED = ("event_time", "category_id", "price")
EVENT_COLUMNS = ("event_time", "product_id", "category_id", "category_code", "brand", "price", "user_id", "user_session")


def _header(path: Path) -> list[str]:
    return check_header(path, REES46_COLUMNS, "a REES46 CSV (eCommerce behavior data from multi category store)")


def _events() -> list[pl.Expr]:
    """The converted raw columns → the pipeline's event columns."""
    return [pl.col("event_time").alias("t"), pl.col("product_id").alias(ITEM), pl.col("user_session").alias("session"),
            pl.col("user_id").alias("user"), *map(pl.col, ("category_id", "category_code", "brand", "price"))]


def _read_file(path: Path) -> Iterator[pl.DataFrame]:
    for batch in csv_batches(path, EVENT_COLUMNS, _header(path)):
        yield convert(batch, CONVERSIONS, path, required=REQUIRED).select(LINE, *_events())


def read_events(paths: list[Path]) -> Iterator[pl.DataFrame]:
    """Events of the monthly CSV files, in file order."""
    return in_input_order(paths, _read_file)


def scan_events(paths: list[Path]) -> pl.LazyFrame:
    """:func:`read_events` as one lazy query with strict conversions (the fast path)."""
    return pl.concat([csv_scan(p, _header(p), CONVERSIONS, REQUIRED).select(_events()) for p in paths])


def source(paths: list[Path]) -> Source:
    return Source(lambda: read_events(paths), sum(p.stat().st_size for p in paths), lambda: scan_events(paths))


def _price() -> pl.Expr:
    return pl.col("price").clip(lower_bound=0.0)


def _recency_log_days() -> pl.Expr:
    return ((pl.col("t") - pl.col("first_t")) / DAY_MS).clip(lower_bound=0.0).log1p()


def fit(lf: pl.LazyFrame, items: pl.DataFrame) -> dict:
    """Mean/std of log1p(price) and of log1p(recency days); average price per category_id."""
    with_first = lf.join(items.lazy().select(ITEM, "first_t"), on=ITEM)
    return {"price": mean_std(lf, _price().log1p()), "recency": mean_std(with_first, _recency_log_days()),
            "category_price": lf.group_by("category_id").agg(avg_price=_price().mean()).collect()}


def transform(df: pl.DataFrame, stats: dict) -> pl.DataFrame:
    avg = pl.col("avg_price")
    df = df.join(stats["category_price"], on="category_id", how="left", maintain_order="left")
    return df.with_columns(
        standardize(_price().log1p(), *stats["price"]).alias("sess_price_log_norm_seq"),
        pl.when(avg > 0).then((_price() - avg) / avg).otherwise(0.0).cast(pl.Float32)
        .alias("sess_relative_price_to_avg_category_seq"),
        standardize(_recency_log_days(), *stats["recency"]).alias("sess_prod_recency_days_log_norm_seq"),
        *hour_weekday("t", "UTC", False, TIME_FEATURES),
    )


def recipe() -> Recipe:
    item_tags = (LIST, CATEGORICAL, "item")
    cyc = (LIST, CONTINUOUS)
    return Recipe(
        name="rees46",
        item=Categorical(ITEM, "sess_pid_seq", (ITEM_ID, LIST, CATEGORICAL, "item")),
        categoricals=(Categorical("category_code", "sess_ccid_seq", item_tags, unknown_slot=True),
                      Categorical("category_id", "sess_csid_seq", item_tags, unknown_slot=True),
                      Categorical("brand", "sess_bid_seq", item_tags, unknown_slot=True)),
        continuous=(Continuous("sess_price_log_norm_seq", ("item", LIST, CONTINUOUS), 0.0, 10000.0),
                    Continuous("sess_relative_price_to_avg_category_seq", ("item", LIST, CONTINUOUS)),
                    Continuous("sess_prod_recency_days_log_norm_seq", ("item", LIST, CONTINUOUS)),
                    Continuous("sess_et_hour_sin_seq", cyc, -1.0, 1.0), Continuous("sess_et_hour_cos_seq", cyc, -1.0, 1.0),
                    Continuous("sess_et_dayofweek_sin_seq", cyc, -1.0, 1.0),
                    Continuous("sess_et_dayofweek_cos_seq", cyc, -1.0, 1.0)),
        time_name="sess_etime_seq", time_unit_ms=1000, fit=fit, transform=transform, paper_stats=PAPER,
        serving={**hour_weekday_rules("UTC", False, TIME_FEATURES),
                 "sess_prod_recency_days_log_norm_seq": age_days_rule("recency")},
    )


def run(args, opts: Options) -> PrepareResult:
    return prepare(recipe(), source(existing_files(args.input, "input file")), opts)
