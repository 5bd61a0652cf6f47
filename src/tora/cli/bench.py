"""``tora bench speed | run | table``: planning speed and benchmark suites."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tora.bench.config import SuiteConfig, load_suite
from tora.bench.speed import SpeedConfig, format_speed_table, run_speed_benchmark
from tora.bench.suite import run_suite
from tora.bench.table import write_results
from tora.cli.common import (
    add_command,
    add_group,
    add_suite_run_arguments,
    add_table_command,
    load_suite_file,
    run_and_show,
    suite_executor,
    write_config,
)
from tora.cli.config_args import (
    add_dataclass_arguments,
    dataclass_from_args,
)
from tora.io import atomic_write_text


def bench_speed(args: argparse.Namespace) -> int:

    config = dataclass_from_args(SpeedConfig, args)
    results = run_speed_benchmark(config)
    print(format_speed_table(results))
    if config.out:
        write_config(Path(config.out).with_suffix(".config.json"), speed=config)
        atomic_write_text(config.out, json.dumps(results, indent=2) + "\n")
    return 0


def _load_suite(args: argparse.Namespace) -> SuiteConfig:

    return load_suite_file(load_suite, args)


def bench_run(args: argparse.Namespace) -> int:

    suite = _load_suite(args)
    executor = suite_executor(args)
    print(f"suite {suite.name} ({suite.protocol} protocol) -> {suite.out_dir}")

    def show(results: dict[str, Any]) -> None:
        print((suite.out_dir / "results.md").read_text())
        print(f"results: {suite.out_dir / 'results.md'}, {suite.out_dir / 'results.json'}")
        for env_id, png in results["plots"].items():
            print(f"front plot ({env_id}): {png}")

    return run_and_show(
        lambda: run_suite(
            suite,
            progress=not args.no_progress,
            only_envs=args.env,
            only_methods=args.method,
            only_seeds=args.seed,
            log=lambda line: print(line, flush=True),
            executor=executor,
        ),
        show,
    )


def bench_table(args: argparse.Namespace) -> int:
    suite = _load_suite(args)
    write_results(suite)
    print((suite.out_dir / "results.md").read_text())
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this group's commands on the ``tora`` parser's subcommands."""
    bench_sub = add_group(sub, "bench", "Benchmarks.")
    speed = add_command(
        bench_sub,
        "speed",
        "Planning latency at batch 1 and batch N for K composed models "
        "(sequential or stacked, fp32 or bf16, eager, compiled or CUDA-graphed).",
        bench_speed,
    )

    add_dataclass_arguments(speed, SpeedConfig)
    run = add_command(
        bench_sub,
        "run",
        "Run a benchmark suite (envs x methods x seeds) from a TOML file and write its results\n"
        "table (Markdown + JSON) and one Pareto-front plot per env. Resumable: finished cells\n"
        "are read back, and training resumes inside a cell. Suites ship in benchmarks/suites/.\n"
        "With --ray the cells run side by side as Ray tasks.",
        bench_run,
    )
    run.add_argument("suite", help="Suite file (.toml or .json), e.g. benchmarks/suites/x.toml.")
    run.add_argument(
        "--env",
        action="append",
        default=None,
        help="Run only this env of the suite (repeatable; tora or D4MORL id).",
    )
    run.add_argument(
        "--method",
        action="append",
        default=None,
        help="Run only this method of the suite (repeatable): tora, bc, bc_p, morvs_p, "
        "cond_diffusion, dime_p, or a variant the suite defines (e.g. tora_ddim10).",
    )
    add_suite_run_arguments(run, "Run only this training seed of each env's seeds (repeatable).")
    add_table_command(
        bench_sub,
        "Rewrite and print a suite's results table from the cells on disk (no training).",
        bench_table,
    )
