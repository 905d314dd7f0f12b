"""The last step of ``sessrec prepare``: the catalog of the windows it wrote (the format and its reader:
:mod:`sessrec.data.catalog`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from sessrec.data.catalog import FORMAT, ITEM_COLUMNS, ITEMS, META, map_file
from sessrec.data.windows import SPLITS
from sessrec.errors import SessrecError
from sessrec.io import atomic_write_text
from sessrec.schema import Schema


def write_catalog(out: Path, schema: Schema, items: pl.DataFrame, maps: Mapping[str, tuple[pl.DataFrame, int | None]],
                  time_name: str, time_unit_ms: float, rules: Mapping[str, dict], splits: Sequence[str] = SPLITS) -> None:
    """Write the catalog of the windows already written under ``out``.

    ``items``: ``raw``, ``id``, ``count``, ``first_t`` (epoch ms) of every item; ``maps``: feature →
    (``raw``, ``id`` table, the id of unknown values or None) for every categorical side feature;
    ``rules``: feature → rebuild rule (``time_rule``, ``age_rule``). The item table's side features
    and the categorical counts are read back from the ``splits`` of the written windows (``train``
    alone where it holds every session).
    """
    item = schema.item_id.name
    side = [f.name for f in schema.features if (f.is_categorical or f.is_continuous) and not f.is_item_id]
    latest, counts = _latest_and_counts(out, item, time_name, side, [n for n in side if n in maps], splits)
    unit_s = time_unit_ms / 1000.0
    table = (items.select(pl.col("id").cast(pl.Int64), _raw(items["raw"]), pl.col("count").cast(pl.Int64),
                          (pl.col("first_t") / 1000.0).alias("first_seen"))
             .join(latest.rename({item: "id"}), on="id", how="left")
             .with_columns((pl.col(time_name) * unit_s).alias("last_seen")).drop(time_name)
             .select(*ITEM_COLUMNS, *side).sort("id"))
    missing = table.filter(pl.col("last_seen").is_null())
    if missing.height:
        raise SessrecError(f"catalog: item id {missing['id'][0]} is in the id table but in no written window")
    table.write_parquet(out / ITEMS)
    meta_maps = {item: {"file": map_file(item), "unknown_id": None}}
    items.select(_raw(items["raw"]), pl.col("id").cast(pl.Int64), pl.col("count").cast(pl.Int64)).sort("id") \
        .write_parquet(out / map_file(item))
    for name, (mapping, unknown_id) in maps.items():
        counted = mapping.select(_raw(mapping["raw"]), pl.col("id").cast(pl.Int64)).join(counts[name], on="id", how="left")
        counted.with_columns(pl.col("count").fill_null(0)).sort("id").write_parquet(out / map_file(name))
        meta_maps[name] = {"file": map_file(name), "unknown_id": unknown_id}
    meta = {"format": FORMAT, "item": item, "maps": meta_maps, "items": ITEMS, "rebuild": dict(rules),
            "time_column": time_name}
    atomic_write_text(out / META, json.dumps(meta, indent=1) + "\n")


def _raw(values: pl.Series) -> pl.Series:
    """Original values as integers or text (other types as text). Text that is always an integer
    written plainly (``"1004856"``, not ``"007"``) becomes that integer: a CSV read as text (as
    ``sessrec prepare events`` reads ids) answers with the numbers it holds."""
    if values.dtype.is_integer():
        return values.cast(pl.Int64).alias("raw")
    text = values.cast(pl.String)
    numbers = text.cast(pl.Int64, strict=False)
    if text.len() and numbers.null_count() == text.null_count() and (numbers.cast(pl.String) == text).all():
        return numbers.alias("raw")
    return text.alias("raw")


def _latest_and_counts(out: Path, item: str, time_name: str, side: list[str], categorical: list[str],
                       splits: Sequence[str]) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """Each item's side features at its latest interaction (ties: the later one in file order), and
    the interaction count of each categorical id, over the distinct sessions of every window."""
    latest: pl.DataFrame | None = None
    counts: dict[str, pl.DataFrame] = {}
    columns = [item, time_name, *side]
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and p.name.isdigit()):
        files = [folder / f"{s}.parquet" for s in splits if (folder / f"{s}.parquet").is_file()]
        sessions = pl.concat([pl.read_parquet(f, columns=["session_id", *columns]) for f in files])
        events = sessions.unique("session_id", keep="first", maintain_order=True).explode(columns).drop("session_id")
        events = events.with_columns(pl.lit(int(folder.name)).alias("_w"), pl.int_range(pl.len()).alias("_seq"))
        for name in categorical:
            c = events.group_by(name).agg(pl.len().alias("count")).rename({name: "id"})
            counts[name] = c if name not in counts else pl.concat([counts[name], c]).group_by("id").agg(pl.col("count").sum())
        if latest is not None:
            events = pl.concat([latest, events])
        latest = events.sort(time_name, "_w", "_seq").group_by(item, maintain_order=True).last()
    if latest is None:
        raise SessrecError(f"catalog: no window folders in {out}")
    counts = {n: c.with_columns(pl.col("id").cast(pl.Int64), pl.col("count").cast(pl.Int64)) for n, c in counts.items()}
    return latest.drop("_w", "_seq"), counts
