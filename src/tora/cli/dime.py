"""``tora dime bandit | train | evaluate | finetune``: DiME and linear scalarization
(seeds/003)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from tora.cli.common import (
    RuntimeOptions,
    add_command,
    add_group,
    required,
    runtime_options,
    write_config,
)
from tora.cli.config_args import add_dataclass_arguments, dataclass_from_args
from tora.data.formats import load_dataset
from tora.dime import BanditSolverConfig, plot_bandit_sweeps, run_bandit_sweep
from tora.dime.critic import CriticConfig
from tora.dime.finetune import FinetuneConfig, finetune
from tora.dime.offline import PolicyConfig, evaluate_run, train_offline
from tora.dime.report import dime_bandit_summary, format_dime_bandit_table, format_dime_returns
from tora.errors import ToraError
from tora.io import atomic_write_json
from tora.train.checkpoint import read_config
from tora.train.loop import read_history

if TYPE_CHECKING:  # heavy modules: the handlers import them when they run
    pass


@dataclass
class DimeBanditOptions:
    """Options of ``tora dime bandit``."""

    problem: Literal["schaffer", "fonseca_fleming", "all"] = "all"
    """Bandit to solve: schaffer (convex front), fonseca_fleming (concave front) or all."""
    methods: tuple[Literal["ls", "dime"], ...] = ("ls", "dime")
    """Methods to sweep: ls (linear scalarization) and/or dime."""
    alphas: int = 21
    """Number of trade-offs (the weight on r1), evenly spaced in [0, 1], both ends included."""
    seeds: tuple[int, ...] = (0,)
    """Seeds of the action noise; the table reports the mean and std over them."""
    out: str = "runs/dime/bandit"
    """Output directory for results.json, config.json and front_<problem>.png."""


def dime_bandit(args: argparse.Namespace) -> int:

    opts = dataclass_from_args(DimeBanditOptions, args)
    solver = dataclass_from_args(BanditSolverConfig, args)
    if opts.alphas < 1 or not opts.seeds or not opts.methods:
        raise ToraError("--alphas must be at least 1 and --seeds, --methods non-empty")
    problems = ["schaffer", "fonseca_fleming"] if opts.problem == "all" else [opts.problem]
    methods = list(dict.fromkeys(opts.methods))  # drop repeats, keep the order given
    alphas = np.linspace(0.0, 1.0, opts.alphas)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    sweeps = []
    for problem in problems:
        for method in methods:
            for seed in opts.seeds:
                sweep = run_bandit_sweep(problem, method, alphas, seed=seed, config=solver)
                print(
                    f"{problem} {method} seed {seed}: hypervolume {sweep.hypervolume:.4g} "
                    f"in {sweep.seconds:.1f} s",
                    flush=True,
                )
                sweeps.append(sweep)
    summary = dime_bandit_summary(sweeps)
    plots = {}
    for problem in problems:
        first = [s for s in sweeps if s.problem == problem and s.seed == opts.seeds[0]]
        plots[problem] = str(plot_bandit_sweeps(first, out / f"front_{problem}.png"))

    atomic_write_json(
        out / "results.json",
        {"summary": summary, "plots": plots, "sweeps": [s.to_dict() for s in sweeps]},
    )
    write_config(out / "config.json", options=opts, solver=solver)
    print(format_dime_bandit_table(summary))
    print(f"results in {out}")
    return 0


@dataclass
class DimeTrainOptions:
    """Inputs and outputs of ``tora dime train``."""

    data: str = ""
    """Dataset file or Minari directory (any supported format). Required."""
    out: str = "runs/dime/run"
    """Run directory: critic/ (shared by all policies of the run) and one directory per
    policy. Rerunning resumes."""
    alpha: tuple[float, ...] = (0.5,)
    """Trade-off(s) alpha in [0, 1], the weight on staying close to the data (1: behaviour
    cloning): one policy per value. Ignored with --multi."""


def dime_train(args: argparse.Namespace) -> int:

    opts = dataclass_from_args(DimeTrainOptions, args)
    runtime = runtime_options(args)
    policy = dataclass_from_args(PolicyConfig, args)
    critic = dataclass_from_args(CriticConfig, args, prefix="critic")
    traj = load_dataset(required(opts.data, "--data"))
    out = Path(opts.out)
    name = policy.variant + ("_multi" if policy.multi else "")
    write_config(out / f"command_{name}.json", options=opts, policy=policy, critic=critic)
    paths = train_offline(
        traj, out, policy, critic, opts.alpha, runtime.device, progress=runtime.progress
    )
    saved = read_config(out / "critic")
    print(
        f"task critic in {out / 'critic'}; mean task return of the data's episodes: "
        f"{saved['task_return_mean']:.4g}"
    )
    for path in paths:
        config = read_config(path)
        last = read_history(path / "history.json")[-1]
        alpha = "all alphas" if config["multi"] else f"alpha {config['alpha']:g}"
        extra = "".join(
            f"  {key} {last[key]:.3g}" for key in ("temperature", "kl", "std") if key in last
        )
        print(f"{config['label']} ({alpha}) in {path}:{extra}")
    return 0


@dataclass
class DimeEvaluateOptions:
    """Inputs and outputs of ``tora dime evaluate``."""

    run: str = ""
    """Run directory of ``tora dime train``. Required."""
    env: str = ""
    """Environment id (default: the one recorded with the data)."""
    alpha: tuple[float, ...] = (0.005, 0.25, 0.5, 0.75, 1.0)
    """Trade-offs at which multi policies are evaluated; single-trade-off policies act at
    their own."""
    variant: tuple[Literal["ls", "dime_bc", "dime_awbc"], ...] | None = None
    """Evaluate only these variants (none: every policy of the run)."""
    episodes: int = 5
    """Episodes per policy and trade-off, episode e of each starting from seed + e."""
    seed: int = 0
    """Seed of the environment resets."""
    out: str = ""
    """Where to write results.json and config.json (default: RUN/eval)."""
    workers: int = 0
    """Processes stepping the environments, counting this one (0 or 1: all in this one)."""


def dime_evaluate(args: argparse.Namespace) -> int:

    opts = dataclass_from_args(DimeEvaluateOptions, args)
    runtime = runtime_options(args)
    run = Path(required(opts.run, "--run"))
    if opts.episodes < 1:
        raise ToraError("--episodes must be at least 1")
    rows = evaluate_run(
        run,
        opts.env,
        opts.alpha,
        opts.episodes,
        opts.seed,
        opts.variant,
        runtime.device,
        runtime.progress,
        opts.workers,
    )
    out = Path(opts.out) if opts.out else run / "eval"
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "results.json", {"rows": rows})
    write_config(out / "config.json", options=opts, runtime=runtime)
    print(format_dime_returns(rows))
    print(f"results in {out}")
    return 0


@dataclass
class DimeFinetuneOptions:
    """Output of ``tora dime finetune``."""

    out: str = "runs/dime/finetune"
    """Run directory: the agent (config.json, model.safetensors, history.json) and
    results.json. Rerunning resumes."""


def dime_finetune(args: argparse.Namespace) -> int:
    opts = dataclass_from_args(DimeFinetuneOptions, args)
    runtime = runtime_options(args)
    config = dataclass_from_args(FinetuneConfig, args)
    out = Path(opts.out)
    write_config(out / "command.json", options=opts, finetune=config, runtime=runtime)
    results = finetune(out, config, runtime.device, runtime.progress)
    print(
        f"teacher return {results['teacher_return']:.1f} (threshold {results['threshold']:.1f}); "
        f"agent return {results['return']:.1f} after {results['env_steps']} env steps "
        f"(alpha {results['alpha']}, final {results['final_alpha']:.3f}, "
        f"{results['train_s'] / 60:.1f} min); results in {out / 'results.json'}"
    )
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this group's commands on the ``tora`` parser's subcommands."""

    dime_sub = add_group(
        sub, "dime", "DiME and linear scalarization: bandits, offline RL and finetuning."
    )
    bandit = add_command(
        dime_sub,
        "bandit",
        "Sweep the trade-off with LS and DiME on the paper's toy bandits (Schaffer: convex\n"
        "front; Fonseca-Fleming: concave front); write results.json, config.json and\n"
        "front_<problem>.png, and print the hypervolume per method.",
        dime_bandit,
    )
    add_dataclass_arguments(bandit, DimeBanditOptions)

    add_dataclass_arguments(bandit, BanditSolverConfig, group_title="solver")

    train = add_command(
        dime_sub,
        "train",
        "Offline RL with two objectives (task return vs. staying close to the data): learn\n"
        "the run's IQL task critic once, then one LS / DiME policy per --alpha, or one\n"
        "trade-off-conditioned policy with --multi (resumable).",
        dime_train,
    )
    add_dataclass_arguments(train, DimeTrainOptions)
    add_dataclass_arguments(train, RuntimeOptions)

    add_dataclass_arguments(train, PolicyConfig, group_title="policy")
    add_dataclass_arguments(train, CriticConfig, prefix="critic", group_title="task critic (IQL)")

    evaluate = add_command(
        dime_sub,
        "evaluate",
        "Roll out a run's LS / DiME policies in the environment; print the returns per alpha.",
        dime_evaluate,
    )
    add_dataclass_arguments(evaluate, DimeEvaluateOptions)
    add_dataclass_arguments(evaluate, RuntimeOptions)

    finetune = add_command(
        dime_sub,
        "finetune",
        "Finetune a policy online from a teacher (a weak behaviour policy) with DiME, at a\n"
        "fixed trade-off --alpha (the weight on the teacher) or one learned against the\n"
        "teacher's return (--alpha none); evaluate the agent and the teacher and write\n"
        "results.json (resumable; CPU only).",
        dime_finetune,
    )
    add_dataclass_arguments(finetune, DimeFinetuneOptions)
    add_dataclass_arguments(finetune, RuntimeOptions)

    add_dataclass_arguments(finetune, FinetuneConfig, group_title="finetuning")
