"""Fixed raw inputs of every ``sessrec prepare`` data set, for the golden-digest tests.

Each writer makes a few thousand events from a seeded ``random.Random`` (stable across Python versions)
plus hand-written edge cases: consecutive and non-consecutive repeats, (user, item) repeats across
sessions, equal timestamps (input order decides), items and side values with equal counts (ids by
raw value), empty side values, sessions crossing midnight or the hour, rows out of time order,
sessions cut to the maximum length or dropped as too short, and windows with too few sessions.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from pathlib import Path

import polars as pl

DAY = 86_400


def _pick(rng: random.Random, n: int, skew: float = 1.0) -> int:
    """An index in ``range(n)``, small ones more often when ``skew`` > 1."""
    return min(n - 1, int(n * rng.random() ** skew))


def _sessions(rng: random.Random, n_sessions: int, t0: int, days: int, n_items: int) -> list[dict]:
    """Generated sessions: [{"session", "user", "events": [(epoch s, item index)]}]."""
    out = []
    for s in range(n_sessions):
        start = t0 + _pick(rng, days * DAY)
        if s % 23 == 0:  # starts just before midnight: crosses into the next day
            start = t0 + (1 + _pick(rng, days - 1)) * DAY - 1 - _pick(rng, 120)
        length = 1 + _pick(rng, 25, 2.5)
        t, item, events = start, _pick(rng, n_items, 2.0), []
        for _ in range(length):
            r = rng.random()
            if r < 0.25:
                pass  # consecutive repeat
            elif r < 0.35 and events:
                item = events[0][1]  # back to the first item: a non-consecutive repeat
            else:
                item = _pick(rng, n_items, 2.0)
            events.append((t, item))
            t += 0 if rng.random() < 0.1 else 1 + _pick(rng, 400)  # 10 % equal timestamps
        out.append({"session": s, "user": _pick(rng, n_sessions // 3), "events": events})
    return out


def _file_order(rng: random.Random, sessions: list[dict]) -> list[tuple]:
    """(session index, user, epoch s, item index) by time, with ~3 % of rows moved out of time order."""
    rows = [(s["session"], s["user"], t, item) for s in sessions for t, item in s["events"]]
    rows.sort(key=lambda r: r[2])
    for _ in range(len(rows) // 30):
        i, j = _pick(rng, len(rows)), _pick(rng, len(rows))
        rows[i], rows[j] = rows[j], rows[i]
    return rows


def _utc(epoch: int, fmt: str) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime(fmt)


# ---- REES46 ----------------------------------------------------------------------------------------
REES46_T0 = 1569888000  # 2019-10-01 00:00 UTC
REES46_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session"


def _rees46_lines(rows: list[tuple], prefix: str) -> list[str]:
    lines = []
    for s, user, t, item in rows:
        code = "" if item % 4 == 3 else f"cat{item % 5}.sub{item % 11}"  # 1 in 4 products without a code
        brand = "" if item % 7 == 6 else f"brand{item % 9}"
        price = f"{1 + (item * 37 % 1000) / 7:.2f}"
        uuid = f"{prefix}{s:06x}-8bb3-4e00-8c23-a032dfed738c"
        lines.append(f"{_utc(t, '%Y-%m-%d %H:%M:%S')} UTC,view,{1_000_000 + item * 7},{2053013552000000000 + item % 13},"
                     f"{code},{brand},{price},{500_000_000 + user},{uuid}")
    return lines


def write_rees46(folder: Path) -> list[Path]:
    """Two monthly files: October (4 days, day 4 with 2 sessions) and 2 days of November."""
    rng = random.Random(46)
    folder.mkdir(parents=True, exist_ok=True)
    octo = _sessions(rng, 420, REES46_T0, 3, 90)
    octo += [{"session": 10_000 + k, "user": k, "events": [(REES46_T0 + 3 * DAY + 3600 * k + 60 * i, k + i) for i in range(3)]}
             for k in range(2)]  # day 4: only 2 sessions, fewer than 80-10-10 needs
    nov = _sessions(rng, 150, REES46_T0 + 31 * DAY, 2, 90)
    paths = []
    for name, sessions, prefix in (("2019-Oct.csv", octo, "a"), ("2019-Nov.csv", nov, "b")):
        path = folder / name
        path.write_text("\n".join([REES46_HEADER, *_rees46_lines(_file_order(rng, sessions), prefix)]) + "\n")
        paths.append(path)
    return paths


# ---- YOOCHOOSE -------------------------------------------------------------------------------------
YOOCHOOSE_T0 = 1396828800  # 2014-04-07 00:00 UTC


def write_yoochoose(folder: Path) -> Path:
    rng = random.Random(2015)
    folder.mkdir(parents=True, exist_ok=True)
    sessions = _sessions(rng, 500, YOOCHOOSE_T0, 4, 70)
    categories = ["0", "S", "1", "2", "2053013552326770905", ""]
    lines = []
    for s, _, t, item in _file_order(rng, sessions):
        ms = (s * 7919 + t) % 1000
        lines.append(f"{s + 1},{_utc(t, '%Y-%m-%dT%H:%M:%S')}.{ms:03d}Z,{214_500_000 + item},{categories[item % 6]}")
    path = folder / "yoochoose-clicks.dat"
    path.write_text("\n".join(lines) + "\n")
    return path


# ---- events ----------------------------------------------------------------------------------------
EVENTS_T0 = 1709424000  # 2024-03-03 00:00 UTC


def write_events_csv(folder: Path) -> Path:
    """A CSV with session, user, text times, string items ("i10" sorts before "i9"), a categorical with
    empty values and a continuous column with empty values."""
    rng = random.Random(7)
    folder.mkdir(parents=True, exist_ok=True)
    sessions = _sessions(rng, 400, EVENTS_T0, 3, 60)
    lines = ["sess,user,item,ts,colour,price"]
    for s, user, t, item in _file_order(rng, sessions):
        colour = ["", "red", "green", "blue", "red"][item % 5]
        price = "" if item % 9 == 4 else f"{(item * 13 % 50) / 4:.2f}"
        lines.append(f"s{s},u{user},i{item},{_utc(t, '%Y-%m-%d %H:%M:%S')},{colour},{price}")
    path = folder / "log.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_events_parquet(folder: Path) -> Path:
    """A parquet log with integer items and sessions and a datetime time column."""
    rng = random.Random(8)
    folder.mkdir(parents=True, exist_ok=True)
    rows = _file_order(rng, _sessions(rng, 300, EVENTS_T0, 2, 50))
    path = folder / "log.parquet"
    pl.DataFrame({"sid": [r[0] for r in rows], "product": [r[3] * 3 for r in rows],
                  "when": [datetime.fromtimestamp(r[2], tz=timezone.utc) for r in rows],
                  "shade": [["dark", "light", None][r[3] % 3] for r in rows]}).write_parquet(path)
    return path


# ---- G1 ----------------------------------------------------------------------------------------------
G1_T0 = 1506816000  # 2017-10-01 00:00 UTC
G1_HEADER = ("user_id,session_id,session_start,session_size,click_article_id,click_timestamp,click_environment,"
             "click_deviceGroup,click_os,click_country,click_region,click_referrer_type")


def write_g1(folder: Path) -> tuple[Path, Path]:
    """Hourly click files over 6 hours and the articles' metadata (article 0, the most clicked, has none)."""
    rng = random.Random(1)
    clicks = folder / "clicks"
    clicks.mkdir(parents=True, exist_ok=True)
    sessions = _sessions(rng, 360, G1_T0, 1, 40)
    for s in sessions:  # six hours instead of a day
        s["events"] = [(G1_T0 + (t - G1_T0) // 4, item) for t, item in s["events"]]
    rows = _file_order(rng, sessions)
    for hour in range(7):
        part = [r for r in rows if (r[2] - G1_T0) // 3600 == hour]
        lines = [G1_HEADER] + [f"{u},{s + 1},{G1_T0 * 1000},2,{a},{t * 1000 + s % 1000},{1 + a % 3},{1 + u % 4},"
                               f"{a % 6 + 1},1,{u % 5 + 20},2" for s, u, t, a in part]
        (clicks / f"clicks_hour_{hour}.csv").write_text("\n".join(lines) + "\n")
    articles = ["article_id,category_id,created_at_ts,publisher_id,words_count"]
    articles += [f"{a},{a % 7},{(G1_T0 - 3600 * (a % 10) - 60 * a) * 1000},0,180" for a in range(1, 40)]
    (folder / "articles_metadata.csv").write_text("\n".join(articles) + "\n")
    return clicks, folder / "articles_metadata.csv"


# ---- ADRESSA ---------------------------------------------------------------------------------------
ADRESSA_T0 = 1483228800  # 2017-01-01 00:00 UTC


def write_adressa(folder: Path) -> Path:
    """Two day files of JSON lines; some events are front pages (no canonicalUrl), some lack side fields."""
    rng = random.Random(3)
    folder.mkdir(parents=True, exist_ok=True)
    users = _sessions(rng, 240, ADRESSA_T0, 2, 30)
    rows = _file_order(rng, users)
    for day in range(2):
        lines = []
        for i, (s, _, t, item) in enumerate(rows):
            if (t - ADRESSA_T0) // DAY != day:
                continue
            e = {"eventId": i, "userId": f"cx:{s % 90}", "time": t, "country": "no", "region": ["trondelag", "oslo"][item % 2],
                 "deviceType": ["Mobile", "Tablet", "Desktop"][s % 3], "os": "Android" if s % 4 else None,
                 "referrerHostClass": ["social", "search", "internal"][item % 3]}
            if item % 5 != 4:
                e["city"] = ["trondheim", "oslo", "bergen", "x"][item % 4]
            if item % 11 != 10:  # else a front page
                e["canonicalUrl"] = f"http://adressa.no/{item}.html"
                if item % 6:
                    e["category1"] = ["nyheter|trondheim", "sport|fotball", "nyheter", "kultur"][item % 4]
                if item % 3:
                    e["author"] = ["Ola", ["Kari", "Per"]][item % 2]  # a list counts as one value
            lines.append(json.dumps({k: v for k, v in e.items() if v is not None}))
        (folder / f"2017010{day + 1}").write_text("\n".join(lines) + "\n")
    return folder
