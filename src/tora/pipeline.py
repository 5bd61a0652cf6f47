"""The TORA pipeline as three calls: train a run, add an objective, evaluate a sweep.

The CLI and the demo are thin layers over these functions; so is any user script.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tora.data.trajectories import Trajectories
from tora.diffusion.accel import AccelConfig
from tora.diffusion.samplers import SamplerConfig
from tora.envs import make_env
from tora.evaluate.report import summarize_sweep, write_sweep_report
from tora.evaluate.rollout import RowReturns, SweepResult, merge_rows, rollout_rows, row_seeds
from tora.planning.agent import Agent
from tora.preferences import Preferences
from tora.train.critic import ValueCriticTrainConfig, train_value_critic
from tora.train.dpo import DPOConfig, finetune_objective
from tora.train.inverse import InverseDynamicsTrainConfig, train_inverse_dynamics
from tora.train.planner_io import INVERSE_DIR, REFERENCE_DIR, load_planner
from tora.train.pretrain import PretrainConfig, pretrain_planner


def pretrain_run(
    traj: Trajectories,
    run_dir: Path,
    pretrain: PretrainConfig,
    inverse: InverseDynamicsTrainConfig,
    device: torch.device | str = "cpu",
    progress: bool = True,
    restart: bool = False,
) -> None:
    """Stage 1: the reference planner and the inverse dynamics model (same normalization).

    Earlier training in ``run_dir`` on other data or settings is refused; ``restart`` moves
    both models aside and starts over (objective models then need ``restart`` too)."""
    run_dir = Path(run_dir)
    pretrain_planner(traj, run_dir / REFERENCE_DIR, pretrain, device, progress, restart)
    _, spec, _ = load_planner(run_dir / REFERENCE_DIR)
    # The action leads from s_t to the first planned state s_{t+m}: same stride as the planner.
    train_inverse_dynamics(
        traj,
        run_dir / INVERSE_DIR,
        inverse,
        spec.normalizer,
        spec.stride,
        device,
        progress,
        restart,
    )


def chosen_objectives(traj: Trajectories, objectives: Sequence[str] | None) -> list[str]:
    """``objectives`` (default: every objective of ``traj``), each checked against the data
    (:class:`~tora.errors.UnknownObjectiveError`) before any model of them is trained."""
    names = list(objectives) if objectives else traj.objective_names
    for name in names:
        traj.objective_index(name)
    return names


def finetune_run(
    traj: Trajectories,
    run_dir: Path,
    dpo: DPOConfig,
    objectives: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    restart: bool = False,
) -> list[Path]:
    """Stage 2: one Diffusion-DPO model per objective (default: every objective of ``traj``);
    ``restart`` moves each one's earlier training aside and starts over."""
    names = chosen_objectives(traj, objectives)
    return [
        finetune_objective(run_dir, traj, name, dpo, device, progress, restart) for name in names
    ]


def critic_run(
    traj: Trajectories,
    run_dir: Path,
    config: ValueCriticTrainConfig,
    objectives: Sequence[str] | None = None,
    device: torch.device | str = "cpu",
    progress: bool = True,
    restart: bool = False,
) -> list[Path]:
    """Value critics for preference-weighted selection: one per objective (default: every
    objective of ``traj``), on the reference planner's normalized states; ``restart`` moves
    each one's earlier training aside and starts over."""
    names = chosen_objectives(traj, objectives)
    return [
        train_value_critic(run_dir, traj, name, config, device, progress, restart) for name in names
    ]


def evaluate_run(
    run_dir: Path,
    weights: np.ndarray,
    episodes: int,
    seed: int,
    env_id: str,
    objectives: Sequence[str] | None = None,
    sampler: SamplerConfig | None = None,
    device: str = "auto",
    progress: bool = True,
    workers: int = 0,
    candidates: int = 1,
    accel: AccelConfig | None = None,
) -> SweepResult:
    """Roll out the composed agent for every weight row; all rows advance as one batch.

    Every (preference, episode) row samples from its own noise stream, so a preference's
    returns are the same whether it is evaluated alone or inside a sweep. ``workers``
    processes step the environments (0: all in this process). ``candidates`` > 1 selects
    among that many plans per step by the run's value critics (see :class:`Agent`).
    """
    agent = Agent.load(
        run_dir,
        objectives,
        device=device,
        sampler=sampler,
        seed=seed,
        candidates=candidates,
        accel=accel,
    )
    # One weight per loaded model, checked once, before any environment is built; the checked
    # rows travel to every act() call as they are.
    prefs = Preferences(weights, len(agent.objective_names), agent.objective_names)
    reward_names = env_reward_names(env_id, agent)
    part = sweep_rows(agent, env_id, prefs, episodes, seed, None, progress, workers)
    result = merge_rows([part], prefs, episodes, seed, env_id, reward_names or None)
    result.meta["timing"] = part.timing
    result.meta["models"] = agent.objective_names
    if candidates > 1:
        result.meta["candidates"] = candidates
    return result


def sweep_rows(
    agent: Agent,
    env_id: str,
    prefs: Preferences,
    episodes: int,
    seed: int,
    rows: range | None = None,
    progress: bool = True,
    workers: int = 0,
    on_end: Callable[[int], None] | None = None,
) -> RowReturns:
    """Rows ``rows`` (default: all) of the sweep of ``prefs`` x ``episodes`` in ``env_id``,
    rolled out by ``agent`` (:func:`~tora.evaluate.rollout.rollout_rows`).

    Each row samples from its own noise stream, seeded by its index in the whole sweep
    (:func:`~tora.evaluate.rollout.row_seeds`), so a row's actions do not depend on which rows
    share its batch: shares of the sweep rolled out apart, e.g. by Ray actors, give each row
    what the whole sweep gives it. ``on_end``: called with the number of episodes that ended
    at each step where some did."""
    seeds = row_seeds(seed, len(prefs), episodes)
    share = range(len(seeds)) if rows is None else rows
    agent.seed_rows(seeds[share.start : share.stop])
    return rollout_rows(
        agent.act,
        partial(make_env, env_id),
        prefs,
        episodes,
        seed,
        share,
        progress=progress,
        workers=workers,
        pass_rows=True,
        on_end=on_end,
    )


def env_reward_names(env_id: str, agent: Agent | None = None) -> list[str]:
    """The reward objectives ``env_id`` declares (empty if none), read from one environment
    built and closed; with ``agent``, its spaces are first checked against the agent's
    (:class:`~tora.errors.ShapeMismatchError`), before any rollout starts."""
    probe = make_env(env_id)
    try:
        if agent is not None:
            agent.check_spaces(probe.observation_space.shape, probe.action_space.shape)
        return list(getattr(probe.unwrapped, "reward_names", ()) or [])
    finally:
        probe.close()


def report_run(
    result: SweepResult,
    out_dir: Path,
    ref_point: Sequence[float],
    title: str = "",
    extra: dict[str, Any] | None = None,
    overlay: dict[str, np.ndarray] | None = None,
    json_files: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Metrics of a sweep, written with its plots into ``out_dir``; returns the summary.
    ``overlay`` adds reference return sets (e.g. the dataset's episodes) to the front plot;
    ``json_files`` (file name -> JSON object, e.g. a command's config.json) are published
    into ``out_dir`` together with the report (see
    :func:`~tora.evaluate.report.write_sweep_report`)."""
    summary = summarize_sweep(result, ref_point)
    paths = write_sweep_report(result, summary, out_dir, title, extra, overlay, json_files)
    summary["files"] = {k: str(v) for k, v in paths.items()}
    return summary
