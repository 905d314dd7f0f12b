"""Golden digests: ``sessrec prepare`` writes exactly what it wrote when the digests were stored.

Each case prepares a fixed input (``golden_inputs.py``) and compares a digest of every output file's
contents with ``tests/data/prepare_golden.json``: the values, names and types of every parquet column
(not the file bytes, which depend on the parquet writer), and the text of schema.pbtxt, schema.json,
stats.json and windows.csv, plus the printed Table 1. The digests were stored before the pipeline
was optimised; a change of output must be deliberate. To store new digests after such a change, run
``SESSREC_UPDATE_GOLDEN=1 pytest tests/datasets/test_golden.py`` and say why in the commit.

The catalog (``catalog*``, written since) has its digests in ``tests/data/prepare_catalog_golden.json``,
stored when its tables were still read back from the written windows, before they came from the
pipeline's own.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sessrec.data.catalog import catalog_files
from sessrec.datasets import pipeline, raw
from tests.datasets import golden_inputs as inputs
from tests.datasets.helpers import prepare

GOLDEN = Path(__file__).parents[1] / "data" / "prepare_golden.json"
CATALOG_GOLDEN = GOLDEN.with_name("prepare_catalog_golden.json")
UPDATE = os.environ.get("SESSREC_UPDATE_GOLDEN") == "1"


def _rees46(root: Path) -> list[str]:
    return ["rees46", "--input", *map(str, inputs.write_rees46(root / "raw"))]


def _yoochoose(root: Path) -> list[str]:
    return ["yoochoose", "--input", str(inputs.write_yoochoose(root / "raw"))]


def _events_csv(root: Path) -> list[str]:
    return ["events", "--input", str(inputs.write_events_csv(root / "raw")), "--session-col", "sess", "--item-col", "item",
            "--time-col", "ts", "--categorical-cols", "colour", "--continuous-cols", "price"]


def _events_users(root: Path) -> list[str]:
    return ["events", "--input", str(inputs.write_events_csv(root / "raw")), "--user-col", "user", "--item-col", "item",
            "--time-col", "ts", "--categorical-cols", "colour"]


def _events_parquet(root: Path) -> list[str]:
    return ["events", "--input", str(inputs.write_events_parquet(root / "raw")), "--session-col", "sid", "--item-col",
            "product", "--time-col", "when", "--categorical-cols", "shade"]


def _g1(root: Path) -> list[str]:
    clicks, articles = inputs.write_g1(root / "raw")
    return ["g1", "--input", str(clicks), "--articles", str(articles)]


def _adressa(root: Path) -> list[str]:
    return ["adressa", "--input", str(inputs.write_adressa(root / "raw"))]


# name -> (input writer giving the command's first arguments, further flags)
CASES: dict[str, tuple[Callable[[Path], list[str]], list[str]]] = {
    "rees46": (_rees46, []),
    "rees46-repeats-user": (_rees46, ["--repeats", "user"]),
    "rees46-hour-session-short": (_rees46, ["--window", "hour", "--repeats", "session", "--split", "all+50-50",
                                            "--min-sessions-per-window", "6", "--max-session-length", "5",
                                            "--min-session-length", "3", "--seed", "11"]),
    "rees46-keep": (_rees46, ["--repeats", "keep", "--split", "all+10-10", "--seed", "5"]),
    "yoochoose": (_yoochoose, []),
    "yoochoose-session": (_yoochoose, ["--repeats", "session", "--split", "80-10-10"]),
    "events-csv-hour-oslo": (_events_csv, ["--window", "hour", "--timezone", "Europe/Oslo", "--min-sessions-per-window", "4"]),
    "events-users-gap": (_events_users, ["--session-gap", "20m", "--repeats", "user"]),
    "events-users-gap-keep": (_events_users, ["--repeats", "keep", "--max-session-length", "7"]),
    "events-parquet": (_events_parquet, ["--repeats", "session"]),
    "g1": (_g1, ["--min-sessions-per-window", "50"]),
    "g1-keep": (_g1, ["--repeats", "keep", "--min-sessions-per-window", "5", "--window", "day"]),
    "adressa": (_adressa, ["--rare-category-count", "5", "--min-sessions-per-window", "3"]),
}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:24]


def _parquet_digest(path: Path) -> str:
    """The table's arrow schema and every value (floats by their exact repr), not the file bytes."""
    table = pq.read_table(path)
    body = {"schema": str(table.schema.remove_metadata()), "rows": table.num_rows,
            "columns": {name: table.column(name).to_pylist() for name in table.column_names}}
    return _sha(json.dumps(body, sort_keys=True).encode())


def digest(out: Path, stdout: str) -> dict[str, str]:
    """{relative path: digest} of every output file, and of the printed statistics."""
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        files[path.relative_to(out).as_posix()] = _parquet_digest(path) if path.suffix == ".parquet" else _sha(path.read_bytes())
    files["<stdout>"] = _sha(stdout.replace(str(out), "OUT").encode())
    return files


def _stored(path: Path = GOLDEN) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


# cases run again with tiny input blocks and buckets: the outputs must not change at all
SMALL_BLOCKS = ("rees46", "events-users-gap", "yoochoose-session", "adressa")


@pytest.mark.parametrize("name", [*CASES, *(f"{c}@small-blocks" for c in SMALL_BLOCKS)])
def test_outputs_match_the_stored_digests(name, tmp_path, capsys, monkeypatch):
    case, _, small = name.partition("@")
    if small:
        monkeypatch.setattr(pipeline, "BUCKET_BYTES", 20_000)
        monkeypatch.setattr(raw, "CHUNK_BYTES", 9_000)
        name = case  # the same digests
    make_input, flags = CASES[case]
    out = tmp_path / "out"
    rc, stdout, stderr = prepare([*make_input(tmp_path), *flags, "--output", str(out)], capsys)
    assert rc == 0, stderr
    got = digest(out, stdout)
    catalog = {f: got.pop(f) for f in catalog_files(out)}
    assert len(got) > 6 and len(catalog) > 2, "expected windows, schema, statistics and the catalog"
    if UPDATE and not small:
        for path, digests in ((GOLDEN, got), (CATALOG_GOLDEN, catalog)):
            stored = _stored(path)
            stored[name] = digests
            path.write_text(json.dumps(dict(sorted(stored.items())), indent=1) + "\n")
        pytest.skip("stored new digests")
    for path, digests in ((GOLDEN, got), (CATALOG_GOLDEN, catalog)):
        expected = _stored(path).get(name)
        assert expected is not None, f"no stored digest for {name} in {path.name}; run with SESSREC_UPDATE_GOLDEN=1"
        changed = sorted(k for k in expected.keys() | digests.keys() if expected.get(k) != digests.get(k))
        assert not changed, f"{name}: outputs differ from the stored digests: {changed}"
