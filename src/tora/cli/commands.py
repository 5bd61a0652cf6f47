"""Handlers of the ``tora`` subcommands. Each parses its options into configs, calls the API,
writes the config it used next to its output, and prints a short report."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from tora.cli.config_args import RuntimeOptions, config_to_dict, dataclass_from_args
from tora.errors import ToraError
from tora.io import atomic_write_text
from tora.tables import aligned_table

if TYPE_CHECKING:  # heavy modules, imported by the handlers that use them
    from tora.bench.config import SuiteConfig
    from tora.evaluate.planning import PlannerDiagnosis


def _runtime(args: argparse.Namespace) -> RuntimeOptions:
    return dataclass_from_args(RuntimeOptions, args)


def _write_config(path: Path, **configs: object) -> None:
    from tora.io import atomic_write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {name: config_to_dict(c) for name, c in configs.items()})


# ----------------------------------------------------------------------------- demo
def demo(args: argparse.Namespace) -> int:
    from tora.demo import DemoConfig, format_demo_report, run_demo

    config = dataclass_from_args(DemoConfig, args)
    summary = run_demo(config)
    print(format_demo_report(summary, config))
    return 0


# ----------------------------------------------------------------------------- data
def data_inspect(args: argparse.Namespace) -> int:
    import warnings

    from tora.evaluate.inspect import format_summary, inspect_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = inspect_dataset(args.path, format=args.format)
    for w in caught:  # warnings go to stderr so --json output stays parseable
        print(f"warning: {w.message}", file=sys.stderr)
    print(json.dumps(info, indent=2) if args.json else format_summary(info))
    return 0


@dataclass
class DataMakeOptions:
    """Options of ``tora data make``."""

    env: str = "tora/Cruise-v0"
    """Environment id (also accepted as the first positional argument): tora/Cruise-v0
    (scripted behaviour), a tora MuJoCo task or its D4MORL name (e.g. MO-HalfCheetah-v2), a
    safe-RL task (e.g. SafetyBallRun-v0: DSRL-like data over the cost-penalty grid and
    action-noise levels), or any env with a --policies set."""
    quality: Literal["expert", "amateur"] = "expert"
    """expert: the behaviour policy's action; amateur: 65% of steps scale it by U(0.35, 1.65)
    (MO-Swimmer: a random action), as in D4MORL. Not for Cruise or the safe-RL tasks."""
    prefs: Literal["uniform", "wide", "narrow"] = "uniform"
    """D4MORL preference distribution of the per-episode preferences. Not for Cruise or the
    safe-RL tasks."""
    episodes: int = 1000
    """Number of episodes (D4MORL's datasets have 50000)."""
    seed: int = 0
    """Seed: the same seed gives byte-identical files. Non-negative."""
    out: str = ""
    """Output path (default: data/<env>_<episodes>_<quality>_<prefs> with the format's suffix,
    D4MORL's file naming)."""
    format: Literal["tora", "native", "d4morl", "dsrl", "minari"] = "tora"
    """File format to write (native is another name for tora's own format)."""
    policies: str = ""
    """Directory of a behaviour policy set from `tora behavior train` (default: the set that
    ships with tora-rl for ENV)."""
    plot: bool = True
    """Also write a PNG of the episode returns and their front next to the data
    (<out>.card.png)."""
    progress: bool = True
    """Show a progress bar."""


_FORMAT_SUFFIXES = {"tora": ".h5", "d4morl": ".pkl", "dsrl": ".hdf5", "minari": ""}


def _default_data_path(env_id: str, opts: DataMakeOptions, kind: str) -> Path:
    from tora.envs import D4MORL_ALIASES

    # D4MORL's names for its envs (MO-HalfCheetah-v2, ...) let the D4MORL loader recognise
    # the objectives from the file name, as it does for D4MORL's own files.
    d4morl_names = {tora_id: name for name, tora_id in D4MORL_ALIASES.items()}
    name = d4morl_names.get(env_id, env_id.split("/")[-1].replace(":", "_"))
    parts = [name, str(opts.episodes)]
    if kind == "d4morl":  # quality and preferences mean nothing for the other kinds
        parts += [opts.quality, opts.prefs]
    return Path("data") / ("_".join(parts) + _FORMAT_SUFFIXES[opts.format])


def _warn_unparsable_d4morl_name(env_id: str, out: Path) -> None:
    """Warn if a D4MORL pickle's name will not tell its loader the env and objectives."""
    from tora.data.formats.d4morl import parse_file_name
    from tora.envs import D4MORL_ALIASES

    names = [name for name, tora_id in D4MORL_ALIASES.items() if tora_id == env_id]
    if names and parse_file_name(out)["env_id"] != names[0]:
        print(
            f"warning: D4MORL pickles keep the env and objective names only in the file name; "
            f"name it {names[0]}_<...>.pkl (as the default --out does) or they load as "
            "objective_0, objective_1, ...",
            file=sys.stderr,
        )


def _data_make_options(args: argparse.Namespace) -> DataMakeOptions:
    opts = dataclass_from_args(DataMakeOptions, args)
    task = getattr(args, "task", None)
    if task:
        if opts.env not in (task, DataMakeOptions.env):
            raise ToraError(f"two environments given: {task!r} and --env {opts.env!r}")
        opts.env = task
    if opts.format == "native":
        opts.format = "tora"
    if opts.episodes < 1 or opts.seed < 0:
        raise ToraError("--episodes must be at least 1 and --seed non-negative")
    return opts


def data_make(args: argparse.Namespace) -> int:
    import time

    from tora.behavior.make import collection_kind, make_dataset
    from tora.data.formats import save_dataset
    from tora.envs import objective_names, resolve_env_id
    from tora.evaluate.card import dataset_card, format_card, plot_card

    opts = _data_make_options(args)
    env_id = resolve_env_id(opts.env)
    kind = collection_kind(env_id, opts.policies)
    if opts.format == "dsrl" and not {"reward", "cost"} <= set(objective_names(env_id)):
        # Checked before collecting: the DSRL writer would refuse the data only at the end.
        raise ToraError(
            f"--format dsrl holds one reward and one cost; {env_id} has objectives "
            f"{list(objective_names(env_id))}: use tora, d4morl or minari"
        )
    out = Path(opts.out) if opts.out else _default_data_path(env_id, opts, kind)
    if opts.format == "d4morl":
        _warn_unparsable_d4morl_name(env_id, out)

    if kind != "d4morl" and (opts.quality, opts.prefs) != ("expert", "uniform"):
        why = {
            "scripted": f"{env_id}'s scripted behaviour (pass --policies DIR to roll out "
            "trained policies)",
            "dsrl": f"{env_id}, whose data spreads over cost penalties and action noise",
        }[kind]
        print(
            f"warning: --quality and --prefs do not apply to {why} and are ignored",
            file=sys.stderr,
        )
    start = time.perf_counter()
    traj = make_dataset(
        env_id,
        opts.episodes,
        opts.quality,
        opts.prefs,
        opts.seed,
        policies_dir=opts.policies or None,
        progress=opts.progress,
    )

    seconds = time.perf_counter() - start
    out.parent.mkdir(parents=True, exist_ok=True)
    save_dataset(traj, out, format=opts.format)
    card = dataset_card(traj)
    print(
        f"wrote {traj.num_episodes} episodes ({traj.num_transitions} transitions) to {out}, "
        f"collected in {seconds:.1f} s"
    )
    print(format_card(card, traj.num_episodes))
    if opts.plot:
        png = plot_card(traj, f"{out}.card.png")
        if png is not None:
            print(f"card plot: {png}")
    return 0


# ------------------------------------------------------------------------- training
@dataclass
class PretrainOptions:
    """Inputs and outputs of ``tora pretrain``."""

    data: str = ""
    """Offline dataset (any supported format)."""
    run: str = "runs/my-run"
    """Run directory; the reference planner goes to RUN/reference, inverse dynamics to
    RUN/inverse_dynamics. An interrupted run resumes from its last checkpoint."""
    restart: bool = False
    """Start over: move earlier training in RUN/reference and RUN/inverse_dynamics into a
    stale-<time>/ subdirectory of each (needed when the data or settings changed; objective
    models must then be fine-tuned again with --restart)."""


def pretrain(args: argparse.Namespace) -> int:
    from tora.data.formats import load_dataset
    from tora.device import resolve_device
    from tora.pipeline import pretrain_run
    from tora.train.inverse import InverseDynamicsTrainConfig
    from tora.train.pretrain import PretrainConfig

    opts = dataclass_from_args(PretrainOptions, args)
    runtime = _runtime(args)
    config = dataclass_from_args(PretrainConfig, args)
    inverse = dataclass_from_args(InverseDynamicsTrainConfig, args, prefix="inverse")
    traj = load_dataset(_required(opts.data, "--data"))
    run = Path(opts.run)
    pretrain_run(
        traj,
        run,
        config,
        inverse,
        resolve_device(runtime.device),
        runtime.progress,
        restart=opts.restart,
    )
    # Written after training: a refused call must not leave a record of data it never used.
    _write_config(run / "pretrain_command.json", options=opts, pretrain=config, inverse=inverse)
    print(f"reference planner and inverse dynamics saved in {run}")
    return 0


@dataclass
class FinetuneOptions:
    """Inputs and outputs of ``tora finetune``."""

    data: str = ""
    """Offline dataset (the one the reference planner was pretrained on)."""
    run: str = "runs/my-run"
    """Run directory holding the reference planner; writes RUN/objectives/OBJECTIVE."""
    objective: str = ""
    """Name of the objective to fine-tune for (see `tora data inspect`)."""
    restart: bool = False
    """Start over: move earlier training in RUN/objectives/OBJECTIVE into a stale-<time>/
    subdirectory (needed when the reference planner, the data or the settings changed)."""


def finetune(args: argparse.Namespace) -> int:
    from tora.data.formats import load_dataset
    from tora.device import resolve_device
    from tora.train.dpo import DPOConfig, finetune_objective

    opts = dataclass_from_args(FinetuneOptions, args)
    runtime = _runtime(args)
    config = dataclass_from_args(DPOConfig, args)
    traj = load_dataset(_required(opts.data, "--data"))
    objective = _required(opts.objective, "--objective")
    traj.objective_index(objective)  # fail before any work on an unknown name
    out = finetune_objective(
        Path(opts.run),
        traj,
        objective,
        config,
        resolve_device(runtime.device),
        runtime.progress,
        restart=opts.restart,
    )
    _write_config(out / "finetune_command.json", options=opts, dpo=config)
    pairs = json.loads((out / "pairs.json").read_text())
    print(
        f"objective model '{objective}' saved in {out}\n"
        f"pairs used: {pairs['pairs']} ({pairs['ties']} ties dropped), first of pair won "
        f"{100 * pairs['first_wins']:.1f}% (label balance), mean return gap {pairs['mean_gap']:.3g}"
    )
    return 0


@dataclass
class CriticOptions:
    """Inputs and outputs of ``tora critic``."""

    data: str = ""
    """Offline dataset (the one the reference planner was pretrained on)."""
    run: str = "runs/my-run"
    """Run directory holding the reference planner; writes RUN/critics/OBJECTIVE."""
    objective: list[str] = field(default_factory=list)
    """Objectives to train a value critic for (default: every objective of the data)."""
    restart: bool = False
    """Start over: move earlier training in RUN/critics/OBJECTIVE into a stale-<time>/
    subdirectory (needed when the reference planner, the data or the settings changed)."""


def critic(args: argparse.Namespace) -> int:
    from tora.data.formats import load_dataset
    from tora.device import resolve_device
    from tora.pipeline import critic_run
    from tora.train.critic import ValueCriticTrainConfig
    from tora.train.loop import read_history

    opts = dataclass_from_args(CriticOptions, args)
    runtime = _runtime(args)
    config = dataclass_from_args(ValueCriticTrainConfig, args)
    traj = load_dataset(_required(opts.data, "--data"))
    names = list(opts.objective) or traj.objective_names
    _refuse_repeats(names, "--objective")
    outs = critic_run(  # checks every name before the first critic trains
        traj,
        Path(opts.run),
        config,
        names,
        resolve_device(runtime.device),
        runtime.progress,
        restart=opts.restart,
    )
    for name, out in zip(names, outs, strict=True):
        _write_config(out / "critic_command.json", options=opts, critic=config)
        last = read_history(out / "history.json")[-1]
        fit = last.get("val_explained_variance")
        held = f"held-out R^2 {fit:.3f}" if fit is not None else "no held-out episodes"
        print(f"value critic '{name}' saved in {out} ({held})")
    return 0


# -------------------------------------------------------------------------- serving
def serve(args: argparse.Namespace) -> int:
    from tora.diffusion.samplers import SamplerConfig
    from tora.serve.config import TOKEN_ENV, ServeConfig

    config = dataclass_from_args(ServeConfig, args)
    sampler = dataclass_from_args(SamplerConfig, args, prefix="sampler")
    run = Path(args.run)
    if not run.is_dir():
        raise ToraError(f"{run}: no such run directory")
    try:
        # The optional `serve` extra: imported here, not at the top of a module, so that the
        # library and every other command work without FastAPI and uvicorn installed.
        import uvicorn

        from tora.serve.app import create_app
    except ImportError as exc:
        raise ToraError(
            f"`tora serve` needs FastAPI and uvicorn ({exc.name} is not installed): "
            "pip install 'tora-rl[serve]'"
        ) from exc
    from tora.serve.service import PolicyService

    token = config.token if config.token is not None else os.environ.get(TOKEN_ENV) or None
    service = PolicyService.from_config(run, config, sampler)
    about = service.describe()
    print(
        f"serving {run}: objectives {', '.join(about['objectives'])} (obs_dim "
        f"{about['obs_dim']}, act_dim {about['act_dim']}); batching "
        + (
            f"up to {config.max_batch} rows, {config.batch_wait_ms:g} ms"
            if service.batching
            else "off"
        )
        + ("; bearer token required" if token else "")
    )
    if token is None and config.host not in ("127.0.0.1", "localhost", "::1"):
        print(
            f"tora: warning: listening on {config.host} without a token: anyone who reaches "
            f"this port can use the agent (set {TOKEN_ENV} or pass --token)",
            file=sys.stderr,
        )
    uvicorn.run(
        create_app(service, config.max_body_bytes, token), host=config.host, port=config.port
    )
    return 0


# ----------------------------------------------------------------------- evaluation
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
    from tora.envs import objective_names
    from tora.errors import InvalidWeightsError
    from tora.preferences import simplex_grid, validate_weights

    run = Path(opts.run)
    if not run.is_dir():
        raise ToraError(f"--run {run}: no such run directory")
    if opts.episodes < 1 or opts.seed < 0 or opts.workers < 0:
        raise ToraError("--episodes must be at least 1, --seed and --workers non-negative")
    if opts.candidates < 1:
        raise ToraError(f"--candidates must be at least 1, got {opts.candidates}")
    models = _objective_models(run, opts.objectives)
    if opts.candidates > 1:
        from tora.train.planner_io import critic_dir

        for name in models:  # a missing critic is named before any model is loaded
            critic_dir(run, name)
    if opts.weights is None:
        weights = simplex_grid(len(models), opts.sweep)
    else:
        try:
            weights = validate_weights(_floats(opts.weights, "--weights"), len(models), models)
        except InvalidWeightsError as exc:
            raise InvalidWeightsError(f"--weights {opts.weights!r}: {exc}") from exc
    env_id = opts.env or _recorded_env(run)
    reward_names = list(objective_names(env_id))  # also refuses an unknown environment id
    if opts.ref_point is None:
        # Zero on every reward objective: D4MORL's reference point, sized for this env.
        ref = [0.0] * len(reward_names)
    else:
        ref = _floats(opts.ref_point, "--ref-point")
        if len(ref) != len(reward_names):
            raise ToraError(
                f"--ref-point has {len(ref)} values but {env_id} has {len(reward_names)} "
                f"reward objectives {reward_names}: give one value per reward objective"
            )
    out = Path(opts.out) if opts.out else run / "eval"
    _check_out_dir(out)
    return EvaluatePlan(run, env_id, models, reward_names, weights, ref, out)


def _recorded_env(run: Path) -> str:
    from tora.train.checkpoint import read_config
    from tora.train.planner_io import REFERENCE_DIR

    env_id = read_config(run / REFERENCE_DIR).get("env_id") or ""
    if not env_id:
        raise ToraError("no environment recorded with this run; pass --env")
    return str(env_id)


def _objective_models(run: Path, text: str | None) -> list[str]:
    """The objective models ``--objectives`` names (default: all the run has, in the dataset's
    column order), each present in the run and named once."""
    from tora.errors import UnknownObjectiveError
    from tora.train.planner_io import OBJECTIVES_DIR, available_objectives, default_objective_order

    if text is None:
        names = default_objective_order(run)
        if not names:
            raise ToraError(
                f"no objective models in {run / OBJECTIVES_DIR}; run `tora finetune` first"
            )
        return names
    names = _csv_items(text, "--objectives")
    _refuse_repeats(names, "--objectives")
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


def evaluate(args: argparse.Namespace) -> int:
    from tora.diffusion.samplers import SamplerConfig
    from tora.evaluate.report import weight_names
    from tora.pipeline import evaluate_run, report_run

    opts = dataclass_from_args(EvaluateOptions, args)
    runtime = _runtime(args)
    sampler = dataclass_from_args(SamplerConfig, args, prefix="sampler")
    plan = plan_evaluation(opts)
    result = evaluate_run(
        plan.run,
        plan.weights,
        opts.episodes,
        opts.seed,
        plan.env_id,
        plan.models,
        sampler,
        runtime.device,
        runtime.progress,
        workers=opts.workers,
        candidates=opts.candidates,
    )
    # config.json is published with the report, so a directory never holds the results of
    # one run next to the config of another.
    config = {
        name: config_to_dict(c)
        for name, c in {"options": opts, "sampler": sampler, "runtime": runtime}.items()
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


# ------------------------------------------------------------------------- diagnosis
@dataclass
class DiagnoseOptions:
    """Inputs and outputs of ``tora diagnose``."""

    run: str = "runs/my-run"
    """Run directory with reference, inverse dynamics and objective models."""
    data: str = ""
    """Dataset whose transitions are planned from (best: data the run was not trained on,
    e.g. another seed of `tora data make`)."""
    samples: int = 2000
    """Transitions planned from (at most)."""
    seed: int = 0
    """Seed of the transitions drawn and of the sampling noise."""
    json: bool = False
    """Print one JSON object instead of the table."""


def diagnose(args: argparse.Namespace) -> int:
    from tora.data.formats import load_dataset
    from tora.diffusion.samplers import SamplerConfig
    from tora.evaluate.planning import diagnose_planners
    from tora.planning.agent import Agent
    from tora.train.planner_io import REFERENCE_DIR, load_planner

    opts = dataclass_from_args(DiagnoseOptions, args)
    runtime = _runtime(args)
    sampler = dataclass_from_args(SamplerConfig, args, prefix="sampler")
    if opts.samples < 2:
        raise ToraError(f"--samples must be at least 2, got {opts.samples}")
    run = Path(opts.run)
    traj = load_dataset(_required(opts.data, "--data"))
    agent = Agent.load(run, device=runtime.device, sampler=sampler, seed=opts.seed)
    spec = agent.spec
    if traj.obs_dim != spec.obs_dim:
        raise ToraError(
            f"{opts.data} has {traj.obs_dim}-dim observations; the run plans {spec.obs_dim}"
        )
    reference, _, _ = load_planner(run / REFERENCE_DIR, agent.device)
    ref_agent = agent.planning_alone(reference, "reference", opts.seed)
    planners = {"reference": lambda s: ref_agent.plan(s, [1.0])}
    for k, name in enumerate(agent.objective_names):
        one_hot = np.eye(len(agent.objective_names))[k]
        planners[name] = lambda s, w=one_hot: agent.plan(s, w)
    found = diagnose_planners(planners, traj, spec.normalizer, spec.stride, opts.samples, opts.seed)
    if opts.json:
        from dataclasses import asdict

        print(json.dumps(asdict(found), indent=2))
    else:
        print(format_diagnosis(found))
    return 0


def format_diagnosis(found: PlannerDiagnosis) -> str:
    """The diagnosis as an aligned table, then what the baselines and R^2 mean."""
    names = found.objectives
    ref = found.planned_reward.get("reference")
    head = ["planner", "next-state error"] + [f"planned {n}" for n in names]
    if ref is not None:
        head += [f"shift {n}" for n in names]
    rows = []
    for planner, err in found.next_state_error.items():
        planned = found.planned_reward[planner]
        row = [planner, f"{err:.3f}"] + [f"{v:.3g}" for v in planned]
        if ref is not None:
            row += [f"{v - r:+.3g}" for v, r in zip(planned, ref, strict=True)]
        rows.append(row)
    rows.append(
        ["data", "-"]
        + [f"{v:.3g}" for v in found.data_reward]
        + ["-"] * (len(head) - 2 - len(names))
    )
    r2 = ", ".join(f"{n} {v:.2f}" for n, v in zip(names, found.reward_model_r2, strict=True))
    return (
        aligned_table(head, rows)
        + f"\nnext-state error baselines: 'no change' {found.still:.3f}, another transition's "
        f"{found.shuffled:.3f} (normalized units; a planner should beat both)\n"
        f"planned = reward of the first planned transition by a model fitted on the data "
        f"(R^2: {r2}); shift = against the reference: an objective model should move its "
        "own objective the way it is optimized"
    )


# ------------------------------------------------------------------------- behaviour
@dataclass
class BehaviorTrainOptions:
    """Options of ``tora behavior train``."""

    env: str = "tora/MO-HalfCheetah-v0"
    """Environment id (tora, D4MORL or Gymnasium id). On the safe-RL tasks (e.g.
    SafetyBallRun-v0) the policies are one per cost-penalty weight, see tora.behavior.safe."""
    out: str = ""
    """Directory of the policy set (default: runs/behavior/<env name>). Rerunning resumes."""
    policies: int = 0
    """Number of preference vectors / policies (default: 11 for 2 objectives, 21 for 3)."""
    algorithm: Literal["ars", "ppo", "flight"] = "ars"
    """"ars": linear policies (most shipped sets); "ppo": small MLP policies trained with PPO,
    for tasks a linear map cannot do (the Ball and Car Circle tasks), settings --ppo-*;
    "flight": cascade flight controllers with searched setpoints, SafetyDroneCircle-v0 only,
    settings --flight-*. The other algorithms' options are ignored."""


def behavior_train(args: argparse.Namespace) -> int:
    from tora.behavior import ARSConfig, FlightConfig, PPOConfig, train_behavior_set
    from tora.behavior.ars import resolve_config
    from tora.envs import objective_names, resolve_env_id

    opts = dataclass_from_args(BehaviorTrainOptions, args)
    env_id = resolve_env_id(opts.env)
    k = len(objective_names(env_id))
    count = opts.policies or (11 if k <= 2 else 21)
    out = Path(opts.out or Path("runs/behavior") / env_id.split("/")[-1])
    config: ARSConfig | PPOConfig | FlightConfig
    if opts.algorithm == "ppo":
        config = dataclass_from_args(PPOConfig, args, prefix="ppo")
        _write_config(out / "command.json", options=opts, ppo=config)
    elif opts.algorithm == "flight":
        config = dataclass_from_args(FlightConfig, args, prefix="flight")
        _write_config(out / "command.json", options=opts, flight=config)
    else:
        # The env's defaults filled in, so command.json records what was actually run.
        config = resolve_config(dataclass_from_args(ARSConfig, args, prefix="ars"), env_id)
        _write_config(out / "command.json", options=opts, ars=config)
    policies = train_behavior_set(env_id, out, count, config)
    print(f"{len(policies)} behaviour policies for {env_id} in {out}")
    for policy in policies:
        ret = policy.info.get("return_vector")
        print(f"  weights {np.round(policy.weights, 3).tolist()}  returns {ret}")
    return 0


# ------------------------------------------------------------------------ benchmarks
def bench_speed(args: argparse.Namespace) -> int:
    from tora.bench.speed import SpeedConfig, format_speed_table, run_speed_benchmark

    config = dataclass_from_args(SpeedConfig, args)
    results = run_speed_benchmark(config)
    print(format_speed_table(results))
    if config.out:
        _write_config(Path(config.out).with_suffix(".config.json"), speed=config)
        atomic_write_text(config.out, json.dumps(results, indent=2) + "\n")
    return 0


def _load_suite(args: argparse.Namespace) -> SuiteConfig:
    from tora.bench.config import load_suite

    suite = load_suite(args.suite)
    if args.out:
        suite.out = args.out
    return suite


def bench_run(args: argparse.Namespace) -> int:
    from tora.bench.suite import run_suite

    suite = _load_suite(args)
    print(f"suite {suite.name} ({suite.protocol} protocol) -> {suite.out_dir}")
    results = run_suite(
        suite,
        progress=not args.no_progress,
        only_envs=args.env,
        only_methods=args.method,
        only_seeds=args.seed,
        log=lambda line: print(line, flush=True),
    )
    print((suite.out_dir / "results.md").read_text())
    print(f"results: {suite.out_dir / 'results.md'}, {suite.out_dir / 'results.json'}")
    for env_id, png in results["plots"].items():
        print(f"front plot ({env_id}): {png}")
    return 0


def bench_table(args: argparse.Namespace) -> int:
    from tora.bench.table import write_results

    suite = _load_suite(args)
    write_results(suite)
    print((suite.out_dir / "results.md").read_text())
    return 0


# -------------------------------------------------------------------------- parsing
def _required(value: str, flag: str) -> str:
    if not value:
        raise ToraError(f"{flag} is required")
    return value


def _refuse_repeats(names: list[str], flag: str) -> None:
    """Refuse an objective named twice: it would be trained, or composed, twice."""
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ToraError(
            f"{flag} names {', '.join(repeated)} more than once; name each objective once"
        )


def _csv_items(text: str, flag: str) -> list[str]:
    """The items of an option given as comma-separated values. An empty value or item is
    refused rather than skipped: "0.5,,0.5" most likely lost a number, and quietly using
    what is left would answer a different question than the one asked."""
    if not text.strip():
        raise ToraError(f"{flag} is empty; give comma-separated values or leave the option out")
    items = [s.strip() for s in text.split(",")]
    if "" in items:
        raise ToraError(f"{flag} has an empty item in {text!r}; give one value between commas")
    return items


def _floats(text: str, flag: str) -> list[float]:
    """Comma-separated finite numbers (see :func:`_csv_items` for empty items)."""
    items = _csv_items(text, flag)
    try:
        values = [float(s) for s in items]
    except ValueError as exc:
        raise ToraError(f"{flag} must be comma-separated numbers, got {text!r}") from exc
    if not np.isfinite(values).all():
        raise ToraError(f"{flag} must be finite numbers, got {text!r}")
    return values


# ----------------------------------------------------------------------------- DiME
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
    from tora.dime import BanditSolverConfig, plot_bandit_sweeps, run_bandit_sweep

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
    from tora.io import atomic_write_json

    atomic_write_json(
        out / "results.json",
        {"summary": summary, "plots": plots, "sweeps": [s.to_dict() for s in sweeps]},
    )
    _write_config(out / "config.json", options=opts, solver=solver)
    print(format_dime_bandit_table(summary))
    print(f"results in {out}")
    return 0


def dime_bandit_summary(sweeps: list) -> list[dict[str, object]]:
    """One row per (problem, method): hypervolume mean and std over seeds, the true front's
    hypervolume, and the mean seconds per sweep."""
    rows = []
    keys = list(dict.fromkeys((s.problem, s.method) for s in sweeps))
    for problem, method in keys:
        group = [s for s in sweeps if (s.problem, s.method) == (problem, method)]
        hv = np.array([s.hypervolume for s in group])
        rows.append(
            {
                "problem": problem,
                "method": method,
                "seeds": [s.seed for s in group],
                "hypervolume_mean": float(hv.mean()),
                "hypervolume_std": float(hv.std()),
                "front_hypervolume": float(group[0].front_hypervolume),
                "seconds_per_sweep": float(np.mean([s.seconds for s in group])),
            }
        )
    return rows


def format_dime_bandit_table(rows: list[dict[str, object]]) -> str:
    """Aligned text table of :func:`dime_bandit_summary`."""
    head = ["problem", "method", "hypervolume", "true front", "s/sweep"]
    body = [
        [
            str(r["problem"]),
            str(r["method"]).upper(),
            f"{r['hypervolume_mean']:.4f} ± {r['hypervolume_std']:.4f}",
            f"{r['front_hypervolume']:.4f}",
            f"{r['seconds_per_sweep']:.1f}",
        ]
        for r in rows
    ]
    return aligned_table(head, body, left=len(head))


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
    from tora.data.formats import load_dataset
    from tora.dime.critic import CriticConfig
    from tora.dime.offline import PolicyConfig, train_offline
    from tora.train.checkpoint import read_config
    from tora.train.loop import read_history

    opts = dataclass_from_args(DimeTrainOptions, args)
    runtime = _runtime(args)
    policy = dataclass_from_args(PolicyConfig, args)
    critic = dataclass_from_args(CriticConfig, args, prefix="critic")
    traj = load_dataset(_required(opts.data, "--data"))
    out = Path(opts.out)
    name = policy.variant + ("_multi" if policy.multi else "")
    _write_config(out / f"command_{name}.json", options=opts, policy=policy, critic=critic)
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
    from tora.dime.offline import evaluate_run
    from tora.io import atomic_write_json

    opts = dataclass_from_args(DimeEvaluateOptions, args)
    runtime = _runtime(args)
    run = Path(_required(opts.run, "--run"))
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
    _write_config(out / "config.json", options=opts, runtime=runtime)
    print(format_dime_returns(rows))
    print(f"results in {out}")
    return 0


def format_dime_returns(rows: list[dict[str, object]]) -> str:
    """Aligned text table: one row per (policy, alpha) with its mean returns."""
    names = list(rows[0]["objectives"])  # type: ignore[call-overload]
    head = ["method", "alpha", *(f"return_{n}" for n in names), "task return"]
    body = [
        [
            str(r["label"]),
            f"{r['alpha']:.3f}",
            *(f"{v:.2f}" for v in r["returns"]),  # type: ignore[attr-defined]
            f"{r['task_return']:.2f} ± {r['task_return_std']:.2f}",
        ]
        for r in rows
    ]
    return aligned_table(head, body)


@dataclass
class DimeFinetuneOptions:
    """Output of ``tora dime finetune``."""

    out: str = "runs/dime/finetune"
    """Run directory: the agent (config.json, model.safetensors, history.json) and
    results.json. Rerunning resumes."""


def dime_finetune(args: argparse.Namespace) -> int:
    from tora.dime.finetune import FinetuneConfig, finetune

    opts = dataclass_from_args(DimeFinetuneOptions, args)
    runtime = _runtime(args)
    config = dataclass_from_args(FinetuneConfig, args)
    out = Path(opts.out)
    _write_config(out / "command.json", options=opts, finetune=config, runtime=runtime)
    results = finetune(out, config, runtime.device, runtime.progress)
    print(
        f"teacher return {results['teacher_return']:.1f} (threshold {results['threshold']:.1f}); "
        f"agent return {results['return']:.1f} after {results['env_steps']} env steps "
        f"(alpha {results['alpha']}, final {results['final_alpha']:.3f}, "
        f"{results['train_s'] / 60:.1f} min); results in {out / 'results.json'}"
    )
    return 0


# ------------------------------------------------------------------------ text games
@dataclass
class TextTrainOptions:
    """Inputs and outputs of ``tora text train``."""

    data: str = ""
    """Trajectory file from `tora text collect`."""
    out: str = ""
    """Policy directory (default: runs/text/<objective>). Rerunning resumes."""


def text_collect(args: argparse.Namespace) -> int:
    import time

    from tora.text.data import (
        CollectConfig,
        collect,
        make_pairs,
        save_text_dataset,
        summarize_dataset,
    )
    from tora.text.llm import ChatClient, LLMConfig, LLMLabeler, llm_agent_factory

    config = dataclass_from_args(CollectConfig, args)
    llm = dataclass_from_args(LLMConfig, args, prefix="llm")
    client = ChatClient(llm) if config.agents.uses_llm or config.labels == "llm" else None
    start = time.perf_counter()
    dataset = collect(
        config,
        llm_agent=llm_agent_factory(client) if client else None,
        labeler=LLMLabeler(client) if client and config.labels == "llm" else None,
        progress=lambda line: print(line, flush=True),
    )
    if client is not None:  # provenance without the key
        dataset.header["llm"] = {
            "base_url": client.config.base_url,
            "model": client.config.model,
            "temperature": client.config.temperature,
        }
    out = save_text_dataset(dataset, config.out)
    seconds = time.perf_counter() - start
    print(
        f"wrote {len(dataset.episodes)} episodes ({dataset.num_steps} steps) to {out} "
        f"in {seconds:.1f} s"
    )
    print(f"{'game':<20} {'agent':<12} {'episodes':>8} {'points':>8} {'violations':>10}")
    for row in summarize_dataset(dataset):
        print(
            f"{row['game']:<20} {row['agent']:<12} {row['episodes']:>8} {row['points']:>8.1f} "
            f"{row['violations']:>10.2f}"
        )
    for objective in ("points", "morality"):
        pairs = make_pairs(dataset, objective)
        print(f"{objective} pairs (default settings): {len(pairs)} ({pairs.ties} ties dropped)")
    if client is not None:
        s = client.stats
        print(f"LLM: {s.requests} requests, {s.retries} retries, {s.cache_hits} cache hits")
    return 0


def text_train(args: argparse.Namespace) -> int:
    from tora.device import resolve_device
    from tora.text.cpl import TextTrainConfig, objective_label, train_text_policy
    from tora.text.data import file_digest, load_text_dataset

    opts = dataclass_from_args(TextTrainOptions, args)
    runtime = _runtime(args)
    config = dataclass_from_args(TextTrainConfig, args)
    data = _required(opts.data, "--data")
    dataset = load_text_dataset(data)
    out = Path(opts.out or Path("runs/text") / config.objective)
    result, pairs = train_text_policy(
        dataset,
        config,
        out,
        device=resolve_device(runtime.device),
        progress=runtime.progress,
        data_info={"path": str(data), "sha256": file_digest(data)},
    )
    _write_config(out / "train_command.json", options=opts, train=config, runtime=runtime)
    last = result.history[-1] if result.history else {}
    loss, accuracy = last.get("cpl_loss", float("nan")), last.get("accuracy", float("nan"))
    print(
        f"policy '{objective_label(config)}' saved in {out}\n"
        f"pairs: {len(pairs)} ({pairs.ties} ties dropped), segments of "
        f"{pairs.preferred.shape[1]} steps; final CPL loss {loss:.4f}, pair accuracy "
        f"{accuracy:.3f}"
    )
    return 0


def text_evaluate(args: argparse.Namespace) -> int:
    from tora.io import atomic_write_json
    from tora.text.sweep import TextEvalConfig, TextEvaluateOptions, evaluate_weights, format_rows

    opts = dataclass_from_args(TextEvaluateOptions, args)
    config = dataclass_from_args(TextEvalConfig, args)
    k = len(config.runs)
    weights = opts.weights or ([1.0 / k] * k if k else [])
    rows = evaluate_weights(config, weights)
    print(f"{config.game}, {config.episodes} playthroughs per agent:")
    print(format_rows(rows))
    if opts.out:
        atomic_write_json(Path(opts.out), {"rows": [r.to_dict() for r in rows]})
        print(f"rows written to {opts.out}")
    return 0


def text_sweep(args: argparse.Namespace) -> int:
    from tora.text.sweep import SweepConfig, format_rows, run_sweep

    config = dataclass_from_args(SweepConfig, args)
    rows, names = run_sweep(config)
    _write_config(Path(config.out) / "config.json", sweep=config)
    print(
        f"{config.game}, {config.episodes} playthroughs per agent; mixture of {' / '.join(names)}:"
    )
    print(format_rows(rows))
    print(f"results: {Path(config.out) / 'sweep.json'}, plot: {Path(config.out) / 'tradeoff.png'}")
    return 0
