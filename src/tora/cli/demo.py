"""``tora demo``: the whole pipeline on the built-in Cruise task."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from tora.cli.common import (
    add_command,
)
from tora.cli.config_args import (
    add_dataclass_arguments,
    dataclass_from_args,
)
from tora.demo import DemoConfig, format_demo_report, run_demo

if TYPE_CHECKING:  # heavy modules: the handlers import them when they run
    pass


def demo(args: argparse.Namespace) -> int:
    config = dataclass_from_args(DemoConfig, args)
    summary = run_demo(config)
    print(format_demo_report(summary, config))
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this group's commands on the ``tora`` parser's subcommands."""
    demo_parser = add_command(
        sub, "demo", "Run the whole pipeline on the built-in Cruise task.", demo
    )

    add_dataclass_arguments(demo_parser, DemoConfig)
