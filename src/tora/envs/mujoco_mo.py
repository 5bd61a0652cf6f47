"""MuJoCo locomotion with D4MORL's reward vectors, termination rules and resets.

D4MORL (Zhu, Dang & Grover 2023; the PEDA code's ``environments/*.py``) collected its datasets in
PGMORL's (Xu et al. 2020) multi-objective MuJoCo tasks. To evaluate planners trained on that data
the environment must score a trajectory the way the data did, so these classes reproduce
PEDA's objectives, termination tests, action clipping and reset noise on top of Gymnasium's v5
environments (the physics, observations and rendering stay Gymnasium's: each class subclasses
Gymnasium's ``MujocoEnv``-based v5 env and replaces ``step`` and ``reset_model``).

v is the forward velocity (x after - x before) / dt from ``qpos``, a the action clipped to the
action space (for the PGMORL hopper that is D4MORL's [-2,2] x [-2,2] x [-4,4]), h the torso
height and |a|^2 the sum of squared actions. Per env (obs dim, action dim, frame_skip):

- MO-HalfCheetah (17, 6, 5): [min(4, v) + 1, 4 - |a|^2 + 1]; ends when |torso angle| >= 50°.
- MO-Walker2d (17, 6, 4): [v + 1, 4 - |a|^2 + 1]; ends unless 0.8 < h < 2 and -1 < angle < 1.
- MO-Hopper (11, 3, 5): [1.5 v + 1 - 2e-4 |a|^2, 12 (h - h0) + 1 - 2e-4 |a|^2]; ends when
  h <= 0.4 or the torso or a joint angle reaches 90°.
- MO-Hopper-3obj (11, 3, 5): [1.5 v + 1, 12 (h - h0) + 1, 4 - |a|^2 + 1]; as MO-Hopper.
- MO-Swimmer (8, 2, 4): [v, 0.3 - 0.15 |a|^2]; never ends.
- MO-Ant (27, 8, 5): [v_x + 1 - 0.5 |a|^2, v_y + 1 - 0.5 |a|^2]; ends on a non-finite state.

h0 is the model's initial torso height (``init_qpos[1]`` = 1.25). Resets add U(-1e-3, 1e-3) to
every ``qpos`` and 1e-3-scale noise to ``qvel``: N(0, 1e-3^2) for HalfCheetah and Ant,
U(-1e-3, 1e-3) for Walker2d, Hopper and Swimmer, and the Hopper keeps its initial height, all as
in PEDA. The registry adds the 500-step time limit (``TimeLimit``), as PEDA's did.

``step`` returns the reward vector as float32 (the mo-gymnasium convention) and a copy in
``info["reward_vector"]``; ``reward_names`` and ``reward_space`` describe it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import mujoco
import numpy as np
from gymnasium import spaces, utils
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.swimmer_v5 import SwimmerEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

from tora.envs.mujoco_models import MODEL_VARIANTS, model_path
from tora.errors import ToraError

EPISODE_STEPS = 500
"""D4MORL's episode length (PEDA registers every env with ``max_episode_steps=500``)."""
RESET_NOISE = 1e-3
"""Scale of the reset noise on ``qpos`` and ``qvel``."""
ALIVE_BONUS = 1.0

_INF = float("inf")

# MuJoCo warnings about Gymnasium's own files that a user cannot act on. MuJoCo's default
# handler appends every warning to MUJOCO_LOG.TXT in the working directory, once per env built.
_KNOWN_MODEL_WARNINGS = ("compiler attribute 'settotalmass' is deprecated",)


@contextmanager
def _model_warnings_to_python() -> Iterator[None]:
    """While a model compiles, drop the known warnings and turn others into Python warnings."""
    previous = mujoco.get_mju_user_warning()

    def handler(message: str) -> None:
        if not message.startswith(_KNOWN_MODEL_WARNINGS):
            warnings.warn(f"MuJoCo: {message}", UserWarning, stacklevel=2)

    mujoco.set_mju_user_warning(handler)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)


def _energy_low(high: float, action_space: spaces.Box, weight: float) -> float:
    """Lowest value of ``high - weight * |a|^2`` over the action box."""
    worst = np.maximum(np.abs(action_space.low), np.abs(action_space.high)).astype(np.float64)
    return float(high - weight * np.sum(worst**2))


class _D4MORLMixin:
    """The parts every D4MORL env shares: clipping, the reset noise and the step bookkeeping.

    Listed before Gymnasium's env class among the bases, so its ``step`` and ``reset_model``
    replace Gymnasium's; subclasses supply ``_objectives`` and ``_terminated``.
    """

    reward_names: ClassVar[tuple[str, ...]] = ()
    # How the reset perturbs qvel ("normal" or "uniform") and whether it keeps the height.
    qvel_noise: ClassVar[str] = "normal"
    keep_initial_height: ClassVar[bool] = False
    # Constructor arguments of an easier variant that behaviour policies trained from zero may
    # warm up on (ARSConfig.warmup_iterations); empty: the env has none.
    curriculum_kwargs: ClassVar[dict[str, Any]] = {}

    # Provided by Gymnasium's MujocoEnv; declared here for type checkers.
    action_space: spaces.Box
    reward_space: spaces.Box
    data: Any
    model: Any
    init_qpos: np.ndarray
    init_qvel: np.ndarray
    frame_skip: int
    render_mode: str | None
    np_random: np.random.Generator

    def _initialize_simulation(self) -> tuple[Any, Any]:
        with _model_warnings_to_python():
            return super()._initialize_simulation()  # type: ignore[misc]

    def _set_reward_space(self, low: list[float], high: list[float]) -> None:
        self.reward_space = spaces.Box(
            low=np.asarray(low, dtype=np.float32),
            high=np.asarray(high, dtype=np.float32),
            dtype=np.float32,
        )

    def _objectives(self, qpos_before: np.ndarray, action: np.ndarray) -> list[float]:
        raise NotImplementedError

    def _terminated(self) -> bool:
        raise NotImplementedError

    def _clip(self, action: Any) -> np.ndarray:
        # PEDA clips before simulating and scores the clipped action; MuJoCo would clamp the
        # control to ctrlrange anyway, so the score always describes the applied control.
        a = np.asarray(action, dtype=np.float64).reshape(self.action_space.shape)
        return np.clip(a, self.action_space.low, self.action_space.high)

    def step(self, action: Any) -> tuple[np.ndarray, np.ndarray, bool, bool, dict[str, Any]]:
        a = self._clip(action)
        qpos_before = self.data.qpos.copy()
        self.do_simulation(a, self.frame_skip)
        reward = np.asarray(self._objectives(qpos_before, a), dtype=np.float32)
        terminated = bool(self._terminated())
        observation = self._get_obs()
        info = {
            "reward_vector": reward.copy(),
            "x_position": float(self.data.qpos[0]),
            "x_velocity": self._velocity(qpos_before, 0),
        }
        if self.render_mode == "human":
            self.render()
        # Never truncated here: the 500-step limit is the registry's TimeLimit, as in PEDA.
        return observation, reward, terminated, False, info

    def _velocity(self, qpos_before: np.ndarray, index: int) -> float:
        return float((self.data.qpos[index] - qpos_before[index]) / self.dt)

    def reset_model(self) -> np.ndarray:
        c = RESET_NOISE
        qpos = self.init_qpos + self.np_random.uniform(-c, c, size=self.model.nq)
        if self.keep_initial_height:
            qpos[1] = self.init_qpos[1]
        if self.qvel_noise == "uniform":
            qvel = self.init_qvel + self.np_random.uniform(-c, c, size=self.model.nv)
        else:
            qvel = self.init_qvel + c * self.np_random.standard_normal(self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()


class MOHalfCheetahEnv(_D4MORLMixin, HalfCheetahEnv):
    """D4MORL's MO-HalfCheetah: speed (capped at 4) versus energy; Gymnasium's v5 model."""

    reward_names = ("speed", "energy")
    qvel_noise = "normal"
    max_angle = float(np.deg2rad(50.0))

    def __init__(self, model: str = "pgmorl", **kwargs: Any) -> None:
        """``model``: "pgmorl" or "gymnasium", the same file here (PGMORL's cheetah is v5's);
        accepted so that every D4MORL env takes the argument. Other ``kwargs`` go to
        Gymnasium's ``HalfCheetahEnv`` (e.g. ``render_mode``)."""
        if model not in MODEL_VARIANTS:
            raise ToraError(f"unknown model variant {model!r}; choose one of {MODEL_VARIANTS}")
        self.model_variant = model
        HalfCheetahEnv.__init__(self, **{"xml_file": "half_cheetah.xml", "frame_skip": 5, **kwargs})
        # Gymnasium's EzPickle recorded its own positional signature; record ours instead so
        # pickling and deepcopy rebuild this class with the same arguments.
        utils.EzPickle.__init__(self, model=model, **kwargs)
        self._set_reward_space(
            [-_INF, _energy_low(4.0 + ALIVE_BONUS, self.action_space, 1.0)],
            [4.0 + ALIVE_BONUS, 4.0 + ALIVE_BONUS],
        )

    def _objectives(self, qpos_before: np.ndarray, action: np.ndarray) -> list[float]:
        v = self._velocity(qpos_before, 0)
        energy = 4.0 - float(np.sum(action**2)) + ALIVE_BONUS
        return [min(4.0, v) + ALIVE_BONUS, energy]

    def _terminated(self) -> bool:
        # "not (|angle| < 50°)" rather than "|angle| >= 50°": a NaN angle also terminates.
        return not abs(self.data.qpos[2]) < self.max_angle


class MOWalker2dEnv(_D4MORLMixin, Walker2dEnv):
    """D4MORL's MO-Walker2d: speed versus energy; PGMORL's model by default."""

    reward_names = ("speed", "energy")
    qvel_noise = "uniform"

    def __init__(self, model: str = "pgmorl", **kwargs: Any) -> None:
        """``model``: "pgmorl" (D4MORL's, the default) or "gymnasium" (the v5 file as is)."""
        self.model_variant = model
        xml = str(model_path("walker2d", model))
        Walker2dEnv.__init__(self, **{"xml_file": xml, "frame_skip": 4, **kwargs})
        utils.EzPickle.__init__(self, model=model, **kwargs)
        self._set_reward_space(
            [-_INF, _energy_low(4.0 + ALIVE_BONUS, self.action_space, 1.0)],
            [_INF, 4.0 + ALIVE_BONUS],
        )

    def _objectives(self, qpos_before: np.ndarray, action: np.ndarray) -> list[float]:
        v = self._velocity(qpos_before, 0)
        return [v + ALIVE_BONUS, 4.0 - float(np.sum(action**2)) + ALIVE_BONUS]

    def _terminated(self) -> bool:
        height, angle = self.data.qpos[1:3]
        return not (0.8 < height < 2.0 and -1.0 < angle < 1.0)


class MOHopperEnv(_D4MORLMixin, HopperEnv):
    """D4MORL's MO-Hopper (2 objectives): speed versus jump height; PGMORL's model by default.

    PGMORL's hopper motors accept [-2,2] x [-2,2] x [-4,4]; with ``model="gymnasium"`` the
    action space (and so the clipping) is v5's [-1, 1]^3.
    """

    reward_names: ClassVar[tuple[str, ...]] = ("speed", "jump")
    qvel_noise = "uniform"
    keep_initial_height = True
    ctrl_cost_weight = 2e-4
    max_angle = float(np.deg2rad(90.0))

    def __init__(self, model: str = "pgmorl", **kwargs: Any) -> None:
        """``model``: "pgmorl" (D4MORL's, the default) or "gymnasium" (the v5 file as is)."""
        self.model_variant = model
        xml = str(model_path("hopper", model))
        # frame_skip 5 as in PEDA/PGMORL (Gymnasium's Hopper uses 4): dt = 0.01 s.
        HopperEnv.__init__(self, **{"xml_file": xml, "frame_skip": 5, **kwargs})
        utils.EzPickle.__init__(self, model=model, **kwargs)
        self.initial_height = float(self.init_qpos[1])
        self._set_reward_space(*self._reward_bounds())

    def _reward_bounds(self) -> tuple[list[float], list[float]]:
        # Height is unbounded above in principle, bounded below by the floor: keep it open.
        return [-_INF, -_INF], [_INF, _INF]

    def _objectives(self, qpos_before: np.ndarray, action: np.ndarray) -> list[float]:
        others = ALIVE_BONUS - self.ctrl_cost_weight * float(np.sum(action**2))
        run = 1.5 * self._velocity(qpos_before, 0) + others
        jump = 12.0 * (float(self.data.qpos[1]) - self.initial_height) + others
        return [run, jump]

    def _terminated(self) -> bool:
        height = self.data.qpos[1]
        angles = self.data.qpos[2:6]  # torso pitch, thigh, leg, foot
        return not (height > 0.4 and bool(np.all(np.abs(angles) < self.max_angle)))


class MOHopper3ObjEnv(MOHopperEnv):
    """D4MORL's MO-Hopper-v3: speed, jump height and energy (no control cost on the first two)."""

    reward_names = ("speed", "jump", "energy")

    def _reward_bounds(self) -> tuple[list[float], list[float]]:
        energy_low = _energy_low(4.0 + ALIVE_BONUS, self.action_space, 1.0)
        return [-_INF, -_INF, energy_low], [_INF, _INF, 4.0 + ALIVE_BONUS]

    def _objectives(self, qpos_before: np.ndarray, action: np.ndarray) -> list[float]:
        run = 1.5 * self._velocity(qpos_before, 0) + ALIVE_BONUS
        jump = 12.0 * (float(self.data.qpos[1]) - self.initial_height) + ALIVE_BONUS
        energy = 4.0 - float(np.sum(action**2)) + ALIVE_BONUS
        return [run, jump, energy]


class MOSwimmerEnv(_D4MORLMixin, SwimmerEnv):
    """D4MORL's MO-Swimmer: speed versus energy, no alive bonus, never terminates.

    PGMORL's model (the default) drives the joints with gear 300, Gymnasium's v5 with 150.
    """

    reward_names = ("speed", "energy")
    qvel_noise = "uniform"
    ctrl_cost_weight = 0.15

    def __init__(self, model: str = "pgmorl", **kwargs: Any) -> None:
        """``model``: "pgmorl" (D4MORL's, the default) or "gymnasium" (the v5 file as is)."""
        self.model_variant = model
        xml = str(model_path("swimmer", model))
        SwimmerEnv.__init__(self, **{"xml_file": xml, "frame_skip": 4, **kwargs})
        utils.EzPickle.__init__(self, model=model, **kwargs)
        self._set_reward_space(
            [-_INF, _energy_low(0.3, self.action_space, self.ctrl_cost_weight)], [_INF, 0.3]
        )

    def _objectives(self, qpos_before: np.ndarray, action: np.ndarray) -> list[float]:
        v = self._velocity(qpos_before, 0)
        return [v, 0.3 - self.ctrl_cost_weight * float(np.sum(action**2))]

    def _terminated(self) -> bool:
        return False


class MOAntEnv(_D4MORLMixin, AntEnv):
    """D4MORL's MO-Ant: x speed versus y speed, each with alive bonus and control cost.

    Observation: Gymnasium's Ant-v5 without contact forces (27 = 13 qpos + 14 qvel). PGMORL's
    model (the default) drives the joints with gear 100, Gymnasium's v5 with 150. PEDA
    measured the torso's ``xpos``, which MuJoCo computes before the last substep's
    integration; this env uses the free joint's ``qpos`` (the same point, one substep later)
    so that v is exactly (x after - x before) / dt.
    """

    reward_names = ("x_speed", "y_speed")
    qvel_noise = "normal"
    # An easier version of the task for behaviour policies trained from zero: with D4MORL's
    # control cost (0.5 |a|^2 on 8 motors, gear 100) standing still is a local optimum that
    # linear ARS does not leave (BENCHMARKS.md, section 4); at a tenth of it the ant learns a
    # gait, which the true task then refines.
    curriculum_kwargs: ClassVar[dict[str, Any]] = {"ctrl_cost_weight": 0.05}

    def __init__(self, model: str = "pgmorl", ctrl_cost_weight: float = 0.5, **kwargs: Any) -> None:
        """``model``: "pgmorl" (D4MORL's, the default) or "gymnasium" (the v5 file as is).

        ``ctrl_cost_weight``: c in ``v + 1 - c |a|^2``; D4MORL's is 0.5 (other values make a
        different task, used only as a training curriculum).
        """
        if not (math.isfinite(ctrl_cost_weight) and ctrl_cost_weight >= 0):
            raise ToraError(f"ctrl_cost_weight must be finite and >= 0, got {ctrl_cost_weight}")
        self.ctrl_cost_weight = float(ctrl_cost_weight)
        self.model_variant = model
        params: dict[str, Any] = {
            "xml_file": str(model_path("ant", model)),
            "frame_skip": 5,
            "include_cfrc_ext_in_observation": False,
        }
        AntEnv.__init__(self, **{**params, **kwargs})
        utils.EzPickle.__init__(self, model=model, ctrl_cost_weight=ctrl_cost_weight, **kwargs)
        self._set_reward_space([-_INF, -_INF], [_INF, _INF])

    def _objectives(self, qpos_before: np.ndarray, action: np.ndarray) -> list[float]:
        others = ALIVE_BONUS - self.ctrl_cost_weight * float(np.sum(action**2))
        vx = self._velocity(qpos_before, 0)
        vy = self._velocity(qpos_before, 1)
        return [vx + others, vy + others]

    def _terminated(self) -> bool:
        return not bool(np.isfinite(self.state_vector()).all())

    def step(self, action: Any) -> tuple[np.ndarray, np.ndarray, bool, bool, dict[str, Any]]:
        qpos_before = self.data.qpos.copy()
        out = super().step(action)
        out[4]["y_velocity"] = self._velocity(qpos_before, 1)
        return out


__all__ = [
    "EPISODE_STEPS",
    "RESET_NOISE",
    "MOAntEnv",
    "MOHalfCheetahEnv",
    "MOHopper3ObjEnv",
    "MOHopperEnv",
    "MOSwimmerEnv",
    "MOWalker2dEnv",
]
