"""tora-rl: offline multi-objective RL whose trade-off is chosen at inference time.

TORA (Train Once, Realign Anytime) pretrains one diffusion planner on offline data, fine-tunes
a copy per objective with Diffusion-DPO, and composes them at sampling time as
sum_i w_i eps_i; an inverse dynamics model turns planned states into actions.

The Python API is the primary interface::

    import tora
    agent = tora.Agent.load("runs/demo/run")              # every objective model of the run
    env = tora.make_env("tora/Cruise-v0")
    obs, _ = env.reset(seed=0)
    action = agent.act(obs, weights=[0.3, 0.7])           # weights chosen per call
"""

from __future__ import annotations

from tora.data import Direction, Objective, Trajectories
from tora.data.formats import load_dataset, save_dataset
from tora.envs import make_env
from tora.planning import Agent
from tora.version import __version__

__all__ = [
    "Agent",
    "Direction",
    "Objective",
    "Trajectories",
    "__version__",
    "load_dataset",
    "make_env",
    "save_dataset",
]
