"""ADRESSA news (NTNU / Adressavisen, ``three_month`` release) per-day JSON-lines files → hourly windows.

    sessrec prepare adressa --input three_month/ --output DATA

Paper steps (ADRESSA notebooks 01-02 of the ``recsys2021`` tag): the first 16 days; article
events only (those with a ``canonicalUrl``; the article id is the canonical URL, the notebook
resolved it through a table built by another project's pipeline); sessions cut from each user's
clicks after 30 minutes of inactivity; any article already in the session removed; first 20
clicks; sessions of >= 2; ids by decreasing frequency, 0 = padding, 1 = empty or rare (< 100
occurrences) value for the side columns (city, region, country, device, OS, referrer class, first
and full category, author); item age = hours since the article's first click, GaussRank-normalised
within each hour; fractional hour and weekday sin/cos in ``Europe/Oslo`` time; hourly windows by
session start, hours with < 100 sessions skipped, train = all the hour's sessions, valid / test =
a random half each.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from sessrec.datasets.features import (
    HOUR_MS,
    gauss_rank_apply,
    gauss_rank_fit,
    hour_weekday,
    hour_weekday_rules,
)
from sessrec.datasets.pipeline import (
    Categorical,
    Continuous,
    Options,
    PrepareResult,
    Progress,
    Recipe,
    Source,
    prepare,
)
from sessrec.datasets.raw import LINE, convert, files_in, first_line, in_input_order, json_batches, looks_like
from sessrec.errors import SessrecError
from sessrec.schema import CATEGORICAL, CONTINUOUS, ITEM_ID, LIST

PAPER = {"days": 16, "items": 13_820, "sessions": 982_210, "interactions": 2_648_999,
         "mean_session_length": 2.69, "gini_item_popularity": 0.96}
TIMEZONE = "Europe/Oslo"
FIELDS = {"userId": str, "time": int, "canonicalUrl": str, "city": str, "region": str, "country": str,
          "deviceType": str, "os": str, "referrerHostClass": str, "category1": str, "author": str}
# output name -> raw column of the events
SIDE = {"city": "city", "region": "region", "country": "country", "device": "deviceType", "os": "os",
        "referrer_class": "referrerHostClass", "category0_encoded": "category0", "category1_encoded": "category1",
        "author_encoded": "author"}
ITEM_LEVEL = ("category0_encoded", "category1_encoded", "author_encoded")


def day_files(folder: str | Path, days: int) -> list[Path]:
    """The per-day files (names starting with a date such as ``20170101``) in order; the first ``days``."""
    files = files_in(folder, "*", "ADRESSA day files")
    dated = [p for p in files if re.match(r"\d{8}", p.name)] or files
    return dated[:days] if days > 0 else dated


def _present(e: pl.Expr, empty: tuple[str, ...] = ("",)) -> pl.Expr:
    """``e`` with empty text (spaces only, or one of ``empty``) as a missing value: no user, no item, or side id 1."""
    return pl.when(~e.str.strip_chars().is_in(empty)).then(e)


def _read_file(path: Path) -> Iterator[pl.DataFrame]:
    line = first_line(path)
    if line is None:
        raise SessrecError(f"{path}: the file is empty")
    if not line.lstrip().startswith("{"):
        raise SessrecError(f"{path}, line 1: not an ADRESSA JSON-lines file: {line[:120]!r}{looks_like(line)}")
    for batch in json_batches(path, FIELDS):
        b = convert(batch, {}, path, has_header=False, required=("time",))
        # events without a user, or without a canonicalUrl (not an article page: no item), are dropped and counted
        yield b.select(
            LINE, (pl.col("time") * 1000).alias("t"), _present(pl.col("canonicalUrl")).alias("item"),
            _present(pl.col("userId")).alias("user"),
            *(_present(pl.col(c)) for c in FIELDS if c not in ("userId", "time", "canonicalUrl", "category1", "author")),
            _present(pl.col("author"), ("", "[]")),  # a JSON list is read as its text
            _present(pl.col("category1").str.split("|").list.first()).alias("category0"), _present(pl.col("category1")))


def read_events(paths: list[Path]) -> Iterator[pl.DataFrame]:
    return in_input_order(paths, _read_file)


def fit(lf: pl.LazyFrame, items: pl.DataFrame) -> dict:
    return {}  # item age is normalised within each hour (transform)


def transform(df: pl.DataFrame, stats: dict) -> pl.DataFrame:
    """GaussRank of the hours since each article's first click, fitted on this hour's clicks (notebook 02)."""
    age = df.select((pl.col("t") - pl.col("first_t")) / HOUR_MS).to_series().to_numpy()
    return df.with_columns(pl.Series("item_age_hours_norm", gauss_rank_apply(age, gauss_rank_fit(age)), dtype=pl.Float32),
                           *hour_weekday("t", TIMEZONE, True, ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")))


def recipe(rare_count: int) -> Recipe:
    cyc = (LIST, CONTINUOUS)
    cats = tuple(Categorical(raw, name, (LIST, CATEGORICAL, "item") if name in ITEM_LEVEL else (LIST, CATEGORICAL),
                             unknown_slot=True, min_count=rare_count) for name, raw in SIDE.items())
    return Recipe(
        name="adressa",
        item=Categorical("item", "article_id", (ITEM_ID, LIST, CATEGORICAL, "item")),
        categoricals=cats,
        continuous=(Continuous("item_age_hours_norm", ("item", LIST, CONTINUOUS)),
                    *(Continuous(n, cyc, -1.0, 1.0) for n in ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos"))),
        time_name="timestamp", time_unit_ms=1, fit=fit, transform=transform, paper_stats=PAPER,
        serving=hour_weekday_rules(TIMEZONE, True, ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")),
    )


def run(args, opts: Options) -> PrepareResult:
    paths = day_files(args.input, args.days)
    if 0 < len(paths) < args.days:  # the one-week release, or a folder missing days: Table 1's days differ from the paper's
        Progress("adressa", opts.quiet).warn(f"--days {args.days}: {args.input} has {len(paths)} day file(s); "
                                             f"reading all {len(paths)} (--days 0 reads all without this warning)")
    opts.session_gap_ms = args.session_gap
    return prepare(recipe(args.rare_category_count), Source(lambda: read_events(paths), sum(p.stat().st_size for p in paths)),
                   opts)
