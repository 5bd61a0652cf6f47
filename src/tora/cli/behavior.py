"""``tora behavior train`` and ``tora behavior show``: behaviour policies that make offline data,
and what a set of them reaches."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from tora.behavior import ARSConfig, FlightConfig, PPOConfig, train_behavior_set
from tora.behavior.ars import resolve_config
from tora.behavior.report import format_report, set_report
from tora.behavior.shipped import shipped_policy_dir
from tora.cli.common import add_command, add_group, write_config
from tora.cli.config_args import (
    add_dataclass_arguments,
    dataclass_from_args,
)
from tora.envs import objective_names, resolve_env_id
from tora.errors import ToraError
from tora.io import atomic_write_json


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
    opts = dataclass_from_args(BehaviorTrainOptions, args)
    env_id = resolve_env_id(opts.env)
    k = len(objective_names(env_id))
    count = opts.policies or (11 if k <= 2 else 21)
    out = Path(opts.out or Path("runs/behavior") / env_id.split("/")[-1])
    config: ARSConfig | PPOConfig | FlightConfig
    if opts.algorithm == "ppo":
        config = dataclass_from_args(PPOConfig, args, prefix="ppo")
        write_config(out / "command.json", options=opts, ppo=config)
    elif opts.algorithm == "flight":
        config = dataclass_from_args(FlightConfig, args, prefix="flight")
        write_config(out / "command.json", options=opts, flight=config)
    else:
        # The env's defaults filled in, so command.json records what was actually run.
        config = resolve_config(dataclass_from_args(ARSConfig, args, prefix="ars"), env_id)
        write_config(out / "command.json", options=opts, ars=config)
    policies = train_behavior_set(env_id, out, count, config, progress=not args.no_progress)
    print(f"{len(policies)} behaviour policies for {env_id} in {out}")
    for policy in policies:
        ret = policy.info.get("return_vector")
        print(f"  weights {np.round(policy.weights, 3).tolist()}  returns {ret}")
    return 0


def behavior_show(args: argparse.Namespace) -> int:
    where = Path(args.set)
    if not where.is_dir():
        try:
            where = shipped_policy_dir(args.set)
        except ToraError as err:
            raise ToraError(f"{args.set}: neither a set directory nor an env id ({err})") from err
        if not where.is_dir():
            raise ToraError(f"{args.set}: no such directory, and no set ships for that env")
    report = set_report(where)
    print(format_report(report))
    if args.json:
        atomic_write_json(args.json, report.to_dict())
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this group's commands on the ``tora`` parser's subcommands."""
    behavior_sub = add_group(sub, "behavior", "Behaviour policies that make offline data.")
    btrain = add_command(
        behavior_sub,
        "train",
        "Train behaviour policies over the preference simplex (resumable): linear ones with "
        "ARS, small MLPs with PPO (--algorithm ppo), or the drone's searched flight "
        "controllers (--algorithm flight, SafetyDroneCircle-v0).",
        behavior_train,
    )
    add_dataclass_arguments(btrain, BehaviorTrainOptions)
    btrain.add_argument(
        "--no-progress",
        action="store_true",
        help="Hide the per-policy progress bars (for runs logged to a file).",
    )

    add_dataclass_arguments(btrain, ARSConfig, prefix="ars", group_title="ARS")
    add_dataclass_arguments(btrain, PPOConfig, prefix="ppo", group_title="PPO (--algorithm ppo)")
    add_dataclass_arguments(
        btrain, FlightConfig, prefix="flight", group_title="Flight search (--algorithm flight)"
    )

    show = add_command(
        behavior_sub,
        "show",
        "What a behaviour set reaches, from its index (nothing is run): each policy's "
        "evaluation returns and episode length (ENDS EARLY where an episode fell before the "
        "time limit), the hypervolume of the returns (reference point 0) and its ratio to "
        "D4MORL's behaviour policies' where published. SET is a set directory or an env id "
        "(its shipped set), e.g. tora/MO-Hopper-v0.",
        behavior_show,
    )
    show.add_argument("set", metavar="SET", help="Set directory or env id.")
    show.add_argument("--json", type=Path, help="Also write the figures to this JSON file.")
