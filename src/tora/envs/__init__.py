"""Environments: the built-in Cruise task, D4MORL's MuJoCo tasks, Bullet-Safety-Gym's safe-RL
tasks and the ids tora-rl accepts.

Five kinds of id reach :func:`make_env`:

- tora-rl's own ids (:data:`ENV_IDS`): ``tora/Cruise-v0`` and the six MuJoCo tasks with the
  objectives and termination rules of D4MORL (Zhu, Dang & Grover 2023), built on PGMORL's
  (Xu et al. 2020) environments: see :mod:`tora.envs.mujoco_mo`;
- the env names inside D4MORL's file names (``MO-HalfCheetah-v2``, ...; :data:`D4MORL_ALIASES`),
  which resolve to the tora ids;
- the six Bullet-Safety-Gym tasks of DSRL (Liu et al. 2023) with the reward vector
  ``[reward, cost]`` (:data:`SAFETY_ENV_IDS`, e.g. ``tora/SafetyCarRun-v0``; also by the
  package's and DSRL's names, :data:`SAFETY_ALIASES`): see :mod:`tora.envs.safety`. The optional
  package is imported only when one of them is built;
- the text games shipped with tora-rl as ``tora/Text-<game_id>-v0``, and ``tora/Text-v0`` for
  any game file given as ``game=...``: see :mod:`tora.envs.text.env`;
- anything else Gymnasium knows, including mo-gymnasium's ids (``mo-halfcheetah-v5``, ...) when
  the optional ``mo_gymnasium`` package is installed. Those are imported only on demand; note
  that mo-gymnasium's tasks are *not* D4MORL's (1000-step episodes, other reward vectors).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import gymnasium as gym
from gymnasium.envs.registration import load_env_creator

from tora.data.trajectories import Direction
from tora.envs.cruise import CruiseEnv
from tora.envs.safety import SAFETY_ALIASES, SAFETY_ENV_IDS, SAFETY_TASKS
from tora.envs.text.env import register_text_envs
from tora.errors import ToraError

CRUISE_ID = "tora/Cruise-v0"
HALF_CHEETAH_ID = "tora/MO-HalfCheetah-v0"
WALKER2D_ID = "tora/MO-Walker2d-v0"
HOPPER_ID = "tora/MO-Hopper-v0"
HOPPER_3OBJ_ID = "tora/MO-Hopper-3obj-v0"
SWIMMER_ID = "tora/MO-Swimmer-v0"
ANT_ID = "tora/MO-Ant-v0"

# id -> class in tora.envs.mujoco_mo (an entry-point string, so importing tora.envs does not
# load MuJoCo until one of these envs is built).
_MUJOCO_ENTRY_POINTS = {
    HALF_CHEETAH_ID: "MOHalfCheetahEnv",
    WALKER2D_ID: "MOWalker2dEnv",
    HOPPER_ID: "MOHopperEnv",
    HOPPER_3OBJ_ID: "MOHopper3ObjEnv",
    SWIMMER_ID: "MOSwimmerEnv",
    ANT_ID: "MOAntEnv",
}
MUJOCO_ENV_IDS: tuple[str, ...] = tuple(_MUJOCO_ENTRY_POINTS)
"""The D4MORL MuJoCo tasks, 500-step episodes."""
ENV_IDS: tuple[str, ...] = (CRUISE_ID, *MUJOCO_ENV_IDS)
"""The ids of tora-rl's built-in tasks (the safe-RL tasks, which need an optional package, are
:data:`SAFETY_ENV_IDS`)."""

D4MORL_ALIASES: dict[str, str] = {
    "MO-HalfCheetah-v2": HALF_CHEETAH_ID,
    "MO-Walker2d-v2": WALKER2D_ID,
    "MO-Hopper-v2": HOPPER_ID,
    "MO-Hopper-v3": HOPPER_3OBJ_ID,
    "MO-Swimmer-v2": SWIMMER_ID,
    "MO-Ant-v2": ANT_ID,
}
"""The env names of D4MORL's files (``MO-Hopper-v3`` is the 3-objective hopper) -> tora ids."""

EPISODE_STEPS = 500
"""Time limit of the MuJoCo tasks, as in D4MORL (kept equal to mujoco_mo.EPISODE_STEPS)."""

MO_GYMNASIUM_INSTALL = "pip install mo-gymnasium packaging"
"""mo-gymnasium[mujoco] uses ``packaging`` without declaring it, hence the second name."""


def register_envs() -> None:
    """Register tora-rl's environments with Gymnasium (idempotent)."""
    if CRUISE_ID not in gym.registry:
        gym.register(CRUISE_ID, entry_point="tora.envs.cruise:CruiseEnv")
    for env_id, cls in _MUJOCO_ENTRY_POINTS.items():
        if env_id not in gym.registry:
            gym.register(
                env_id,
                entry_point=f"tora.envs.mujoco_mo:{cls}",
                max_episode_steps=EPISODE_STEPS,
            )
    for task in SAFETY_TASKS.values():
        if task.tora_id not in gym.registry:
            gym.register(
                task.tora_id,
                entry_point="tora.envs.safety:BulletSafetyEnv",
                max_episode_steps=task.episode_steps,
                kwargs={"task": task.name},
            )
    register_text_envs()
    # The toy reward/cost task of tora.safe (tests and the tiny safe-bench config).
    if "tora/SafeDash-v0" not in gym.registry:
        gym.register("tora/SafeDash-v0", entry_point="tora.safe.toy:SafeDashEnv")


def _looks_like_mo_gymnasium(env_id: str) -> bool:
    # All of mo-gymnasium's MuJoCo ids (and most others) start with "mo-"; D4MORL's aliases
    # ("MO-...") are matched exactly before this is asked.
    return env_id.startswith("mo-")


def _import_mo_gymnasium(env_id: str) -> None:
    """Import mo_gymnasium, which registers its envs with Gymnasium on import."""
    try:
        importlib.import_module("mo_gymnasium")
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if missing == "mo_gymnasium":
            what = "the optional package mo-gymnasium is not installed"
        else:
            what = f"mo-gymnasium could not be imported ({exc})"
        raise ToraError(
            f"environment {env_id!r} is one of mo-gymnasium's, but {what}. "
            f"Install it with: {MO_GYMNASIUM_INSTALL}"
        ) from exc


def _unknown(env_id: str) -> ToraError:
    aliases = ", ".join(f"{a} -> {t}" for a, t in D4MORL_ALIASES.items())
    return ToraError(
        f"unknown environment id {env_id!r}. tora-rl's ids: {', '.join(ENV_IDS)}. "
        f"D4MORL names: {aliases}. Bullet-Safety-Gym tasks: {', '.join(SAFETY_ENV_IDS)} "
        "(also as 'SafetyCarRun-v0' or 'OfflineCarRun-v0'). Text games: tora/Text-<game>-v0 "
        "for a shipped game (tora.text.list_games()), tora/Text-v0 with game='file.json'. "
        "Any other Gymnasium id works too; "
        f"mo-gymnasium's (e.g. 'mo-hopper-v5') need `{MO_GYMNASIUM_INSTALL}`."
    )


def resolve_env_id(env_id: str) -> str:
    """The Gymnasium id that ``env_id`` stands for; raises ToraError if there is none.

    D4MORL names and Bullet-Safety-Gym's or DSRL's names map to tora ids; tora ids, any id
    already in Gymnasium's registry and Gymnasium's ``"module:Name-v0"`` form map to
    themselves; mo-gymnasium's ids map to themselves once the package is imported (lazily).
    """
    register_envs()
    if env_id in D4MORL_ALIASES:
        return D4MORL_ALIASES[env_id]
    if env_id in SAFETY_ALIASES:
        # Checked before the registry: importing bullet_safety_gym registers these names too,
        # for the package's own env, which returns a scalar reward.
        return SAFETY_ALIASES[env_id]
    if env_id in gym.registry or ":" in env_id:
        # "module:Name-v0" asks gymnasium.make to import the module that registers the env.
        return env_id
    if _looks_like_mo_gymnasium(env_id):
        _import_mo_gymnasium(env_id)
    elif importlib.util.find_spec("mo_gymnasium") is not None:
        # mo-gymnasium also has ids without the "mo-" prefix (e.g. "deep-sea-treasure-v0").
        _import_mo_gymnasium(env_id)
    if env_id in gym.registry:
        return env_id
    raise _unknown(env_id)


def make_env(env_id: str, **kwargs: object) -> gym.Env:
    """``gymnasium.make`` that knows tora-rl's ids, D4MORL's names and mo-gymnasium's ids.

    ``kwargs`` go to ``gymnasium.make`` (e.g. ``model="gymnasium"`` for the Hopper and Walker2d
    model files, ``max_episode_steps``). Gymnasium's env checker is off: it rejects the vector
    rewards that multi-objective envs return on purpose.
    """
    return gym.make(resolve_env_id(env_id), disable_env_checker=True, **kwargs)


def _declared(env_id: str, attribute: str) -> Any:
    """A class attribute (``reward_names``, ``reward_directions``, ``curriculum_kwargs``) of
    the env ``env_id`` resolves to, read without building the env; None when it declares
    none."""
    entry_point = gym.spec(env_id).entry_point
    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    return getattr(creator, attribute, None)


def objective_names(env_id: str) -> tuple[str, ...]:
    """Names of the reward vector's components of ``env_id`` (any id :func:`make_env` takes).

    tora-rl's envs declare ``reward_names``; for others (e.g. mo-gymnasium's) the env is built
    to read the length of its ``reward_space`` and the names are ``objective_<i>``.
    """
    resolved = resolve_env_id(env_id)
    names = _declared(resolved, "reward_names")
    if names:
        return tuple(names)
    env = make_env(resolved)
    try:
        space = getattr(env.unwrapped, "reward_space", None)
        if space is None or space.shape is None or len(space.shape) != 1:
            raise ToraError(f"environment {env_id!r} does not declare a vector reward_space")
        return tuple(f"objective_{i}" for i in range(space.shape[0]))
    finally:
        env.close()


def objective_directions(env_id: str) -> tuple[Direction, ...]:
    """Whether each component of ``env_id``'s reward vector is to be maximized or minimized,
    in the order of :func:`objective_names`.

    Envs with an objective to minimize (the cost of the safe-RL tasks) declare
    ``reward_directions``; every component of any other env is maximized.
    """
    names = objective_names(env_id)
    declared = _declared(resolve_env_id(env_id), "reward_directions")
    if declared is None:
        return (Direction.MAXIMIZE,) * len(names)
    directions = tuple(Direction(d) for d in declared)
    if len(directions) != len(names):
        raise ToraError(
            f"environment {env_id!r} declares {len(directions)} reward directions for "
            f"{len(names)} objectives {list(names)}"
        )
    return directions


def curriculum_kwargs(env_id: str) -> dict[str, object]:
    """Constructor arguments of an easier variant of ``env_id`` for warm-up training ({}: none).

    tora-rl's envs declare them as ``curriculum_kwargs`` (e.g. MO-Ant with a tenth of the
    control cost); other envs have none.
    """
    return dict(_declared(resolve_env_id(env_id), "curriculum_kwargs") or {})


__all__ = [
    "ANT_ID",
    "CRUISE_ID",
    "D4MORL_ALIASES",
    "ENV_IDS",
    "HALF_CHEETAH_ID",
    "HOPPER_3OBJ_ID",
    "HOPPER_ID",
    "MUJOCO_ENV_IDS",
    "SAFETY_ALIASES",
    "SAFETY_ENV_IDS",
    "SWIMMER_ID",
    "WALKER2D_ID",
    "CruiseEnv",
    "curriculum_kwargs",
    "make_env",
    "objective_directions",
    "objective_names",
    "register_envs",
    "resolve_env_id",
]
