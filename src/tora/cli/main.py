"""The ``tora`` command: thin subcommands over the Python API.

Every option is generated from a documented dataclass config (see :mod:`tora.cli.config_args`),
so ``--help`` shows each field's docstring and default, and the config used is written next to
every output.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from tora.cli.config_args import RuntimeOptions, add_dataclass_arguments
from tora.errors import ToraError

Handler = Callable[[argparse.Namespace], int]


def _add_command(
    sub: argparse._SubParsersAction, name: str, help_text: str, handler: Handler
) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=handler)
    return parser


SERVE_DESCRIPTION = """\
Serve a run's agent over HTTP (FastAPI + uvicorn, the `serve` extra).

  POST /act        {"obs": [...] or [[...], ...], "weights": [...] or [[...], ...] or
                   {"speed": 0.7, "energy": 0.3}, "seed": 7 (optional)} -> {"actions": ...}
  GET  /objectives objective names (the order of positional weights), directions, sizes
  POST /reload     load the run again, e.g. after `tora finetune` added an objective model;
                   on failure the agent loaded before keeps serving
  GET  /health     liveness (no token needed);  /docs, /openapi.json: the API schema

Concurrent requests are micro-batched: the first waits up to --batch-wait-ms for others,
and up to --max-batch observation rows are planned in one agent call. Every row has its own
noise stream: a request with a "seed" gets the same actions whatever it is batched with.
Bad requests get a 4xx answer with the Python API's message; the server keeps serving.

  tora serve runs/demo/run --port 8000
  curl -s localhost:8000/act -H 'Content-Type: application/json' \\
       -d '{"obs": [0.0, 1.0, 0.0], "weights": {"speed": 0.3, "energy": 0.7}}'
"""


def build_parser() -> argparse.ArgumentParser:
    from tora.cli import commands

    parser = argparse.ArgumentParser(
        prog="tora",
        description=(
            "tora-rl: offline multi-objective RL with the trade-off chosen at inference time.\n"
            "Train one diffusion planner per objective once; compose them with any weights."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = _add_command(
        sub, "demo", "Run the whole pipeline on the built-in Cruise task.", commands.demo
    )
    from tora.demo import DemoConfig

    add_dataclass_arguments(demo, DemoConfig)

    data = sub.add_parser("data", help="Inspect or make offline datasets.")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)
    inspect = _add_command(
        data_sub,
        "inspect",
        "Print what a dataset file holds (any supported format).",
        commands.data_inspect,
    )
    inspect.add_argument("path", help="Dataset file or Minari dataset directory.")
    inspect.add_argument("--json", action="store_true", help="Print one JSON object on stdout.")
    inspect.add_argument(
        "--format",
        default=None,
        choices=["d4morl", "dsrl", "minari", "tora"],
        help="Force a format instead of detecting it.",
    )
    make = _add_command(
        data_sub,
        "make",
        "Generate an offline dataset with tora-rl's own behaviour.",
        commands.data_make,
    )
    make.add_argument(
        "task",
        nargs="?",
        default=None,
        help="Environment id, as an alternative to --env (e.g. SafetyBallRun-v0).",
    )
    add_dataclass_arguments(make, commands.DataMakeOptions)

    pretrain = _add_command(
        sub,
        "pretrain",
        "Stage 1: train the reference planner and inverse dynamics.",
        commands.pretrain,
    )
    add_dataclass_arguments(pretrain, commands.PretrainOptions)
    add_dataclass_arguments(pretrain, RuntimeOptions)
    from tora.train.inverse import InverseDynamicsTrainConfig
    from tora.train.pretrain import PretrainConfig

    add_dataclass_arguments(pretrain, PretrainConfig, group_title="reference planner")
    add_dataclass_arguments(
        pretrain, InverseDynamicsTrainConfig, prefix="inverse", group_title="inverse dynamics"
    )

    finetune = _add_command(
        sub,
        "finetune",
        "Stage 2: Diffusion-DPO fine-tune one planner for one objective.",
        commands.finetune,
    )
    add_dataclass_arguments(finetune, commands.FinetuneOptions)
    add_dataclass_arguments(finetune, RuntimeOptions)
    from tora.train.dpo import DPOConfig

    add_dataclass_arguments(finetune, DPOConfig, group_title="Diffusion-DPO")

    critic = _add_command(
        sub,
        "critic",
        "Train a value critic per objective (discounted return from a state, under the data's\n"
        "behaviour), for selection among candidate plans (`tora evaluate --candidates N`).",
        commands.critic,
    )
    add_dataclass_arguments(critic, commands.CriticOptions)
    add_dataclass_arguments(critic, RuntimeOptions)
    from tora.train.critic import ValueCriticTrainConfig

    add_dataclass_arguments(critic, ValueCriticTrainConfig, group_title="value critic")

    evaluate = _add_command(
        sub,
        "evaluate",
        "Act with composed objective planners: one weight vector or a sweep.",
        commands.evaluate,
    )
    add_dataclass_arguments(evaluate, commands.EvaluateOptions)
    add_dataclass_arguments(evaluate, RuntimeOptions)
    from tora.diffusion.samplers import SamplerConfig

    add_dataclass_arguments(evaluate, SamplerConfig, prefix="sampler", group_title="sampler")

    diagnose = _add_command(
        sub,
        "diagnose",
        "Planner health before any rollout: next-state error and the planned objectives of\n"
        "the reference planner and of each objective model alone, on a dataset's transitions.",
        commands.diagnose,
    )
    add_dataclass_arguments(diagnose, commands.DiagnoseOptions)
    add_dataclass_arguments(diagnose, RuntimeOptions)
    add_dataclass_arguments(diagnose, SamplerConfig, prefix="sampler", group_title="sampler")

    serve = _add_command(
        sub,
        "serve",
        "Serve a run's agent over HTTP (FastAPI + uvicorn, the `serve` extra).",
        commands.serve,
    )
    serve.description = SERVE_DESCRIPTION
    serve.add_argument("run", help="Run directory with inverse dynamics and objective models.")
    from tora.serve.config import ServeConfig

    add_dataclass_arguments(serve, ServeConfig)
    add_dataclass_arguments(serve, SamplerConfig, prefix="sampler", group_title="sampler")

    behavior = sub.add_parser("behavior", help="Behaviour policies that make offline data.")
    behavior_sub = behavior.add_subparsers(
        dest="behavior_command", metavar="BEHAVIOR_COMMAND", required=True
    )
    btrain = _add_command(
        behavior_sub,
        "train",
        "Train behaviour policies over the preference simplex (resumable): linear ones with "
        "ARS, small MLPs with PPO (--algorithm ppo), or the drone's searched flight "
        "controllers (--algorithm flight, SafetyDroneCircle-v0).",
        commands.behavior_train,
    )
    add_dataclass_arguments(btrain, commands.BehaviorTrainOptions)
    from tora.behavior import ARSConfig, FlightConfig, PPOConfig

    add_dataclass_arguments(btrain, ARSConfig, prefix="ars", group_title="ARS")
    add_dataclass_arguments(btrain, PPOConfig, prefix="ppo", group_title="PPO (--algorithm ppo)")
    add_dataclass_arguments(
        btrain, FlightConfig, prefix="flight", group_title="Flight search (--algorithm flight)"
    )

    bench = sub.add_parser("bench", help="Benchmarks.")
    bench_sub = bench.add_subparsers(dest="bench_command", metavar="BENCH_COMMAND", required=True)
    speed = _add_command(
        bench_sub,
        "speed",
        "Planning latency at batch 1 and batch N for K composed models "
        "(sequential or stacked, fp32 or bf16, eager, compiled or CUDA-graphed).",
        commands.bench_speed,
    )
    from tora.bench.speed import SpeedConfig

    add_dataclass_arguments(speed, SpeedConfig)
    run = _add_command(
        bench_sub,
        "run",
        "Run a benchmark suite (envs x methods x seeds) from a TOML file and write its results\n"
        "table (Markdown + JSON) and one Pareto-front plot per env. Resumable: finished cells\n"
        "are read back, and training resumes inside a cell. Suites ship in benchmarks/suites/.",
        commands.bench_run,
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
    run.add_argument(
        "--seed",
        action="append",
        type=int,
        default=None,
        help="Run only this training seed of each env's seeds (repeatable).",
    )
    run.add_argument("--out", default=None, help="Output directory (default: the suite's).")
    run.add_argument("--no-progress", action="store_true", help="Hide progress bars.")
    table = _add_command(
        bench_sub,
        "table",
        "Rewrite and print a suite's results table from the cells on disk (no training).",
        commands.bench_table,
    )
    table.add_argument("suite", help="Suite file the results were made with.")
    table.add_argument("--out", default=None, help="Output directory (default: the suite's).")
    _add_dime_commands(sub)
    _add_text_commands(sub)
    # tora safe select | bench | table (issue 5); the handlers live in tora.cli.safe.
    from tora.cli.safe import add_safe_commands

    add_safe_commands(sub, _add_command)
    return parser


def _add_dime_commands(sub: argparse._SubParsersAction) -> None:
    """``tora dime bandit | train | evaluate | finetune``: DiME and linear scalarization
    (seeds/003)."""
    from tora.cli import commands

    dime = sub.add_parser(
        "dime", help="DiME and linear scalarization: bandits, offline RL and finetuning."
    )
    dime_sub = dime.add_subparsers(dest="dime_command", metavar="DIME_COMMAND", required=True)
    bandit = _add_command(
        dime_sub,
        "bandit",
        "Sweep the trade-off with LS and DiME on the paper's toy bandits (Schaffer: convex\n"
        "front; Fonseca-Fleming: concave front); write results.json, config.json and\n"
        "front_<problem>.png, and print the hypervolume per method.",
        commands.dime_bandit,
    )
    add_dataclass_arguments(bandit, commands.DimeBanditOptions)
    from tora.dime import BanditSolverConfig

    add_dataclass_arguments(bandit, BanditSolverConfig, group_title="solver")

    train = _add_command(
        dime_sub,
        "train",
        "Offline RL with two objectives (task return vs. staying close to the data): learn\n"
        "the run's IQL task critic once, then one LS / DiME policy per --alpha, or one\n"
        "trade-off-conditioned policy with --multi (resumable).",
        commands.dime_train,
    )
    add_dataclass_arguments(train, commands.DimeTrainOptions)
    add_dataclass_arguments(train, RuntimeOptions)
    from tora.dime.critic import CriticConfig
    from tora.dime.offline import PolicyConfig

    add_dataclass_arguments(train, PolicyConfig, group_title="policy")
    add_dataclass_arguments(train, CriticConfig, prefix="critic", group_title="task critic (IQL)")

    evaluate = _add_command(
        dime_sub,
        "evaluate",
        "Roll out a run's LS / DiME policies in the environment; print the returns per alpha.",
        commands.dime_evaluate,
    )
    add_dataclass_arguments(evaluate, commands.DimeEvaluateOptions)
    add_dataclass_arguments(evaluate, RuntimeOptions)

    finetune = _add_command(
        dime_sub,
        "finetune",
        "Finetune a policy online from a teacher (a weak behaviour policy) with DiME, at a\n"
        "fixed trade-off --alpha (the weight on the teacher) or one learned against the\n"
        "teacher's return (--alpha none); evaluate the agent and the teacher and write\n"
        "results.json (resumable; CPU only).",
        commands.dime_finetune,
    )
    add_dataclass_arguments(finetune, commands.DimeFinetuneOptions)
    add_dataclass_arguments(finetune, RuntimeOptions)
    from tora.dime.finetune import FinetuneConfig

    add_dataclass_arguments(finetune, FinetuneConfig, group_title="finetuning")


def _add_text_commands(sub: argparse._SubParsersAction) -> None:
    """``tora text collect | train | evaluate | sweep``: text games, one CPL policy per
    objective, mixed at inference."""
    from tora.cli import commands
    from tora.text.cpl import TextTrainConfig
    from tora.text.data import CollectConfig
    from tora.text.llm import LLMConfig
    from tora.text.sweep import SweepConfig, TextEvalConfig, TextEvaluateOptions

    text = sub.add_parser(
        "text", help="Text games: offline data, CPL policies per objective, weight sweeps."
    )
    text_sub = text.add_subparsers(dest="text_command", metavar="TEXT_COMMAND", required=True)
    collect = _add_command(
        text_sub,
        "collect",
        "Play text games with a seeded mix of reference agents and write their trajectories\n"
        "(JSON lines; the held-out evaluation game is left out unless asked for).",
        commands.text_collect,
    )
    add_dataclass_arguments(collect, CollectConfig)
    add_dataclass_arguments(collect, LLMConfig, prefix="llm", group_title="LLM endpoint")
    train = _add_command(
        text_sub,
        "train",
        "Train one text policy with CPL on segment pairs labelled by one objective\n"
        "(points, morality, or the scalarized baseline). Resumable.",
        commands.text_train,
    )
    add_dataclass_arguments(train, commands.TextTrainOptions)
    add_dataclass_arguments(train, TextTrainConfig)
    add_dataclass_arguments(train, RuntimeOptions)
    evaluate = _add_command(
        text_sub,
        "evaluate",
        "Play a game with the policies mixed at one weight vector; MACHIAVELLI-style metrics\n"
        "normalized by a random agent.",
        commands.text_evaluate,
    )
    add_dataclass_arguments(evaluate, TextEvaluateOptions)
    add_dataclass_arguments(evaluate, TextEvalConfig)
    sweep = _add_command(
        text_sub,
        "sweep",
        "Evaluate the mixture over a weight grid next to the random and reference agents;\n"
        "print the table and plot points against violations.",
        commands.text_sweep,
    )
    add_dataclass_arguments(sweep, SweepConfig)


def _version() -> str:
    from tora.version import __version__

    return f"tora-rl {__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
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


__all__ = ["RuntimeOptions", "build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
