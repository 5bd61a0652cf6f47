"""``tora pretrain | finetune | critic``: the training stages of a TORA run (reference
planner and inverse dynamics, one Diffusion-DPO model per objective, value critics)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tora.cli.common import (
    RuntimeOptions,
    add_command,
    add_ray_arguments,
    refuse_ray_options_without_ray,
    refuse_repeats,
    required,
    runtime_options,
    write_config,
)
from tora.cli.config_args import add_dataclass_arguments, config_to_dict, dataclass_from_args
from tora.data.formats import load_dataset
from tora.device import resolve_device
from tora.errors import ToraError
from tora.io import atomic_write_json
from tora.pipeline import chosen_objectives, critic_run, pretrain_run
from tora.scale.finetune import PURPOSE as FINETUNE_PURPOSE
from tora.scale.finetune import finetune_run_ray
from tora.scale.session import import_ray
from tora.train.critic import ValueCriticTrainConfig
from tora.train.dpo import DPOConfig, finetune_objective
from tora.train.inverse import InverseDynamicsTrainConfig
from tora.train.loop import read_history
from tora.train.pretrain import PretrainConfig

if TYPE_CHECKING:  # heavy modules: the handlers import them when they run
    pass


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

    opts = dataclass_from_args(PretrainOptions, args)
    runtime = runtime_options(args)
    config = dataclass_from_args(PretrainConfig, args)
    inverse = dataclass_from_args(InverseDynamicsTrainConfig, args, prefix="inverse")
    traj = load_dataset(required(opts.data, "--data"))
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
    write_config(run / "pretrain_command.json", options=opts, pretrain=config, inverse=inverse)
    print(f"reference planner and inverse dynamics saved in {run}")
    return 0


@dataclass
class FinetuneOptions:
    """Inputs and outputs of ``tora finetune``."""

    data: str = ""
    """Offline dataset (the one the reference planner was pretrained on)."""
    run: str = "runs/my-run"
    """Run directory holding the reference planner; writes RUN/objectives/OBJECTIVE."""
    objective: list[str] = field(default_factory=list)
    """Objectives to fine-tune for (see `tora data inspect`), one model each: --objective a
    --objective b (or --objective a b) fine-tunes them one after another, or side by side
    with --ray (default: none; give at least one)."""
    restart: bool = False
    """Start over: move earlier training in RUN/objectives/OBJECTIVE into a stale-<time>/
    subdirectory (needed when the reference planner, the data or the settings changed)."""


class ObjectivesFailed(ToraError):
    """Objectives fine-tuned on Ray failed (the others finished and were saved)."""


def finetune(args: argparse.Namespace) -> int:

    opts = dataclass_from_args(FinetuneOptions, args)
    runtime = runtime_options(args)
    config = dataclass_from_args(DPOConfig, args)
    refuse_ray_options_without_ray(args)
    if args.ray:
        import_ray(FINETUNE_PURPOSE)
    traj = load_dataset(required(opts.data, "--data"))
    names = opts.objective
    if not names:
        raise ToraError("--objective is required")
    refuse_repeats(names, "--objective")
    chosen_objectives(traj, names)  # fail before any work on an unknown name
    run = Path(opts.run)
    if not args.ray:
        device = resolve_device(runtime.device)
        for name in names:
            out = finetune_objective(
                run, traj, name, config, device, runtime.progress, restart=opts.restart
            )
            _finetuned(opts, config, name, out)
        return 0
    outcomes = finetune_run_ray(
        traj,
        run,
        config,
        names,
        runtime.device,
        opts.restart,
        args.address,
        lambda line: print(line, file=sys.stderr, flush=True),
    )
    for outcome in outcomes:
        if outcome.path is not None:
            _finetuned(opts, config, outcome.objective, outcome.path)
    failed = [o for o in outcomes if o.error is not None]
    if failed:
        lines = "".join(f"\n  '{o.objective}' {o.error}" for o in failed)
        raise ObjectivesFailed(
            f"{len(failed)} of {len(outcomes)} objectives failed (the others are saved; rerun "
            f"the same command to retry: a finished objective has nothing left to train):{lines}"
        )
    return 0


def _finetuned(opts: FinetuneOptions, config: DPOConfig, objective: str, out: Path) -> None:
    """Record the command next to an objective's model and say what it was trained on."""
    # Each model's record names its own objective, as when the command took one.
    options = {**config_to_dict(opts), "objective": objective}
    atomic_write_json(
        out / "finetune_command.json", {"options": options, "dpo": config_to_dict(config)}
    )
    pairs = json.loads((out / "pairs.json").read_text())
    print(
        f"objective model '{objective}' saved in {out}\n"
        f"pairs used: {pairs['pairs']} ({pairs['ties']} ties dropped), first of pair won "
        f"{100 * pairs['first_wins']:.1f}% (label balance), mean return gap {pairs['mean_gap']:.3g}"
    )


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
    opts = dataclass_from_args(CriticOptions, args)
    runtime = runtime_options(args)
    config = dataclass_from_args(ValueCriticTrainConfig, args)
    traj = load_dataset(required(opts.data, "--data"))
    names = list(opts.objective) or traj.objective_names
    refuse_repeats(names, "--objective")
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
        write_config(out / "critic_command.json", options=opts, critic=config)
        last = read_history(out / "history.json")[-1]
        fit = last.get("val_explained_variance")
        held = f"held-out R^2 {fit:.3f}" if fit is not None else "no held-out episodes"
        print(f"value critic '{name}' saved in {out} ({held})")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register this group's commands on the ``tora`` parser's subcommands."""
    pretrain_parser = add_command(
        sub,
        "pretrain",
        "Stage 1: train the reference planner and inverse dynamics.",
        pretrain,
    )
    add_dataclass_arguments(pretrain_parser, PretrainOptions)
    add_dataclass_arguments(pretrain_parser, RuntimeOptions)

    add_dataclass_arguments(pretrain_parser, PretrainConfig, group_title="reference planner")
    add_dataclass_arguments(
        pretrain_parser,
        InverseDynamicsTrainConfig,
        prefix="inverse",
        group_title="inverse dynamics",
    )

    finetune_parser = add_command(
        sub,
        "finetune",
        "Stage 2: Diffusion-DPO fine-tune one planner per objective.",
        finetune,
    )
    add_dataclass_arguments(finetune_parser, FinetuneOptions)
    add_dataclass_arguments(finetune_parser, RuntimeOptions)

    add_dataclass_arguments(finetune_parser, DPOConfig, group_title="Diffusion-DPO")
    add_ray_arguments(
        finetune_parser,
        "Fine-tune the objectives side by side as Ray tasks",
        "Fine-tune every --objective as a Ray task (1 CPU, torch on one thread; a GPU when "
        "--device picks CUDA), on a local Ray started for the run or on the cluster at --address. "
        "The models equal those fine-tuned one after another with torch on one thread "
        "(OMP_NUM_THREADS=1), byte for byte. A rerun resumes as a serial one does; an "
        "objective whose worker died is retried; a failed objective is reported at the end "
        "(exit status 2) while the others finish and are saved.",
        "the run directory",
    )

    critic_parser = add_command(
        sub,
        "critic",
        "Train a value critic per objective (discounted return from a state, under the data's\n"
        "behaviour), for selection among candidate plans (`tora evaluate --candidates N`).",
        critic,
    )
    add_dataclass_arguments(critic_parser, CriticOptions)
    add_dataclass_arguments(critic_parser, RuntimeOptions)

    add_dataclass_arguments(critic_parser, ValueCriticTrainConfig, group_title="value critic")
