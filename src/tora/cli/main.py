"""The ``tora`` command: thin subcommands over the Python API.

Every option is generated from a documented dataclass config (see :mod:`tora.cli.config_args`),
so ``--help`` shows each field's docstring and default, and the config used is written next to
every output.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

import torch

from tora.cli import behavior, bench, data, demo, diagnose, dime, evaluate, safe, serve, text, train
from tora.errors import ToraError
from tora.version import __version__

# The command groups, in the order ``tora --help`` lists them.
_GROUPS = (demo, data, train, evaluate, diagnose, serve, behavior, bench, dime, text, safe)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tora",
        description=(
            "tora-rl: offline multi-objective RL with the trade-off chosen at inference time.\n"
            "Train one diffusion planner per objective once; compose them with any weights."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument(
        "--threads",
        dest="torch_threads",  # not `threads`: subcommands (bench speed) have their own
        type=int,
        default=None,
        metavar="N",
        help=(
            "PyTorch CPU threads for this process (default: $OMP_NUM_THREADS when set, else 1). "
            "One thread keeps runs side by side from slowing each other: `tora demo` beside two "
            "busy processes on a 2-core machine took 117 s with one thread and 348 s with two. "
            "On an idle machine more threads help somewhat (the demo: 68 s with one, 59 s with "
            "two; BENCHMARKS.md section 1)."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in _GROUPS:
        group.add_commands(sub)
    return parser


def _version() -> str:
    return f"tora-rl {__version__}"


def torch_threads(requested: int | None, environ: Mapping[str, str] | None = None) -> int:
    """The intra-op thread count ``tora`` runs PyTorch with: ``requested`` (``--threads``),
    else ``OMP_NUM_THREADS`` when it holds a positive integer, else 1."""
    if requested is not None:
        if requested < 1:
            raise ToraError(f"--threads must be a positive integer, got {requested}")
        return requested
    value = (os.environ if environ is None else environ).get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(torch_threads(args.torch_threads))
        code = int(args.handler(args) or 0)
        sys.stdout.flush()  # inside the try: a pipe closed early fails here, not at exit
        return code
    except BrokenPipeError:
        # The reader went away (`tora ... | head -1`): stop quietly, as other Unix tools do.
        # stdout is pointed at devnull so the interpreter's final flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13  # the shell's status for a process ended by SIGPIPE
    except ToraError as exc:
        print(f"tora: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "tora: interrupted; re-run the same command to resume from the last checkpoint",
            file=sys.stderr,
        )
        return 130
    finally:
        # Callers in the same process (tests, notebooks) get their own setting back.
        torch.set_num_threads(before)


__all__ = ["build_parser", "main", "torch_threads"]

if __name__ == "__main__":
    raise SystemExit(main())
