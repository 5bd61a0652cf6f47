"""Benchmark suites: environments x methods x seeds, trained on the same data, evaluated by the
same sweep, summarized in one table.

A suite is a TOML (or JSON) file read into :class:`SuiteConfig`. For every environment the
suite makes (or reuses) one offline dataset; for every method and seed it trains the method on
that dataset and evaluates it over the same preference grid with the same start states. Each
cell (environment, method, seed) lives in a directory of its own and is skipped once its
evaluation is on disk, so a killed run resumes where it stopped; training itself resumes
inside a cell too. A cell remembers the settings it was made with, and a rerun with different
settings stops with an error instead of mixing results.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from tora.behavior.make import data_source_tag, make_dataset
from tora.bench.cells import CELL_FILE, TRAIN_FILE, run_or_read_cell
from tora.bench.config import (
    BEHAVIOUR_FILE,
    EnvEntry,
    SuiteConfig,
    cell_dir,
    check_suite,
    env_dirname,
    eval_weights,
    method_config,
    ref_point,
    suite_method,
)
from tora.bench.runner import CellExecutor, Log, SuiteKind, run_suite_cells
from tora.bench.table import write_results
from tora.configs import (
    config_from_dict,
    config_to_dict,
    fill_missing,
    legacy_defaults,
)
from tora.data.formats import load_dataset, save_dataset
from tora.data.trajectories import Trajectories
from tora.device import resolve_device
from tora.envs import make_env, objective_names, resolve_env_id
from tora.errors import ToraError
from tora.evaluate.card import dataset_card
from tora.evaluate.report import summarize_sweep
from tora.evaluate.rollout import SweepResult, rollout_sweep, row_seeds
from tora.io import atomic_write_json, read_json_object
from tora.policies.base import Method
from tora.preferences import Preferences


# ------------------------------------------------------------------------------ data
def suite_dataset(
    suite: SuiteConfig, entry: EnvEntry, progress: bool = True
) -> tuple[Trajectories, Path]:
    """The env's dataset, made once and reused (the same file for every method and seed)."""

    d = suite.data
    # The behaviour set's digest in the name: a retrained or swapped set makes new data (and,
    # as the name is part of every cell's settings, refuses cells made from the old data).
    tag = data_source_tag(entry.id)
    path = (
        suite.out_dir
        / "data"
        / f"{env_dirname(entry.id)}_{d.episodes}_{d.quality}_{d.prefs}_seed{d.seed}_{tag}.h5"
    )
    if path.is_file():
        return load_dataset(path), path
    traj = make_dataset(entry.id, d.episodes, d.quality, d.prefs, d.seed, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_dataset(traj, path)
    return traj, path


def adopt_stages(
    suite: SuiteConfig,
    entry: EnvEntry,
    method: Method,
    seed: int,
    config: Any,
    settings: dict[str, Any],
    model_dir: Path,
) -> dict[str, str]:
    """Copy into ``model_dir`` each stage (:attr:`Method.stages`) that a finished cell of
    another of the suite's methods trained with the same settings, data and seed, so that
    variants differing only at inference (e.g. the sampler, or selection among candidates)
    do not train the same planners again. Returns {stage: the method whose cell it came from}.

    ``config`` is this cell's method config and ``settings`` its cell settings (whose data a
    sibling's must match). Seeded training repeats exactly, so a copied stage is what this
    cell would have trained; each stage's own identity check still refuses one made from other
    inputs. Stages this cell already has are left alone (a resumed cell keeps its own)."""
    if method.stages is None:
        return {}
    wanted = method.stages(config)
    env_id = resolve_env_id(entry.id)
    reused: dict[str, str] = {}
    for other in suite.methods:
        source = suite_method(suite, other)
        if other == method.name or source.config_cls is not method.config_cls:
            continue
        cell = cell_dir(suite, env_id, other, seed)
        if not (cell / TRAIN_FILE).is_file() or not (cell / CELL_FILE).is_file():
            continue  # only a cell whose training finished
        saved = read_json_object(cell / CELL_FILE).get("settings")
        if not isinstance(saved, dict) or saved.get("data") != settings["data"]:
            continue
        try:
            saved_config = fill_missing(saved["config"], legacy_defaults(method.config_cls))
            theirs = method.stages(config_from_dict(method.config_cls, saved_config))
        except (ToraError, KeyError, TypeError, ValueError):
            continue  # a cell of settings this version cannot read: nothing to take from it
        for stage, determined_by in wanted.items():
            src, dst = cell / "model" / stage, model_dir / stage
            if stage in reused or dst.exists() or not src.is_dir():
                continue
            if theirs.get(stage) == determined_by:
                _copy_dir(src, dst)
                reused[stage] = other
    return reused


def _copy_dir(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` whole or not at all (a kill mid-copy leaves no half stage)."""
    tmp = dst.with_name(f".{dst.name}.partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    tmp.replace(dst)


def run_cell(
    suite: SuiteConfig,
    entry: EnvEntry,
    method: Method,
    seed: int,
    traj: Trajectories,
    data_path: Path,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Train (or resume) and evaluate one cell; returns its evaluation file, at once if the
    cell is already evaluated."""

    env_id = resolve_env_id(entry.id)
    cell = cell_dir(suite, env_id, method.name, seed)
    config = method_config(suite, entry, method, seed)
    settings = {
        "method": method.name,
        "config": config_to_dict(config),
        "data": {**config_to_dict(suite.data), "file": data_path.name},
        "eval": {k: v for k, v in config_to_dict(suite.eval).items() if k != "workers"},
        "ref_point": entry.ref_point,
    }

    def train_and_evaluate() -> dict[str, Any]:
        device = resolve_device(suite.device)
        train_mark = cell / TRAIN_FILE
        if train_mark.is_file():
            train_s = float(read_json_object(train_mark)["train_s"])
        else:
            reused = adopt_stages(suite, entry, method, seed, config, settings, cell / "model")
            if reused:
                parts = ", ".join(f"{stage} of {source}" for stage, source in reused.items())
                log(f"[{env_id} | {method.label} | seed {seed}] reusing {parts} (same settings)")
            log(f"[{env_id} | {method.label} | seed {seed}] training")
            start = time.perf_counter()
            method.train(traj, cell / "model", config, device, progress)
            # Wall time of this process only: a resumed training reports the time after
            # resuming, and a cell that reused stages reports the time of the stages it trained
            # itself.
            train_s = time.perf_counter() - start
            mark: dict[str, Any] = {"train_s": train_s, "device": str(device)}
            if reused:
                mark["reused"] = reused
            atomic_write_json(train_mark, mark)

        log(f"[{env_id} | {method.label} | seed {seed}] evaluating")
        policy = method.load(cell / "model", device, suite.eval.seed)
        result, summary, eval_s = evaluate_sweep(suite, entry, policy, progress)
        return {
            "summary": summary,
            "train_s": train_s,
            "eval_s": eval_s,
            "sweep": result.to_dict(),
        }

    return run_or_read_cell(cell, settings, legacy_defaults(method.config_cls), train_and_evaluate)


def evaluate_sweep(
    suite: SuiteConfig,
    entry: EnvEntry,
    policy: Any,
    progress: bool = True,
    weights: np.ndarray | None = None,
) -> tuple[SweepResult, dict[str, Any], float]:
    """Evaluate ``policy`` the way every cell is: the suite's preference grid (or ``weights``,
    one row per preference), episodes, start states and noise streams; returns the sweep, its
    summary and the seconds it took."""
    env_id = resolve_env_id(entry.id)
    names = list(objective_names(env_id))
    grid = eval_weights(suite, len(names)) if weights is None else weights
    # Checked once here, before any environment is built (columns in the env's objective
    # order; the policies match only the count, as they always have).
    prefs = Preferences(grid, len(names))
    # Methods that can give each sweep row its own noise stream do, so that a preference's
    # returns do not depend on which other preferences share its batch.
    per_row = hasattr(policy, "seed_rows")
    if per_row:
        policy.seed_rows(row_seeds(suite.eval.seed, len(prefs), suite.eval.episodes))
    start = time.perf_counter()
    result = rollout_sweep(
        policy.act,
        partial(make_env, env_id),
        prefs,
        suite.eval.episodes,
        suite.eval.seed,
        env_id=env_id,
        objective_names=names,
        progress=progress,
        workers=suite.eval.workers,
        pass_rows=per_row,
    )
    eval_s = time.perf_counter() - start
    return result, summarize_sweep(result, ref_point(entry, len(names))), eval_s


# ----------------------------------------------------------------------------- suite
def behaviour_summary(traj: Trajectories, data_path: Path, ref: list[float]) -> dict[str, Any]:
    """The reference row of an env: the dataset's own episode front."""
    card = dataset_card(traj, ref)
    return {
        "data_file": data_path.name,
        "hypervolume": card["hypervolume"],
        "sparsity": card["sparsity"],
        # How well the data's own preferences rank its returns: the ceiling an agent's
        # steering is read against (None when the data records no preferences).
        "steering_correlation": (card["preferences"] or {}).get("steering"),
        "episodes": traj.num_episodes,
        "episode_returns": traj.episode_returns().tolist(),
        "objectives": traj.objective_names,
        "ref_point": list(map(float, ref)),
    }


def env_data(suite: SuiteConfig, entry: EnvEntry, progress: bool) -> tuple[Trajectories, Path]:
    """The env's dataset and its file (:func:`suite_dataset`), with the behaviour row of the
    table (the dataset's own front) written beside the env's cells."""
    traj, data_path = suite_dataset(suite, entry, progress)
    atomic_write_json(
        suite.out_dir / env_dirname(entry.id) / BEHAVIOUR_FILE,
        behaviour_summary(traj, data_path, ref_point(entry, traj.num_objectives)),
    )
    return traj, data_path


def stage_sources(suite: SuiteConfig, entry: EnvEntry, name: str) -> list[str]:
    """The methods listed before ``name`` in the suite whose finished cells (same env and
    seed) a cell of ``name`` takes trained stages from (:func:`adopt_stages`): the same
    method class with at least one stage trained under the same settings. Cells running side
    by side wait for these, so a variant reuses what a serial run in the suite's order would
    let it reuse, instead of training it again. A later method never counts: if it shares a
    stage, it waits for this one instead."""
    method = suite_method(suite, name)
    if method.stages is None:
        return []
    # Both configs get the same seed, which is all a seed changes in them.
    wanted = method.stages(method_config(suite, entry, method, 0))
    sources = []
    for other in suite.methods[: suite.methods.index(name)]:
        source = suite_method(suite, other)
        if source.config_cls is not method.config_cls:
            continue
        theirs = method.stages(method_config(suite, entry, source, 0))
        if any(theirs.get(stage) == settings for stage, settings in wanted.items()):
            sources.append(other)
    return sources


def mujoco_kind(suite: SuiteConfig) -> SuiteKind[EnvEntry, tuple[Trajectories, Path]]:
    """The suite as :func:`tora.bench.runner.run_suite_cells` runs it: its entries are envs,
    each with its own seeds; an env's cells share its dataset, and a variant's cell waits for
    the cells whose stages it reuses (:func:`stage_sources`)."""

    def env_cell(
        entry: EnvEntry,
        data: tuple[Trajectories, Path],
        name: str,
        seed: int,
        progress: bool,
        log: Log,
    ) -> Path:
        traj, data_path = data
        method = suite_method(suite, name)
        return run_cell(suite, entry, method, seed, traj, data_path, progress, log)

    return SuiteKind(
        suite=suite,
        entries=suite.envs,
        check=partial(check_suite, suite),
        entry_id=resolve_env_id,
        seeds=lambda entry: entry.seeds,
        prepare=partial(env_data, suite),
        run_cell=env_cell,
        write_table=partial(write_results, suite),
        cell_dir=lambda entry, name, seed: cell_dir(suite, resolve_env_id(entry.id), name, seed),
        depends_on=partial(stage_sources, suite),
    )


def run_suite(
    suite: SuiteConfig,
    progress: bool = True,
    only_envs: list[str] | None = None,
    only_methods: list[str] | None = None,
    log: Callable[[str], None] = print,
    only_seeds: list[int] | None = None,
    executor: CellExecutor | None = None,
) -> dict[str, Any]:
    """Run every cell (finished ones are read back), then write the results table and plots
    from everything on disk, so a partial run still gives a (partial) table. ``only_envs``,
    ``only_methods`` and ``only_seeds`` run a piece of the suite; a seed no env lists is an
    error, as is an unknown method. ``executor`` runs the cells (default: one after another
    in this process; :class:`tora.bench.ray_executor.RayExecutor`: as Ray tasks)."""
    return run_suite_cells(
        mujoco_kind(suite), progress, only_envs, only_methods, only_seeds, log, executor
    )
