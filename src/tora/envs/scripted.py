"""Scripted behaviour for Cruise: a family of noisy cruise controllers spanning the trade-off.

Each episode draws a target speed and holds it with a proportional throttle controller plus
Gaussian action noise. Targets cover [0.05, 1], slow-and-frugal to fast-and-thirsty, and the
noise and the hills make much of the data dominated: fine-tuning has something to prefer.

Each episode also records the preference its controller stands for, (w_speed, w_energy) with
w_speed the target's position in the target range, as D4MORL records the preference each of
its episodes was collected under: preference-conditioned baselines (BC(P), ...) train on it.
"""

from __future__ import annotations

import numpy as np
from tqdm.auto import tqdm

from tora.data.trajectories import Trajectories, objectives_from_names
from tora.envs.cruise import OBJECTIVES, CruiseEnv

TARGET_SPEED = (0.05, 1.0)
GAIN = 2.0
ACTION_NOISE = 0.2


def cruise_controller(obs: np.ndarray, target_speed: float, rng: np.random.Generator) -> np.ndarray:
    """One noisy action holding ``target_speed``."""
    throttle = target_speed + GAIN * (target_speed - obs[0])
    action = 2.0 * throttle - 1.0 + rng.normal(0.0, ACTION_NOISE)
    return np.clip(np.array([action]), -1.0, 1.0).astype(np.float32)


def target_preference(target_speed: float) -> np.ndarray:
    """(w_speed, w_energy) an episode with ``target_speed`` stands for: the fastest target is
    all speed, the slowest all energy."""
    lo, hi = TARGET_SPEED
    w_speed = float(np.clip((target_speed - lo) / (hi - lo), 0.0, 1.0))
    return np.array([w_speed, 1.0 - w_speed], dtype=np.float32)


def collect_cruise(episodes: int, seed: int = 0, progress: bool = True) -> Trajectories:
    """Roll out ``episodes`` scripted episodes; the same seed gives the same data."""
    rng = np.random.default_rng(seed)
    env = CruiseEnv()
    keys = ("observations", "actions", "rewards", "next_observations", "timeouts")
    records = []
    for _ in tqdm(range(episodes), desc="collect Cruise data", disable=not progress):
        target = rng.uniform(*TARGET_SPEED)
        obs, _ = env.reset(seed=int(rng.integers(2**31)))
        rows: dict[str, list] = {k: [] for k in keys}
        done = False
        while not done:
            action = cruise_controller(obs, target, rng)
            next_obs, reward, terminated, truncated, _ = env.step(action)
            for key, value in zip(keys, (obs, action, reward, next_obs, truncated), strict=True):
                rows[key].append(value)
            obs, done = next_obs, terminated or truncated
        episode = {k: np.asarray(v) for k, v in rows.items()}
        episode["terminals"] = np.zeros(len(episode["actions"]), dtype=bool)
        episode["preference"] = target_preference(target)
        records.append(episode)
    return Trajectories.from_episodes(
        records,
        objectives_from_names(OBJECTIVES),
        metadata={"env_id": "tora/Cruise-v0", "source_format": "tora", "behavior": "scripted"},
    )
