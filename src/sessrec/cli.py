"""The ``sessrec`` command line.

    sessrec run                                  # XLNet-MLM on the bundled sample data
    sessrec run --data-path DATA --schema DATA/schema.pbtxt --model gpt2 --task clm --d-model 128
    sessrec run --config exp.yaml --seed 7       # flags override the YAML file
    sessrec sample-data OUT_DIR                  # write the sample data set to look at its layout
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing
from collections.abc import Callable

from sessrec.config import ExperimentConfig, base_type, field_help
from sessrec.errors import SessrecError

# Short spellings of a few flags (the long ones, with dashes or underscores, always work).
FLAG_ALIASES = {"model_type": ["--model"], "features_schema_path": ["--schema"], "output_dir": ["-o"]}


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
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **kw)
        elif base is list:
            parser.add_argument(*flags, type=int, nargs="+", metavar="K", **kw)
        elif base is dict:
            parser.add_argument(*flags, type=_yaml_mapping, metavar="YAML", **kw)
        else:
            parser.add_argument(*flags, type=base, **kw)


def _yaml_mapping(text: str) -> dict:
    import yaml

    value = yaml.safe_load(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping such as '{{k: 500}}', got {text!r}")
    return value


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    """Defaults, then the ``--config`` YAML file, then the flags given on the command line."""
    cfg = ExperimentConfig.from_yaml(args.config) if getattr(args, "config", None) else ExperimentConfig()
    names = {f.name for f in dataclasses.fields(ExperimentConfig)}
    flags = {k: v for k, v in vars(args).items() if k in names}
    return cfg.update(flags, source="command line")


def cmd_run(args: argparse.Namespace) -> int:
    from sessrec.experiment import run_experiment

    run_experiment(config_from_args(args))
    return 0


def cmd_sample_data(args: argparse.Namespace) -> int:
    from sessrec.data.sample import copy_sample

    out = copy_sample(args.out_dir)
    print(f"wrote the sample data set to {out} (windows 0001..0006 with train/valid/test.parquet, schema.pbtxt)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sessrec", description="Session-based recommendation with Transformers, evaluated incrementally over time.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="incremental training and evaluation over time windows",
                         description="Train on window t, evaluate on window t+1, for every window; print per-window metrics and averages over time.")
    run.add_argument("--config", metavar="YAML", help="YAML file of config keys (flags override it)")
    add_config_arguments(run)
    run.set_defaults(func=cmd_run)

    sample = sub.add_parser("sample-data", help="write the bundled sample data set to a folder")
    sample.add_argument("out_dir")
    sample.set_defaults(func=cmd_sample_data)
    return parser


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("transformers", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def run_guarded(prog: str, command: Callable[[], int]) -> int:
    """Run a command: a :class:`SessrecError` is printed on one line (exit 2), Ctrl-C exits 130."""
    try:
        return command()
    except SessrecError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    return run_guarded("sessrec", lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
