"""``report.html``: the report as one self-contained page (no scripts, no files beside it).

The table of :mod:`sessrec.report` with its significance marks, the pairwise tests, the per-window
and training-loss plots, and, for each ``sessrec tune`` folder given, the tuning history: study,
objective, trials by state, time per trial, the best values and the best trials. Images are
embedded as data URIs, so the page can be mailed or attached as it is.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sessrec.io import reading

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:1100px;
color:#1a1a1a;background:#fff;padding:0 1rem}
h1{font-size:1.6rem;border-bottom:3px solid #2b6cb0;padding-bottom:.3rem}h2{font-size:1.25rem;margin-top:2rem;color:#2b6cb0}
table{border-collapse:collapse;margin:.8rem 0;font-size:.9rem}th,td{border:1px solid #cbd5e0;padding:.3rem .6rem}
th{background:#edf2f7;text-align:left}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.best{background:#c6f6d5;font-weight:600}tr.pop td{color:#4a5568;font-style:italic}
img{max-width:100%;border:1px solid #e2e8f0;margin:.5rem 0}.note{color:#4a5568;font-size:.85rem}
code{background:#edf2f7;padding:0 .2rem}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{_e(path.stem)}" src="data:image/png;base64,{data}">'


@dataclass
class Table:
    """Cells of a table as text, shared by the Markdown and the HTML renderings. ``marked`` holds
    the (row, column) of cells to highlight (a significant result); ``numeric`` the right-aligned columns."""

    head: list[str]
    rows: list[list[str]]
    numeric: set[int] = field(default_factory=set)
    marked: set[tuple[int, int]] = field(default_factory=set)
    muted_rows: set[int] = field(default_factory=set)

    def markdown(self) -> list[str]:
        align = ["---:" if i in self.numeric else "---" for i in range(len(self.head))]
        return ["| " + " | ".join(self.head) + " |", "|" + "|".join(align) + "|"] + ["| " + " | ".join(r) + " |" for r in self.rows]


def _table(table: Table) -> str:
    """A :class:`Table` as HTML."""
    out = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in table.head) + "</tr></thead><tbody>"]
    for i, row in enumerate(table.rows):
        cls = ' class="pop"' if i in table.muted_rows else ""
        cells = []
        for j, text in enumerate(row):
            classes = " ".join(c for c, on in (("num", j in table.numeric), ("best", (i, j) in table.marked)) if on)
            cells.append(f'<td class="{classes}">{_e(text)}</td>' if classes else f"<td>{_e(text)}</td>")
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return "".join(out) + "</tbody></table>"


def render_html(results: Table | None, tests: Table, note: str, runs: list[tuple[str, str]], images: list[Path],
                tunes: list[Path]) -> str:
    """The page, as a string: the results and tests tables, the note
    under the results, the runs with their status, the plots, and each tuning folder's history."""
    parts = ["<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>sessrec report</title>",
             f"<style>{_CSS}</style></head><body><h1>sessrec report</h1>"]
    if results is not None:
        parts.append("<h2>Results (averages over time)</h2>" + _table(results))
        parts.append(f'<p class="note">{_e(note).replace("`*`", "<b>*</b> (green)")}</p>')
        if tests.rows:
            parts.append("<h2>Pairwise tests</h2>" + _table(tests))
        parts.append("<h2>Per window</h2>" + "".join(_img(p) for p in images))
        parts.append("<h2>Runs</h2><ul>" + "".join(f"<li><code>{_e(path)}</code>: {_e(status)}</li>" for path, status in runs) + "</ul>")
    for folder in tunes:
        parts.append(_tuning_section(folder))
    parts.append("</body></html>")
    return "\n".join(parts)


def _tuning_section(folder: Path) -> str:
    with reading(folder / "tune.json"):
        summary = json.loads((folder / "tune.json").read_text())
        if not isinstance(summary, dict) or not isinstance(summary.get("trials", {}), dict):
            raise TypeError("a study's summary is a mapping whose 'trials' counts the trials by state")
        return _tuning_html(folder, summary)


def _tuning_html(folder: Path, summary: dict[str, Any]) -> str:
    parts = [f"<h2>Tuning: {_e(summary.get('study'))} ({_e(folder)})</h2>"]
    counts = ", ".join(f"{n} {state}" for state, n in summary.get("trials", {}).items() if n)
    secs = summary.get("seconds_per_trial", {})
    facts = [("objective", summary.get("objective")), ("data", (summary.get("data") or {}).get("path")),
             ("trials", counts), ("storage", summary.get("storage")),
             ("seconds per trial", ", ".join(f"{k} {v:.1f}" for k, v in secs.items() if isinstance(v, (int, float)))),
             ("most popular on the same windows", _fmt(summary.get("most_popular_value")))]
    parts.append(_table(Table(["", ""], [[k, str(v)] for k, v in facts if v not in (None, "")])))
    best = summary.get("best")
    if best:
        parts.append(f"<p>Best trial <b>#{_e(best['number'])}</b>: {_e(_fmt(best['value']))} on validation.</p>")
        parts.append(_table(Table(["parameter", "best value"], [[k, _fmt(v)] for k, v in best["params"].items()], numeric={1})))
    for name in ("optimization_history.png", "param_importances.png"):
        if (folder / name).is_file():
            parts.append(_img(folder / name))
    with reading(folder / "trials.csv"):
        trials = _top_trials(folder / "trials.csv")
    if trials:
        parts.append("<p>Best finished trials:</p>" + _table(Table(list(trials[0]), [list(t.values()) for t in trials])))
    return "".join(parts)


def _top_trials(path: Path, n: int = 10) -> list[dict[str, str]]:
    import csv

    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("value")]
    rows.sort(key=lambda r: -float(r["value"]))
    return rows[:n]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.4g}"
    return "" if v is None else str(v)
