"""Cascade flight controllers: behaviour policies for the Drone's circle task, chosen by search.

Why not ARS or PPO. SafetyDroneCircle's drone ends its episode when it tips over, and earns
almost nothing until it flies fast near the circle (the step reward is ``0.1 (p x v)_z /
(1 + |dist - 7|)``, clockwise). Within the issue's budget of one CPU-hour per task neither of
the project's learners flies it (BENCHMARKS.md section 6): linear ARS policies crash in 873 of
1,000 episodes and score below DSRL's R_min (207.8); PPO with a 64 x 2 MLP reaches about 50 per
episode after 320,000 steps even with an alive bonus. A quadrotor is, however, a textbook
control problem, so this module gives the drone a structured policy, the usual cascade:

1. *Velocity setpoint*: clockwise along the circle of radius ``radius`` at ``speed`` m/s, plus a
   radial pull ``k_radius (radius - dist)`` and a climb ``k_alt (altitude - z)``.
2. *Acceleration*: ``k_vel`` times the velocity error plus the centripetal feed-forward
   ``speed^2 / dist`` towards the centre; the horizontal part is capped at ``max_accel``.
3. *Attitude*: the thrust vector ``a + g`` fixes the body z-axis wanted; the error between the
   current and wanted axis (their cross product, in body coordinates) and the body rates give
   roll and pitch torques through gains ``k_att`` and ``k_rate``. Yaw is left free: the
   controller works in world coordinates, so the heading does not matter.
4. *Mixer*: the rotors sit at +x, -y, -x, +y of the body ("+" layout, rotors 0-3); a roll torque
   moves thrust from rotor 1 to rotor 3, a pitch torque from rotor 0 to rotor 2. Thrust grows
   with the square of rotor speed and the action sets rotor speed to ``hover (1 + 0.1 a)``, so a
   thrust ``f`` (in hover units) needs ``a = (sqrt(f) - 1) / 0.1``, clipped to [-1, 1].

Everything is read from the observation (position, velocity, orientation quaternion, angular
velocity, scaled as the package scales them), so the policy is a plain function of the state
like any other behaviour policy and collects data through the same code.

The **search** (:func:`search_flight`) rolls out every (radius, speed) pair of a grid on the
same seeded episodes (common random numbers, so pairs are compared on equal terms) and
records its mean return vector; policy ``i`` of the set is the pair that maximizes the row's
score ``w_r R - w_c C`` (:func:`tora.behavior.rollout.scalarize`) over the penalty grid of
:func:`tora.behavior.safe.penalty_grid`. The search is resumable (one JSON record per finished
pair) and deterministic. Gains are fixed settings, not searched: the defaults fly the drone on
every pair of the default grid that the cap on acceleration allows.

File format (no pickle): ``<stem>.safetensors`` holds the parameter vector ``params``
(:data:`PARAM_NAMES` order, float64); ``<stem>.json`` names the format
(:data:`FLIGHT_POLICY_FORMAT`), the parameters by name, env id, weights, dimensions, info and
the tensor file's SHA-256, as the other behaviour policies do.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from tqdm.auto import tqdm

from tora.behavior.policy import (
    FLIGHT_POLICY_FORMAT,
    policy_paths,
    read_policy_files,
    write_policy_files,
)
from tora.behavior.rollout import build_env, derive_seed, episode_return, scalarize
from tora.configs import settings_diff
from tora.envs import resolve_env_id
from tora.errors import CheckpointError, ShapeMismatchError, ToraError
from tora.io import atomic_write_json, read_json_object

__all__ = [
    "FLIGHT_ENV_ID",
    "FLIGHT_POLICY_FORMAT",
    "PARAM_NAMES",
    "FlightConfig",
    "FlightPolicy",
    "flight_action",
    "load_flight_policy",
    "search_flight",
]

_VERSION = 1
FLIGHT_ENV_ID = "tora/SafetyDroneCircle-v0"
"""The one task whose observation layout the controller reads."""
PARAM_NAMES = (
    "radius",
    "speed",
    "altitude",
    "k_radius",
    "k_alt",
    "k_vel",
    "max_accel",
    "k_att",
    "k_rate",
)
_GRAVITY = 9.81
_ACTION_RANGE = 0.1  # the Drone's rotor speed is hover * (1 + 0.1 a)
_OBS_DIM, _ACT_DIM = 18, 4
# Observation layout of the Drone on a Circle task (the package's scalings undone below):
# 0:3 position / 10, 3:6 velocity / 5, 6:10 quaternion (x, y, z, w), 10:13 angular velocity
# (world frame) / 10, 13:17 rotor speeds, 17 distance to the circle.
_POS, _VEL, _QUAT, _RATE = slice(0, 3), slice(3, 6), slice(6, 10), slice(10, 13)
_SEARCH_FILE = "search.json"
_SEARCH_FORMAT = "tora-flight-search"


def _rotation(q: np.ndarray) -> np.ndarray:
    """(B, 3, 3) rotation matrices (body to world) of (B, 4) quaternions (x, y, z, w)."""
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    x, y, z, w = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )


def flight_action(obs: ArrayLike, params: ArrayLike) -> np.ndarray:
    """The cascade's rotor commands (B, 4) for observations (B, 18) (or (4,) for one (18,));
    ``params`` in :data:`PARAM_NAMES` order (module docstring)."""
    s = np.asarray(obs, dtype=np.float64)
    single = s.ndim == 1
    s = np.atleast_2d(s)
    if s.ndim != 2 or s.shape[1] != _OBS_DIM:
        raise ShapeMismatchError(
            f"flight policies take the Drone's circle-task observation of size {_OBS_DIM} "
            f"(or a batch (B, {_OBS_DIM})), got shape {np.shape(obs)}"
        )
    radius, speed, altitude, k_radius, k_alt, k_vel, max_accel, k_att, k_rate = np.asarray(
        params, dtype=np.float64
    )
    pos, vel = s[:, _POS] * 10.0, s[:, _VEL] * 5.0
    rot = _rotation(s[:, _QUAT])
    rate_world = s[:, _RATE] * 10.0

    dist = np.linalg.norm(pos[:, :2], axis=1)
    safe_dist = np.maximum(dist, 1e-6)
    out = pos[:, :2] / safe_dist[:, None]  # radial unit vector
    clockwise = np.stack([out[:, 1], -out[:, 0]], axis=1)
    v_want = np.zeros_like(vel)
    v_want[:, :2] = speed * clockwise + (k_radius * (radius - dist))[:, None] * out
    v_want[:, 2] = k_alt * (altitude - pos[:, 2])
    accel = k_vel * (v_want - vel)
    # Centripetal feed-forward; below 1 m from the centre the direction is meaningless and the
    # term would blow up, so it is held at its 1 m value.
    accel[:, :2] -= (speed**2 / np.maximum(dist, 1.0))[:, None] * out
    horizontal = np.linalg.norm(accel[:, :2], axis=1)
    scale = np.where(horizontal > max_accel, max_accel / np.maximum(horizontal, 1e-12), 1.0)
    accel[:, :2] *= scale[:, None]

    thrust_vec = accel + np.array([0.0, 0.0, _GRAVITY])
    thrust_vec[:, 2] = np.maximum(thrust_vec[:, 2], 0.3 * _GRAVITY)  # never dive on purpose
    axis_want = thrust_vec / np.linalg.norm(thrust_vec, axis=1, keepdims=True)
    axis_now = rot[:, :, 2]
    thrust = np.einsum("bi,bi->b", thrust_vec, axis_now) / _GRAVITY  # in hover units
    body = np.transpose(rot, (0, 2, 1))  # world to body
    err = np.einsum("bij,bj->bi", body, np.cross(axis_now, axis_want))
    rate = np.einsum("bij,bj->bi", body, rate_world)
    roll, pitch = (k_att * err[:, :2] - k_rate * rate[:, :2]).T
    # Per-rotor thrust in hover units of one rotor: rotors 0 (+x), 1 (-y), 2 (-x), 3 (+y).
    per_rotor = np.stack([thrust - pitch, thrust - roll, thrust + pitch, thrust + roll], axis=1)
    action = (np.sqrt(np.maximum(per_rotor, 0.0)) - 1.0) / _ACTION_RANGE
    action = np.clip(action, -1.0, 1.0)
    return action[0] if single else action


@dataclass
class FlightPolicy:
    """A cascade controller with fixed parameters: ``act(obs)`` is :func:`flight_action`."""

    params: np.ndarray
    env_id: str = FLIGHT_ENV_ID
    weights: np.ndarray = field(default_factory=lambda: np.zeros(0))
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.params = np.asarray(self.params, dtype=np.float64).reshape(-1)
        if self.params.shape != (len(PARAM_NAMES),) or not np.isfinite(self.params).all():
            raise ToraError(
                f"a flight policy needs {len(PARAM_NAMES)} finite parameters "
                f"({', '.join(PARAM_NAMES)}), got {self.params.tolist()}"
            )
        self.weights = np.asarray(self.weights, dtype=np.float64)

    obs_dim = _OBS_DIM
    act_dim = _ACT_DIM

    @property
    def low(self) -> np.ndarray:
        return -np.ones(_ACT_DIM)

    @property
    def high(self) -> np.ndarray:
        return np.ones(_ACT_DIM)

    def named(self) -> dict[str, float]:
        return {k: float(v) for k, v in zip(PARAM_NAMES, self.params, strict=True)}

    def act(self, obs: ArrayLike) -> np.ndarray:
        """The action(s) for one observation (18,) or a batch (B, 18), float64."""
        return flight_action(obs, self.params)

    def __call__(self, obs: ArrayLike) -> np.ndarray:
        return self.act(obs)

    def save(self, path: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``<stem>.safetensors`` then ``<stem>.json``; returns both paths."""
        tensors = {"params": torch.as_tensor(self.params)}
        return write_policy_files(
            path, tensors, FLIGHT_POLICY_FORMAT, _VERSION, self, {"params": self.named()}
        )


def load_flight_policy(path: str | os.PathLike[str]) -> FlightPolicy:
    """Load a policy saved by :meth:`FlightPolicy.save` (the stem or either file).

    Raises CheckpointError if a file is missing, corrupt, from another save, or its tensor and
    JSON disagree on the parameters."""
    doc, tensors, tensor_path = read_policy_files(path, FLIGHT_POLICY_FORMAT, _VERSION, "flight")
    json_path = policy_paths(path)[1]
    try:
        named = {k: float(doc["params"][k]) for k in PARAM_NAMES}
        env_id, weights, info = str(doc["env_id"]), list(doc["weights"]), dict(doc["info"])
        params = tensors["params"].double().numpy()
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{json_path}: missing or malformed field: {exc}") from exc
    if params.shape != (len(PARAM_NAMES),) or params.tolist() != list(named.values()):
        raise CheckpointError(f"{tensor_path}: parameters differ from {json_path.name}")
    try:
        return FlightPolicy(params, env_id, np.asarray(weights, np.float64), info)
    except ToraError as exc:
        raise CheckpointError(f"{tensor_path}: {exc}") from exc


@dataclass
class FlightConfig:
    """Settings of the flight-controller search (:func:`search_flight`)."""

    radii: tuple[float, ...] = (4.5, 5.0, 5.25, 5.5, 5.75, 6.0, 6.25, 6.5, 6.75, 7.0, 7.25, 7.5)
    """Circle radii searched (m). The task's circle has radius 7 and costs outside |x| > 6."""
    speeds: tuple[float, ...] = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5)
    """Ground speeds searched (m/s)."""
    episodes: int = 5
    """Episodes per (radius, speed) pair; every pair sees the same seeded starts."""
    altitude: float = 1.0
    """Flight height (m)."""
    k_radius: float = 1.0
    """Radial pull towards the circle (1/s)."""
    k_alt: float = 1.0
    """Climb rate per metre of height error (1/s)."""
    k_vel: float = 1.5
    """Acceleration per m/s of velocity error (1/s)."""
    max_accel: float = 5.0
    """Cap on the horizontal acceleration asked for (m/s^2); the rotors give at most about
    0.68 g sideways while holding height."""
    k_att: float = 1.0
    """Torque per unit of body-axis error."""
    k_rate: float = 0.3
    """Torque per rad/s of body rate (damping)."""
    seed: int = 0
    """Seeds the search episodes' starts."""

    def __post_init__(self) -> None:
        if not self.radii or not self.speeds:
            raise ToraError("FlightConfig: radii and speeds need at least one value each")
        values = [*self.radii, *self.speeds, self.altitude, self.max_accel]
        if min(values) <= 0 or not np.isfinite(values).all():
            raise ToraError("FlightConfig: radii, speeds, altitude and max_accel must be > 0")
        gains = [self.k_radius, self.k_alt, self.k_vel, self.k_att, self.k_rate]
        if min(gains) < 0 or not np.isfinite(gains).all():
            raise ToraError("FlightConfig: gains must be finite and non-negative")
        if self.episodes < 1:
            raise ToraError(f"FlightConfig: episodes must be >= 1, got {self.episodes}")

    def params(self, radius: float, speed: float) -> np.ndarray:
        """The parameter vector of one (radius, speed) pair under these gains."""
        g = asdict(self)
        return np.array([radius, speed, *(g[k] for k in PARAM_NAMES[2:])], dtype=np.float64)

    def settings(self) -> dict[str, Any]:
        """The fields as JSON gives them back (lists, not tuples), so a record written by one
        run compares equal to the settings of the same run resumed."""
        out = asdict(self)
        out.update(radii=list(self.radii), speeds=list(self.speeds))
        return out

    def pairs(self) -> list[tuple[float, float]]:
        return [(float(r), float(v)) for r, v in itertools.product(self.radii, self.speeds)]


def _check_env(env_id: str) -> str:
    resolved = resolve_env_id(env_id)
    if resolved != FLIGHT_ENV_ID:
        raise ToraError(
            f"flight controllers read the Drone's circle-task observation; {resolved} is not "
            f"{FLIGHT_ENV_ID} (use --algorithm ars or ppo)"
        )
    return resolved


def _episode(env: Any, params: np.ndarray, seed: int) -> tuple[np.ndarray, int]:
    return episode_return(env, lambda obs: flight_action(obs, params), seed)


def search_flight(
    env_id: str,
    config: FlightConfig,
    record: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Roll out every (radius, speed) pair of ``config`` and return one dict per pair, in grid
    order: radius, speed, return_vector (mean over the episodes), returns (per episode),
    steps, seconds. With ``record`` (a JSON path) each finished pair is written there at once
    and a rerun picks up where a killed one stopped; a record made with other settings is
    refused (CheckpointError)."""
    resolved = _check_env(env_id)
    settings = {"env_id": resolved, **config.settings()}
    done: list[dict[str, Any]] = []
    path = Path(record) if record is not None else None
    if path is not None and path.is_file():
        doc = read_json_object(
            path, format_name=_SEARCH_FORMAT, version=_VERSION, what="flight search record"
        )
        if doc.get("settings") != settings:
            changed = "; ".join(settings_diff(doc.get("settings"), settings))
            raise CheckpointError(
                f"{path} was made with other settings ({changed}); rerun with the original "
                "ones or use another directory"
            )
        done = list(doc["pairs"])
    seeds = [derive_seed(config.seed, e) for e in range(config.episodes)]
    pairs = config.pairs()
    env = build_env(resolved)
    bar = tqdm(pairs, desc="flight search", unit="pair", disable=not progress, initial=len(done))
    try:
        for radius, speed in pairs[len(done) :]:
            start = time.perf_counter()
            params = config.params(radius, speed)
            runs = [_episode(env, params, s) for s in seeds]
            returns = np.stack([r for r, _ in runs])
            done.append(
                {
                    "radius": radius,
                    "speed": speed,
                    "return_vector": returns.mean(axis=0).tolist(),
                    "returns": returns.tolist(),
                    "steps": int(sum(n for _, n in runs)),
                    "seconds": time.perf_counter() - start,
                }
            )
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_json(
                    path,
                    {
                        "format": _SEARCH_FORMAT,
                        "version": _VERSION,
                        "settings": settings,
                        "pairs": done,
                    },
                )
            bar.update(1)
            reward = done[-1]["return_vector"][0]
            bar.set_postfix(r=f"{radius:g}", v=f"{speed:g}", R=f"{reward:.0f}")
    finally:
        bar.close()
        env.close()
    return done


def choose_pair(results: list[dict[str, Any]], weights: ArrayLike, signs: ArrayLike | None) -> int:
    """Index of the searched pair with the highest score ``w . (sign * R)`` (first on ties)."""
    returns = np.array([r["return_vector"] for r in results], dtype=np.float64)
    return int(np.argmax(scalarize(returns, weights, signs)))
