"""Load a behaviour policy of any kind from its files: the one entry point that knows every
kind (linear ARS policies, PPO's MLPs, the Drone's flight controller), so that each kind's
own module need not know the others."""

from __future__ import annotations

import os

from tora.behavior.flight import FlightPolicy, load_flight_policy
from tora.behavior.policy import (
    FLIGHT_POLICY_FORMAT,
    MLP_POLICY_FORMAT,
    LinearPolicy,
    load_policy,
    policy_paths,
)
from tora.behavior.ppo import MLPPolicy, load_mlp_policy
from tora.io import read_json_object

__all__ = ["load_behavior_policy"]


def load_behavior_policy(
    path: str | os.PathLike[str],
) -> LinearPolicy | MLPPolicy | FlightPolicy:
    """A behaviour policy of any kind, by the ``format`` its JSON names: a
    :class:`LinearPolicy` (ARS), a :class:`tora.behavior.ppo.MLPPolicy` (PPO) or a
    :class:`tora.behavior.flight.FlightPolicy` (the Drone's cascade controller). All act
    through ``act(obs)`` and carry ``env_id``, ``weights``, ``obs_dim``, ``act_dim`` and
    ``info``."""
    _, json_path = policy_paths(path)
    doc = read_json_object(json_path, missing="no such policy file", what="behaviour policy")
    if doc.get("format") == MLP_POLICY_FORMAT:
        return load_mlp_policy(path)
    if doc.get("format") == FLIGHT_POLICY_FORMAT:
        return load_flight_policy(path)
    return load_policy(path)
