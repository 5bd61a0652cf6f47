"""Bullet-Safety-Gym's Run and Circle tasks as two-objective environments: [reward, cost].

DSRL (Liu et al., "Datasets and Benchmarks for Offline Safe Reinforcement Learning", 2023)
collected its Bullet-Safety-Gym datasets (Gronauer 2022) in six tasks that the safe-RL seed's
table also uses: a Ball, a Car and a Drone that either run along a corridor (``Run``) or circle
inside a zone (``Circle``). Each step the package returns a scalar reward and puts a 0/1 cost
in ``info["cost"]`` (1 when the agent is outside the safe zone or too fast). tora-rl treats the
two as objectives, so :class:`BulletSafetyEnv` returns the vector ``[reward, cost]`` (float32,
the mo-gymnasium convention) with ``reward_names = ("reward", "cost")`` and
``reward_directions`` marking the cost as the objective to minimize. ``info`` keeps what the
package reported (``cost`` and its parts such as ``cost_outside_bounds``) and adds the scalar
``reward`` and the exact float64 ``reward_vector``.

The package is optional and imported only when one of these environments is built; without
it the constructor raises :class:`~tora.errors.ToraError` with the install command (the
package pins gymnasium~=0.28.1, so it has to be installed with ``--no-deps`` on gymnasium 1.x;
:data:`INSTALL_COMMAND`).

Seeding. The package ignores ``reset(seed=...)`` and draws its start states (the agent's
position and joint angles) from NumPy's global legacy RNG. Seeding that global RNG would make
every environment in a process share one stream, so one env's resets would shift another's.
Instead each :class:`BulletSafetyEnv` keeps its own legacy RNG state and swaps it into
``np.random`` only for the duration of a reset, restoring the caller's state afterwards: the
global RNG is borrowed, never left changed, and nothing else in the process influences the
start states. ``reset(seed=s)`` gives the start that the bare package gives after
``np.random.seed(s)``; later resets without a seed continue the env's own stream. Steps draw no
random numbers (checked by the tests), so only resets borrow the global RNG; the swap is not
thread-safe against other threads using ``np.random`` at the same moment. The package's other
random source, Python's ``random`` module, only places obstacles, which these six tasks do not
have.

History-free resets. The package resets by restoring a PyBullet snapshot, but the motor
commands of the previous episode (wheel speeds and steering of the Car, rotor speeds of the
Drone) are not part of a snapshot and act during the simulation step that ends a reset, so the
same seed used to give a different start after an episode than on a fresh env. Before every
reset the agent's joint motors are released (velocity control with zero force, the state the
Car is built in and equivalent for the Drone, whose rotors start at rest): a reset with a given
seed now starts every episode exactly as a freshly built env does.

Episode lengths are DSRL's (:data:`SAFETY_TASKS`; the same as the package's own registrations)
and are applied by the registry's ``TimeLimit``, so a time-out is reported as ``truncated``.
The Drone terminates when it tips over; the other agents never terminate.
"""

from __future__ import annotations

import importlib
import math
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator

from tora.data.trajectories import Direction
from tora.errors import ShapeMismatchError, ToraError

INSTALL_COMMAND = 'pip install "pybullet>=3.2.7" && pip install --no-deps bullet-safety-gym==1.4.0'
"""How to install the package: with ``--no-deps``, since it pins gymnasium~=0.28.1 and works on
the gymnasium 1.x tora-rl needs (``make install`` does this)."""

_MAX_SEED = 2**32
"""NumPy's legacy RNG (``np.random.seed``) takes seeds below 2**32."""

_T = TypeVar("_T")


@dataclass(frozen=True)
class SafetyTask:
    """One Bullet-Safety-Gym task and the names it goes by."""

    name: str
    """Short name, as DSRL's tables and reference constants use it (``"CarRun"``)."""
    episode_steps: int
    """Time limit: DSRL's ``DEFAULT_MAX_EPISODE_STEPS``, equal to the package's registration."""

    @property
    def tora_id(self) -> str:
        """tora-rl's id, e.g. ``tora/SafetyCarRun-v0``."""
        return f"tora/{self.bullet_id}"

    @property
    def bullet_id(self) -> str:
        """The package's own id, also the prefix of DSRL's file names (``SafetyCarRun-v0``)."""
        return f"Safety{self.name}-v0"

    @property
    def dsrl_id(self) -> str:
        """The id DSRL's package registers for the task's dataset (``OfflineCarRun-v0``)."""
        return f"Offline{self.name}-v0"


SAFETY_TASKS: dict[str, SafetyTask] = {
    task.name: task
    for task in (
        SafetyTask("BallRun", 100),
        SafetyTask("CarRun", 200),
        SafetyTask("DroneRun", 200),
        SafetyTask("BallCircle", 200),
        SafetyTask("CarCircle", 300),
        SafetyTask("DroneCircle", 300),
    )
}
"""The six tasks of DSRL's Bullet-Safety-Gym table, by short name."""

SAFETY_ENV_IDS: tuple[str, ...] = tuple(task.tora_id for task in SAFETY_TASKS.values())
"""tora-rl's ids of the six tasks."""

SAFETY_ALIASES: dict[str, str] = {
    alias: task.tora_id
    for task in SAFETY_TASKS.values()
    for alias in (task.bullet_id, task.dsrl_id)
}
"""The package's ids (= DSRL's file-name prefixes) and DSRL's env ids -> tora ids."""


def safety_task(name: str) -> SafetyTask:
    """The task that ``name`` stands for: a short name (``"CarRun"``), a tora id, the package's
    id or DSRL's id. Raises :class:`~tora.errors.ToraError` for anything else."""
    if name in SAFETY_TASKS:
        return SAFETY_TASKS[name]
    for task in SAFETY_TASKS.values():
        if name in (task.tora_id, task.bullet_id, task.dsrl_id):
            return task
    raise ToraError(
        f"unknown safe-RL task {name!r}; the Bullet-Safety-Gym tasks are "
        f"{', '.join(SAFETY_TASKS)} (also as {', '.join(SAFETY_ENV_IDS)}, "
        "'SafetyCarRun-v0' or 'OfflineCarRun-v0')"
    )


def _import_package(env_id: str) -> None:
    """Import bullet_safety_gym, which registers the package's ids with Gymnasium."""
    try:
        importlib.import_module("bullet_safety_gym")
    except ImportError as exc:
        missing = getattr(exc, "name", None)
        if missing == "bullet_safety_gym":
            what = "the optional package bullet-safety-gym is not installed"
        else:
            what = f"bullet-safety-gym could not be imported ({exc})"
        raise ToraError(
            f"environment {env_id!r} is a Bullet-Safety-Gym task, but {what}. "
            f"Install it with: {INSTALL_COMMAND}"
        ) from exc


@contextmanager
def _process_std_streams() -> Iterator[None]:
    """Let ``sys.stdout``/``sys.stderr`` be the process's own streams for a while.

    While PyBullet is imported and while an env connects to it, the package points file
    descriptors 1 and 2 at /dev/null to hide PyBullet's messages, then flushes the C stream
    whose name it cuts out of ``sys.stdout.name``. That only works for Python's own
    ``<stdout>``/``<stderr>`` objects: with the streams replaced, as under pytest's capture or
    in Jupyter, it fails with "ValueError: undefined symbol". The swap is process-wide, so a
    print from another thread in that moment goes to the process's stream.
    """
    saved = sys.stdout, sys.stderr
    if sys.__stdout__ is not None and sys.__stderr__ is not None:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def _build_simulator(task: SafetyTask) -> Any:
    """The package's environment for ``task``, without the wrappers ``gym.make`` would add
    (the time limit is applied to the tora env instead)."""
    _import_package(task.tora_id)
    spec = gym.spec(task.bullet_id)
    assert isinstance(spec.entry_point, str)
    with _process_std_streams(), warnings.catch_warnings():
        # The package builds a float64 Box from float32 bounds, and Gymnasium's bound check
        # overflows while casting float64's limits to float32: harmless and not the user's.
        warnings.filterwarnings("ignore", "overflow encountered in cast", RuntimeWarning)
        creator = load_env_creator(spec.entry_point)  # imports PyBullet on first use
        return creator(**spec.kwargs)


def _legacy_rng_state(seed: int) -> tuple[Any, ...]:
    """The state ``np.random.seed(seed)`` would put NumPy's global legacy RNG in."""
    if not 0 <= seed < _MAX_SEED:
        raise ToraError(
            f"seed must be in [0, 2**32) for Bullet-Safety-Gym tasks (the package draws from "
            f"NumPy's legacy RNG), got {seed}"
        )
    return np.random.RandomState(seed).get_state()


class BulletSafetyEnv(gym.Env[np.ndarray, np.ndarray]):
    """A Bullet-Safety-Gym task returning ``[reward, cost]``; see the module docstring.

    Built through the registry (``tora.make_env("tora/SafetyCarRun-v0")`` or an alias), which
    adds the task's time limit.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)
    reward_names: ClassVar[tuple[str, ...]] = ("reward", "cost")
    reward_directions: ClassVar[tuple[Direction, ...]] = (Direction.MAXIMIZE, Direction.MINIMIZE)

    def __init__(self, task: str) -> None:
        """``task``: a short name or any id :func:`safety_task` accepts."""
        self.task = safety_task(task)
        self._sim = _build_simulator(self.task)
        self.observation_space = self._sim.observation_space
        self.action_space = self._sim.action_space
        assert self.action_space.shape is not None
        self._action_shape: tuple[int, ...] = self.action_space.shape
        self._action_size = math.prod(self._action_shape)
        self.reward_space = spaces.Box(
            low=np.array([-np.inf, 0.0], dtype=np.float32),
            high=np.array([np.inf, 1.0], dtype=np.float32),
            dtype=np.float32,
        )
        # This env's own state of NumPy's legacy RNG; None until the first reset.
        self._rng_state: tuple[Any, ...] | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self._rng_state = _legacy_rng_state(seed)
        elif self._rng_state is None:
            # Unseeded first reset: Gymnasium drew np_random from OS entropy; derive from it.
            self._rng_state = _legacy_rng_state(int(self.np_random.integers(_MAX_SEED)))
        self._release_motors()
        obs, info = self._with_own_rng(self._sim.reset)
        return obs, dict(info)

    def step(self, action: Any) -> tuple[np.ndarray, np.ndarray, bool, bool, dict[str, Any]]:
        a = self._checked_action(action)
        obs, scalar, terminated, truncated, info = self._sim.step(a)
        reward = float(scalar)
        # The package reports int 0 when no cost term fired and float 1.0 otherwise.
        cost = float(info["cost"])
        vector = np.array([reward, cost], dtype=np.float64)
        info = {**info, "reward": reward, "cost": cost, "reward_vector": vector}
        return obs, vector.astype(np.float32), bool(terminated), bool(truncated), info

    def close(self) -> None:
        self._sim.close()
        super().close()

    def _checked_action(self, action: Any) -> np.ndarray:
        a = np.asarray(action, dtype=np.float64)
        if a.size != self._action_size:
            raise ShapeMismatchError(
                f"{self.task.tora_id} takes actions of shape {self._action_shape}, "
                f"got shape {a.shape}"
            )
        # The package would stop on a bare assert deep inside the agent. (math.isfinite over
        # the few components costs a fraction of np.isfinite's call on this per-step path.)
        if not all(map(math.isfinite, a.ravel().tolist())):
            raise ToraError(f"{self.task.tora_id}: actions must be finite, got {a.tolist()}")
        return a.reshape(self._action_shape)

    def _release_motors(self) -> None:
        """Free every joint of the agent, undoing the last episode's motor commands, which a
        PyBullet snapshot does not hold (see "History-free resets" in the module docstring)."""
        bc, body = self._sim.bc, self._sim.agent.body_id
        for joint in range(bc.getNumJoints(body)):
            bc.setJointMotorControl2(body, joint, bc.VELOCITY_CONTROL, targetVelocity=0, force=0)

    def _with_own_rng(self, call: Callable[[], _T]) -> _T:
        """Run ``call`` with this env's RNG state in ``np.random``; restore the caller's after."""
        assert self._rng_state is not None
        caller = np.random.get_state()  # noqa: NPY002 (the package draws from the global RNG)
        np.random.set_state(self._rng_state)  # noqa: NPY002
        try:
            return call()
        finally:
            self._rng_state = np.random.get_state()  # noqa: NPY002
            np.random.set_state(caller)  # noqa: NPY002


__all__ = [
    "INSTALL_COMMAND",
    "SAFETY_ALIASES",
    "SAFETY_ENV_IDS",
    "SAFETY_TASKS",
    "BulletSafetyEnv",
    "SafetyTask",
    "safety_task",
]
