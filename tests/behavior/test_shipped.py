"""Every shipped behaviour-policy set must load and beat a random policy on its own objective."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tora.behavior import load_shipped_policies
from tora.behavior.safe import is_safety_task
from tora.behavior.shipped import shipped_policy_envs
from tora.envs import make_env
from tora.errors import ToraError
from tora.evaluate.rollout import reward_vector

# The safe-RL sets have no cost-only corner to compare with a random policy; their checks are
# in test_safe_behavior.py.
SHIPPED = [f for f in shipped_policy_envs() if not is_safety_task(f"tora/{f}")]


def episode_return(env_id: str, act: Callable[[np.ndarray], np.ndarray], seed: int) -> np.ndarray:
    env = make_env(env_id)
    obs, _ = env.reset(seed=seed)
    total, done = None, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(act(obs))
        r = reward_vector(reward, info)
        total = r if total is None else total + r
        done = terminated or truncated
    env.close()
    return total


def test_halfcheetah_ships() -> None:
    assert "MO-HalfCheetah-v0" in SHIPPED


@pytest.mark.parametrize("folder", SHIPPED)
def test_corner_policies_beat_random_on_their_objective(folder: str) -> None:
    env_id = f"tora/{folder}"
    policies = load_shipped_policies(env_id)
    assert len(policies) >= 11
    space = make_env(env_id).action_space
    space.seed(0)
    random_return = episode_return(env_id, lambda _obs: space.sample(), seed=0)
    for k in range(len(random_return)):
        corner = max(policies, key=lambda p: p.weights[k])  # the policy most devoted to k
        assert corner.weights[k] == 1.0
        policy_return = episode_return(env_id, corner.act, seed=0)
        assert policy_return[k] > random_return[k], (k, policy_return, random_return)


def test_the_set_digest_follows_the_files_and_names_the_data(tmp_path: Path) -> None:
    from tora.behavior.make import data_source_tag
    from tora.behavior.shipped import policy_set_digest, shipped_policy_dir

    shipped = shipped_policy_dir("tora/MO-HalfCheetah-v0")
    copy = tmp_path / "copy"
    shutil.copytree(shipped, copy)
    (copy / "command.json").write_text("{}")  # how it was trained is not what it does
    assert policy_set_digest(copy) == policy_set_digest(shipped)
    assert data_source_tag("tora/MO-HalfCheetah-v0") == "set" + policy_set_digest(shipped)[:12]
    first = sorted(copy.glob("policy_*.safetensors"))[0]
    first.write_bytes(first.read_bytes()[:-1] + b"\x00")  # one byte of one policy changed
    assert policy_set_digest(copy) != policy_set_digest(shipped)
    assert data_source_tag("tora/Cruise-v0") == "scripted"
    with pytest.raises(ToraError, match="no behaviour set"):
        policy_set_digest(tmp_path)
