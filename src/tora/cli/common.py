"""What every command group of the ``tora`` command shares: registering a command, the
runtime options, the options of a suite run (and the executor they choose), the config record
written next to an output, and strict parsing of comma-separated option values."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from tora.bench.ray_executor import PURPOSE, RayExecutor
from tora.bench.runner import CellExecutor, CellsFailed
from tora.cli.config_args import config_to_dict, dataclass_from_args
from tora.configs import csv_items, floats, refuse_repeats
from tora.errors import ToraError
from tora.io import atomic_write_json
from tora.scale.session import INSTALL_HINT, import_ray

__all__ = [
    "Handler",
    "RuntimeOptions",
    "add_command",
    "add_group",
    "add_ray_arguments",
    "add_suite_run_arguments",
    "add_table_command",
    "csv_items",
    "floats",
    "load_suite_file",
    "refuse_ray_options_without_ray",
    "refuse_repeats",
    "required",
    "run_and_show",
    "runtime_options",
    "suite_executor",
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
    ``--out``, ``--no-progress`` and the Ray options (:func:`suite_executor`)."""
    parser.add_argument("--seed", action="append", type=int, default=None, help=seed_help)
    parser.add_argument("--out", default=None, help="Output directory (default: the suite's).")
    parser.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    ray = add_ray_arguments(
        parser,
        "Run the cells side by side as Ray tasks",
        "Run every chosen cell as a Ray task, in parallel: on a local Ray started for "
        "the run, or on the cluster at --address. Results equal a serial run's with torch on "
        "--cell-cpus threads (OMP_NUM_THREADS=1 for the default); finished cells are read "
        "back; a cell whose worker died is retried; a failed cell is reported at the end "
        "(exit status 2) while the others finish and the table is written.",
        "the output directory",
    )
    ray.add_argument(
        "--ray-cpus",
        type=int,
        default=None,
        metavar="N",
        help="With --ray and no --address: CPUs of the local Ray (default: this machine's "
        "cores), i.e. how many 1-CPU cells run at once.",
    )
    ray.add_argument(
        "--cell-cpus",
        type=int,
        default=None,
        metavar="N",
        help="With --ray: CPUs (and torch threads) each cell takes (default 1).",
    )


def add_ray_arguments(
    parser: argparse.ArgumentParser, what: str, ray_help: str, shared: str
) -> Any:
    """The "Ray" group of a command that can fan out on Ray (``what`` it then does): ``--ray``
    (``ray_help``) and ``--address``, whose workers must see ``shared`` at the same path.
    Returns the group, for the command's own Ray options."""
    ray = parser.add_argument_group("Ray", f"{what} (needs Ray: {INSTALL_HINT}).")
    ray.add_argument("--ray", action="store_true", help=ray_help)
    ray.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="With --ray: the Ray cluster to run on (e.g. ray://head:10001, or auto for the "
        f"one `ray start` started here). Its workers need tora-rl installed and {shared} "
        "at the same path.",
    )
    return ray


def refuse_ray_options_without_ray(args: argparse.Namespace, *flags: str) -> None:
    """A ToraError when ``--address`` or one of ``flags`` (e.g. "--ray-cpus") was given
    without ``--ray``: they would be silently ignored."""
    given = [
        flag
        for flag in ("--address", *flags)
        if getattr(args, flag.lstrip("-").replace("-", "_")) is not None
    ]
    if given and not args.ray:
        verb = "apply" if len(given) > 1 else "applies"
        raise ToraError(f"{', '.join(given)} only {verb} with --ray")


def suite_executor(args: argparse.Namespace) -> CellExecutor | None:
    """The executor the Ray options of :func:`add_suite_run_arguments` ask for (None: run
    the cells serially, here). Checked before anything runs, Ray's presence included."""
    refuse_ray_options_without_ray(args, "--ray-cpus", "--cell-cpus")
    if not args.ray:
        return None
    executor = RayExecutor(
        address=args.address,
        cpus=args.ray_cpus,
        cell_cpus=1 if args.cell_cpus is None else args.cell_cpus,
    )
    import_ray(PURPOSE)
    return executor


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


def run_and_show(run: Callable[[], dict[str, Any]], show: Callable[[dict[str, Any]], None]) -> int:
    """Run a suite and print its table; where cells failed (an executor that carries on past
    failures), print the table of the cells that finished, then let the failure report them."""
    try:
        results = run()
    except CellsFailed as failed:
        show(failed.results)
        raise
    show(results)
    return 0
