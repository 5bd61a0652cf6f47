"""Environments: the built-in Cruise task and the registry of env ids tora-rl accepts."""

from __future__ import annotations

import gymnasium as gym

from tora.envs.cruise import CruiseEnv

CRUISE_ID = "tora/Cruise-v0"


def register_envs() -> None:
    """Register tora-rl's environments with Gymnasium (idempotent)."""
    if CRUISE_ID not in gym.registry:
        gym.register(CRUISE_ID, entry_point="tora.envs.cruise:CruiseEnv")


def make_env(env_id: str, **kwargs: object) -> gym.Env:
    """``gymnasium.make`` that knows tora-rl's ids."""
    register_envs()
    return gym.make(env_id, disable_env_checker=True, **kwargs)


__all__ = ["CRUISE_ID", "CruiseEnv", "make_env", "register_envs"]
