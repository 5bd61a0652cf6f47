"""Handlers of the ``tora`` subcommands. Each parses its options into configs, calls the API,
writes the config it used next to its output, and prints a short report."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from tora.cli.config_args import config_to_dict, dataclass_from_args
from tora.errors import ToraError

if TYPE_CHECKING:  # main imports this module, so import its names for types only
    from tora.bench.suite import SuiteConfig
    from tora.cli.main import RuntimeOptions


def _runtime(args: argparse.Namespace) -> RuntimeOptions:
    from tora.cli.main import RuntimeOptions

    return dataclass_from_args(RuntimeOptions, args)


def _write_config(path: Path, **configs: object) -> None:
    from tora.train.checkpoint import atomic_write_json

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

    from tora.data.inspect import format_summary, inspect_dataset

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
    """Environment id: tora/Cruise-v0 (scripted behaviour), a tora MuJoCo task or its D4MORL
    name (e.g. MO-HalfCheetah-v2), or any env with a --policies set."""
    quality: Literal["expert", "amateur"] = "expert"
    """expert: the behaviour policy's action; amateur: 65% of steps scale it by U(0.35, 1.65)
    (MO-Swimmer: a random action), as in D4MORL."""
    prefs: Literal["uniform", "wide", "narrow"] = "uniform"
    """D4MORL preference distribution of the per-episode preferences."""
    episodes: int = 1000
    """Number of episodes (D4MORL's datasets have 50000)."""
    seed: int = 0
    """Seed: the same seed gives byte-identical files. Non-negative."""
    out: str = ""
    """Output path (default: data/<env>_<episodes>_<quality>_<prefs> with the format's suffix,
    D4MORL's file naming)."""
    format: Literal["tora", "d4morl", "dsrl", "minari"] = "tora"
    """File format to write."""
    policies: str = ""
    """Directory of a behaviour policy set from `tora behavior train` (default: the set that
    ships with tora-rl for ENV)."""
    plot: bool = True
    """Also write a PNG of the episode returns and their front next to the data
    (<out>.card.png)."""
    progress: bool = True
    """Show a progress bar."""


_FORMAT_SUFFIXES = {"tora": ".h5", "d4morl": ".pkl", "dsrl": ".hdf5", "minari": ""}


def _default_data_path(env_id: str, opts: DataMakeOptions, scripted: bool) -> Path:
    from tora.envs import D4MORL_ALIASES

    # D4MORL's names for its envs (MO-HalfCheetah-v2, ...) let the D4MORL loader recognise
    # the objectives from the file name, as it does for D4MORL's own files.
    d4morl_names = {tora_id: name for name, tora_id in D4MORL_ALIASES.items()}
    name = d4morl_names.get(env_id, env_id.split("/")[-1].replace(":", "_"))
    parts = [name, str(opts.episodes)]
    if not scripted:  # quality and preferences mean nothing for the scripted behaviour
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


def data_make(args: argparse.Namespace) -> int:
    from tora.behavior.make import is_scripted, make_dataset
    from tora.data.card import dataset_card, format_card, plot_card
    from tora.data.formats import save_dataset
    from tora.envs import CRUISE_ID, objective_names, resolve_env_id

    opts = dataclass_from_args(DataMakeOptions, args)
    if opts.episodes < 1 or opts.seed < 0:
        raise ToraError("--episodes must be at least 1 and --seed non-negative")
    env_id = resolve_env_id(opts.env)
    scripted = is_scripted(env_id, opts.policies)
    if opts.format == "dsrl" and not {"reward", "cost"} <= set(objective_names(env_id)):
        # Checked before collecting: the DSRL writer would refuse the data only at the end.
        raise ToraError(
            f"--format dsrl holds one reward and one cost; {env_id} has objectives "
            f"{list(objective_names(env_id))}: use tora, d4morl or minari"
        )
    out = Path(opts.out) if opts.out else _default_data_path(env_id, opts, scripted)
    if opts.format == "d4morl":
        _warn_unparsable_d4morl_name(env_id, out)

    if scripted and (opts.quality, opts.prefs) != ("expert", "uniform"):
        print(
            f"warning: --quality and --prefs do not apply to {CRUISE_ID}'s scripted "
            "behaviour and are ignored (pass --policies DIR to roll out trained policies)",
            file=sys.stderr,
        )
    traj = make_dataset(
        env_id,
        opts.episodes,
        opts.quality,
        opts.prefs,
        opts.seed,
        policies_dir=opts.policies or None,
        progress=opts.progress,
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    save_dataset(traj, out, format=opts.format)
    card = dataset_card(traj)
    print(f"wrote {traj.num_episodes} episodes ({traj.num_transitions} transitions) to {out}")
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
    _write_config(run / "pretrain_command.json", options=opts, pretrain=config, inverse=inverse)
    pretrain_run(traj, run, config, inverse, resolve_device(runtime.device), runtime.progress)
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
        Path(opts.run), traj, objective, config, resolve_device(runtime.device), runtime.progress
    )
    _write_config(out / "finetune_command.json", options=opts, dpo=config)
    pairs = json.loads((out / "pairs.json").read_text())
    print(
        f"objective model '{objective}' saved in {out}\n"
        f"pairs used: {pairs['pairs']} ({pairs['ties']} ties dropped), first of pair won "
        f"{100 * pairs['first_wins']:.1f}% (label balance), mean return gap {pairs['mean_gap']:.3g}"
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
    objectives: str = ""
    """Comma-separated objective models to compose, in weight order (default: all)."""
    weights: str = ""
    """One weight vector, comma-separated, e.g. 0.3,0.7. Overrides --sweep."""
    sweep: int = 11
    """Number of preference vectors on the simplex when --weights is not given."""
    episodes: int = 5
    """Episodes per weight vector."""
    seed: int = 0
    """Seed of environment resets and sampling noise."""
    ref_point: str = "0,0"
    """Hypervolume reference point, comma-separated, one value per reward objective."""
    out: str = ""
    """Where to write results.json, returns.csv and plots (default: RUN/eval)."""
    workers: int = 0
    """Processes stepping the environments, counting this one (0 or 1: all in this process;
    worth it for large sweeps on machines with spare cores)."""


def evaluate(args: argparse.Namespace) -> int:
    from tora.diffusion.samplers import SamplerConfig
    from tora.pipeline import evaluate_run, report_run
    from tora.preferences import simplex_grid
    from tora.train.checkpoint import read_config
    from tora.train.planner_io import REFERENCE_DIR, default_objective_order

    opts = dataclass_from_args(EvaluateOptions, args)
    runtime = _runtime(args)
    sampler = dataclass_from_args(SamplerConfig, args, prefix="sampler")
    run = Path(opts.run)
    env_id = opts.env or read_config(run / REFERENCE_DIR).get("env_id") or ""
    if not env_id:
        raise ToraError("no environment recorded with this run; pass --env")
    names = _csv_list(opts.objectives) or default_objective_order(run)
    weights = (
        np.array([_floats(opts.weights, "--weights")])
        if opts.weights
        else simplex_grid(len(names), opts.sweep)
    )
    result = evaluate_run(
        run,
        weights,
        opts.episodes,
        opts.seed,
        env_id,
        names,
        sampler,
        runtime.device,
        runtime.progress,
        workers=opts.workers,
    )
    out = Path(opts.out) if opts.out else run / "eval"
    ref = _floats(opts.ref_point, "--ref-point")
    if len(ref) != result.returns.shape[2]:
        raise ToraError(
            f"--ref-point has {len(ref)} values but the environment has "
            f"{result.returns.shape[2]} reward objectives {result.objective_names}"
        )
    summary = report_run(result, out, ref, title=f"TORA on {env_id}")
    _write_config(out / "config.json", options=opts, sampler=sampler, runtime=runtime)
    print(format_sweep_table(result.weights, result.mean_returns, names, result.objective_names))
    print(
        f"hypervolume (ref {ref}): {summary['hypervolume']:.4g}   sparsity: "
        f"{summary['sparsity']:.4g}   front points: {summary['num_front_points']}"
    )
    print(f"results in {out}")
    return 0


def format_sweep_table(
    weights: np.ndarray, returns: np.ndarray, model_names: list[str], reward_names: list[str]
) -> str:
    """Aligned text table: one row per weight vector with its mean returns."""
    head = [f"w_{n}" for n in model_names] + [f"return_{n}" for n in reward_names]
    rows = [
        [f"{v:.3f}" for v in w] + [f"{r:.2f}" for r in ret]
        for w, ret in zip(weights, returns, strict=True)
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


# ------------------------------------------------------------------------- behaviour
@dataclass
class BehaviorTrainOptions:
    """Options of ``tora behavior train``."""

    env: str = "tora/MO-HalfCheetah-v0"
    """Environment id (tora, D4MORL or Gymnasium id)."""
    out: str = ""
    """Directory of the policy set (default: runs/behavior/<env name>). Rerunning resumes."""
    policies: int = 0
    """Number of preference vectors / policies (default: 11 for 2 objectives, 21 for 3)."""


def behavior_train(args: argparse.Namespace) -> int:
    from tora.behavior import ARSConfig, train_behavior_set
    from tora.envs import objective_names, resolve_env_id

    opts = dataclass_from_args(BehaviorTrainOptions, args)
    config = dataclass_from_args(ARSConfig, args, prefix="ars")
    env_id = resolve_env_id(opts.env)
    k = len(objective_names(env_id))
    count = opts.policies or (11 if k <= 2 else 21)
    out = Path(opts.out or Path("runs/behavior") / env_id.split("/")[-1])
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
        Path(config.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _load_suite(args: argparse.Namespace) -> SuiteConfig:
    from tora.bench.suite import load_suite

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


def _csv_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(s) for s in _csv_list(text)]
    except ValueError as exc:
        raise ToraError(f"{flag} must be comma-separated numbers, got {text!r}") from exc
