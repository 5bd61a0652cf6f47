"""``tora data inspect | make``: what a dataset holds, and datasets made by tora-rl's own
behaviour policies."""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tora.behavior.make import collection_kind, make_dataset
from tora.cli.common import add_command, add_group
from tora.cli.config_args import (
    add_dataclass_arguments,
    dataclass_from_args,
)
from tora.data.formats import save_dataset
from tora.data.formats.d4morl import parse_file_name
from tora.envs import D4MORL_ALIASES, objective_names, resolve_env_id
from tora.errors import ToraError
from tora.evaluate.card import dataset_card, format_card, plot_card
from tora.evaluate.inspect import format_summary, inspect_dataset

if TYPE_CHECKING:  # heavy modules: the handlers import them when they run
    pass


def data_inspect(args: argparse.Namespace) -> int:

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


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this group's commands on the ``tora`` parser's subcommands."""
    data_sub = add_group(sub, "data", "Inspect or make offline datasets.")
    inspect = add_command(
        data_sub,
        "inspect",
        "Print what a dataset file holds (any supported format).",
        data_inspect,
    )
    inspect.add_argument("path", help="Dataset file or Minari dataset directory.")
    inspect.add_argument("--json", action="store_true", help="Print one JSON object on stdout.")
    inspect.add_argument(
        "--format",
        default=None,
        choices=["d4morl", "dsrl", "minari", "tora"],
        help="Force a format instead of detecting it.",
    )
    make = add_command(
        data_sub,
        "make",
        "Generate an offline dataset with tora-rl's own behaviour.",
        data_make,
    )
    make.add_argument(
        "task",
        nargs="?",
        default=None,
        help="Environment id, as an alternative to --env (e.g. SafetyBallRun-v0).",
    )
    add_dataclass_arguments(make, DataMakeOptions)
