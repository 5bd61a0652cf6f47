"""A suite's settings and its layout on disk: what a suite file says (:class:`SuiteConfig`), how
a cell's method settings are built from it, and where each cell's files live. The runner
(:mod:`tora.bench.suite`) and the table writer (:mod:`tora.bench.table`) both read these."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import tomllib

# A cell's files are the same for every suite kind (tora.bench.cells); they are named here
# too, where the MuJoCo suite's layout is.
from tora.bench.cells import CELL_FILE as CELL_FILE
from tora.bench.cells import EVAL_FILE as EVAL_FILE
from tora.bench.cells import TRAIN_FILE as TRAIN_FILE
from tora.configs import config_from_dict, config_to_dict
from tora.envs import resolve_env_id
from tora.errors import ToraError
from tora.policies.base import Method
from tora.policies.registry import get_method, method_names
from tora.preferences import simplex_grid

S = TypeVar("S")

BEHAVIOUR_FILE = "behaviour.json"
"""An env's reference row: its dataset's own episodes and front."""


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


def read_suite(path: str | Path, kind: str, cls: type[S], check: Callable[[S], None]) -> S:
    """A suite file of ``kind`` as its config class ``cls``, checked by ``check``: every kind
    refuses in the same words a file that is missing, unparsable, of another kind, with
    unknown keys, or that cannot run."""
    suite = config_from_dict(cls, read_suite_file(path, kind))
    check(suite)
    return suite


def load_suite(path: str | Path) -> SuiteConfig:
    """Read a suite from TOML (``.toml``) or JSON; unknown keys and methods are errors."""
    return read_suite(path, "mujoco", SuiteConfig, check_suite)


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
def merge_settings(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge_settings(out[key], value)
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
        base = merge_settings(base, suite.settings.get(variant.method, {}))
        base = merge_settings(base, variant.settings)
    merged = merge_settings(base, suite.settings.get(method.name, {}))
    merged = merge_settings(merged, entry.settings.get(method.name, {}))
    return with_seed(config_from_dict(method.config_cls, merged), seed)


def eval_weights(suite: SuiteConfig, num_objectives: int) -> np.ndarray:
    n = suite.eval.preferences if num_objectives == 2 else suite.eval.preferences_3obj
    return simplex_grid(num_objectives, n)


def env_dirname(env_id: str) -> str:
    return resolve_env_id(env_id).split("/")[-1].replace(":", "_")


# ----------------------------------------------------------------------------- cells
def cell_dir(suite: SuiteConfig, env_id: str, method: str, seed: int) -> Path:
    return suite.out_dir / env_dirname(env_id) / method / f"seed{seed}"


def ref_point(entry: EnvEntry, num_objectives: int) -> list[float]:
    """The env's hypervolume reference point: its own, else 0 in every objective (D4MORL)."""
    return list(entry.ref_point) if entry.ref_point is not None else [0.0] * num_objectives
