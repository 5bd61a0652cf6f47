"""What every command group of the ``tora`` command shares: registering a command, the
runtime options, the config record written next to an output, and strict parsing of
comma-separated option values."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from tora.cli.config_args import config_to_dict, dataclass_from_args
from tora.configs import csv_items, floats, refuse_repeats
from tora.errors import ToraError
from tora.io import atomic_write_json

__all__ = [
    "Handler",
    "RuntimeOptions",
    "add_command",
    "add_group",
    "add_suite_run_arguments",
    "add_table_command",
    "csv_items",
    "floats",
    "load_suite_file",
    "refuse_repeats",
    "required",
    "runtime_options",
    "write_config",
]


@dataclass
class RuntimeOptions:
    """Options every training or evaluation command takes."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Torch device: auto (CUDA if available), cpu or cuda."""
    progress: bool = True
    """Show progress bars."""


T = TypeVar("T")

Handler = Callable[[argparse.Namespace], int]
"""A command's handler: parsed arguments in, exit status out."""


def add_command(
    sub: argparse._SubParsersAction, name: str, help_text: str, handler: Handler
) -> argparse.ArgumentParser:
    """A subcommand ``name`` whose ``--help`` keeps ``help_text``'s line breaks."""
    parser = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


def add_group(sub: argparse._SubParsersAction, name: str, help_text: str) -> Any:
    """A command group ``tora NAME ...`` whose own subcommands are required; returns the
    subparsers to add them to (dest ``<name>_command``, shown as ``NAME_COMMAND``)."""
    group = sub.add_parser(name, help=help_text)
    return group.add_subparsers(
        dest=f"{name}_command", metavar=f"{name.upper()}_COMMAND", required=True
    )


def add_suite_run_arguments(parser: argparse.ArgumentParser, seed_help: str) -> None:
    """The options a suite run shares with the other kind's: ``--seed`` (repeatable),
    ``--out`` and ``--no-progress``."""
    parser.add_argument("--seed", action="append", type=int, default=None, help=seed_help)
    parser.add_argument("--out", default=None, help="Output directory (default: the suite's).")
    parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")


def add_table_command(sub: Any, help_text: str, handler: Handler) -> None:
    """``... table SUITE [--out DIR]``: a suite's table rewritten from the cells on disk."""
    table = add_command(sub, "table", help_text, handler)
    table.add_argument("suite", help="Suite file the results were made with.")
    table.add_argument("--out", default=None, help="Output directory (default: the suite's).")


def load_suite_file(load: Callable[[str], T], args: argparse.Namespace) -> T:
    """The suite file ``args.suite`` read by ``load`` (MuJoCo or safe), its output directory
    replaced by ``--out`` when given."""
    suite = load(args.suite)
    if args.out:
        suite.out = args.out  # type: ignore[attr-defined]
    return suite


def runtime_options(args: argparse.Namespace) -> RuntimeOptions:
    return dataclass_from_args(RuntimeOptions, args)


def write_config(path: Path, **configs: object) -> None:
    """Record the configs a command ran with (JSON, one key per config) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {name: config_to_dict(c) for name, c in configs.items()})


def required(value: str, flag: str) -> str:
    if not value:
        raise ToraError(f"{flag} is required")
    return value
