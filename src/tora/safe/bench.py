"""The safe-RL benchmark: tasks x methods x seeds on the same DSRL-style data, scored in DSRL's
terms at every cost threshold.

A suite (TOML, :class:`SafeSuiteConfig`) lists tasks; each task gets one dataset (a DSRL file
given in the suite, or one made with the task's shipped behaviour policies), and every method
trains on it once per seed. A made dataset's file name carries the behaviour set's digest
(:func:`tora.behavior.make.data_source_tag`), so swapping or retraining a set makes new data
instead of reusing the old file, and cells made from other data are refused.

Methods (:data:`METHODS`):

- ``tora``: TORA-safe. A reference planner, one DPO planner for reward and one for cost; per
  threshold the weight is chosen by :class:`~tora.safe.select.WeightSearch` on selection
  episodes, then evaluated on the table's episodes.
- ``tora_adaptive``: the same trained models (no extra training), acting under a
  :class:`~tora.safe.controller.BudgetController` per threshold; its reserve is chosen on the
  selection episodes the same way.
- ``bc``: behaviour cloning on every episode; ``bc_safe``: on the episodes that cost less
  than the threshold (one model per threshold).
- ``cdt``: the (reward-to-go, cost-to-go)-conditioned diffusion planner with classifier-free
  guidance (:mod:`tora.safe.conditioned`).

Every cell (task, method, seed) lives in its own directory and is skipped once its
``eval.json`` exists, so a killed run resumes; training resumes inside a cell. A cell keeps the
settings it was made with and refuses to continue under others. Tasks that cannot run (no
behaviour policies and no data file, or the simulator is not installed) are skipped with the
reason, which the table repeats.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tora.bench.suite import read_suite_file
from tora.configs import (
    config_from_dict,
    config_to_dict,
    fill_missing,
    legacy_defaults,
    settings_diff,
)
from tora.data.formats import load_dataset, save_dataset
from tora.data.trajectories import Trajectories
from tora.device import resolve_device
from tora.envs import SAFETY_ENV_IDS, resolve_env_id
from tora.errors import ToraError
from tora.io import atomic_write_json, file_sha256, read_json_object
from tora.policies.cond_diffusion import CondDiffusionConfig
from tora.policies.supervised import BCConfig, load_bc, train_bc
from tora.policies.tora_planner import METHOD_FILE, ToraConfig, load_tora, train_tora
from tora.safe.conditioned import load_return_cost, train_return_cost
from tora.safe.controller import BudgetController
from tora.safe.policies import controller_rows, per_row, supervised_step, tora_step
from tora.safe.protocol import TABLE_EPISODES, TABLE_SEEDS, episode_seeds
from tora.safe.rollout import Episodes, run_episodes
from tora.safe.select import SelectConfig, WeightSearch
from tora.safe.toy import SAFE_DASH_ID, collect_toy
from tora.safe.tuning import choose_reserves, selection_evaluate

METHODS: dict[str, str] = {
    "tora": "TORA-safe",
    "tora_adaptive": "TORA-safe + adaptive w_c",
    "bc": "BC-all",
    "bc_safe": "BC-safe",
    "cdt": "CondDiffusion(R,C)",
}
"""Method id -> label, in table order."""

CELL_FILE = "cell.json"
EVAL_FILE = "eval.json"
TRAIN_FILE = "train.json"


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

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/safe/{self.name}")


# ------------------------------------------------------------------------------ loading
def load_safe_suite(path: str | Path) -> SafeSuiteConfig:
    """Read a suite (``kind = "safe"``) from TOML or JSON; unknown keys, methods and tasks are
    errors."""
    suite = config_from_dict(SafeSuiteConfig, read_suite_file(path, "safe"))
    check_safe_suite(suite)
    return suite


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
    """The env id of a suite task; ToraError if it is neither a safe-RL task nor the toy."""
    env_id = resolve_env_id(task)
    if env_id not in (*SAFETY_ENV_IDS, SAFE_DASH_ID):
        raise ToraError(
            f"{task!r} is not a safe-RL task; use one of {', '.join(SAFETY_ENV_IDS)} "
            f"(or {SAFE_DASH_ID}, the toy)"
        )
    return env_id


def task_name(env_id: str) -> str:
    """Short task name for tables and directories: ``BallRun``, ``SafeDash``."""
    if env_id == SAFE_DASH_ID:
        return "SafeDash"
    from tora.envs.safety import safety_task

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
    from tora.behavior.shipped import shipped_policy_dir

    if not (shipped_policy_dir(env_id) / "index.json").is_file():
        return (
            "no shipped behaviour policies to make its data (train them with `tora behavior "
            f"train --env {env_id}`, or give a DSRL file as data = ...)"
        )
    return None


def task_dataset(
    suite: SafeSuiteConfig, entry: TaskEntry, progress: bool
) -> tuple[Trajectories, dict[str, str]]:
    """The task's dataset (its data file, or one made once and reused by every method) and
    what identifies it in the cells' settings: the made file's name, which carries the
    behaviour set's digest, or a given file's name and SHA-256. Cells made from other data
    are then refused instead of mixed into one table."""
    if entry.data:
        given = Path(entry.data)
        traj = load_dataset(given)
        return traj, {"file": given.name, "sha256": file_sha256(given)}
    env_id = task_env(entry.id)
    d = suite.data
    make: Callable[[], Trajectories]
    if env_id == SAFE_DASH_ID:
        tag, make = "scripted", lambda: collect_toy(d.episodes, d.seed)
    else:
        from tora.behavior.make import data_source_tag, make_dataset

        tag = data_source_tag(env_id)
        make = lambda: make_dataset(env_id, d.episodes, seed=d.seed, progress=progress)  # noqa: E731
    path = suite.out_dir / "data" / f"{task_name(env_id)}_{d.episodes}_seed{d.seed}_{tag}.hdf5"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_dataset(make(), path, format="dsrl")
    return load_dataset(path, format="dsrl"), {"file": path.name}


# -------------------------------------------------------------------------------- cells
def _with_seed(config: Any, seed: int) -> Any:
    from tora.bench.suite import with_seed

    return with_seed(config, seed)


def _method_settings(
    suite: SafeSuiteConfig, method: str, data_id: dict[str, str]
) -> dict[str, Any]:
    """Everything a cell's results depend on besides its seed."""
    config = _method_config(suite, method)
    settings: dict[str, Any] = {
        "method": method,
        "config": config_to_dict(config),
        "data": {**config_to_dict(suite.data), **data_id},
        "eval": {"episodes": suite.eval.episodes, "thresholds": list(suite.eval.thresholds)},
    }
    if method.startswith("tora"):
        settings["select"] = {k: v for k, v in config_to_dict(suite.select).items() if k != "seed"}
    if method == "tora_adaptive":
        settings["adaptive"] = config_to_dict(suite.adaptive)
    return settings


def _method_config(suite: SafeSuiteConfig, method: str) -> Any:
    """The config a method's cells are trained with."""
    return {
        "tora": suite.tora,
        "tora_adaptive": suite.tora,
        "bc": suite.bc,
        "bc_safe": suite.bc,
        "cdt": suite.cdt,
    }[method]


def _check_cell(cell: Path, settings: dict[str, Any], config_cls: type | None = None) -> None:
    """Refuse to mix a cell's results with settings it was not made with; a field of
    ``config_cls`` added after the cell was made counts as its legacy value, as in the MuJoCo
    suite (:func:`tora.configs.legacy_defaults`)."""
    path = cell / CELL_FILE
    if path.is_file():
        saved = read_json_object(path).get("settings")
        if (
            config_cls is not None
            and isinstance(saved, dict)
            and isinstance(saved.get("config"), dict)
        ):
            saved = {**saved, "config": fill_missing(saved["config"], legacy_defaults(config_cls))}
        if saved != settings:
            changed = "; ".join(settings_diff(saved, settings))
            raise ToraError(
                f"{cell} was made with other settings than the suite now asks for ({changed}); "
                "use another suite name/out directory, or delete that cell to redo it"
            )
    else:
        cell.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"settings": settings})


@dataclass
class CellContext:
    """What a method's cell needs."""

    suite: SafeSuiteConfig
    env_id: str
    traj: Trajectories
    data_id: dict[str, str]
    seed: int
    cell: Path
    progress: bool
    log: Callable[[str], None]

    @property
    def thresholds(self) -> list[float]:
        return [float(k) for k in self.suite.eval.thresholds]

    def table_rows(self, per_threshold: int = 1) -> list[int]:
        """Reset seeds of the table's episodes, repeated for ``per_threshold`` blocks."""
        return episode_seeds("table", self.seed, self.suite.eval.episodes) * per_threshold

    def timed_train(self, name: str, train: Callable[[], Any], where: Path) -> float:
        """Run ``train`` once (its seconds are remembered in ``where/train.json``)."""
        mark = where / TRAIN_FILE
        if mark.is_file():
            return float(read_json_object(mark)["train_s"])
        self.log(f"[{task_name(self.env_id)} | {name} | seed {self.seed}] training")
        start = time.perf_counter()
        train()
        seconds = time.perf_counter() - start
        atomic_write_json(mark, {"train_s": seconds})
        return seconds


def _split(episodes: Episodes, blocks: list[float], extra: dict[float, Any] | None = None) -> dict:
    """Per-threshold returns and costs of a batch made of one block of episodes per threshold."""
    n = len(blocks)
    returns = episodes.returns.reshape(n, -1)
    costs = episodes.costs.reshape(n, -1)
    out = {}
    for i, kappa in enumerate(blocks):
        out[str(kappa)] = {"returns": returns[i].tolist(), "costs": costs[i].tolist()}
        if extra and kappa in extra:
            out[str(kappa)].update(extra[kappa])
    return out


def _tora_model(ctx: CellContext) -> tuple[Path, float]:
    """The TORA run of this task and seed, shared by ``tora`` and ``tora_adaptive``."""
    where = ctx.suite.out_dir / task_name(ctx.env_id) / "tora_model" / f"seed{ctx.seed}"
    config = _with_seed(ctx.suite.tora, ctx.seed)
    device = resolve_device(ctx.suite.device)
    where.mkdir(parents=True, exist_ok=True)
    _check_cell(
        where,
        {"config": config_to_dict(config), "data": config_to_dict(ctx.suite.data)},
        type(config),
    )
    seconds = ctx.timed_train(
        "TORA-safe", lambda: train_tora(ctx.traj, where, config, device, ctx.progress), where
    )
    assert (where / METHOD_FILE).is_file()
    return where, seconds


def cell_tora(ctx: CellContext) -> dict[str, Any]:
    model, train_s = _tora_model(ctx)
    agent = load_tora(model, "cpu", ctx.seed)
    config = dataclasses.replace(ctx.suite.select, seed=ctx.seed)
    evaluate = selection_evaluate(
        agent, ctx.env_id, ctx.seed, ctx.suite.select.episodes, ctx.progress
    )
    search = WeightSearch(evaluate, config)
    start = time.perf_counter()
    selections = {k: search.select(k) for k in ctx.thresholds}
    select_s = time.perf_counter() - start
    weights = np.concatenate(
        [np.tile(selections[k].weight, (ctx.suite.eval.episodes, 1)) for k in ctx.thresholds]
    )
    step = tora_step(agent, per_row(weights), weights.shape[0], noise_seed=ctx.seed)
    episodes = run_episodes(step, ctx.env_id, ctx.table_rows(len(ctx.thresholds)), ctx.progress)
    extra = {k: {"weight": list(s.weight), "selection": s.to_dict()} for k, s in selections.items()}
    return {
        "thresholds": _split(episodes, ctx.thresholds, extra),
        "train_s": train_s,
        "select_s": select_s,
        "selection_weights_evaluated": search.evaluated,
    }


def cell_tora_adaptive(ctx: CellContext) -> dict[str, Any]:
    model, train_s = _tora_model(ctx)
    agent = load_tora(model, "cpu", ctx.seed)
    ad = ctx.suite.adaptive
    starts = {k: tuple(ad.start) for k in ctx.thresholds}
    if not ad.start:  # start from TORA-safe's selection (its cell runs first if need be)
        tora_eval = run_cell(
            ctx.suite,
            ctx.env_id,
            "tora",
            ctx.seed,
            ctx.traj,
            ctx.data_id,
            ctx.progress,
            ctx.log,
        )
        chosen_w = read_json_object(tora_eval)["thresholds"]
        starts = {k: tuple(chosen_w[str(k)]["weight"]) for k in ctx.thresholds}
    start = time.perf_counter()
    chosen = choose_reserves(
        agent,
        ctx.env_id,
        ctx.seed,
        ctx.suite.select.episodes,
        starts,
        ad.reserves,
        ad.safe,
        ctx.suite.select.margin,
        ctx.progress,
    )
    select_s = time.perf_counter() - start
    table = [
        BudgetController(k, chosen[k]["reserve"], starts[k], tuple(ad.safe))  # type: ignore[arg-type]
        for k in ctx.thresholds
        for _ in range(ctx.suite.eval.episodes)
    ]
    step = tora_step(agent, controller_rows(table), len(table), noise_seed=ctx.seed)
    episodes = run_episodes(step, ctx.env_id, ctx.table_rows(len(ctx.thresholds)), ctx.progress)
    return {
        "thresholds": _split(episodes, ctx.thresholds, chosen),
        "train_s": train_s,
        "select_s": select_s,
    }


def cell_bc(ctx: CellContext) -> dict[str, Any]:
    config = _with_seed(ctx.suite.bc, ctx.seed)
    device = resolve_device(ctx.suite.device)
    model = ctx.cell / "model"
    train_s = ctx.timed_train(
        "BC-all", lambda: train_bc(ctx.traj, model, config, device, ctx.progress), model
    )
    policy = load_bc(model, "cpu", ctx.seed)
    # BC ignores the threshold: one set of table episodes is scored at every threshold.
    episodes = run_episodes(supervised_step(policy), ctx.env_id, ctx.table_rows(), ctx.progress)
    one = {"returns": episodes.returns.tolist(), "costs": episodes.costs.tolist()}
    return {"thresholds": {str(k): one for k in ctx.thresholds}, "train_s": train_s}


def safe_episodes(traj: Trajectories, threshold: float) -> Trajectories:
    """The episodes of ``traj`` that cost less than ``threshold`` (BC-safe's data)."""
    costs = traj.episode_returns()[:, traj.objective_index("cost")]
    keep = np.flatnonzero(costs < threshold)
    if keep.size < 2:
        raise ToraError(
            f"only {keep.size} episodes cost less than {threshold:g}; BC-safe needs at least 2"
        )
    return traj.select_episodes(keep)


def cell_bc_safe(ctx: CellContext) -> dict[str, Any]:
    config = _with_seed(ctx.suite.bc, ctx.seed)
    device = resolve_device(ctx.suite.device)
    results, train_s = {}, 0.0
    for kappa in ctx.thresholds:
        model = ctx.cell / f"model_k{kappa:g}"
        data = safe_episodes(ctx.traj, kappa)
        train_s += ctx.timed_train(
            f"BC-safe k={kappa:g}",
            lambda data=data, model=model: train_bc(data, model, config, device, ctx.progress),
            model,
        )
        policy = load_bc(model, "cpu", ctx.seed)
        ep = run_episodes(supervised_step(policy), ctx.env_id, ctx.table_rows(), ctx.progress)
        results[str(kappa)] = {
            "returns": ep.returns.tolist(),
            "costs": ep.costs.tolist(),
            "train_episodes": data.num_episodes,
        }
    return {"thresholds": results, "train_s": train_s}


def cell_cdt(ctx: CellContext) -> dict[str, Any]:
    config = _with_seed(ctx.suite.cdt, ctx.seed)
    device = resolve_device(ctx.suite.device)
    model = ctx.cell / "model"
    train_s = ctx.timed_train(
        "CondDiffusion(R,C)",
        lambda: train_return_cost(ctx.traj, model, config, device, ctx.progress),
        model,
    )
    e = ctx.suite.eval.episodes
    row_thresholds = [k for k in ctx.thresholds for _ in range(e)]
    policy = load_return_cost(model, row_thresholds, ctx.seed)
    episodes = run_episodes(
        policy.act, ctx.env_id, ctx.table_rows(len(ctx.thresholds)), ctx.progress
    )
    goals = {
        k: {"reward_goal": float(policy.reward_goal[i * e])} for i, k in enumerate(ctx.thresholds)
    }
    return {"thresholds": _split(episodes, ctx.thresholds, goals), "train_s": train_s}


CELLS: dict[str, Callable[[CellContext], dict[str, Any]]] = {
    "tora": cell_tora,
    "tora_adaptive": cell_tora_adaptive,
    "bc": cell_bc,
    "bc_safe": cell_bc_safe,
    "cdt": cell_cdt,
}


def cell_dir(suite: SafeSuiteConfig, env_id: str, method: str, seed: int) -> Path:
    return suite.out_dir / task_name(env_id) / method / f"seed{seed}"


def run_cell(
    suite: SafeSuiteConfig,
    env_id: str,
    method: str,
    seed: int,
    traj: Trajectories,
    data_id: dict[str, str],
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Train (or resume) and evaluate one cell; returns its eval file (at once if done).
    ``data_id`` is :func:`task_dataset`'s identity of ``traj``."""
    cell = cell_dir(suite, env_id, method, seed)
    _check_cell(cell, _method_settings(suite, method, data_id), type(_method_config(suite, method)))
    path = cell / EVAL_FILE
    if path.is_file():
        return path
    ctx = CellContext(suite, env_id, traj, data_id, seed, cell, progress, log)
    start = time.perf_counter()
    result = CELLS[method](ctx)
    result["wall_s"] = time.perf_counter() - start
    log(f"[{task_name(env_id)} | {METHODS[method]} | seed {seed}] done in {result['wall_s']:.0f} s")
    atomic_write_json(path, {"method": method, "seed": seed, **result})
    return path


def run_safe_suite(
    suite: SafeSuiteConfig,
    progress: bool = True,
    only_tasks: list[str] | None = None,
    only_methods: list[str] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every cell that can run (finished ones are read back), then write the table from
    everything on disk; returns the table's JSON object."""
    from tora.safe.table import write_safe_table

    check_safe_suite(suite)
    for name in only_methods or []:
        if name not in suite.methods:
            raise ToraError(f"method {name!r} is not in this suite ({', '.join(suite.methods)})")
    wanted = {task_env(t) for t in only_tasks} if only_tasks else None
    suite.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(suite.out_dir / "suite.json", config_to_dict(suite))
    for entry in suite.tasks:
        env_id = task_env(entry.id)
        if wanted is not None and env_id not in wanted:
            continue
        reason = skip_reason(entry)
        if reason is not None:
            log(f"skipping {task_name(env_id)}: {reason}")
            continue
        traj, data_id = task_dataset(suite, entry, progress)
        for method in suite.methods:
            if only_methods and method not in only_methods:
                continue
            for seed in suite.eval.seeds:
                run_cell(suite, env_id, method, seed, traj, data_id, progress, log)
    return write_safe_table(suite)
