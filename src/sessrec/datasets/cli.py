"""``sessrec prepare DATASET``: the flags of each data set; the work is done by ``sessrec.datasets.<name>``.

The data set modules (and polars) are imported only when a ``prepare`` command runs, so the other
``sessrec`` commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import re
from pathlib import Path

from sessrec.datasets import DEFAULT_SESSION_GAP_MS
from sessrec.errors import SessrecError

# name -> (help, defaults of the shared flags)
DATASETS = {
    "rees46": ("REES46 e-commerce monthly CSVs (2019-Oct.csv, ...) → daily windows",
               {"window": "day", "repeats": "consecutive", "split": "80-10-10", "min_sessions_per_window": 0}),
    "yoochoose": ("YOOCHOOSE / RecSys Challenge 2015 yoochoose-clicks.dat → daily windows",
                  {"window": "day", "repeats": "consecutive", "split": "all+10-10", "min_sessions_per_window": 0}),
    "g1": ("G1 news (globo.com) clicks/ folder + articles_metadata.csv → hourly windows",
           {"window": "hour", "repeats": "session", "split": "all+50-50", "min_sessions_per_window": 100}),
    "adressa": ("ADRESSA news three_month/ JSON-lines folder → hourly windows",
                {"window": "hour", "repeats": "session", "split": "all+50-50", "min_sessions_per_window": 100}),
    "events": ("your own event log (CSV or parquet: session or user, item, time columns) → daily or hourly windows",
               {"window": "day", "repeats": "consecutive", "split": "all+50-50", "min_sessions_per_window": 0}),
}


def parse_duration(text: str) -> int:
    """``30m``, ``1h``, ``90s``, ``2d`` (or plain seconds) → milliseconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d)?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected a duration such as 30m, 1h or 90s, got {text!r}")
    scale = {"ms": 1, "s": 1000, None: 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}[m.group(2)]
    ms = round(float(m.group(1)) * scale)
    if ms < 1:  # times are read in whole milliseconds: a shorter gap would cut every session after its first event
        raise argparse.ArgumentTypeError(f"expected a duration of at least 1 ms, got {text!r}")
    return ms


def parse_delimiter(text: str) -> str:
    """``--delimiter``: one character (``';'``, ``'|'``), or ``tab`` (also ``\\t`` as typed) → the character."""
    sep = {"tab": "\t", "\\t": "\t"}.get(text.lower(), text)
    if len(sep) > 1:
        raise argparse.ArgumentTypeError(f"the CSV reader takes a one-character delimiter, got {text!r}: replace it in "
                                         f"the file first (e.g. sed 's/{text}/\\t/g' in.dat > out.tsv, then --delimiter tab)")
    if len(sep.encode()) != 1 or sep in '"\r\n':
        raise argparse.ArgumentTypeError(f"expected one ASCII character other than a quote or a line break, or tab, got "
                                         f"{text!r}")
    return sep


def parse_quote(text: str) -> str | None:
    """``--quote-char``: one character, or ``none`` (nothing is quoted) → the character or None."""
    if text.lower() == "none":
        return None
    if len(text) != 1 or len(text.encode()) != 1 or text in "\r\n":
        raise argparse.ArgumentTypeError(f"expected one ASCII character, or none, got {text!r}")
    return text


# data set -> why it cannot honour an option that the others offer (given anyway: one line, exit 2, before reading)
NO_USER = {"yoochoose": "YOOCHOOSE clicks have no user (SessionID,Timestamp,ItemID,Category)"}
GIVEN_SESSIONS = {"rees46": "user_session", "yoochoose": "SessionID", "g1": "session_id"}


def _add_shared(p: argparse.ArgumentParser, defaults: dict, name: str) -> None:
    p.add_argument("--output", "-o", required=True, type=Path, help="output folder (written only when the run succeeds)")
    p.add_argument("--window", choices=("day", "hour"), default=defaults["window"],
                   help="time window of a session, by its first interaction, UTC (default: %(default)s)")
    offered = ("consecutive", "session", "keep") if name in NO_USER else ("consecutive", "session", "user", "keep")
    p.add_argument("--repeats", choices=("consecutive", "session", "user", "keep"), default=defaults["repeats"],
                   metavar="{" + ",".join(offered) + "}",
                   help="repeated items to remove: consecutive repeats in a session (e-commerce), any repeat in a "
                        "session (news), " + ("" if name in NO_USER else "every (user, item) interaction but the first "
                                              "in the whole data, ") + "or none (default: %(default)s)")
    p.add_argument("--split", choices=("80-10-10", "all+10-10", "all+50-50"), default=defaults["split"],
                   help="per-window split: 80-10-10 = disjoint random train/valid/test; all+10-10 = train all, "
                        "valid/test two disjoint random 10%% subsets; all+50-50 = train all, valid/test a random "
                        "half each (default: %(default)s)")
    p.add_argument("--min-session-length", type=int, default=2, help="drop shorter sessions (default: %(default)s)")
    p.add_argument("--max-session-length", type=int, default=20,
                   help="keep the first N interactions of a session (default: %(default)s)")
    p.add_argument("--min-sessions-per-window", type=int, default=defaults["min_sessions_per_window"],
                   help="skip windows with fewer sessions and number the others 1, 2, ... (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the per-window splits (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _add_dataset_flags(name: str, p: argparse.ArgumentParser) -> None:
    if name == "rees46":
        p.add_argument("--input", "-i", nargs="+", required=True, help="monthly CSV files, in time order")
    elif name == "yoochoose":
        p.add_argument("--input", "-i", nargs="+", required=True, help="yoochoose-clicks.dat (header-less CSV)")
    elif name == "g1":
        p.add_argument("--input", "-i", required=True, help="the clicks/ folder of clicks_hour_*.csv (or one CSV file)")
        p.add_argument("--articles", required=True, help="articles_metadata.csv (article creation times)")
    elif name == "adressa":
        p.add_argument("--input", "-i", required=True, help="folder of per-day JSON-lines files (three_month/)")
        p.add_argument("--days", type=int, default=16,
                       help="read the first N day files in name order; 0 = all (default: %(default)s, as the paper)")
        p.add_argument("--session-gap", type=parse_duration, default=DEFAULT_SESSION_GAP_MS, metavar="DURATION",
                       help="inactivity that ends a user's session: 30m, 1h, 90s (a number alone: seconds; "
                            "default: 30m)")
        p.add_argument("--rare-category-count", type=int, default=100,
                       help="side-feature values seen fewer times map to id 1 (unknown) (default: %(default)s)")
    elif name == "events":
        p.add_argument("--input", "-i", nargs="+", required=True, help="CSV (with a header) or parquet files")
        p.add_argument("--delimiter", type=parse_delimiter, default=",", metavar="CHAR",
                       help="what separates a CSV file's fields: one character such as ';' or '|', or tab "
                            "(default: ,)")
        p.add_argument("--quote-char", type=parse_quote, default='"', metavar="CHAR",
                       help="what quotes a CSV field that holds the delimiter, a quote or a line break; none: nothing "
                            "is quoted (tab-separated files whose values hold quotes, as 12\" Mix) (default: \")")
        p.add_argument("--item-col", required=True, help="item column")
        p.add_argument("--time-col", required=True, help="time column: a datetime, epoch numbers (--time-unit) or text")
        p.add_argument("--session-col", help="session column; without it, sessions are cut from each --user-col stream")
        p.add_argument("--user-col", help="user column (needed without --session-col, or with --repeats user)")
        p.add_argument("--session-gap", type=parse_duration, metavar="DURATION",
                       help="inactivity that ends a user's session when there is no --session-col: 30m, 1h, 90s (a "
                            "number alone: seconds; default: 30m)")
        p.add_argument("--time-unit", choices=("s", "ms", "us", "ns"),
                       help="unit of a numeric time column (default: s)")
        p.add_argument("--time-format", help="strftime format of a text time column (default: inferred)")
        p.add_argument("--timezone", default="UTC", help="time zone of the hour/weekday features (default: %(default)s)")
        p.add_argument("--input-timezone", default="UTC", metavar="ZONE",
                       help="time zone of times written without one (local datetimes, dates, text without an offset), "
                            "e.g. Europe/Berlin; epoch numbers and times with an offset are instants already "
                            "(default: %(default)s)")
        p.add_argument("--categorical-cols", nargs="+", default=[], metavar="COL",
                       help="side columns encoded as categorical ids (1 = empty)")
        p.add_argument("--continuous-cols", nargs="+", default=[], metavar="COL",
                       help="numeric side columns, standardised (empty = the mean)")


def add_prepare_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``sessrec prepare <dataset>`` on the top-level sub-command parser."""
    prep = sub.add_parser("prepare", help="raw data sets or your own event log → time-window folders + schema",
                          description="Turn raw events into DIR/0001/{train,valid,test}.parquet ... and DIR/schema.pbtxt "
                                      "that `sessrec run --data-path DIR` trains on; prints the paper's Table 1 statistics.")
    datasets = prep.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    for name, (help_text, defaults) in DATASETS.items():
        p = datasets.add_parser(name, help=help_text, description=help_text)
        _add_dataset_flags(name, p)
        _add_shared(p, defaults, name)
        if name in GIVEN_SESSIONS:  # not offered; refused with the reason rather than argparse's usage text
            p.add_argument("--session-gap", help=argparse.SUPPRESS)
        p.set_defaults(func=cmd_prepare)


def cmd_prepare(args: argparse.Namespace) -> int:
    from sessrec.datasets.pipeline import Options

    opts = Options(output=args.output, window=args.window, repeats=args.repeats, split=args.split,
                   min_session_length=args.min_session_length, max_session_length=args.max_session_length,
                   min_sessions_per_window=args.min_sessions_per_window, seed=args.seed,
                   overwrite=args.overwrite, quiet=args.quiet)
    for flag in ("days", "rare_category_count"):
        if getattr(args, flag, 0) < 0:
            raise SessrecError(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    if getattr(args, "session_gap", None) is not None and args.dataset == "events" and args.session_col:
        raise SessrecError("--session-gap applies only when sessions are cut from --user-col (no --session-col)")
    if args.dataset in GIVEN_SESSIONS and args.session_gap is not None:
        no_user = f", and {NO_USER[args.dataset]}" if args.dataset in NO_USER else ""
        raise SessrecError(f"--session-gap does not apply to {args.dataset}: its sessions are given ("
                           f"{GIVEN_SESSIONS[args.dataset]}){no_user}; leave the option out")
    if args.dataset in NO_USER and args.repeats == "user":
        raise SessrecError(f"--repeats user keeps each (user, item) pair's first interaction, but {NO_USER[args.dataset]}; "
                           "use --repeats consecutive, session or keep")
    importlib.import_module(f"sessrec.datasets.{args.dataset}").run(args, opts)
    return 0
