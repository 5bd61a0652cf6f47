"""Behaviour policies trained by the project: linear ARS policies over a preference grid.

D4MORL collected its datasets with PGMORL checkpoints that cannot be downloaded here; this
package trains comparable behaviour policies itself with Augmented Random Search (Mania et
al. 2018) on the scalarized return w . R, one policy per preference, each warm-started from a
trained neighbour as PGMORL grows its population (Xu et al. 2020). Where a linear map is not
enough (the Circle tasks of Bullet-Safety-Gym), :mod:`tora.behavior.ppo` trains small MLP
policies with PPO on the same scalarized return; the Drone's circle task, which neither
learner flies within budget, gets cascade flight controllers whose setpoints are searched per
preference (:mod:`tora.behavior.flight`).
"""

from __future__ import annotations

from tora.behavior.ars import ARSConfig, IterationInfo, RolloutRunner, ars_update, train_ars
from tora.behavior.collect import collect_with_policies
from tora.behavior.flight import FlightConfig, FlightPolicy, load_flight_policy
from tora.behavior.make import make_dataset
from tora.behavior.policy import LinearPolicy, RunningStat, load_policy
from tora.behavior.ppo import MLPPolicy, PPOConfig, load_mlp_policy, train_ppo
from tora.behavior.shipped import load_shipped_policies, shipped_policy_dir
from tora.behavior.train import SetProgress, chain_order, load_behavior_set, train_behavior_set

__all__ = [
    "ARSConfig",
    "FlightConfig",
    "FlightPolicy",
    "IterationInfo",
    "LinearPolicy",
    "MLPPolicy",
    "PPOConfig",
    "RolloutRunner",
    "RunningStat",
    "SetProgress",
    "ars_update",
    "chain_order",
    "collect_with_policies",
    "load_behavior_set",
    "load_flight_policy",
    "load_mlp_policy",
    "load_policy",
    "load_shipped_policies",
    "make_dataset",
    "shipped_policy_dir",
    "train_ars",
    "train_behavior_set",
    "train_ppo",
]
