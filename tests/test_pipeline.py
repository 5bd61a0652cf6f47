"""End-to-end checks of training, resuming, loading and acting on the built-in Cruise task."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tora
from tora.diffusion.samplers import SamplerConfig
from tora.envs import CRUISE_ID
from tora.envs.scripted import collect_cruise
from tora.errors import (
    CheckpointError,
    InvalidWeightsError,
    ShapeMismatchError,
    UnknownObjectiveError,
)
from tora.evaluate.rollout import rollout_sweep
from tora.nn.denoisers import DenoiserConfig
from tora.pipeline import evaluate_run, finetune_run, pretrain_run
from tora.train.checkpoint import load_tensors
from tora.train.dpo import DPOConfig
from tora.train.inverse import InverseDynamicsTrainConfig
from tora.train.loop import OptimConfig
from tora.train.pretrain import PretrainConfig, pretrain_planner

TINY_NET = DenoiserConfig(hidden_dim=64, depth=2, time_dim=16)


def tiny_pretrain(steps: int, checkpoint_every: int = 1000) -> PretrainConfig:
    return PretrainConfig(
        horizon=4,
        steps=steps,
        batch_size=32,
        diffusion_steps=20,
        denoiser=TINY_NET,
        optim=OptimConfig(lr=1e-3, checkpoint_every=checkpoint_every, log_every=5),
    )


@pytest.fixture(scope="module")
def small_data() -> tora.Trajectories:
    return collect_cruise(12, seed=3, progress=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, small_data: tora.Trajectories) -> Path:
    """A run trained for a handful of steps: enough to test plumbing, not quality."""
    run = tmp_path_factory.mktemp("run")
    pretrain_run(
        small_data, run, tiny_pretrain(30), InverseDynamicsTrainConfig(steps=30), progress=False
    )
    dpo = DPOConfig(
        steps=10,
        batch_size=8,
        num_pairs=200,
        segment_length=8,
        optim=OptimConfig(lr=1e-4, ema_decay=0),
    )
    finetune_run(small_data, run, dpo, progress=False)
    return run


def state_of(path: Path) -> dict[str, torch.Tensor]:
    return load_tensors(path / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    sa, sb = state_of(a), state_of(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_seeded_pretraining_repeats_exactly(tmp_path: Path, small_data: tora.Trajectories) -> None:
    pretrain_planner(small_data, tmp_path / "a", tiny_pretrain(12), progress=False)
    pretrain_planner(small_data, tmp_path / "b", tiny_pretrain(12), progress=False)
    assert_same_weights(tmp_path / "a", tmp_path / "b")
    other = tiny_pretrain(12)
    other.seed = 1
    pretrain_planner(small_data, tmp_path / "c", other, progress=False)
    assert not torch.equal(
        state_of(tmp_path / "a")["out.weight"], state_of(tmp_path / "c")["out.weight"]
    )


def test_resumed_training_equals_uninterrupted(
    tmp_path: Path, small_data: tora.Trajectories
) -> None:
    pretrain_planner(
        small_data, tmp_path / "full", tiny_pretrain(20, checkpoint_every=10), progress=False
    )
    # "Killed" after 10 steps: the first run stops at its checkpoint, the second resumes it.
    pretrain_planner(
        small_data, tmp_path / "cut", tiny_pretrain(10, checkpoint_every=10), progress=False
    )
    pretrain_planner(
        small_data, tmp_path / "cut", tiny_pretrain(20, checkpoint_every=10), progress=False
    )
    assert_same_weights(tmp_path / "full", tmp_path / "cut")
    history = json.loads((tmp_path / "cut" / "history.json").read_text())["history"]
    assert [h["step"] for h in history] == [5, 10, 15, 20]


def test_run_layout_and_objective_hash(tiny_run: Path) -> None:
    assert sorted(p.name for p in (tiny_run / "objectives").iterdir()) == ["energy", "speed"]
    config = json.loads((tiny_run / "objectives" / "speed" / "config.json").read_text())
    assert config["objective"] == "speed" and len(config["reference_sha256"]) == 64
    assert json.loads((tiny_run / "objectives" / "speed" / "pairs.json").read_text())["pairs"] > 0


def test_agent_acts_with_weights_per_call(tiny_run: Path) -> None:
    agent = tora.Agent.load(tiny_run, device="cpu", sampler=SamplerConfig(steps=3))
    assert agent.objective_names == ["speed", "energy"]  # the dataset's column order
    env = tora.make_env(CRUISE_ID)
    obs, _ = env.reset(seed=0)
    action = agent.act(obs, [0.3, 0.7])
    assert action.shape == (1,) and env.action_space.contains(action.astype(np.float32))
    batch = agent.act(np.stack([obs, obs, obs]), np.array([[1, 0], [0.5, 0.5], [0, 1]]))
    assert batch.shape == (3, 1)


def test_one_hot_composition_equals_single_model_agent(tiny_run: Path) -> None:
    both = tora.Agent.load(tiny_run, device="cpu", sampler=SamplerConfig(steps=4), seed=7)
    speed_only = tora.Agent.load(
        tiny_run, ["speed"], device="cpu", sampler=SamplerConfig(steps=4), seed=7
    )
    obs = collect_cruise(1, seed=9, progress=False).observations[:5]
    # Exact by construction, not by luck of rounding: on the CPU the composition runs its
    # models one after another and skips a model whose weight is 0 for the whole batch, so
    # both agents call the same speed model on the same (5, H, D) batch and scale it by 1.0.
    # (Stacked mode would run the K models as one batched call, which may round differently.)
    assert both.composed.execution_mode("cpu") == "sequential"
    np.testing.assert_array_equal(both.plan(obs, [1.0, 0.0]), speed_only.plan(obs, [1.0]))


def test_seeded_actions_repeat(tiny_run: Path) -> None:
    agent = tora.Agent.load(tiny_run, device="cpu", sampler=SamplerConfig(steps=3))
    obs = np.array([0.5, 0.0, 1.0], dtype=np.float32)
    agent.seed(3)
    first = agent.act(obs, [0.5, 0.5])
    agent.seed(3)
    np.testing.assert_array_equal(first, agent.act(obs, [0.5, 0.5]))


def test_agent_rejects_bad_input(tiny_run: Path) -> None:
    agent = tora.Agent.load(tiny_run, device="cpu", sampler=SamplerConfig(steps=2))
    obs = np.zeros(3, dtype=np.float32)
    with pytest.raises(InvalidWeightsError, match="speed"):
        agent.act(obs, [1.0])
    with pytest.raises(InvalidWeightsError, match="sum to 1"):
        agent.act(obs, [0.5, 0.6])
    with pytest.raises(InvalidWeightsError, match="non-negative"):
        agent.act(obs, [1.5, -0.5])
    with pytest.raises(InvalidWeightsError, match="finite"):
        agent.act(obs, [float("nan"), 1.0])
    with pytest.raises(ShapeMismatchError):
        agent.act(np.zeros(5, dtype=np.float32), [0.5, 0.5])
    with pytest.raises(ValueError, match="NaN"):
        agent.act(np.array([np.nan, 0, 1], dtype=np.float32), [0.5, 0.5])
    with pytest.raises(ShapeMismatchError):
        agent.check_spaces((17,), (6,))
    with pytest.raises(UnknownObjectiveError, match="available"):
        tora.Agent.load(tiny_run, ["safety"], device="cpu")


def test_objective_from_another_reference_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    config_path = copy / "objectives" / "speed" / "config.json"
    config = json.loads(config_path.read_text())
    config["reference_sha256"] = "0" * 64
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="different reference"):
        tora.Agent.load(copy, device="cpu")


def test_inverse_dynamics_of_another_stride_is_refused(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    config_path = copy / "inverse_dynamics" / "config.json"
    config = json.loads(config_path.read_text())
    config["stride"] += 1
    config_path.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="does not match the planner"):
        tora.Agent.load(copy, device="cpu")


def test_finetune_rejects_unknown_objective_and_wrong_dims(
    tiny_run: Path, small_data: tora.Trajectories
) -> None:
    from tora.data.trajectories import Trajectories

    with pytest.raises(UnknownObjectiveError, match="speed"):
        finetune_run(small_data, tiny_run, DPOConfig(steps=1), ["comfort"], progress=False)
    wider = Trajectories(
        observations=np.pad(small_data.observations, ((0, 0), (0, 1))),
        next_observations=np.pad(small_data.next_observations, ((0, 0), (0, 1))),
        actions=small_data.actions,
        rewards=small_data.rewards,
        terminals=small_data.terminals,
        timeouts=small_data.timeouts,
        episode_bounds=small_data.episode_bounds,
        objectives=small_data.objectives,
    )
    with pytest.raises(ShapeMismatchError, match="4 dims"):
        finetune_run(wider, tiny_run, DPOConfig(steps=1), ["speed"], progress=False)


def test_evaluate_run_sweeps_all_weights_as_one_batch(tiny_run: Path) -> None:
    weights = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    result = evaluate_run(
        tiny_run,
        weights,
        2,
        0,
        CRUISE_ID,
        sampler=SamplerConfig(steps=2),
        device="cpu",
        progress=False,
    )
    assert result.returns.shape == (3, 2, 2)
    assert result.objective_names == ["speed", "energy"]
    assert (result.lengths == 100).all()


def test_rollout_batches_one_policy_call_per_step() -> None:
    calls: list[int] = []

    def policy(obs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        calls.append(obs.shape[0])
        return np.where(weights[:, :1] > 0.5, 1.0, -1.0)  # full throttle if speed-weighted

    res = rollout_sweep(
        policy,
        lambda: tora.make_env(CRUISE_ID),
        np.array([[1.0, 0.0], [0.0, 1.0]]),
        3,
        0,
        progress=False,
    )
    assert calls == [6] * 100
    speed, energy = res.mean_returns[:, 0], res.mean_returns[:, 1]
    assert speed[0] > speed[1] and energy[1] == pytest.approx(100.0)  # zero throttle costs nothing


def test_an_agent_planning_alone_with_one_model_is_that_models_agent(tiny_run: Path) -> None:
    both = tora.Agent.load(tiny_run, device="cpu", sampler=SamplerConfig(steps=4))
    speed_only = tora.Agent.load(tiny_run, ["speed"], device="cpu", sampler=SamplerConfig(steps=4))
    alone = both.planning_alone(speed_only.composed.models[0], "speed", seed=7)
    speed_only.seed(7)
    obs = collect_cruise(1, seed=9, progress=False).observations[:5]
    # The same model on the same batch with the same noise: exact.
    np.testing.assert_array_equal(alone.plan(obs, [1.0]), speed_only.plan(obs, [1.0]))
    assert alone.objective_names == ["speed"] and alone.inverse is both.inverse


def test_finetune_run_refuses_an_unknown_objective_before_training_any(tmp_path: Path) -> None:
    # The first name is real, but the run has no reference planner: had it been trained
    # first, the error would be that missing planner, not the unknown second name.
    data = collect_cruise(2, seed=0, progress=False)
    names = [data.objective_names[0], "no-such-objective"]
    with pytest.raises(UnknownObjectiveError, match="no-such-objective"):
        finetune_run(data, tmp_path / "run", DPOConfig(steps=1), names, progress=False)
    assert not (tmp_path / "run").exists()
