"""``tora evaluate | diagnose``: act with composed objective planners (one weight vector
or a sweep), and check a planner's health before any rollout."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tora.cli.common import (
    RuntimeOptions,
    add_command,
    add_ray_arguments,
    csv_items,
    floats,
    refuse_ray_options_without_ray,
    refuse_repeats,
    runtime_options,
)
from tora.cli.config_args import add_dataclass_arguments, config_to_dict, dataclass_from_args
from tora.diffusion.accel import AccelConfig
from tora.diffusion.samplers import SamplerConfig
from tora.envs import objective_names
from tora.errors import InvalidWeightsError, ToraError, UnknownObjectiveError
from tora.evaluate.report import weight_names
from tora.pipeline import evaluate_run, report_run
from tora.preferences import simplex_grid, validate_weights
from tora.scale.session import import_ray
from tora.scale.sweep import PURPOSE as SWEEP_PURPOSE
from tora.scale.sweep import RaySweepOptions, evaluate_run_ray
from tora.tables import aligned_table
from tora.train.checkpoint import read_config
from tora.train.planner_io import (
    OBJECTIVES_DIR,
    REFERENCE_DIR,
    available_objectives,
    critic_dir,
    default_objective_order,
)


@dataclass
class EvaluateOptions:
    """Inputs and outputs of ``tora evaluate``."""

    run: str = "runs/my-run"
    """Run directory with reference, inverse dynamics and objective models."""
    env: str = ""
    """Environment id (default: the one recorded with the reference planner)."""
    # The comma-separated options default to None, not "": an explicit empty value
    # (--weights "") is then told apart from an omitted option, and refused.
    objectives: str | None = None
    """Comma-separated objective models to compose, in weight order; any subset of the run's
    models (default: all, in the dataset's column order)."""
    weights: str | None = None
    """One weight vector, comma-separated, one weight per model in --objectives order, e.g.
    0.3,0.7. Overrides --sweep (default: the --sweep grid)."""
    sweep: int = 11
    """Number of preference vectors on the simplex when --weights is not given."""
    episodes: int = 5
    """Episodes per weight vector."""
    seed: int = 0
    """Seed of environment resets and sampling noise."""
    ref_point: str | None = None
    """Hypervolume reference point, comma-separated, one value per reward objective of the
    environment (default: 0 for each)."""
    out: str = ""
    """Directory for results.json, returns.csv, plots and config.json, all replaced together;
    other files in it are left alone (default: RUN/eval)."""
    workers: int = 0
    """Processes stepping the environments, counting this one (0 or 1: all in this process;
    worth it for large sweeps on machines with spare cores)."""
    candidates: int = 1
    """Plans sampled per step and row; above 1 the agent acts towards the one whose last
    planned state has the highest sum_i w_i V_i by the run's value critics (train them with
    `tora critic`); 1: no selection."""


@dataclass
class EvaluatePlan:
    """What ``tora evaluate`` will do, resolved and checked from its options before any model
    is loaded or environment built (see :func:`plan_evaluation`)."""

    run: Path
    env_id: str
    models: list[str]
    """Objective models to compose, in weight-column order."""
    reward_names: list[str]
    """The environment's reward objectives, in return-column order."""
    weights: np.ndarray
    ref_point: list[float]
    out: Path


def plan_evaluation(opts: EvaluateOptions) -> EvaluatePlan:
    """Check every option of ``tora evaluate`` that can be checked before work starts: a typo
    should cost an instant error, not a rollout. Reads only the run's config files and the
    environment's declared reward names (envs that declare none are built once to count
    them)."""

    run = Path(opts.run)
    if not run.is_dir():
        raise ToraError(f"--run {run}: no such run directory")
    if opts.episodes < 1 or opts.seed < 0 or opts.workers < 0:
        raise ToraError("--episodes must be at least 1, --seed and --workers non-negative")
    if opts.candidates < 1:
        raise ToraError(f"--candidates must be at least 1, got {opts.candidates}")
    models = _objective_models(run, opts.objectives)
    if opts.candidates > 1:
        for name in models:  # a missing critic is named before any model is loaded
            critic_dir(run, name)
    if opts.weights is None:
        weights = simplex_grid(len(models), opts.sweep)
    else:
        try:
            weights = validate_weights(floats(opts.weights, "--weights"), len(models), models)
        except InvalidWeightsError as exc:
            raise InvalidWeightsError(f"--weights {opts.weights!r}: {exc}") from exc
    env_id = opts.env or _recorded_env(run)
    reward_names = list(objective_names(env_id))  # also refuses an unknown environment id
    if opts.ref_point is None:
        # Zero on every reward objective: D4MORL's reference point, sized for this env.
        ref = [0.0] * len(reward_names)
    else:
        ref = floats(opts.ref_point, "--ref-point")
        if len(ref) != len(reward_names):
            raise ToraError(
                f"--ref-point has {len(ref)} values but {env_id} has {len(reward_names)} "
                f"reward objectives {reward_names}: give one value per reward objective"
            )
    out = Path(opts.out) if opts.out else run / "eval"
    _check_out_dir(out)
    return EvaluatePlan(run, env_id, models, reward_names, weights, ref, out)


def _recorded_env(run: Path) -> str:

    env_id = read_config(run / REFERENCE_DIR).get("env_id") or ""
    if not env_id:
        raise ToraError("no environment recorded with this run; pass --env")
    return str(env_id)


def _objective_models(run: Path, text: str | None) -> list[str]:
    """The objective models ``--objectives`` names (default: all the run has, in the dataset's
    column order), each present in the run and named once."""

    if text is None:
        names = default_objective_order(run)
        if not names:
            raise ToraError(
                f"no objective models in {run / OBJECTIVES_DIR}; run `tora finetune` first"
            )
        return names
    names = csv_items(text, "--objectives")
    refuse_repeats(names, "--objectives")
    available = available_objectives(run)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise UnknownObjectiveError(
            f"no objective model {', '.join(map(repr, unknown))} in {run}; available: "
            f"{', '.join(available) or 'none'}"
        )
    return names


def _check_out_dir(out: Path) -> None:
    """Refuse an output directory that could not be written: an existing file, or a path
    under one."""
    if out.exists() and not out.is_dir():
        raise ToraError(f"--out {out} is an existing file; give a directory")
    ancestor = out.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor.exists() and not ancestor.is_dir():
        raise ToraError(f"--out {out} cannot be created: {ancestor} is a file")


def ray_sweep_options(args: argparse.Namespace, opts: EvaluateOptions) -> RaySweepOptions | None:
    """The Ray options of ``tora evaluate`` (None: the sweep runs here), checked before any
    work, Ray's presence included."""
    refuse_ray_options_without_ray(args, "--ray-actors")
    if not args.ray:
        return None
    if args.ray_actors is not None and args.ray_actors < 1:
        raise ToraError(f"--ray-actors must be at least 1, got {args.ray_actors}")
    if opts.workers > 1:
        raise ToraError("--workers applies without --ray: on Ray each actor steps its own share")
    options = RaySweepOptions(address=args.address, actors=args.ray_actors)
    import_ray(SWEEP_PURPOSE)
    return options


def evaluate(args: argparse.Namespace) -> int:
    opts = dataclass_from_args(EvaluateOptions, args)
    runtime = runtime_options(args)
    sampler = dataclass_from_args(SamplerConfig, args, prefix="sampler")
    accel = dataclass_from_args(AccelConfig, args)
    on_ray = ray_sweep_options(args, opts)
    plan = plan_evaluation(opts)
    sweep = (plan.run, plan.weights, opts.episodes, opts.seed, plan.env_id, plan.models)
    shared = {
        "sampler": sampler,
        "device": runtime.device,
        "progress": runtime.progress,
        "candidates": opts.candidates,
        "accel": accel,
    }
    if on_ray is None:
        result = evaluate_run(*sweep, workers=opts.workers, **shared)
    else:
        result = evaluate_run_ray(
            *sweep,
            options=on_ray,
            log=lambda line: print(line, file=sys.stderr, flush=True),
            **shared,
        )
    # config.json is published with the report, so a directory never holds the results of
    # one run next to the config of another.
    config = {
        name: config_to_dict(c)
        for name, c in {
            "options": opts,
            "sampler": sampler,
            "accel": accel,
            "runtime": runtime,
        }.items()
    }
    summary = report_run(
        result,
        plan.out,
        plan.ref_point,
        title=f"TORA on {plan.env_id}",
        json_files={"config.json": config},
    )
    print(
        format_sweep_table(
            result.weights, result.mean_returns, weight_names(result), result.objective_names
        )
    )
    print(
        f"hypervolume (ref {plan.ref_point}): {summary['hypervolume']:.4g}   sparsity: "
        f"{summary['sparsity']:.4g}   front points: {summary['num_front_points']}"
    )
    print(format_steering(summary))
    print(f"results in {plan.out}")
    return 0


def format_steering(summary: dict) -> str:
    """One line: the steering correlation and the objectives it covers (those with both a
    weight and a reward of the same name)."""
    covered = [str(n) for n in summary.get("steering_objectives") or []]
    value = summary.get("steering_correlation")
    if value is None or not covered:
        return "steering correlation: none (no objective model has a reward of its name)"
    return f"steering correlation: {float(value):.3g} over {', '.join(covered)}"


def format_sweep_table(
    weights: np.ndarray, returns: np.ndarray, model_names: list[str], reward_names: list[str]
) -> str:
    """Aligned text table: one row per weight vector with its mean returns."""
    head = [f"w_{n}" for n in model_names] + [f"return_{n}" for n in reward_names]
    rows = [
        [f"{v:.3f}" for v in w] + [f"{r:.2f}" for r in ret]
        for w, ret in zip(weights, returns, strict=True)
    ]
    return aligned_table(head, rows)


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this group's commands on the ``tora`` parser's subcommands."""
    evaluate_parser = add_command(
        sub,
        "evaluate",
        "Act with composed objective planners: one weight vector or a sweep.",
        evaluate,
    )
    add_dataclass_arguments(evaluate_parser, EvaluateOptions)
    add_dataclass_arguments(evaluate_parser, RuntimeOptions)

    add_dataclass_arguments(evaluate_parser, SamplerConfig, prefix="sampler", group_title="sampler")

    add_dataclass_arguments(evaluate_parser, AccelConfig, group_title="acceleration")
    ray = add_ray_arguments(
        evaluate_parser,
        "Share the sweep's rows among Ray actors",
        "Roll the sweep out on Ray actors, on a local Ray started for the sweep or on the "
        "cluster at --address: each actor loads the agent once and steps a contiguous share "
        "of the (preference, episode) rows, each row drawing the noise it draws in the "
        "serial sweep. The results equal a serial sweep's up to the float rounding of "
        "batched products (a batch's size changes it), exactly so with one actor and torch "
        "on one thread; the actors plan on CPU (each on one thread) unless --device cuda "
        "gives each a GPU.",
        "the run directory",
    )
    ray.add_argument(
        "--ray-actors",
        type=int,
        default=None,
        metavar="N",
        help="With --ray: actors sharing the rows, one CPU each (default: one per CPU of the "
        "Ray; never more than the sweep has rows).",
    )
