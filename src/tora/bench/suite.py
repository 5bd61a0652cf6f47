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

import dataclasses
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tomllib

from tora.configs import (
    config_from_dict,
    config_to_dict,
    fill_missing,
    legacy_defaults,
    settings_diff,
)
from tora.data.card import dataset_card
from tora.data.formats import load_dataset, save_dataset
from tora.data.trajectories import Trajectories
from tora.envs import make_env, objective_names, resolve_env_id
from tora.errors import ToraError
from tora.evaluate.report import summarize_sweep
from tora.evaluate.rollout import SweepResult, rollout_sweep, row_seeds
from tora.io import atomic_write_json, read_json_object
from tora.policies.base import Method
from tora.policies.registry import get_method, method_names
from tora.preferences import simplex_grid

CELL_FILE = "cell.json"
EVAL_FILE = "eval.json"
TRAIN_FILE = "train.json"
BEHAVIOUR_FILE = "behaviour.json"


@dataclass
class DataSettings:
    """The offline dataset every method of an environment trains on."""

    quality: Literal["expert", "amateur"] = "expert"
    """Behaviour quality (D4MORL's expert or amateur)."""
    prefs: Literal["uniform", "wide", "narrow"] = "uniform"
    """D4MORL preference distribution of the episodes."""
    episodes: int = 1000
    """Episodes per dataset."""
    seed: int = 0
    """Seed of data collection (the same for every method and training seed)."""


@dataclass
class EvalSettings:
    """The preference sweep every method is evaluated with."""

    preferences: int = 51
    """Preferences (w, 1 - w) for two objectives (D4MORL: 501)."""
    preferences_3obj: int = 45
    """Preferences for three objectives: a simplex-lattice size (45 = 8 divisions; D4MORL: 325)."""
    episodes: int = 1
    """Episodes per preference; the reported return is their mean."""
    seed: int = 10_000
    """Seed of the start states (episode e of every preference starts from seed + e) and of
    the methods' sampling noise."""
    workers: int = 0
    """Environment worker processes (0: step all envs in this process)."""


@dataclass
class EnvEntry:
    """One environment of the suite."""

    id: str
    """Environment id (tora, D4MORL or Gymnasium id)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Training seeds of every method."""
    ref_point: list[float] | None = None
    """Hypervolume reference point (default: 0 in every objective, as D4MORL)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Per-method setting overrides for this env only, merged over the suite's ``settings``."""


@dataclass
class VariantSpec:
    """A registry method run under a name of its own with its own settings, so one suite can
    compare configurations of a method (e.g. TORA with a 10-step sampler next to the default).
    """

    method: str
    """Name of the method in the registry (e.g. "tora")."""
    label: str = ""
    """Name in tables and legends (default: the method's label and the variant's name)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Settings merged over the suite's settings of ``method`` (then the env's of the variant)."""


@dataclass
class SuiteConfig:
    """A benchmark suite: which environments, methods, seeds, data and evaluation."""

    name: str = "suite"
    """Name shown in the results table."""
    protocol: Literal["full", "reduced"] = "reduced"
    """Label of the protocol: "full" (501 preferences, D4MORL-style) or "reduced" (a 2-core
    CPU's budget); printed wherever the suite's numbers appear."""
    out: str = ""
    """Output directory (default: runs/bench/<name>)."""
    device: str = "auto"
    """Torch device for training and evaluation."""
    methods: list[str] = field(default_factory=lambda: list(method_names()))
    """Methods to run, by name: registry names and the names of ``variants``."""
    variants: dict[str, VariantSpec] = field(default_factory=dict)
    """Named variants of registry methods, usable in ``methods`` and ``settings``."""
    data: DataSettings = field(default_factory=DataSettings)
    """Dataset settings."""
    eval: EvalSettings = field(default_factory=EvalSettings)
    """Evaluation settings."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Per-method setting overrides: method name -> dict of its config's fields."""
    envs: list[EnvEntry] = field(default_factory=list)
    """Environments."""

    @property
    def out_dir(self) -> Path:
        return Path(self.out or f"runs/bench/{self.name}")


# What runs each kind of suite file; a file's top-level ``kind`` names its kind (default
# "mujoco"), so handing a suite to the wrong command says which one to use instead of
# listing the other kind's keys as unknown.
SUITE_COMMANDS = {"mujoco": "tora bench run", "safe": "tora safe bench"}


def read_suite_file(path: str | Path, kind: str) -> dict[str, Any]:
    """The raw mapping of a TOML (``.toml``) or JSON suite file of ``kind``, without its
    ``kind`` key; :class:`ToraError` if it is missing, unparsable or of another kind."""
    path = Path(path)
    if not path.is_file():
        raise ToraError(f"suite file {str(path)!r} does not exist")
    text = path.read_text()
    try:
        raw = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ToraError(f"cannot parse suite file {path}: {exc}") from None
    if not isinstance(raw, dict):
        raise ToraError(f"suite file {path} must hold a table of settings")
    found = raw.pop("kind", "mujoco")
    if found != kind:
        if found in SUITE_COMMANDS:
            raise ToraError(
                f"{path} is a {found!r} suite; run it with `{SUITE_COMMANDS[found]} {path}`"
            )
        raise ToraError(
            f"{path}: unknown suite kind {found!r}; known kinds: {', '.join(SUITE_COMMANDS)}"
        )
    return raw


def load_suite(path: str | Path) -> SuiteConfig:
    """Read a suite from TOML (``.toml``) or JSON; unknown keys and methods are errors."""
    suite = config_from_dict(SuiteConfig, read_suite_file(path, "mujoco"))
    check_suite(suite)
    return suite


def check_suite(suite: SuiteConfig) -> None:
    """Raise :class:`ToraError` for a suite that cannot run, before anything is trained."""
    if not suite.envs:
        raise ToraError("the suite lists no environments ([[envs]] entries)")
    registry = method_names()
    for name, variant in suite.variants.items():
        if name in registry:
            raise ToraError(f"variant {name!r} would hide the registry method of that name")
        if variant.method not in registry:
            raise ToraError(
                f"variant {name!r}: unknown method {variant.method!r}; known methods: "
                f"{', '.join(registry)}"
            )
    known = [*registry, *suite.variants]
    for name in [*suite.methods, *suite.settings]:
        if name not in known:
            raise ToraError(f"unknown method {name!r}; known methods: {', '.join(known)}")
    for entry in suite.envs:
        resolve_env_id(entry.id)
        if not entry.seeds:
            raise ToraError(f"env {entry.id}: seeds must not be empty")
        for name in entry.settings:
            if name not in known:
                raise ToraError(f"env {entry.id}: unknown method {name!r} in settings")
        for name in suite.methods:  # builds every config once, so a typo fails now
            method_config(suite, entry, suite_method(suite, name), 0)
    if suite.eval.preferences < 2 or suite.eval.episodes < 1:
        raise ToraError("eval.preferences must be at least 2 and eval.episodes at least 1")


# ----------------------------------------------------------------------------- configs
def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def with_seed(config: Any, seed: int) -> Any:
    """A copy of dataclass ``config`` with every ``seed`` field, at any depth, set to ``seed``:
    one training seed drives initialization, batches and noise of every stage."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "seed" and isinstance(value, int):
            changes[f.name] = seed
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            changes[f.name] = with_seed(value, seed)
    return dataclasses.replace(config, **changes)


def suite_method(suite: SuiteConfig, name: str) -> Method:
    """The method a suite runs under ``name``: a registry method, or a variant of one renamed
    (its cells, rows and legend entries are its own)."""
    variant = suite.variants.get(name)
    if variant is None:
        return get_method(name)
    base = get_method(variant.method)
    label = variant.label or f"{base.label} [{name}]"
    return dataclasses.replace(base, name=name, label=label)


def method_config(suite: SuiteConfig, entry: EnvEntry, method: Method, seed: int) -> Any:
    """The config a method trains with in one cell: defaults, then suite settings (for a
    variant: its base method's, then the variant's own), then the env's settings, then the
    seed."""
    base = config_to_dict(method.config_cls())
    variant = suite.variants.get(method.name)
    if variant is not None:
        base = _merge(base, suite.settings.get(variant.method, {}))
        base = _merge(base, variant.settings)
    merged = _merge(base, suite.settings.get(method.name, {}))
    merged = _merge(merged, entry.settings.get(method.name, {}))
    return with_seed(config_from_dict(method.config_cls, merged), seed)


def eval_weights(suite: SuiteConfig, num_objectives: int) -> np.ndarray:
    n = suite.eval.preferences if num_objectives == 2 else suite.eval.preferences_3obj
    return simplex_grid(num_objectives, n)


def env_dirname(env_id: str) -> str:
    return resolve_env_id(env_id).split("/")[-1].replace(":", "_")


# ------------------------------------------------------------------------------ data
def suite_dataset(
    suite: SuiteConfig, entry: EnvEntry, progress: bool = True
) -> tuple[Trajectories, Path]:
    """The env's dataset, made once and reused (the same file for every method and seed)."""
    from tora.behavior.make import data_source_tag, make_dataset

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


# ----------------------------------------------------------------------------- cells
def cell_dir(suite: SuiteConfig, env_id: str, method: str, seed: int) -> Path:
    return suite.out_dir / env_dirname(env_id) / method / f"seed{seed}"


def ref_point(entry: EnvEntry, num_objectives: int) -> list[float]:
    """The env's hypervolume reference point: its own, else 0 in every objective (D4MORL)."""
    return list(entry.ref_point) if entry.ref_point is not None else [0.0] * num_objectives


def _check_cell_settings(
    cell: Path, settings: dict[str, Any], config_defaults: dict[str, Any]
) -> None:
    """Refuse to mix a cell's results with settings it was not made with. A config field added
    after the cell was made counts as the value that reproduces the behaviour from before it
    (its default, or its config class's LEGACY value); any other value is a change."""
    path = cell / CELL_FILE
    if path.is_file():
        saved = read_json_object(path).get("settings")
        if isinstance(saved, dict) and isinstance(saved.get("config"), dict):
            saved = {**saved, "config": fill_missing(saved["config"], config_defaults)}
        if saved != settings:
            changed = "; ".join(settings_diff(saved, settings))
            raise ToraError(
                f"{cell} was made with other settings than the suite now asks for ({changed}); "
                "use another suite name/out directory, or delete that cell to redo it"
            )
    else:
        cell.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"settings": settings})


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
    from tora.device import resolve_device

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
    _check_cell_settings(cell, settings, legacy_defaults(method.config_cls))
    eval_path = cell / EVAL_FILE
    if eval_path.is_file():
        return eval_path

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
        # Wall time of this process only: a resumed training reports the time after resuming,
        # and a cell that reused stages reports the time of the stages it trained itself.
        train_s = time.perf_counter() - start
        mark: dict[str, Any] = {"train_s": train_s, "device": str(device)}
        if reused:
            mark["reused"] = reused
        atomic_write_json(train_mark, mark)

    log(f"[{env_id} | {method.label} | seed {seed}] evaluating")
    policy = method.load(cell / "model", device, suite.eval.seed)
    result, summary, eval_s = evaluate_sweep(suite, entry, policy, progress)
    atomic_write_json(
        eval_path,
        {"summary": summary, "train_s": train_s, "eval_s": eval_s, "sweep": result.to_dict()},
    )
    return eval_path


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
    weights = eval_weights(suite, len(names)) if weights is None else np.atleast_2d(weights)
    # Methods that can give each sweep row its own noise stream do, so that a preference's
    # returns do not depend on which other preferences share its batch.
    per_row = hasattr(policy, "seed_rows")
    if per_row:
        policy.seed_rows(row_seeds(suite.eval.seed, weights.shape[0], suite.eval.episodes))
    start = time.perf_counter()
    result = rollout_sweep(
        policy.act,
        partial(make_env, env_id),
        weights,
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


def run_suite(
    suite: SuiteConfig,
    progress: bool = True,
    only_envs: list[str] | None = None,
    only_methods: list[str] | None = None,
    log: Callable[[str], None] = print,
    only_seeds: list[int] | None = None,
) -> dict[str, Any]:
    """Run every cell (finished ones are read back), then write the results table and plots
    from everything on disk, so a partial run still gives a (partial) table. ``only_envs``,
    ``only_methods`` and ``only_seeds`` run a piece of the suite; a seed no env lists is an
    error, as is an unknown method."""
    from tora.bench.table import write_results

    check_suite(suite)
    suite.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(suite.out_dir / "suite.json", config_to_dict(suite))
    wanted_envs = {resolve_env_id(e) for e in only_envs} if only_envs else None
    for name in only_methods or []:
        if name not in suite.methods:
            raise ToraError(f"method {name!r} is not in this suite ({', '.join(suite.methods)})")
    listed = sorted({seed for entry in suite.envs for seed in entry.seeds})
    for seed in only_seeds or []:
        if seed not in listed:
            raise ToraError(f"seed {seed} is not in this suite (its envs list {listed})")
    for entry in suite.envs:
        env_id = resolve_env_id(entry.id)
        if wanted_envs is not None and env_id not in wanted_envs:
            continue
        traj, data_path = suite_dataset(suite, entry, progress)
        atomic_write_json(
            suite.out_dir / env_dirname(env_id) / BEHAVIOUR_FILE,
            behaviour_summary(traj, data_path, ref_point(entry, traj.num_objectives)),
        )
        for name in suite.methods:
            if only_methods and name not in only_methods:
                continue
            for seed in entry.seeds:
                if only_seeds and seed not in only_seeds:
                    continue
                run_cell(
                    suite, entry, suite_method(suite, name), seed, traj, data_path, progress, log
                )
    return write_results(suite)
