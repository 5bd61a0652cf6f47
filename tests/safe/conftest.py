"""Shared pieces of the safe-RL tests: the SafeDash toy with its scripted throttle policy."""

from __future__ import annotations

import numpy as np

from tora.safe.policies import WeightFn
from tora.safe.rollout import Episodes, StepPolicy, run_episodes
from tora.safe.toy import SAFE_DASH_ID, throttle_policy


def throttle_step(weights: WeightFn) -> StepPolicy:
    """SafeDash's scripted policy (throttle = w_r) acting under ``weights``."""
    return lambda obs, state: throttle_policy(obs, weights(state))


def dash_episodes(weights: WeightFn, seeds: list[int]) -> Episodes:
    return run_episodes(throttle_step(weights), SAFE_DASH_ID, seeds, progress=False)


def as_array(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)
