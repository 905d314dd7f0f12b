"""G1 news ("News Portal User Interactions by Globo.com", Kaggle) → hourly windows.

    sessrec prepare g1 --input clicks/ --articles articles_metadata.csv --output DATA

Paper steps (G1 notebook of the ``recsys2021`` tag and Appendix B): sessions = ``session_id``;
any repeated article in a session removed (the paper's rule for news; the notebook removed
none); first 20 clicks; sessions of >= 2; contiguous ids by decreasing frequency for the article
and the environment, device group, OS, country and region columns; item age = hours since the
article's ``created_at_ts``, GaussRank-normalised over the whole data set (as the notebook did);
fractional hour and weekday sin/cos in local time (``America/Sao_Paulo``); hourly windows by
session start, hours with < 100 sessions skipped and the others numbered 1, 2, ...; train = all
the hour's sessions, valid / test = a random half each.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl

from sessrec.datasets.features import (
    HOUR_MS,
    gauss_rank_apply,
    gauss_rank_fit,
    hour_weekday,
    hour_weekday_rules,
)
from sessrec.datasets.pipeline import Categorical, Continuous, Options, PrepareResult, Recipe, Source, prepare
from sessrec.datasets.raw import (
    G1_CLICK_COLUMNS,
    LINE,
    as_int,
    check_header,
    convert,
    csv_batches,
    existing_files,
    files_in,
    in_input_order,
)
from sessrec.errors import SessrecError
from sessrec.schema import CATEGORICAL, CONTINUOUS, ITEM_ID, LIST

PAPER = {"days": 16, "items": 46_027, "sessions": 1_048_556, "interactions": 2_988_037,
         "mean_session_length": 2.84, "gini_item_popularity": 0.94}
TIMEZONE = "America/Sao_Paulo"
SIDE = ("click_environment", "click_deviceGroup", "click_os", "click_region", "click_country")
CLICK_CONVERSIONS = {c: as_int() for c in ("user_id", "session_id", "click_article_id", "click_timestamp", *SIDE)}


def read_articles(path: Path) -> pl.DataFrame:
    """``article_id`` → ``created_at`` (epoch ms) from ``articles_metadata.csv``."""
    header = check_header(path, ("article_id", "created_at_ts"), "the G1 articles_metadata.csv")
    conv = {"article_id": as_int(), "created_at_ts": as_int()}
    parts = [convert(b, conv, path, required=tuple(conv)) for b in csv_batches(path, ("article_id", "created_at_ts"), header)]
    if not parts or not sum(p.height for p in parts):
        raise SessrecError(f"{path}: no articles after the header line")
    articles = pl.concat(parts).select(pl.col("article_id").alias("item"), pl.col("created_at_ts").alias("created_at"))
    articles = articles.unique(maintain_order=True)  # a row repeated whole is one article
    twice = articles.filter(pl.col("item").is_duplicated())
    if twice.height:
        item, times = twice["item"][0], twice.filter(pl.col("item") == twice["item"][0])["created_at"].to_list()
        raise SessrecError(f"{path}: article_id {item} has {len(times)} different created_at_ts values ({times[0]}, "
                           f"{times[1]}{', ...' if len(times) > 2 else ''}); {twice['item'].n_unique()} article(s) "
                           "are listed with conflicting creation times: keep one row per article")
    return articles


def read_events(paths: list[Path], articles: pl.DataFrame, users: bool = False) -> Iterator[pl.DataFrame]:
    """The clicks of the hourly files, in file order, with the article's creation time; with ``users`` (``--repeats
    user``) each file must have the ``user_id`` column. A click without a session id or an article is kept here and
    dropped (and counted) with the others when sessions are built."""
    def read_file(path: Path) -> Iterator[pl.DataFrame]:
        header = check_header(path, ("session_id", "click_article_id", "click_timestamp", *SIDE), "a G1 clicks CSV")
        if users and "user_id" not in header:
            raise SessrecError(f"{path}, line 1: --repeats user needs the user_id column, which the header does not "
                               "have; add it, or choose another --repeats")
        user = [pl.col("user_id").alias("user")] if "user_id" in header else []
        for batch in csv_batches(path, [c for c in G1_CLICK_COLUMNS if c in header], header):
            b = convert(batch, {c: v for c, v in CLICK_CONVERSIONS.items() if c in header}, path,
                        required=("click_timestamp", *SIDE))
            b = b.select(LINE, pl.col("click_timestamp").alias("t"), pl.col("click_article_id").alias("item"),
                         pl.col("session_id").alias("session"), *user, *SIDE)
            yield b.join(articles, on="item", how="left", maintain_order="left")

    return in_input_order(paths, read_file)


def _age_hours() -> pl.Expr:
    return ((pl.col("t") - pl.col("created_at")) / HOUR_MS).clip(lower_bound=0.0)


def fit(lf: pl.LazyFrame, items: pl.DataFrame) -> dict:
    """GaussRank over the item ages of every kept click (the notebook fitted it on the whole data set)."""
    ages = lf.select(_age_hours().drop_nulls().unique()).collect().to_series().to_numpy()
    return {"age": gauss_rank_fit(ages)}


def transform(df: pl.DataFrame, stats: dict) -> pl.DataFrame:
    age = df.select(_age_hours()).to_series().to_numpy()
    norm = np.where(np.isnan(age), 0.0, gauss_rank_apply(np.nan_to_num(age), stats["age"]))  # no article: the median
    return df.with_columns(pl.Series("item_age_hours_norm", norm, dtype=pl.Float32),
                           *hour_weekday("t", TIMEZONE, True, ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")))


def recipe() -> Recipe:
    cyc = (LIST, CONTINUOUS)
    return Recipe(
        name="g1",
        item=Categorical("item", "click_article_id", (ITEM_ID, LIST, CATEGORICAL, "item")),
        categoricals=tuple(Categorical(c, c) for c in SIDE),
        continuous=(Continuous("item_age_hours_norm", ("item", LIST, CONTINUOUS)),
                    *(Continuous(n, cyc, -1.0, 1.0) for n in ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos"))),
        time_name="click_timestamp", time_unit_ms=1, fit=fit, transform=transform, paper_stats=PAPER,
        serving=hour_weekday_rules(TIMEZONE, True, ("hour_sin", "hour_cos", "weekday_sin", "weekday_cos")),
    )


def run(args, opts: Options) -> PrepareResult:
    paths = files_in(args.input, "*.csv", "G1 click files")
    articles = read_articles(existing_files([args.articles], "articles file")[0])
    users = opts.repeats == "user"
    return prepare(recipe(), Source(lambda: read_events(paths, articles, users), sum(p.stat().st_size for p in paths)),
                   opts)
