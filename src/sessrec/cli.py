"""The ``sessrec`` command line.

    sessrec run                                  # XLNet-MLM on the bundled sample data
    sessrec run --data-path DATA --schema DATA/schema.pbtxt --model gpt2 --task clm --d-model 128
    sessrec run --config exp.yaml --seed 7       # flags override the YAML file
    sessrec run --resume -o runs/x               # continue an interrupted run from its last checkpoint
    sessrec run --preset rees46/xlnet-mlm --data-path DATA --seeds 100 101 102   # the paper's config, 3 seeds
    sessrec tune --data-path DATA --model xlnet --task mlm --trials 30 -o tune/x  # the paper's tuning (Optuna)
    sessrec report runs/a runs/b -o report       # table, significance tests, per-window and loss plots
    sessrec recommend --model-dir runs/a/checkpoint-last --items 12,55,7 -k 10
    sessrec export --model-dir runs/a/checkpoint-last --format onnx
    sessrec sample-data OUT_DIR                  # write the sample data set to look at its layout
    sessrec prepare rees46 --input 2019-Oct.csv --output DATA   # raw data → windows (also yoochoose, g1, adressa, events)
    torchrun --nproc-per-node 4 -m sessrec run ...                # data-parallel training (README "Distributed training")
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import logging
import os
import re
import sys
import typing
import unicodedata
from collections.abc import Callable
from pathlib import Path

from sessrec import launch
from sessrec.config import ExperimentConfig, base_type, field_help, load_yaml
from sessrec.errors import EveryProcessError, SessrecError, listed
from sessrec.stopping import RunInterrupted, terminate_as_interrupt

# Short spellings of a few flags (the long ones, with dashes or underscores, always work).
FLAG_ALIASES = {"model_type": ["--model"], "features_schema_path": ["--schema"], "output_dir": ["-o"]}


class Parser(argparse.ArgumentParser):
    """An argument parser that refuses abbreviated flags: ``--d-mod`` is an error, not ``--d-model``
    (an abbreviation silently changes meaning the day a longer flag is added), as in the paper's
    front end. ``add_subparsers`` makes sub-command parsers of the parent's class, so every
    sub-command, including those added later, refuses them too."""

    argv: typing.ClassVar[list[str]] = []  # the command line being parsed, for the hints of error()

    def __init__(self, *args, **kwargs):
        if kwargs.pop("allow_abbrev", False):
            raise ValueError("sessrec's command lines never accept abbreviated flags")
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str) -> typing.NoReturn:
        """One line: the mistake, the closest flag of this command to one it does not have, and where the help is
        (argparse printed the usage first: about 100 lines for ``sessrec run``)."""
        options = [o for action in self._actions for o in action.option_strings]
        typed = [t.split("=")[0] for t in self.argv if t.startswith("--") and t.split("=")[0] not in options]
        close = [(t, m[0]) for t in typed if (m := difflib.get_close_matches(t, options, 1))]
        hint = f" ({close[0][0]}: did you mean {close[0][1]}?)" if close else ""
        # argparse reads a value such as '-100,-50' as a flag: name the form that passes it
        dashed = [(flag, value) for flag, value in zip(self.argv, self.argv[1:])
                  if flag in options and re.match(r"-[\d.]", value)]
        if message.endswith("expected one argument") and dashed:
            hint = f" (a value that starts with '-' is written {dashed[0][0]}={dashed[0][1]})"
        self.exit(2, f"{self.prog}: error: {message}{hint}; see {self.prog} --help\n")

    def parse_command(self, argv: list[str] | None) -> argparse.Namespace:
        """``parse_args``, with an unknown flag reported by the (sub-)command that was given it."""
        Parser.argv = list(sys.argv[1:] if argv is None else argv)
        args, extra = self.parse_known_args(argv)
        if extra:
            parser = self
            while (subs := next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)) \
                    and getattr(args, subs.dest, None) in subs.choices:
                parser = subs.choices[getattr(args, subs.dest)]
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        return args


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per config field, ``--d-model`` (and ``--d_model``); unset flags stay unset."""
    hints = typing.get_type_hints(ExperimentConfig)
    helps = field_help()
    for f in dataclasses.fields(ExperimentConfig):
        base, _ = base_type(hints[f.name])
        flags = [f"--{f.name.replace('_', '-')}"] + ([f"--{f.name}"] if "_" in f.name else []) + FLAG_ALIASES.get(f.name, [])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kw: dict = {"dest": f.name, "default": argparse.SUPPRESS, "help": f"{helps[f.name]} (default: {default})"}
        if base is bool:
            # --flag, --flag true|false, and --no-flag (not for fields whose name already starts with no_)
            parser.add_argument(*flags, nargs="?", const=True, type=_bool_value, metavar="BOOL", **kw)
            if not f.name.startswith("no_"):
                parser.add_argument(f"--no-{f.name.replace('_', '-')}", dest=f.name, action="store_false",
                                    default=argparse.SUPPRESS, help=f"turn off --{f.name.replace('_', '-')}")
        elif base is list:
            parser.add_argument(*flags, type=int, nargs="+", metavar="K", **kw)
        elif base is dict:
            parser.add_argument(*flags, type=_yaml_mapping, metavar="'{K: V}'|FILE", **kw)
        else:
            parser.add_argument(*flags, type=base, **kw)


def _bool_value(text: str) -> bool:
    low = text.lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _yaml_mapping(text: str) -> dict:
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise argparse.ArgumentTypeError(f"not valid YAML ({getattr(e, 'problem', None) or e}): {text!r}; "
                                         "a mapping such as '{k: 500, sample_size: 1000}'") from None
    if isinstance(value, str) and Path(text).is_file():  # a YAML file of the mapping
        return load_yaml(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping such as '{{k: 500}}' or a YAML file of one, got "
                                         f"{text!r}")
    return value


def given_keys(args: argparse.Namespace) -> set[str]:
    """Config keys the user set: flags and the ``--config`` file's keys (not the preset's)."""
    names = {f.name for f in dataclasses.fields(ExperimentConfig)}
    keys = {k for k in vars(args) if k in names}
    if getattr(args, "config", None):
        from sessrec.config import ALIASES

        keys |= {ALIASES.get(k, k).replace("-", "_") for k in load_yaml(args.config)}
    return keys


def config_from_args(args: argparse.Namespace, with_preset: bool = True) -> ExperimentConfig:
    """Defaults (with ``--resume``: the interrupted run's config), then ``--preset``, then the
    ``--config`` YAML file, then the flags."""
    names = {f.name for f in dataclasses.fields(ExperimentConfig)}
    flags = {k: v for k, v in vars(args).items() if k in names}
    cfg = ExperimentConfig()
    if flags.get("resume"):
        from sessrec.checkpoint import latest_good_checkpoint, nothing_to_resume
        from sessrec.runlock import check_free

        if not flags.get("output_dir"):
            raise SessrecError("--resume needs --output-dir: the folder of the run to continue")
        run_dir = Path(flags["output_dir"])
        check_free(run_dir, "resume")  # before its checkpoints are read: the run may be replacing them
        folder, damaged = latest_good_checkpoint(run_dir, only=["config.yaml"]) if run_dir.is_dir() else (None, [])
        if folder is None:  # said now, not after the defaults' data (another data set) were read and checked
            raise nothing_to_resume(run_dir, damaged)
        cfg = ExperimentConfig.from_yaml(folder / "config.yaml")
    if with_preset and getattr(args, "preset", None):
        from sessrec.presets import load_preset

        cfg.update(load_preset(args.preset), source=f"preset {args.preset}")
    if getattr(args, "config", None):
        cfg.update(load_yaml(args.config), source=args.config)
    return cfg.update(flags, source="command line")


def cmd_run(args: argparse.Namespace) -> int:
    if args.list_presets:
        from sessrec.presets import describe, list_presets

        for name in list_presets():
            print(f"{name:<32} {describe(name)}")
        return 0
    cfg = config_from_args(args)
    _warn_neural_options_of_a_baseline(args, cfg, "sessrec.run")
    if args.seeds and launch.launched():
        raise EveryProcessError("--seeds runs the seeds one after the other in one process, not under torchrun: start one "
                           "torchrun per seed (`... -m sessrec run --seed N --output-dir OUT/seed-N`), then "
                           "`sessrec report OUT/seed-*`")
    if args.seeds:
        from sessrec.multiseed import run_seeds
        from sessrec.outputs import default_output_dir

        run_seeds(cfg, args.seeds, cfg.output_dir or default_output_dir(cfg))
        return 0
    from sessrec.experiment import run_experiment

    run_experiment(cfg)
    return 0


def _warn_neural_options_of_a_baseline(args: argparse.Namespace, cfg: ExperimentConfig, logger: str) -> None:
    """The options of the neural models that a baseline run was given (flags, and values a --config file sets): said
    here, where the flags are known (a config's defaults are no choice)."""
    if cfg.model_type not in _baselines():
        return
    from sessrec.config import neural_only_options

    default = ExperimentConfig()
    inert = [n for n in neural_only_options() if n in vars(args) or getattr(cfg, n) != getattr(default, n)]
    if inert:
        logging.getLogger(logger).warning("no effect on the %s baseline (options of the neural models): %s",
                                          cfg.model_type, " ".join(f"--{n.replace('_', '-')}" for n in inert))


def cmd_tune(args: argparse.Namespace) -> int:
    from sessrec.tuning.study import TuneOptions, tune

    if launch.launched():
        raise EveryProcessError("sessrec tune runs each trial in one process, not under torchrun: run it without torchrun "
                           "(--n-jobs N runs N trials at once)")

    if getattr(args, "resume", False):  # before the config: --resume would load a run's from --output-dir
        raise SessrecError("sessrec tune has no --resume: run the same command again and the study continues")
    cfg = config_from_args(args, with_preset=False)
    _warn_neural_options_of_a_baseline(args, cfg, "sessrec.tune")
    label = cfg.model_type if cfg.model_type in _baselines() else f"{cfg.model_type}-{cfg.task}"
    out = Path(cfg.output_dir or f"runs/tune-{label}")
    opts = TuneOptions(output_dir=out, trials=args.trials, timeout=args.timeout, tune_windows=args.tune_windows,
                       prune=args.prune, storage=args.storage, study_name=args.study_name, n_jobs=args.n_jobs,
                       space_file=args.space, final_seeds=args.final_seeds, metric=args.metric,
                       warm_start=args.warm_start, preset=args.preset)
    if args.print_space:
        from sessrec.tuning.study import plan_study

        print(plan_study(cfg, given_keys(args), opts, printer=lambda *_: None).space.to_yaml(), end="")
        return 0
    tune(cfg, given_keys(args), opts)
    return 0


def _baselines() -> set[str]:
    from sessrec.baselines import BASELINES

    return set(BASELINES)


def _duration(text: str) -> float:
    """Seconds from ``90``, ``90s``, ``30m``, ``2h`` or ``1.5d``."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        return float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90, 30m or 2h (got {text!r})") from None


def cmd_report(args: argparse.Namespace) -> int:
    from sessrec.report import make_report

    report = make_report(args.run_dirs, args.output, with_pop=args.pop)
    print(report.markdown)
    print("wrote " + ", ".join(str(p) for p in report.files))
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    import json

    from sessrec.data.catalog import int_of_text
    from sessrec.io import check_output_file
    from sessrec.recommend import Recommender

    if sum(x is not None for x in (args.items, args.items_json, args.input)) != 1:
        raise SessrecError("give either --items 12,55,7 or --items-json '[\"a,b\", 7]' (one session) or "
                           "--input sessions.parquet")
    if args.input is not None:
        if not args.output:
            raise SessrecError("--input needs --output: the parquet file to write the recommendations to")
        check_output_file(args.output, "--output", [("--input", args.input)], args.overwrite)  # before the model loads
    elif args.output is not None:
        raise SessrecError("--output goes with --input; the recommendations for --items are printed")
    elif args.overwrite:
        raise SessrecError("--overwrite goes with --input and --output (it replaces an existing --output file); the "
                           "recommendations for --items are printed")
    if args.json and args.input is not None:
        raise SessrecError("--json prints the answer for --items or --items-json; --input writes --output instead")
    rec = Recommender.load(args.model_dir, device=args.device)
    original = rec.catalog is not None and not args.internal_ids
    if args.timestamps is not None and (args.input is not None or not original):
        raise SessrecError("--timestamps goes with --items of original ids (a model with a catalog, without --internal-ids)")
    if args.input is not None:
        n = rec.recommend_file(args.input, args.output, args.k, args.exclude_seen, args.strict, args.internal_ids,
                               args.overwrite)
        print(f"wrote top-{args.k} recommendations for {n} sessions to {args.output}")
        return 0
    if rec.side_features and not original:
        why = "with --internal-ids nothing looks them up" if args.internal_ids else "it has no catalog to look them up in"
        raise SessrecError(f"this model reads more than item ids ({', '.join(rec.side_features)}: side information or "
                           f"interaction times) and {why}: --items gives item ids only; pass --input sessions.parquet "
                           f"with list columns {', '.join(rec.input_names)}")
    if args.items_json is not None:
        items: list = _json_items(args.items_json)
    elif original:  # ids exactly as typed between the commas, but for the spaces around them ('' too: an id)
        items = [x.strip() for x in args.items.split(",")]
        if rec.catalog.item.numeric:  # the numbers they are (the catalog matches either): unknown ones print as such
            items = [t if (number := int_of_text(t)) is None else number for t in items]
    else:
        items = _numbers(args.items, "--items", int)
    session: typing.Any = items
    if original:  # original ids may be text; the catalog matches "42" to 42 when its ids are numbers
        session = {"items": items}
        if args.timestamps is not None:
            session["timestamps"] = _numbers(args.timestamps, "--timestamps", float)
    res = rec.recommend([session], args.k, args.exclude_seen, strict=args.strict, internal_ids=args.internal_ids)
    if args.json:  # the server's answer, for scripts: ids exactly as they are (text or numbers)
        print(json.dumps({"items": res.ids[0], "scores": res.scores[0], "unknown": res.unknown[0]}, ensure_ascii=False))
        return 0
    shown = [_shown_id(i) for i in res.ids[0]]
    width = max([10, *map(_columns, shown)])
    print(f"{'rank':>4} {'item_id':>{width}} {'score':>10}")
    for rank, (item, score) in enumerate(zip(shown, res.scores[0]), 1):
        print(f"{rank:>4} {' ' * (width - _columns(item))}{item} {score:>10.4f}")
    # on stderr, beside the table a script reads; quoted, as the errors name ids (' 7' and '7 ' are two). A baseline's
    # untrained items are in the catalog: they stay in the session, unlike the ids the catalog does not have
    kept = [u for u in res.unknown[0] if rec.catalog is not None and rec.catalog.item.lookup(u) is not None]
    skipped = [u for u in res.unknown[0] if u not in kept]
    if skipped:
        hint = rec.catalog.item.written_otherwise(skipped) if rec.catalog is not None else ""
        print(f"skipped {len(skipped)} item(s) unknown to the model: {listed(skipped, 5, repr)}{hint}", file=sys.stderr)
    if kept:
        print(f"kept {len(kept)} item(s) the model never trained on, which give it no evidence: {listed(kept, 5, repr)}",
              file=sys.stderr)
    return 0


def _columns(text: str) -> int:
    """Terminal columns of ``text``: two for a wide character (CJK, most emoji), as a terminal draws them; the
    table's ids were padded by characters and its score column went out of line."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1 for c in text)


def _shown_id(item: object) -> str:
    """An id for the table: text with edge spaces, or that is empty or not printable (a newline), quoted, so that
    ' 42', '42' and '42 ' stay three ids and a row stays one line."""
    text = str(item)
    quoted = not text or text != text.strip() or not text.isprintable() or "'" in text or '"' in text
    return repr(item) if isinstance(item, str) and quoted else text


def _numbers(text: str, flag: str, kind: type) -> list:
    values = [x.strip() for x in text.split(",")]
    if len(values) > 1 and not values[-1]:  # a trailing comma, as generated lists often end
        values.pop()
    if "" in values:  # '1,,2': dropped without a word, where a catalog reads the empty id (unknown)
        raise SessrecError(f"{flag} has an empty value: value {values.index('') + 1} of '{text}'")
    try:
        if kind is int and not all(re.fullmatch(r"-?[0-9]+", t) for t in values):  # int() also reads "5_0", "+5", "٥"
            raise ValueError
        return [kind(t) for t in values]
    except ValueError:
        raise SessrecError(f"{flag} must be comma-separated {'item ids such as 12,55,7' if kind is int else 'numbers'} "
                           f"(got '{text}')") from None


def _json_items(text: str) -> list:
    """``--items-json``: a JSON list of item ids, text or whole numbers, taken exactly (commas and spaces too); a
    whole float (``42.0``, what JSON writers give a float column) is a whole number, as in the Python API and the
    server."""
    import json

    from sessrec.data.catalog import whole_float

    def is_id(v: object) -> bool:
        return not isinstance(v, bool) and (isinstance(v, (str, int)) or whole_float(v))

    try:
        items = json.loads(text)
    except ValueError:
        items = None
    if not isinstance(items, list) or not all(is_id(v) for v in items):
        raise SessrecError("--items-json must be a JSON list of item ids, text or whole numbers, oldest first, "
                           f"e.g. '[\"a,b\", \"Blue Shirt M\", 42]' (got {text!r})")
    return items


def cmd_export(args: argparse.Namespace) -> int:
    from sessrec.export import export_model

    res = export_model(args.model_dir, args.format, args.output, overwrite=args.overwrite)
    check = ("not checked (onnxruntime is not installed)" if res.max_abs_diff is None else
             f"max |score difference| vs PyTorch on {res.n_checked} random sessions: {res.max_abs_diff:.2e}")
    print(f"wrote {res.path} ({args.format}); inputs: {', '.join(res.input_names)}; {check}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from sessrec.serve.app import Options, serve

    if not args.watch and args.watch_interval is not None:
        raise SessrecError("--watch-interval goes with watching the run folder for new checkpoints: leave out --no-watch")
    interval = {} if args.watch_interval is None else {"watch_interval": args.watch_interval}

    serve(Options(model_dir=Path(args.model_dir), host=args.host, port=args.port, backend=args.backend,
                  device=args.device, num_threads=args.num_threads, max_batch=args.max_batch,
                  batch_wait_ms=args.batch_wait_ms, watch=args.watch, **interval,
                  strict=args.strict, max_k=args.max_k, max_items=args.max_items, max_body_bytes=args.max_body_bytes,
                  max_concurrency=args.max_concurrency, read_timeout=args.read_timeout, access_log=args.access_log),
          say=lambda line: print(line, flush=True))
    return 0


def cmd_sample_data(args: argparse.Namespace) -> int:
    from sessrec.data.sample import copy_sample

    out = copy_sample(args.out_dir)
    print(f"wrote the sample data set to {out} (windows 0001..0006 with train/valid/test.parquet, schema.pbtxt)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="sessrec", description="Session-based recommendation with Transformers, evaluated incrementally over time.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="incremental training and evaluation over time windows",
                         description="Train on window t, evaluate on window t+1, for every window; print per-window metrics and averages over time.")
    run.add_argument("--config", metavar="YAML", help="YAML file of config keys (flags override it)")
    run.add_argument("--preset", metavar="NAME", help="start from the paper's best configuration of a group, e.g. "
                     "rees46/xlnet-mlm (--config and flags override it; --list-presets lists them)")
    run.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    run.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                     help="run once per seed into OUTPUT_DIR/seed-N, then write OUTPUT_DIR/summary.md (mean ± std)")
    add_config_arguments(run)
    run.set_defaults(func=cmd_run)

    tune = sub.add_parser("tune", help="tune an algorithm's hyper-parameters on the validation split (Optuna)",
                          description="The paper's tuning protocol: Bayesian optimisation (Optuna TPE, seeded) of "
                                      "NDCG@20 averaged over the validation split of the first half of the windows, "
                                      "the paper's search space for the algorithm (or --space), then optionally the "
                                      "best configuration on the test split of all windows with several seeds. Any "
                                      "'sessrec run' flag fixes that key (it is then not tuned). Running the same "
                                      "command again continues the study.")
    tune.add_argument("--config", metavar="YAML", help="YAML file of fixed config keys (flags override it)")
    tune.add_argument("--preset", metavar="NAME", help="start from a preset: its values are the base and the first trial")
    tune.add_argument("--trials", type=int, default=20, help="finished trials the study should have (default: 20)")
    tune.add_argument("--timeout", type=_duration, metavar="DURATION", help="stop starting trials after this long (90s, 30m, 2h)")
    tune.add_argument("--tune-windows", type=int, metavar="N",
                      help="windows used while tuning, from the first (default: half of them, as in the paper)")
    tune.add_argument("--no-prune", dest="prune", action="store_false",
                      help="run every trial to the end (default: a median pruner stops poor trials after a window)")
    tune.add_argument("--storage", metavar="URL", help="Optuna database URL (default: sqlite:///OUTPUT_DIR/study.db); "
                      "several sessrec tune processes given one URL share the study")
    tune.add_argument("--study-name", metavar="NAME", help="default: the algorithm, e.g. xlnet-mlm")
    tune.add_argument("--n-jobs", type=int, default=1, help="local worker processes (default: 1)")
    tune.add_argument("--space", metavar="YAML", help="search space file (replaces the paper's space; see --print-space)")
    tune.add_argument("--print-space", action="store_true", help="print the search space as YAML and exit")
    tune.add_argument("--final-seeds", type=int, default=0, metavar="N",
                      help="then run the best configuration on the test split of all windows with N seeds")
    tune.add_argument("--metric", default="ndcg_at_20", help="objective on validation (default: ndcg_at_20)")
    tune.add_argument("--no-warm-start", dest="warm_start", action="store_false",
                      help="do not start with the untuned configuration and the paper's best one")
    add_config_arguments(tune)
    tune.set_defaults(func=cmd_tune)

    report = sub.add_parser("report", help="table, significance tests and plots of one or more runs",
                            description="Averages over time per run in the layout of the paper's Table 2 (runs that differ "
                                        "only in the seed are one row: mean ± std), paired t-tests over evaluated windows "
                                        "with Bonferroni correction, and PNG plots of NDCG@20/HR@20 per window and of the "
                                        "training loss. Works on runs still in progress and on folders of the original script.")
    report.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    report.add_argument("-o", "--output", default="report", metavar="DIR",
                        help="folder for report.md, report.html, report.csv, comparisons.csv, per_window.csv and the PNGs (default: report)")
    report.add_argument("--no-pop", dest="pop", action="store_false",
                        help="leave out the most-popular row taken from the runs' own comparison")
    report.set_defaults(func=cmd_report)

    rec = sub.add_parser("recommend", help="top-k next items from a saved model",
                         description="Top-k next items (ids and scores) for one session typed on the command line "
                                     "or for every session (row) of a parquet file.")
    rec.add_argument("--model-dir", required=True, metavar="DIR", help="a checkpoint folder, e.g. RUN_DIR/checkpoint-last")
    rec.add_argument("--items", metavar="IDS", help="one session: comma-separated item ids, oldest first (e.g. 12,55,7; "
                     "spaces around an id are dropped, those inside kept); the original ids when the model has a "
                     "catalog (data made by sessrec prepare)")
    rec.add_argument("--items-json", metavar="JSON", help="one session as a JSON list of item ids, taken exactly: ids "
                     "with commas or edge spaces, e.g. '[\"a,b\", \" lead\", 42]' (instead of --items)")
    rec.add_argument("--timestamps", metavar="SECONDS", help="with --items: the items' times, comma-separated epoch "
                     "seconds, for the features rebuilt from time (default: now)")
    rec.add_argument("--input", metavar="PARQUET", help="sessions, one row each: a list column 'items' of original ids "
                     "(optional 'timestamps' and side-feature list columns) with a catalog, else list columns of the "
                     "model's input features")
    rec.add_argument("--output", metavar="PARQUET", help="with --input: where to write item_ids and scores list columns "
                     "(a new file; never the input, nor inside a checkpoint or prepared data folder)")
    rec.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    rec.add_argument("-k", type=int, default=10, help="number of items (default: 10)")
    rec.add_argument("--exclude-seen", action="store_true", help="never recommend an item already in the session")
    rec.add_argument("--strict", action="store_true", help="an item id the model does not know is an error "
                     "(default: skipped, and the skipped ids are reported)")
    rec.add_argument("--internal-ids", action="store_true", help="sessions and answers in the model's item ids even "
                     "when the model has a catalog of original ids")
    rec.add_argument("--json", action="store_true", help="print the answer as one JSON object {\"items\", \"scores\", "
                     "\"unknown\"} (as the server answers) instead of the table")
    rec.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    rec.set_defaults(func=cmd_recommend)

    exp = sub.add_parser("export", help="export a saved model to TorchScript or ONNX for serving",
                         description="The scoring graph: padded [batch, session_seq_length_max] input features → "
                                     "[batch, n_items - 1] scores (column j = item id j + 1); checked against PyTorch.")
    exp.add_argument("--model-dir", required=True, metavar="DIR", help="a checkpoint folder, e.g. RUN_DIR/checkpoint-last")
    exp.add_argument("--format", required=True, choices=["torchscript", "onnx"])
    exp.add_argument("--output", metavar="FILE", help="default: model.pt or model.onnx in the current folder (a new "
                     "file; never inside a checkpoint or prepared data folder)")
    exp.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    exp.set_defaults(func=cmd_export)

    srv = sub.add_parser("serve", help="serve a saved model over HTTP/JSON (FastAPI + uvicorn)",
                         description="POST /recommend {\"items\": [...], \"k\": 10, \"exclude_seen\": true} answers the "
                                     "top-k next items (original ids when the model has a catalog); GET /health; GET "
                                     "/metadata. Concurrent requests are scored in one forward pass. Given a run folder, "
                                     "each new checkpoint-last is swapped in while requests continue.")
    srv.add_argument("--model-dir", required=True, metavar="DIR",
                     help="a run folder (its newest checkpoint is served, and each newer checkpoint-last after it) "
                          "or a checkpoint folder")
    srv.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    srv.add_argument("--port", type=int, default=8000, help="port (default: %(default)s; 0 = any free port)")
    srv.add_argument("--backend", choices=["eager", "torchscript", "onnx"], default="eager",
                     help="PyTorch eager, or the model exported to TorchScript or ONNX Runtime when loaded "
                          "(default: %(default)s)")
    srv.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N; --backend eager only (default: cpu)")
    srv.add_argument("--num-threads", type=int, default=1,
                     help="torch / ONNX Runtime threads that score a batch, beside the thread that reads requests; "
                          "more help large batches where cores are free (default: %(default)s; 0 = torch's default)")
    srv.add_argument("--max-batch", type=int, default=64,
                     help="most sessions scored in one forward pass; 1 = no micro-batching (default: %(default)s)")
    srv.add_argument("--batch-wait-ms", type=float, default=2.0,
                     help="longest wait for requests still arriving before a batch is scored; a lone request "
                          "never waits (default: %(default)s)")
    srv.add_argument("--no-watch", dest="watch", action="store_false",
                     help="with a run folder: keep the first model (default: serve each new checkpoint-last)")
    srv.add_argument("--watch-interval", type=float, default=None, metavar="SECONDS",
                     help="how often checkpoint-last is checked (default: 10)")
    srv.add_argument("--strict", action="store_true", help="an item the model does not know makes the request fail "
                     "(422) (default: skipped and listed in 'unknown'; a request's \"strict\" overrides it)")
    srv.add_argument("--max-k", type=int, default=1000, help="largest k (default: %(default)s, at most the catalog size)")
    srv.add_argument("--max-items", type=int, default=1000, help="most items in one session (default: %(default)s)")
    srv.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body (default: 1 MiB)")
    srv.add_argument("--max-concurrency", type=int, default=1000,
                     help="open connections at once; more are answered 503 (default: %(default)s)")
    srv.add_argument("--read-timeout", type=float, default=10.0, metavar="SECONDS",
                     help="time a connection has to send a whole request, from its opening or previous answer; "
                          "then it is closed (408 when a request had begun) (default: %(default)s)")
    srv.add_argument("--access-log", action="store_true", help="log every request (uvicorn's access log)")
    srv.set_defaults(func=cmd_serve)

    sample = sub.add_parser("sample-data", help="write the bundled sample data set to a folder")
    sample.add_argument("out_dir")
    sample.set_defaults(func=cmd_sample_data)

    from sessrec.datasets.cli import add_prepare_parser

    add_prepare_parser(sub)
    return parser


def setup_logging(verbose: bool = False) -> None:
    """sessrec's log lines on stderr; under torchrun the processes but rank 0 log warnings and errors only."""
    level = logging.DEBUG if verbose else logging.INFO
    if launch.rank() != 0:
        level = max(level, logging.WARNING)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("transformers", "urllib3", "matplotlib", "onnx_ir", "onnxscript", "torch.onnx"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # transformers resets its logger's level when it is first imported (later, lazily): tell it through its variable.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def setup_process(verbose: bool = False) -> None:
    """Process-wide settings of the command lines, made before pyarrow allocates: its buffers come
    from the C allocator, not its default mimalloc pool, which keeps the pages of freed tables (a
    training run peaked 10-17 MB higher, measured; an ``ARROW_DEFAULT_MEMORY_POOL`` already set
    wins; a pool set from Python would not reach arrow's C++ readers); then sessrec's logging."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    setup_logging(verbose)


def run_guarded(prog: str, command: Callable[[], int]) -> int:
    """Run a command: a :class:`SessrecError`, or an ``OSError`` (a folder that cannot be written), is
    printed on one line (exit 2); a run stopped by SIGTERM or SIGINT says what it saved and exits 128 +
    the signal number (143, 130); Ctrl-C anywhere else exits 130. In a distributed run what rank 0
    says for every process (a stop, an error it met alone) is printed by rank 0 only; a command that
    succeeded leaves the process group, and the process then ends at once with its code (see
    :func:`_end_distributed_process`)."""
    code = _guarded(prog, command)
    if _torchrun_worker():
        _end_distributed_process(code)
    return code


def _said_here(e: SessrecError) -> bool:
    """Whether this process prints ``e``: an error every process meets is said by rank 0 once the processes have joined;
    before, by each machine's first process (another machine's command line may differ, and its rank 0 may never
    meet the error)."""
    if not isinstance(e, EveryProcessError) or launch.rank() == 0:
        return True
    joined = "sessrec.distributed" in sys.modules and sys.modules["sessrec.distributed"].joined()
    return not joined and launch.local_rank() in (None, 0)


def _end_progress_bars() -> None:
    """Close the progress bars a stop left open, so that what follows is a line of its own: tqdm ends a
    bar's line with a carriage return, and in a log file the error line continued the bar's."""
    if "tqdm" not in sys.modules:
        return
    from tqdm import tqdm
    from tqdm.auto import tqdm as auto_tqdm
    bars = {bar for cls in (tqdm, auto_tqdm) for bar in list(getattr(cls, "_instances", ()))}
    shown = [bar for bar in bars if not bar.disable]
    for bar in bars:
        bar.close()
    if shown and not sys.stderr.isatty():
        sys.stderr.write("\n")


def _guarded(prog: str, command: Callable[[], int]) -> int:
    try:
        if launch.launched():  # torchrun stops its workers with SIGTERM: the run's own handler answers it
            code = command()
        else:
            with terminate_as_interrupt():
                code = command()
        if "sessrec.distributed" in sys.modules:  # not imported (with torch) by the commands that need no model
            sys.modules["sessrec.distributed"].shutdown()
        return code
    except SessrecError as e:
        _end_progress_bars()
        if not getattr(e, "echo", False) and _said_here(e):
            print(f"{prog}: error: {e}", file=sys.stderr)
        if type(e).__name__ == "PeerLost":  # (sessrec.distributed, not imported here: it imports torch)
            _end_distributed_process(2)  # whatever launched it: its group's threads may wait on the lost peer
        return 2
    except RunInterrupted as e:
        _end_progress_bars()
        if not e.quiet:
            print(f"{prog}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        _end_progress_bars()
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the output was piped into a command that stopped reading (`| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's flush at exit would fail again
        return 0
    except OSError as e:  # a folder that cannot be written (read-only, full, a file in the way) met below our checks
        _end_progress_bars()
        print(f"{prog}: error: {_os_error_line(e)}", file=sys.stderr)
        return 2


def _os_error_line(e: OSError) -> str:
    """An ``OSError`` in one line: the file and the cause (polars' and pyarrow's errors have them in their text)."""
    if e.strerror and e.filename:
        return f"{e.filename}: {e.strerror}"
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _torchrun_worker() -> bool:
    """Whether this process is one of several of a run started by torchrun, and ran a model command."""
    try:
        several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        several = False
    return several and bool(os.environ.get("TORCHELASTIC_RUN_ID")) and "sessrec.distributed" in sys.modules


def _end_distributed_process(code: int) -> typing.NoReturn:
    """End a torchrun worker now, with ``code``: the C++ destructors of the process group's threads
    that a normal interpreter exit runs can abort ("terminate called without an active exception",
    SIGABRT) when a peer stopped first or is gone, turning a clean exit (0, 143, 2) into a crash.
    Everything the command wrote is closed by then; logs and standard streams are flushed here."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _version() -> str:
    from sessrec import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_command(argv)
    setup_process(args.verbose)
    return run_guarded("sessrec", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
