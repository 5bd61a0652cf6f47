"""PPO behaviour policies: known answers on the SafeDash toy, exact resumption, the file format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import tora.safe.toy  # noqa: F401  (registers tora/SafeDash-v0)
from tora.behavior import ppo
from tora.behavior.ppo import MLPPolicy, PPOConfig, load_mlp_policy, train_ppo
from tora.errors import CheckpointError, ShapeMismatchError, ToraError
from tora.safe.toy import EPISODE_STEPS, SAFE_DASH_ID

# Small, fast settings: SafeDash episodes are 20 steps, so an update is 160 samples.
FAST = {"envs": 8, "lr": 3e-3, "minibatch": 64, "epochs": 5, "eval_episodes": 2}


def _params(policy: MLPPolicy) -> list[np.ndarray]:
    return [p.detach().numpy().copy() for p in policy.net.parameters()]


@pytest.mark.parametrize(
    ("weights", "reward", "cost"),
    [
        # Reward only: full throttle every step (reward 1, cost 1 per step).
        ((1.0, 0.0), EPISODE_STEPS, EPISODE_STEPS),
        # Cost only: stay at or below the limit (any throttle <= 0.5 costs nothing).
        ((0.0, 1.0), None, 0.0),
        # Equal weights: each unit of throttle above 0.5 earns 1 and costs 2, so the optimum
        # is throttle 0.5 exactly: reward T/2 at no cost.
        ((0.5, 0.5), EPISODE_STEPS / 2, 0.0),
    ],
)
def test_ppo_finds_the_known_optimum_of_each_preference(
    weights: tuple[float, float], reward: float | None, cost: float
) -> None:
    policy = train_ppo(SAFE_DASH_ID, weights, PPOConfig(updates=30, **FAST), progress=False)
    got_reward, got_cost = policy.info["return_vector"]
    if reward is not None:
        assert got_reward == pytest.approx(reward, abs=0.05 * EPISODE_STEPS)
    assert got_cost == pytest.approx(cost, abs=0.05 * EPISODE_STEPS)
    assert policy.info["env_steps"] == 30 * 8 * EPISODE_STEPS
    assert len(policy.info["history"]) == 30


def test_seeded_runs_repeat_and_other_seeds_differ() -> None:
    a = train_ppo(SAFE_DASH_ID, (1.0, 0.0), PPOConfig(updates=3, **FAST), progress=False)
    b = train_ppo(SAFE_DASH_ID, (1.0, 0.0), PPOConfig(updates=3, **FAST), progress=False)
    c = train_ppo(SAFE_DASH_ID, (1.0, 0.0), PPOConfig(updates=3, seed=1, **FAST), progress=False)
    for x, y in zip(_params(a), _params(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert a.info["history"] == b.info["history"]
    assert any(not np.array_equal(x, y) for x, y in zip(_params(a), _params(c), strict=True))


def test_a_resumed_run_equals_the_uninterrupted_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = train_ppo(SAFE_DASH_ID, (1.0, 0.0), PPOConfig(updates=6, **FAST), progress=False)
    state = tmp_path / "state"
    cfg = PPOConfig(updates=4, checkpoint_every=2, **FAST)
    train_ppo(SAFE_DASH_ID, (1.0, 0.0), cfg, state_path=state, progress=False)
    # Count the updates the second call runs: a resumed run does only the 2 that are left.
    calls: list[int] = []
    real = ppo._rollout
    monkeypatch.setattr(ppo, "_rollout", lambda *a: calls.append(a[7]) or real(*a))
    resumed = train_ppo(
        SAFE_DASH_ID,
        (1.0, 0.0),
        PPOConfig(updates=6, checkpoint_every=2, **FAST),
        state_path=state,
        progress=False,
    )
    assert calls == [4, 5]
    for x, y in zip(_params(whole), _params(resumed), strict=True):
        np.testing.assert_array_equal(x, y)
    assert resumed.info["history"] == whole.info["history"]
    np.testing.assert_array_equal(resumed.obs_stat.mean, whole.obs_stat.mean)
    # The state refuses other settings (here another learning rate) instead of mixing runs.
    with pytest.raises(CheckpointError, match="other settings"):
        other = PPOConfig(updates=8, **{**FAST, "lr": 1e-3})
        train_ppo(SAFE_DASH_ID, (1.0, 0.0), other, state_path=state, progress=False)


def test_a_state_saved_with_other_settings_is_refused_and_named(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first, other = PPOConfig(updates=1, **FAST), PPOConfig(updates=2, **{**FAST, "lr": 1e-3})
    train_ppo(SAFE_DASH_ID, (1.0, 0.0), first, state_path=state, progress=False)
    with pytest.raises(CheckpointError, match=r"other settings \(lr: 0\.003 -> 0\.001\)"):
        train_ppo(SAFE_DASH_ID, (1.0, 0.0), other, state_path=state, progress=False)


def test_the_alive_bonus_shifts_each_advantage_by_its_discounted_sum() -> None:
    """Same model, same seeds, same episodes: a bonus b on every step adds b to every TD error,
    so the GAE advantage at step t of a T-step episode grows by b * sum_{k<T-t} (gamma lam)^k,
    while the recorded returns (what the dataset and history see) do not change."""
    from tora.behavior.policy import RunningStat
    from tora.behavior.rollout import build_env, objective_signs
    from tora.nn.actor_critic import ActorCritic

    def batch(bonus: float) -> ppo._Batch:
        cfg = PPOConfig(envs=2, alive_bonus=bonus, gamma=0.9, lam=0.8)
        envs = [build_env(SAFE_DASH_ID) for _ in range(cfg.envs)]
        torch.manual_seed(0)
        model = ActorCritic(
            envs[0].observation_space.shape[0], 1, cfg.hidden, cfg.depth, cfg.init_log_std
        )
        signs = objective_signs(SAFE_DASH_ID)
        box = envs[0].action_space
        low, high = box.low.astype(float), box.high.astype(float)
        stat, w = RunningStat.zeros(2), np.array([1.0, 0.0])
        return ppo._rollout(model, envs, stat, w, signs, EPISODE_STEPS, cfg, 0, low, high)

    plain, bonus = batch(0.0), batch(0.5)
    remaining = np.arange(EPISODE_STEPS, 0, -1)  # steps left including t: T, T-1, ..., 1
    per_step = 0.5 * (1 - 0.72**remaining) / (1 - 0.72)
    expected = np.tile(per_step, 2)
    np.testing.assert_allclose(
        (bonus.advantages - plain.advantages).numpy(), expected, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(bonus.episode_returns, plain.episode_returns)
    np.testing.assert_array_equal(bonus.actions.numpy(), plain.actions.numpy())
    with pytest.raises(ToraError, match="alive_bonus"):
        PPOConfig(alive_bonus=float("inf"))
    # A default bonus leaves the fingerprint of older checkpoints unchanged.
    assert "alive_bonus" not in PPOConfig().fingerprint()
    assert PPOConfig(alive_bonus=1.0).fingerprint()["alive_bonus"] == 1.0


def test_reward_scale_divides_the_training_rewards_and_summarizes_their_sums() -> None:
    """With the value net at 0, gamma = lam = 1: the advantage at step t is the reward still
    to come divided by the scale, and ``discounted`` holds the unscaled reward so far, so the
    first step's advantage times the scale, the last step's sum and the episode's return agree."""
    from tora.behavior.policy import RunningStat
    from tora.behavior.rollout import build_env, objective_signs
    from tora.nn.actor_critic import ActorCritic

    def batch(scale: float) -> ppo._Batch:
        cfg = PPOConfig(envs=2, gamma=1.0, lam=1.0, reward_scale="return_std")
        envs = [build_env(SAFE_DASH_ID) for _ in range(cfg.envs)]
        torch.manual_seed(0)
        model = ActorCritic(2, 1, cfg.hidden, cfg.depth, cfg.init_log_std)
        with torch.no_grad():
            model.value[-1].weight.zero_()
            model.value[-1].bias.zero_()
        signs = objective_signs(SAFE_DASH_ID)
        box = envs[0].action_space
        low, high = box.low.astype(float), box.high.astype(float)
        stat, w = RunningStat.zeros(2), np.array([1.0, 0.0])
        return ppo._rollout(model, envs, stat, w, signs, EPISODE_STEPS, cfg, 0, low, high, scale)

    one, four = batch(1.0), batch(4.0)
    np.testing.assert_array_equal(four.actions.numpy(), one.actions.numpy())
    np.testing.assert_allclose(four.advantages.numpy(), one.advantages.numpy() / 4, rtol=1e-6)
    np.testing.assert_array_equal(four.discounted, one.discounted)  # the unscaled sums
    totals = one.episode_returns[:, 0]
    firsts = one.advantages.numpy()[::EPISODE_STEPS]
    lasts = one.discounted[EPISODE_STEPS - 1 :: EPISODE_STEPS]
    np.testing.assert_allclose(firsts, totals, rtol=1e-5)
    np.testing.assert_allclose(lasts, totals, rtol=1e-12)
    # The scale of an update is the std of every earlier discounted sum; 1 before any.
    cfg = PPOConfig(reward_scale="return_std")
    assert ppo._reward_scale(RunningStat.zeros(1), cfg) == 1.0
    sums = RunningStat.from_batch(np.array([[1.0], [3.0], [5.0]]))
    assert ppo._reward_scale(sums, cfg) == pytest.approx(2.0)
    assert ppo._reward_scale(sums, PPOConfig()) == 1.0
    with pytest.raises(ToraError, match="reward_scale"):
        PPOConfig(reward_scale="std")  # type: ignore[arg-type]
    assert "reward_scale" not in PPOConfig().fingerprint()


def test_a_resumed_run_with_reward_scale_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    """The return statistics are part of the saved state: without them a resumed run would
    restart its scale at 1 and part from the uninterrupted one."""
    settings = {**FAST, "reward_scale": "return_std"}
    whole = train_ppo(SAFE_DASH_ID, (1.0, 0.0), PPOConfig(updates=4, **settings), progress=False)
    state = tmp_path / "state"
    first = PPOConfig(updates=2, checkpoint_every=2, **settings)
    train_ppo(SAFE_DASH_ID, (1.0, 0.0), first, state_path=state, progress=False)
    rest = PPOConfig(updates=4, checkpoint_every=2, **settings)
    resumed = train_ppo(SAFE_DASH_ID, (1.0, 0.0), rest, state_path=state, progress=False)
    for x, y in zip(_params(whole), _params(resumed), strict=True):
        np.testing.assert_array_equal(x, y)
    assert resumed.info["history"] == whole.info["history"]


def test_warm_log_std_parent_starts_the_child_at_its_parents_noise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = train_ppo(SAFE_DASH_ID, (1.0, 0.0), PPOConfig(updates=2, **FAST), progress=False)
    assert parent.log_std is not None and parent.log_std.shape == (1,)
    parent.log_std = np.array([-2.0])
    parent.save(tmp_path / "parent")
    loaded = load_mlp_policy(tmp_path / "parent")
    np.testing.assert_array_equal(loaded.log_std, [-2.0])  # kept in the file

    first_noise: list[float] = []
    real = ppo._rollout

    def spy(*args: object) -> ppo._Batch:
        if not first_noise:
            first_noise.append(float(args[0].log_std.detach()[0]))  # type: ignore[attr-defined]
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(ppo, "_rollout", spy)
    for mode, expected in (("reset", -0.5), ("parent", -2.0)):
        first_noise.clear()
        config = PPOConfig(updates=1, warm_log_std=mode, **FAST)  # type: ignore[arg-type]
        train_ppo(SAFE_DASH_ID, (0.5, 0.5), config, init=loaded, progress=False)
        assert first_noise == [pytest.approx(expected)]
    loaded.log_std = None  # a file saved before the log std was kept
    with pytest.raises(ToraError, match="warm_log_std='reset'"):
        config = PPOConfig(updates=1, warm_log_std="parent", **FAST)
        train_ppo(SAFE_DASH_ID, (0.5, 0.5), config, init=loaded, progress=False)
    assert "warm_log_std" not in PPOConfig().fingerprint()
    with pytest.raises(ToraError, match="warm_log_std"):
        PPOConfig(warm_log_std="mean")  # type: ignore[arg-type]


def test_value_warmup_moves_only_the_value_network_then_the_policy(tmp_path: Path) -> None:
    parent = train_ppo(SAFE_DASH_ID, (1.0, 0.0), PPOConfig(updates=2, **FAST), progress=False)
    parent.save(tmp_path / "parent")
    init = load_mlp_policy(tmp_path / "parent")
    values: list[list[np.ndarray]] = []
    real = ppo._optimize

    def spy(model: ppo.ActorCritic, *args: object) -> dict[str, float]:
        out = real(model, *args)  # type: ignore[arg-type]
        values.append([p.detach().numpy().copy() for p in model.value.parameters()])
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ppo, "_optimize", spy)
        config = PPOConfig(updates=2, value_warmup=2, warm_log_std="parent", **FAST)
        warmed = train_ppo(SAFE_DASH_ID, (0.5, 0.5), config, init=init, progress=False)
    # Two value-only updates: the policy and its noise are the parent's to the bit, while
    # the value network moved at each update.
    for a, b in zip(_params(warmed), _params(init), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(warmed.log_std, init.log_std)
    assert not np.array_equal(values[0][0], values[1][0])
    # A third update, now past the warm-up, moves the policy.
    config = PPOConfig(updates=3, value_warmup=2, **FAST)
    moved = train_ppo(SAFE_DASH_ID, (0.5, 0.5), config, init=init, progress=False)
    assert any(not np.array_equal(a, b) for a, b in zip(_params(moved), _params(init), strict=True))
    # Without a warm start it does nothing; at 0 it stays out of the fingerprint.
    plain = PPOConfig(updates=1, **FAST)
    a = train_ppo(SAFE_DASH_ID, (1.0, 0.0), plain, progress=False)
    b = train_ppo(
        SAFE_DASH_ID, (1.0, 0.0), PPOConfig(updates=1, value_warmup=5, **FAST), progress=False
    )
    for x, y in zip(_params(a), _params(b), strict=True):
        np.testing.assert_array_equal(x, y)
    assert "value_warmup" not in plain.fingerprint()
    assert PPOConfig(value_warmup=3).fingerprint()["value_warmup"] == 3
    with pytest.raises(ToraError, match="value_warmup"):
        PPOConfig(value_warmup=-1)


def test_target_kl_cuts_an_update_short_and_none_runs_every_epoch() -> None:
    steps: list[int] = []
    real = ppo._optimize

    def spy(*args: object) -> dict[str, float]:
        out = real(*args)  # type: ignore[arg-type]
        steps.append(int(out["steps"]))
        return out

    # SafeDash: 160 samples per update, minibatch 64 -> 3 minibatches x 5 epochs = 15 steps.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ppo, "_optimize", spy)
        train_ppo(SAFE_DASH_ID, (1.0, 0.0), PPOConfig(updates=2, **FAST), progress=False)
        assert steps == [15, 15]
        steps.clear()
        config = PPOConfig(updates=2, target_kl=1e-4, **FAST)
        train_ppo(SAFE_DASH_ID, (1.0, 0.0), config, progress=False)
    # The first minibatch is always taken (nothing has moved yet); a step of lr 3e-3 on
    # this toy moves the policy past a KL of 1e-4 well before 15 steps.
    assert all(1 <= s < 15 for s in steps) and len(steps) == 2
    assert "target_kl" not in PPOConfig().fingerprint()
    assert PPOConfig(target_kl=0.02).fingerprint()["target_kl"] == 0.02
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ToraError, match="target_kl"):
            PPOConfig(target_kl=bad)


def test_save_and_load_round_trip_and_corruption(tmp_path: Path) -> None:
    policy = train_ppo(SAFE_DASH_ID, (1.0, 0.0), PPOConfig(updates=2, **FAST), progress=False)
    tensor_path, json_path = policy.save(tmp_path / "policy_000")
    loaded = load_mlp_policy(tmp_path / "policy_000")
    obs = np.random.default_rng(0).uniform(0, 1, size=(7, 2))
    # The round trip is exact: the same weights on the same input shape give the same bits.
    np.testing.assert_array_equal(loaded.act(obs), policy.act(obs))
    np.testing.assert_array_equal(loaded.act(obs[0]), policy.act(obs[0]))
    # One observation acts as its row of a batch, up to float32 rounding: the MLP runs in
    # float32, and matrix kernels may sum in another order for a batch of 1 than of 7 (by
    # CPU, thread count and library version; 1.5e-8 and 3e-8 seen on actions of about 0.2).
    # A wrong row or a mis-normalized observation moves the action by far more than 1e-5.
    np.testing.assert_allclose(loaded.act(obs[0]), policy.act(obs)[0], rtol=1e-5, atol=1e-6)
    assert loaded.env_id == SAFE_DASH_ID
    assert loaded.weights.tolist() == [1.0, 0.0]
    assert json.loads(json_path.read_text())["format"] == "tora-mlp-policy"
    with pytest.raises(ShapeMismatchError, match="size 2"):
        loaded.act(np.zeros(3))
    # A flipped byte in the tensors is caught by the checksum, a missing file by name.
    data = bytearray(tensor_path.read_bytes())
    data[-1] ^= 0xFF
    tensor_path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum"):
        load_mlp_policy(tmp_path / "policy_000")
    with pytest.raises(CheckpointError):
        load_mlp_policy(tmp_path / "nothing_here")


def test_actions_stay_in_the_box_and_bad_settings_are_refused() -> None:
    policy = train_ppo(SAFE_DASH_ID, (1.0, 0.0), PPOConfig(updates=1, **FAST), progress=False)
    with torch.no_grad():
        for p in policy.net.parameters():
            p.fill_(100.0)  # a wild net still acts inside the action box
    a = policy.act(np.ones((4, 2)))
    assert (a <= policy.high).all() and (a >= policy.low).all()
    with pytest.raises(ToraError, match="clip"):
        PPOConfig(clip=1.5)
    with pytest.raises(ToraError, match="envs"):
        PPOConfig(envs=0)
    with pytest.raises(ToraError, match="finite"):
        train_ppo(SAFE_DASH_ID, (np.nan, 1.0), PPOConfig(updates=1, **FAST), progress=False)


def test_a_ppo_behaviour_set_trains_resumes_and_collects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tora.behavior import collect_with_policies, load_behavior_set, train_behavior_set

    config = PPOConfig(updates=20, child_updates=5, chain_from="ends", **FAST)
    out = tmp_path / "set"
    trained = train_behavior_set(SAFE_DASH_ID, out, 3, config, progress=False)
    assert [type(p) for p in trained] == [MLPPolicy] * 3
    # Rows (1, 0), (0.5, 0.5), (0, 1): the roots are the ends, the middle starts from one.
    assert [p.info["parent"] for p in trained] == [None, 0, None]
    assert [p.info["updates"] for p in trained] == [20, 5, 20]
    reward_only, _, cost_only = (p.info["return_vector"] for p in trained)
    assert reward_only[0] > cost_only[0] and reward_only[1] > cost_only[1]
    assert not any(out.glob("*.state"))  # finished policies drop their training state

    # A rerun loads the finished set instead of training again.
    monkeypatch.setattr("tora.behavior.train.train_ppo", lambda *a, **k: pytest.fail("retrained"))
    again = train_behavior_set(SAFE_DASH_ID, out, 3, config, progress=False)
    loaded = load_behavior_set(out)
    obs = np.random.default_rng(1).uniform(0, 1, size=(5, 2))
    for a, b, c in zip(trained, again, loaded, strict=True):
        np.testing.assert_array_equal(a.act(obs), b.act(obs))
        np.testing.assert_array_equal(a.act(obs), c.act(obs))
    # Other settings are refused instead of mixed into the set.
    with pytest.raises(CheckpointError, match="config"):
        train_behavior_set(SAFE_DASH_ID, out, 3, PPOConfig(updates=21, **FAST), progress=False)

    # The collector rolls MLP policies out like linear ones: reward-heavy episodes earn more.
    traj = collect_with_policies(SAFE_DASH_ID, loaded, 12, seed=0, progress=False)
    assert traj.num_episodes == 12
    returns = traj.episode_returns()
    chosen = np.asarray(traj.metadata["policy_index"])
    assert (chosen == 0).any() and (chosen == 2).any()  # seeded: both ends are drawn
    assert returns[chosen == 0, 0].mean() > returns[chosen == 2, 0].mean()


def test_the_command_trains_a_ppo_set_and_records_its_settings(tmp_path: Path) -> None:
    from tora.cli.main import main

    out = tmp_path / "cli"
    args = ["behavior", "train", "--env", SAFE_DASH_ID, "--algorithm", "ppo", "--policies", "2"]
    args += ["--ppo-updates", "2", "--ppo-minibatch", "64", "--out", str(out)]
    assert main(args) == 0
    command = json.loads((out / "command.json").read_text())
    assert command["options"]["algorithm"] == "ppo"
    assert command["ppo"]["updates"] == 2 and "ars" not in command
    index = json.loads((out / "index.json").read_text())
    assert index["complete"] and index["config"]["algorithm"] == "ppo"
    assert [e["updates"] for e in index["policies"]] == [2, 2]


def test_episode_return_stops_at_the_end_or_the_limit() -> None:
    from tora.behavior.rollout import build_env, episode_return

    env = build_env(SAFE_DASH_ID)
    full_throttle = lambda _obs: np.ones(1)  # noqa: E731
    total, steps = episode_return(env, full_throttle, seed=0)
    assert steps == EPISODE_STEPS  # the env's own time limit
    np.testing.assert_allclose(total, [EPISODE_STEPS, EPISODE_STEPS])  # reward 1, cost 1 a step
    total, steps = episode_return(env, full_throttle, seed=0, limit=3)
    assert steps == 3
    np.testing.assert_allclose(total, [3.0, 3.0])
    with pytest.raises(ToraError, match="at least one step"):
        episode_return(env, full_throttle, seed=0, limit=0)
