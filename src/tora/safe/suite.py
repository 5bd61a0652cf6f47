"""A safe-RL suite's settings and its layout on disk: the methods, what a suite file says
(:class:`SafeSuiteConfig`), which tasks can run, and where each cell's files live. The runner
(:mod:`tora.safe.bench`) and the table writer (:mod:`tora.safe.table`) both read these."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from tora.behavior.shipped import shipped_policy_dir
from tora.bench.config import read_suite
from tora.envs import SAFETY_ENV_IDS, resolve_env_id
from tora.envs.safety import safety_task
from tora.errors import ToraError
from tora.policies.cond_diffusion import CondDiffusionConfig
from tora.policies.supervised import BCConfig
from tora.policies.tora_planner import ToraConfig
from tora.safe.controller import BudgetController
from tora.safe.protocol import TABLE_EPISODES, TABLE_SEEDS, episode_seeds
from tora.safe.select import SelectConfig
from tora.safe.toy import SAFE_DASH_ID
from tora.train.critic import ValueCriticTrainConfig

METHODS: dict[str, str] = {
    "tora": "TORA-safe",
    "tora_adaptive": "TORA-safe + adaptive w_c",
    "tora_critic": "TORA-safe + cost critic",
    "bc": "BC-all",
    "bc_safe": "BC-safe",
    "cdt": "CondDiffusion(R,C)",
}
"""Method id -> label, in table order."""


@dataclass
class TaskEntry:
    """One task of the suite."""

    id: str
    """Env id (``SafetyBallRun-v0``, ``tora/SafetyBallRun-v0``, ``OfflineBallRun-v0``, or the
    toy ``tora/SafeDash-v0``)."""
    data: str = ""
    """A DSRL HDF5 file to train on (default: made with the task's shipped behaviour
    policies, as ``tora data make TASK --format dsrl`` does)."""


@dataclass
class SafeDataSettings:
    """The dataset made for a task that has no ``data`` file."""

    episodes: int = 1000
    """Episodes (``tora data make``'s default)."""
    seed: int = 0
    """Seed of data collection (the same data for every method and seed)."""


@dataclass
class SafeEvalSettings:
    """The table's protocol (DSRL's: 3 seeds x 20 episodes at thresholds 10, 20, 40)."""

    seeds: list[int] = field(default_factory=lambda: list(TABLE_SEEDS))
    """Seeds: each trains every method once and evaluates it on its own table episodes."""
    episodes: int = TABLE_EPISODES
    """Table episodes per seed and threshold."""
    thresholds: list[float] = field(default_factory=lambda: [10.0, 20.0, 40.0])
    """Cost thresholds kappa (each > 0)."""


@dataclass
class AdaptiveSettings:
    """The adaptive-weight option (:class:`~tora.safe.controller.BudgetController`)."""

    reserves: list[float] = field(default_factory=lambda: [0.1, 0.3, 0.5, 0.7])
    """Reserves tried on the selection episodes; per threshold the highest-reward safe one
    is used for the table."""
    start: list[float] = field(default_factory=list)
    """Weight (w_r, w_c) at the start of an episode; empty: the weight TORA-safe selected for
    the threshold, so the controller only ever adds caution to the fixed selection."""
    safe: list[float] = field(default_factory=lambda: [0.0, 1.0])
    """Weight once the guarded share of the budget is spent."""


@dataclass
class CostCriticSettings:
    """TORA-safe + cost critic (issue 19): one value critic per objective, trained offline in
    the TORA run's directory; at every step ``candidates`` plans are sampled per episode and
    those whose predicted cost-to-go exceeds the budget left are discarded
    (:meth:`tora.planning.agent.Agent.act`'s ``budget_left``) before the weight picks among
    the rest."""

    LEGACY: ClassVar[dict[str, Any]] = {"weights": "tora"}

    candidates: int = 16
    """Plans sampled per episode and step."""
    weights: Literal["own", "tora"] = "own"
    """Where the weight of a threshold comes from: "own", the suite's weight search run on
    this agent itself (critic and budget on) on the selection episodes, one search per
    threshold since the budget changes what a weight does; "tora", the weight TORA-safe
    selected without the critic (which the critic's extra choice of plans then pushes
    towards more reward and more cost)."""
    train: ValueCriticTrainConfig = field(default_factory=ValueCriticTrainConfig)
    """The critics' training (its seed is replaced by each table seed)."""


@dataclass
class SafeSuiteConfig:
    """A safe-RL benchmark suite."""

    name: str = "safe"
    """Name shown in the table."""
    out: str = ""
    """Output directory (default: runs/safe/<name>)."""
    device: str = "cpu"
    """Torch device for training (evaluation plans on the CPU)."""
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    """Methods to run (see METHODS)."""
    tasks: list[TaskEntry] = field(default_factory=list)
    """Tasks."""
    data: SafeDataSettings = field(default_factory=SafeDataSettings)
    """Dataset settings for tasks without a data file."""
    eval: SafeEvalSettings = field(default_factory=SafeEvalSettings)
    """The table's protocol."""
    select: SelectConfig = field(default_factory=SelectConfig)
    """Weight selection of TORA-safe (its seed is replaced by each table seed)."""
    adaptive: AdaptiveSettings = field(default_factory=AdaptiveSettings)
    """The adaptive-weight option."""
    tora: ToraConfig = field(default_factory=ToraConfig)
    """TORA-safe's training (pretrain, inverse dynamics, DPO per objective, sampler)."""
    bc: BCConfig = field(default_factory=BCConfig)
    """BC-all and BC-safe."""
    cdt: CondDiffusionConfig = field(default_factory=CondDiffusionConfig)
    """The (return, cost)-conditioned planner."""
    critic: CostCriticSettings = field(default_factory=CostCriticSettings)
    """TORA-safe + cost critic."""

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/safe/{self.name}")


# ------------------------------------------------------------------------------ loading
def load_safe_suite(path: str | Path) -> SafeSuiteConfig:
    """Read a suite (``kind = "safe"``) from TOML or JSON; unknown keys, methods and tasks are
    errors."""
    return read_suite(path, "safe", SafeSuiteConfig, check_safe_suite)


def check_safe_suite(suite: SafeSuiteConfig) -> None:
    """Raise :class:`ToraError` for a suite that cannot run, before anything is trained."""
    if not suite.tasks:
        raise ToraError("the suite lists no tasks ([[tasks]] entries)")
    for name in suite.methods:
        if name not in METHODS:
            raise ToraError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    for entry in suite.tasks:
        task_env(entry.id)
    ev = suite.eval
    if not ev.seeds or ev.episodes < 1 or not ev.thresholds:
        raise ToraError("eval needs at least one seed, one episode and one threshold")
    if len(set(ev.seeds)) != len(ev.seeds):
        raise ToraError(f"eval.seeds repeats a seed: {ev.seeds}")
    for kappa in ev.thresholds:
        if not (np.isfinite(kappa) and kappa > 0):
            raise ToraError(f"thresholds must be finite and > 0, got {kappa}")
    for seed in ev.seeds:  # the seed ranges are checked here, not after training
        episode_seeds("table", seed, ev.episodes)
        episode_seeds("select", seed, suite.select.episodes)
    suite.select.check()
    start = tuple(suite.adaptive.start) or (1.0, 0.0)
    for reserve in suite.adaptive.reserves:
        BudgetController(1.0, reserve, start, tuple(suite.adaptive.safe))


def task_env(task: str) -> str:
    """The env id of a suite task, also from the table's short names (``CarRun``); ToraError
    if it is neither a safe-RL task nor the toy."""
    env_id = resolve_env_id(_full_task_id(task))
    if env_id not in (*SAFETY_ENV_IDS, SAFE_DASH_ID):
        raise ToraError(
            f"{task!r} is not a safe-RL task; use one of {', '.join(SAFETY_ENV_IDS)} "
            f"(or {SAFE_DASH_ID}, the toy)"
        )
    return env_id


def with_data_files(suite: SafeSuiteConfig, specs: list[str] | None) -> SafeSuiteConfig:
    """``suite`` with each ``TASK=PATH`` of ``specs`` as that task's data file (DSRL HDF5),
    e.g. from ``tora safe bench ... --data CarCircle=~/dsrl/OfflineCarCircle.hdf5``.

    The task may be named as anywhere else (``CarCircle`` short names included); it must be
    one of the suite's, and the file must exist: a typo fails here, before any cell runs,
    rather than quietly falling back to made data.
    """
    for spec in specs or []:
        task, sep, path = spec.partition("=")
        if not sep or not task.strip() or not path.strip():
            raise ToraError(
                f"--data takes TASK=PATH (e.g. CarCircle=OfflineCarCircle.hdf5), got {spec!r}"
            )
        env_id = task_env(task.strip())
        matches = [e for e in suite.tasks if task_env(e.id) == env_id]
        if not matches:
            listed = ", ".join(task_name(task_env(e.id)) for e in suite.tasks)
            raise ToraError(
                f"--data {spec!r}: {task_name(env_id)} is not a task of this suite ({listed})"
            )
        file = Path(path.strip()).expanduser()
        if not file.is_file():
            raise ToraError(f"--data {spec!r}: {file} is not a file")
        for entry in matches:
            entry.data = str(file)
    return suite


def _full_task_id(task: str) -> str:
    """``CarCircle`` -> ``SafetyCarCircle-v0``: the table's short names of the six tasks,
    accepted wherever a task is named; any other id is passed on as given."""
    short = {task_name(env_id): env_id for env_id in SAFETY_ENV_IDS}
    return short.get(task, task)


def task_name(env_id: str) -> str:
    """Short task name for tables and directories: ``BallRun``, ``SafeDash``."""
    if env_id == SAFE_DASH_ID:
        return "SafeDash"

    return safety_task(env_id).name


def skip_reason(entry: TaskEntry) -> str | None:
    """Why a task cannot run here (None: it can)."""
    env_id = task_env(entry.id)
    if env_id == SAFE_DASH_ID:
        return None
    if importlib.util.find_spec("bullet_safety_gym") is None:
        return "the Bullet-Safety-Gym package is not installed (see docs/environments.md)"
    if entry.data:
        return None if Path(entry.data).is_file() else f"data file {entry.data} does not exist"

    if not (shipped_policy_dir(env_id) / "index.json").is_file():
        return (
            "no shipped behaviour policies to make its data (train them with `tora behavior "
            f"train --env {env_id}`, or give a DSRL file as data = ...)"
        )
    return None


def cell_dir(suite: SafeSuiteConfig, env_id: str, method: str, seed: int) -> Path:
    return suite.out_dir / task_name(env_id) / method / f"seed{seed}"
