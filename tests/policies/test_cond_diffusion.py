"""CondDiffusion(P): the conditioned denoiser, classifier-free guidance, training and acting."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tora
from tora.data.trajectories import Trajectories
from tora.diffusion.samplers import SamplerConfig
from tora.envs import CRUISE_ID
from tora.envs.scripted import collect_cruise
from tora.errors import (
    CheckpointError,
    DataError,
    InvalidWeightsError,
    ShapeMismatchError,
    ToraError,
)
from tora.evaluate.rollout import rollout_sweep
from tora.nn.denoisers import ConditionedDenoiser, DenoiserConfig, MLPDenoiser, build_denoiser
from tora.policies.cond_diffusion import (
    COND_DIFFUSION,
    PLANNER_DIR,
    CondDiffusionConfig,
    CondDiffusionPolicy,
    combine_guidance,
    condition_dropout,
    episode_preferences,
    guided_eps,
    load_cond_diffusion,
    train_cond_diffusion,
)
from tora.train.checkpoint import load_tensors
from tora.train.inverse import InverseDynamicsTrainConfig
from tora.train.loop import OptimConfig
from tora.train.planner_io import INVERSE_DIR

TINY_NET = DenoiserConfig(hidden_dim=64, depth=2, time_dim=16)
SPEED, BALANCED, ENERGY = [0.9, 0.1], [0.5, 0.5], [0.1, 0.9]


def tiny_config(
    steps: int, seed: int = 0, p_uncond: float = 0.2, checkpoint_every: int = 1000
) -> CondDiffusionConfig:
    return CondDiffusionConfig(
        horizon=4,
        steps=steps,
        batch_size=64,
        diffusion_steps=20,
        p_uncond=p_uncond,
        seed=seed,
        denoiser=TINY_NET,
        inverse=InverseDynamicsTrainConfig(steps=max(steps // 2, 1), batch_size=64),
        optim=OptimConfig(lr=1e-3, checkpoint_every=checkpoint_every, log_every=10),
    )


def with_preferences(traj: Trajectories) -> Trajectories:
    """``traj`` with per-episode preferences: the collector's own, or, if it records none,
    w_speed growing with the episode's mean speed (the same ordering the collector uses)."""
    if traj.preferences is not None:
        return traj
    speed = np.array(
        [traj.rewards[traj.episode_slice(i), 0].mean() for i in range(traj.num_episodes)]
    )
    w = (speed - speed.min()) / (speed.max() - speed.min())
    return dataclasses.replace(traj, preferences=np.stack([w, 1 - w], axis=1))


@pytest.fixture(scope="module")
def data() -> Trajectories:
    return with_preferences(collect_cruise(12, seed=3, progress=False))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data: Trajectories) -> Path:
    """300 steps on 12 episodes (about 2 s): enough to follow the preference on Cruise."""
    out = tmp_path_factory.mktemp("cond_diffusion")
    # Module fixtures are set up before conftest's per-test single-thread fixture, and on a
    # busy machine a second torch thread makes these tiny steps ten times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train_cond_diffusion(data, out, tiny_config(300), "cpu", False)
    finally:
        torch.set_num_threads(threads)


def policy_of(run: Path, guidance: float | None = None, steps: int = 10) -> CondDiffusionPolicy:
    return load_cond_diffusion(run, "cpu", 0, sampler=SamplerConfig(steps=steps), guidance=guidance)


def weights_of(path: Path) -> dict[str, torch.Tensor]:
    return load_tensors(path / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    sa, sb = weights_of(a), weights_of(b)
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# ----------------------------------------------------------------------------- the network
def test_default_mlp_denoiser_state_dict_is_unchanged() -> None:
    """Existing TORA checkpoints keep loading: same keys and shapes as before conditioning."""
    model = MLPDenoiser(4, 3, DenoiserConfig())
    expected = {
        "time.1.weight": (256, 64),
        "time.1.bias": (256,),
        "body.0.weight": (256, 268),
        "body.0.bias": (256,),
        "body.1.weight": (256,),
        "body.1.bias": (256,),
        "body.4.weight": (256, 256),
        "body.4.bias": (256,),
        "body.5.weight": (256,),
        "body.5.bias": (256,),
        "body.8.weight": (256, 256),
        "body.8.bias": (256,),
        "body.9.weight": (256,),
        "body.9.bias": (256,),
        "out.weight": (12, 256),
        "out.bias": (12,),
    }
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_conditioned_denoiser_wraps_the_plain_network(kind: str) -> None:
    config = DenoiserConfig(kind=kind, hidden_dim=16, depth=2, heads=2, time_dim=8)  # type: ignore[arg-type]
    plain = build_denoiser(4, 3, config)
    cond = ConditionedDenoiser(4, 3, 2, config)
    keys = set(cond.state_dict())
    assert {k for k in keys if k.startswith("net.")} == {f"net.{k}" for k in plain.state_dict()}
    assert keys - {f"net.{k}" for k in plain.state_dict()} == {
        "null",
        "cond.0.weight",
        "cond.0.bias",
        "cond.2.weight",
        "cond.2.bias",
    }
    # With the condition embedding removed, the wrapper computes exactly the plain network.
    plain.load_state_dict({k[4:]: v for k, v in cond.state_dict().items() if k.startswith("net.")})
    g = torch.Generator().manual_seed(1)
    x, t = torch.randn(3, 4, 3, generator=g), torch.tensor([0, 7, 19])
    with torch.no_grad():
        cond.null.zero_()
    torch.testing.assert_close(cond.eval()(x, t), plain.eval()(x, t), rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["mlp", "transformer"])
def test_dropped_rows_use_the_null_token(kind: str) -> None:
    config = DenoiserConfig(kind=kind, hidden_dim=16, depth=2, heads=2, time_dim=8)  # type: ignore[arg-type]
    model = ConditionedDenoiser(4, 3, 2, config).eval()
    g = torch.Generator().manual_seed(2)
    x, t = torch.randn(4, 4, 3, generator=g), torch.tensor([1, 5, 9, 13])
    c = torch.tensor([[1.0, 0.0], [0.3, 0.7], [0.5, 0.5], [0.0, 1.0]])
    with torch.no_grad():
        uncond, conditional = model(x, t), model(x, t, c)
        mixed = model(x, t, c, torch.tensor([True, False, True, False]))
        all_dropped = model(x, t, c, torch.ones(4, dtype=torch.bool))
    torch.testing.assert_close(all_dropped, uncond, rtol=0, atol=0)
    torch.testing.assert_close(mixed[[0, 2]], uncond[[0, 2]])
    torch.testing.assert_close(mixed[[1, 3]], conditional[[1, 3]])
    assert not torch.allclose(uncond, conditional)
    with pytest.raises(ValueError, match="expected"):
        model(x, t, c[:, :1])


# ---------------------------------------------------------------------------------- guidance
def test_guidance_scale_one_is_conditional_and_zero_unconditional() -> None:
    torch.manual_seed(3)
    model = ConditionedDenoiser(4, 3, 2, TINY_NET).eval()
    x, t = torch.randn(5, 4, 3), torch.randint(0, 20, (5,))
    c = torch.tensor([[0.2, 0.8]]).expand(5, -1)
    with torch.no_grad():
        eps_c, eps_u = model(x, t, c), model(x, t)
        assert torch.equal(guided_eps(model, x, t, c, 1.0), eps_c)
        assert torch.equal(guided_eps(model, x, t, c, 0.0), eps_u)
        # Any other scale runs both in one doubled batch: eps_u + s (eps_c - eps_u).
        torch.testing.assert_close(
            guided_eps(model, x, t, c, 1.5), eps_u + 1.5 * (eps_c - eps_u), rtol=1e-5, atol=1e-5
        )
    a, b = torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    assert torch.equal(combine_guidance(a, b, 1.0), b)
    assert torch.equal(combine_guidance(a, b, 0.0), a)
    torch.testing.assert_close(combine_guidance(a, b, 2.0), 2 * b - a)


def test_condition_dropout_rate_and_seed() -> None:
    def draw(seed: int, p: float) -> torch.Tensor:
        return condition_dropout(20000, p, torch.Generator().manual_seed(seed), torch.device("cpu"))

    assert not draw(0, 0.0).any() and draw(0, 1.0).all()
    assert abs(draw(0, 0.2).float().mean().item() - 0.2) < 0.01
    assert torch.equal(draw(5, 0.2), draw(5, 0.2))
    assert not torch.equal(draw(5, 0.2), draw(6, 0.2))


def test_null_token_is_used_at_the_configured_rate_in_training(
    tmp_path: Path, data: Trajectories
) -> None:
    def rates(name: str, p: float) -> list[float]:
        config = tiny_config(40, p_uncond=p)
        config.inverse.steps = 1
        train_cond_diffusion(data, tmp_path / name, config, "cpu", False)
        history = json.loads((tmp_path / name / PLANNER_DIR / "history.json").read_text())
        return [h["uncond_frac"] for h in history["history"]]

    first = rates("a", 0.25)
    assert len(first) == 4  # 40 steps logged every 10: equal windows, so the mean is exact
    assert abs(np.mean(first) - 0.25) < 0.04  # 2560 draws: sd 0.009
    assert rates("b", 0.25) == first  # deterministic under the seed
    assert rates("c", 0.0) == [0.0] * 4


# ---------------------------------------------------------------------------------- training
def test_trains_end_to_end_and_runs_through_rollout_sweep(trained: Path) -> None:
    assert (trained / PLANNER_DIR / "config.json").exists()
    assert (trained / INVERSE_DIR / "config.json").exists()
    policy = COND_DIFFUSION.load(trained, "cpu", 0)
    assert isinstance(policy, CondDiffusionPolicy)
    assert policy.objective_names == ["speed", "energy"]
    assert policy.guidance == CondDiffusionConfig().guidance
    policy.sampler = SamplerConfig(steps=3)
    policy.check_spaces((3,), (1,))
    weights = np.array([SPEED, BALANCED, ENERGY])
    result = rollout_sweep(
        policy.act, lambda: tora.make_env(CRUISE_ID), weights, 2, 0, progress=False
    )
    assert result.returns.shape == (3, 2, 2)
    assert (result.lengths == 100).all()
    env = tora.make_env(CRUISE_ID)
    obs, _ = env.reset(seed=0)
    action = policy.act(obs, BALANCED)
    assert action.shape == (1,) and env.action_space.contains(action.astype(np.float32))
    plan = policy.plan(obs, BALANCED)
    assert plan.shape == (4, 3)
    np.testing.assert_allclose(plan[0], obs, atol=1e-5)  # the current state is inpainted


def test_method_record() -> None:
    assert COND_DIFFUSION.name == "cond_diffusion"
    assert COND_DIFFUSION.label == "CondDiffusion(P)"
    assert COND_DIFFUSION.config_cls is CondDiffusionConfig
    assert COND_DIFFUSION.train is train_cond_diffusion
    assert COND_DIFFUSION.sees_preferences
    defaults = CondDiffusionConfig()
    assert 0.1 <= defaults.p_uncond <= 0.25 and 1.2 <= defaults.guidance <= 1.5


def test_seeded_training_repeats_exactly_and_resumes(tmp_path: Path, data: Trajectories) -> None:
    train_cond_diffusion(data, tmp_path / "a", tiny_config(20), "cpu", False)
    train_cond_diffusion(data, tmp_path / "b", tiny_config(20), "cpu", False)
    for part in (PLANNER_DIR, INVERSE_DIR):
        assert_same_weights(tmp_path / "a" / part, tmp_path / "b" / part)
    # "Killed" after 10 steps, then resumed: the same weights as the uninterrupted run.
    train_cond_diffusion(data, tmp_path / "cut", tiny_config(10, checkpoint_every=10), "cpu", False)
    train_cond_diffusion(data, tmp_path / "cut", tiny_config(20, checkpoint_every=10), "cpu", False)
    assert_same_weights(tmp_path / "a" / PLANNER_DIR, tmp_path / "cut" / PLANNER_DIR)
    train_cond_diffusion(data, tmp_path / "c", tiny_config(20, seed=1), "cpu", False)
    a, c = weights_of(tmp_path / "a" / PLANNER_DIR), weights_of(tmp_path / "c" / PLANNER_DIR)
    assert not torch.equal(a["cond.0.weight"], c["cond.0.weight"])


def test_seeded_actions_repeat_and_rows_follow_their_weights(trained: Path) -> None:
    policy = policy_of(trained, steps=3)
    obs = np.array([0.5, 0.0, 1.0], dtype=np.float32)
    policy.seed(3)
    first = policy.act(obs, BALANCED)
    policy.seed(3)
    np.testing.assert_array_equal(first, policy.act(obs, BALANCED))
    # Row b follows row b of the weights only: swapping the other row's weight (same seed,
    # so the same starting noise) leaves it unchanged.
    obs2 = np.stack([obs, obs])

    def act(weights: list[list[float]]) -> np.ndarray:
        policy.seed(4)
        return policy.act(obs2, np.array(weights))

    mixed = act([SPEED, ENERGY])
    np.testing.assert_allclose(mixed[0], act([SPEED, SPEED])[0], atol=1e-5)
    np.testing.assert_allclose(mixed[1], act([ENERGY, ENERGY])[1], atol=1e-5)
    assert not np.allclose(mixed[0], mixed[1])


def test_more_speed_weight_drives_faster(trained: Path) -> None:
    """The known answer of the toy task: the speed-weighted plan earns more speed and less
    energy than the energy-weighted one, with and without guidance above 1."""
    for guidance in (1.0, 1.3):
        policy = policy_of(trained, guidance=guidance)
        result = rollout_sweep(
            policy.act,
            lambda: tora.make_env(CRUISE_ID),
            np.array([SPEED, ENERGY]),
            2,
            0,
            progress=False,
        )
        (speed_hi, energy_lo), (speed_lo, energy_hi) = result.mean_returns
        assert speed_hi > speed_lo + 10 and energy_hi > energy_lo + 10, result.mean_returns


@pytest.mark.slow
def test_speed_return_rises_with_speed_weight(tmp_path: Path) -> None:
    """At a larger budget the speed return is monotone over a sweep of five preferences."""
    data = with_preferences(collect_cruise(40, seed=0, progress=False))
    train_cond_diffusion(data, tmp_path, tiny_config(2000), "cpu", False)
    policy = policy_of(tmp_path)
    w = np.linspace(0.9, 0.1, 5)
    result = rollout_sweep(
        policy.act,
        lambda: tora.make_env(CRUISE_ID),
        np.stack([w, 1 - w], axis=1),
        3,
        0,
        progress=False,
    )
    assert (np.diff(result.mean_returns[:, 0]) < 0).all(), result.mean_returns


# -------------------------------------------------------------------------------- bad input
def test_missing_or_invalid_preferences_raise_data_error(
    tmp_path: Path, data: Trajectories
) -> None:
    with pytest.raises(DataError, match="preferences"):
        train_cond_diffusion(
            dataclasses.replace(data, preferences=None), tmp_path, tiny_config(1), "cpu", False
        )
    bad = data.preferences.copy()
    bad[2] = [1.5, -0.5]
    with pytest.raises(DataError, match="episode 2"):
        episode_preferences(dataclasses.replace(data, preferences=bad))
    assert not (tmp_path / PLANNER_DIR).exists()  # refused before any training


def test_bad_config_is_refused(tmp_path: Path, data: Trajectories) -> None:
    with pytest.raises(ValueError, match="p_uncond"):
        train_cond_diffusion(data, tmp_path, tiny_config(1, p_uncond=1.5), "cpu", False)
    config = tiny_config(1)
    config.guidance = -1.0
    with pytest.raises(ValueError, match="guidance"):
        train_cond_diffusion(data, tmp_path, config, "cpu", False)


def test_policy_rejects_bad_input(trained: Path) -> None:
    policy = policy_of(trained, steps=2)
    obs = np.zeros(3, dtype=np.float32)
    with pytest.raises(InvalidWeightsError, match="speed"):
        policy.act(obs, [1.0])
    with pytest.raises(InvalidWeightsError, match="sum to 1"):
        policy.act(obs, [0.5, 0.6])
    with pytest.raises(InvalidWeightsError, match="non-negative"):
        policy.act(obs, [1.5, -0.5])
    with pytest.raises(ShapeMismatchError):
        policy.act(np.zeros(5, dtype=np.float32), BALANCED)
    with pytest.raises(ShapeMismatchError, match="3 weight rows for 2"):
        policy.act(np.zeros((2, 3), dtype=np.float32), np.array([SPEED, BALANCED, ENERGY]))
    with pytest.raises(ValueError, match="NaN"):
        policy.act(np.array([np.nan, 0, 1], dtype=np.float32), BALANCED)
    with pytest.raises(ShapeMismatchError):
        policy.check_spaces((17,), (6,))
    with pytest.raises(ValueError, match="guidance"):
        policy_of(trained, guidance=float("nan"))


def test_loading_the_wrong_directory_is_refused(trained: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError):
        load_cond_diffusion(tmp_path, "cpu", 0)
    planner = json.loads((trained / PLANNER_DIR / "config.json").read_text())
    other = tmp_path / "other"
    (other / PLANNER_DIR).mkdir(parents=True)
    (other / PLANNER_DIR / "config.json").write_text(json.dumps({**planner, "kind": "x"}))
    with pytest.raises(CheckpointError, match="not a CondDiffusion"):
        load_cond_diffusion(other, "cpu", 0)
    assert issubclass(CheckpointError, ToraError)
