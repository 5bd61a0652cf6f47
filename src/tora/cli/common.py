"""What every command group of the ``tora`` command shares: registering a command, the
runtime options, the config record written next to an output, and strict parsing of
comma-separated option values."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from tora.cli.config_args import config_to_dict, dataclass_from_args
from tora.configs import csv_items, floats, refuse_repeats
from tora.errors import ToraError
from tora.io import atomic_write_json

__all__ = [
    "Handler",
    "RuntimeOptions",
    "add_command",
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
