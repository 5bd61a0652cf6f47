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
- ``tora_critic``: TORA-safe's models and selected weights plus one value critic per
  objective (trained into the TORA run's directory); at every step candidate plans whose
  predicted cost-to-go exceeds the budget left are discarded before the weight picks.

Every cell (task, method, seed) lives in its own directory and is skipped once its
``eval.json`` exists, so a killed run resumes; training resumes inside a cell. A cell keeps the
settings it was made with and refuses to continue under others. Tasks that cannot run (no
behaviour policies and no data file, or the simulator is not installed) are skipped with the
reason, which the table repeats.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tora.behavior.make import data_source_tag, make_dataset
from tora.bench.cells import TRAIN_FILE, check_cell, run_or_read_cell
from tora.bench.config import with_seed
from tora.bench.runner import CellExecutor, Log, SuiteKind, run_suite_cells
from tora.configs import (
    config_to_dict,
    legacy_defaults,
)
from tora.data.formats import load_dataset, save_dataset
from tora.data.trajectories import Trajectories
from tora.device import resolve_device
from tora.errors import ToraError
from tora.io import atomic_write_json, file_sha256, read_json_object
from tora.pipeline import critic_run
from tora.policies.supervised import load_bc, train_bc
from tora.policies.tora_planner import METHOD_FILE, load_tora, train_tora
from tora.safe.conditioned import load_return_cost, train_return_cost
from tora.safe.controller import BudgetController
from tora.safe.policies import (
    controller_rows,
    per_row,
    supervised_step,
    tora_step,
)
from tora.safe.protocol import episode_seeds
from tora.safe.rollout import Episodes, run_episodes
from tora.safe.select import SelectConfig, WeightSearch
from tora.safe.suite import (
    METHODS,
    CostCriticSettings,
    SafeSuiteConfig,
    TaskEntry,
    cell_dir,
    check_safe_suite,
    skip_reason,
    task_env,
    task_name,
)
from tora.safe.table import write_safe_table
from tora.safe.toy import SAFE_DASH_ID, collect_toy
from tora.safe.tuning import choose_reserves, selection_evaluate


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
        tag = data_source_tag(env_id)
        make = lambda: make_dataset(env_id, d.episodes, seed=d.seed, progress=progress)  # noqa: E731
    path = suite.out_dir / "data" / f"{task_name(env_id)}_{d.episodes}_seed{d.seed}_{tag}.hdf5"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        save_dataset(make(), path, format="dsrl")
    return load_dataset(path, format="dsrl"), {"file": path.name}


# -------------------------------------------------------------------------------- cells
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
        settings["select"] = _select_settings(config_to_dict(suite.select))
    if method == "tora_adaptive":
        settings["adaptive"] = config_to_dict(suite.adaptive)
    if method == "tora_critic":
        settings["critic"] = config_to_dict(suite.critic)
    return settings


def _select_settings(select: dict[str, Any]) -> dict[str, Any]:
    """A cell's record of the weight search: every setting but the seed (each cell searches
    on its own seed's selection episodes)."""
    return {k: v for k, v in select.items() if k != "seed"}


def _method_config(suite: SafeSuiteConfig, method: str) -> Any:
    """The config a method's cells are trained with."""
    return {
        "tora": suite.tora,
        "tora_adaptive": suite.tora,
        "tora_critic": suite.tora,
        "bc": suite.bc,
        "bc_safe": suite.bc,
        "cdt": suite.cdt,
    }[method]


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
    config = with_seed(ctx.suite.tora, ctx.seed)
    device = resolve_device(ctx.suite.device)
    where.mkdir(parents=True, exist_ok=True)
    check_cell(
        where,
        {"config": config_to_dict(config), "data": config_to_dict(ctx.suite.data)},
        legacy_defaults(type(config)),
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
        starts = _tora_selection(ctx)
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
        ctx.suite.select.cost_z,
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


def _tora_selection(ctx: CellContext) -> dict[float, tuple[float, ...]]:
    """The weight TORA-safe selected per threshold (its cell runs first if need be)."""
    tora_eval = run_cell(
        ctx.suite, ctx.env_id, "tora", ctx.seed, ctx.traj, ctx.data_id, ctx.progress, ctx.log
    )
    chosen = read_json_object(tora_eval)["thresholds"]
    return {k: tuple(chosen[str(k)]["weight"]) for k in ctx.thresholds}


def cell_tora_critic(ctx: CellContext) -> dict[str, Any]:
    """TORA-safe's planners plus one value critic per objective that discards candidate plans
    expected to overspend the budget left; each threshold's weight is searched for this agent
    on the selection episodes (or taken from TORA-safe: ``[critic] weights``)."""
    model, train_s = _tora_model(ctx)
    settings = ctx.suite.critic
    weights: dict[float, tuple[float, ...]] = (
        _tora_selection(ctx) if settings.weights == "tora" else {}
    )
    start = time.perf_counter()
    critic_run(
        ctx.traj,
        model,
        with_seed(settings.train, ctx.seed),
        device=resolve_device(ctx.suite.device),
        progress=ctx.progress,
    )
    critic_s = time.perf_counter() - start
    agent = load_tora(model, "cpu", ctx.seed, candidates=settings.candidates)
    extra: dict[float, dict[str, Any]] = {}
    select_s = 0.0
    if settings.weights == "own":  # one search per threshold: the budget changes the agent
        config = dataclasses.replace(ctx.suite.select, seed=ctx.seed)
        start = time.perf_counter()
        for kappa in ctx.thresholds:
            evaluate = selection_evaluate(
                agent, ctx.env_id, ctx.seed, config.episodes, ctx.progress, budget=kappa
            )
            selection = WeightSearch(evaluate, config).select(kappa)
            weights[kappa] = selection.weight
            extra[kappa] = {"selection": selection.to_dict()}
        select_s = time.perf_counter() - start
    n = ctx.suite.eval.episodes
    rows = np.concatenate([np.tile(weights[k], (n, 1)) for k in ctx.thresholds])
    budgets = np.repeat(ctx.thresholds, n)
    step = tora_step(agent, per_row(rows), len(budgets), noise_seed=ctx.seed, budgets=budgets)
    episodes = run_episodes(step, ctx.env_id, ctx.table_rows(len(ctx.thresholds)), ctx.progress)
    for k in ctx.thresholds:
        extra.setdefault(k, {})["weight"] = list(weights[k])
    return {
        "thresholds": _split(episodes, ctx.thresholds, extra),
        "train_s": train_s,
        "critic_s": critic_s,
        **({"select_s": select_s} if settings.weights == "own" else {}),
    }


def cell_bc(ctx: CellContext) -> dict[str, Any]:
    config = with_seed(ctx.suite.bc, ctx.seed)
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
    config = with_seed(ctx.suite.bc, ctx.seed)
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
    config = with_seed(ctx.suite.cdt, ctx.seed)
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
    "tora_critic": cell_tora_critic,
}


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

    def evaluate() -> dict[str, Any]:
        ctx = CellContext(suite, env_id, traj, data_id, seed, cell, progress, log)
        start = time.perf_counter()
        result = CELLS[method](ctx)
        result["wall_s"] = wall_s = time.perf_counter() - start
        log(f"[{task_name(env_id)} | {METHODS[method]} | seed {seed}] done in {wall_s:.0f} s")
        return {"method": method, "seed": seed, **result}

    return run_or_read_cell(
        cell,
        _method_settings(suite, method, data_id),
        legacy_defaults(type(_method_config(suite, method))),
        evaluate,
        {
            "select": _select_settings(legacy_defaults(SelectConfig)),
            "critic": legacy_defaults(CostCriticSettings),
        },
    )


TORA_SHARERS = ("tora_adaptive", "tora_critic")
"""Methods whose cells use the ``tora`` cell's work: its model directory (``tora_model``,
trained by whichever cell gets there first) and, for the critic and an adaptive start left
to the selection, its selected weights (running the ``tora`` cell if it is not finished)."""


def tora_sources(entry: TaskEntry, method: str) -> list[str]:
    """What a cell of ``method`` waits for when cells run side by side (:data:`TORA_SHARERS`
    wait for ``tora``), so that no two cells train the shared TORA model at once."""
    return ["tora"] if method in TORA_SHARERS else []


def safe_kind(suite: SafeSuiteConfig) -> SuiteKind[TaskEntry, tuple[Trajectories, dict[str, str]]]:
    """The suite as :func:`tora.bench.runner.run_suite_cells` runs it: its entries are tasks,
    all with the protocol's seeds; a task's cells share its dataset, a task this machine
    cannot run (:func:`~tora.safe.suite.skip_reason`) is skipped, and the cells that use
    TORA-safe's model wait for its cell (:func:`tora_sources`)."""

    def task_cell(
        entry: TaskEntry,
        data: tuple[Trajectories, dict[str, str]],
        method: str,
        seed: int,
        progress: bool,
        log: Log,
    ) -> Path:
        traj, data_id = data
        return run_cell(suite, task_env(entry.id), method, seed, traj, data_id, progress, log)

    return SuiteKind(
        suite=suite,
        entries=suite.tasks,
        check=partial(check_safe_suite, suite),
        entry_id=task_env,
        seeds=lambda entry: suite.eval.seeds,
        prepare=partial(task_dataset, suite),
        run_cell=task_cell,
        write_table=partial(write_safe_table, suite),
        entry_word="task",
        skip_reason=skip_reason,
        entry_name=task_name,
        cell_dir=lambda entry, method, seed: cell_dir(suite, task_env(entry.id), method, seed),
        depends_on=tora_sources,
    )


def run_safe_suite(
    suite: SafeSuiteConfig,
    progress: bool = True,
    only_tasks: list[str] | None = None,
    only_methods: list[str] | None = None,
    log: Callable[[str], None] = print,
    only_seeds: list[int] | None = None,
    executor: CellExecutor | None = None,
) -> dict[str, Any]:
    """Run every cell that can run (finished ones are read back), then write the table from
    everything on disk; returns the table's JSON object. ``only_tasks``, ``only_methods`` and
    ``only_seeds`` run a piece of the suite (an unknown one is refused before any cell);
    ``executor`` runs the cells (default: one after another in this process)."""
    return run_suite_cells(
        safe_kind(suite),
        progress,
        only_tasks,
        only_methods,
        only_seeds=only_seeds,
        log=log,
        executor=executor,
    )
