"""D4MORL-style data: preference sampling, policy matching, rollouts, `tora data make`."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tora.behavior import ARSConfig, LinearPolicy, RunningStat, shipped, train_behavior_set
from tora.behavior.collect import AMATEUR_SCALE, collect_with_policies
from tora.behavior.preferences import (
    closest_policy,
    normalize_returns,
    preference_range,
    sample_preferences,
)
from tora.cli.main import main
from tora.data.formats import load_dataset
from tora.envs import HALF_CHEETAH_ID, SWIMMER_ID, make_env
from tora.errors import ShapeMismatchError, ToraError

# Normalized returns of a made-up two-objective front: first components 0.2 ... 0.8.
FRONT_2 = np.array([[0.2, 0.8], [0.35, 0.65], [0.5, 0.5], [0.65, 0.35], [0.8, 0.2]])
FRONT_3 = normalize_returns([[1.0, 2.0, 3.0], [3.0, 1.0, 1.0], [1.0, 4.0, 1.0], [2.0, 2.0, 2.0]])


# ------------------------------------------------------------------------- preferences
def test_normalize_returns_divides_by_the_sum() -> None:
    nr = normalize_returns([[3.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(nr, [[0.75, 0.25], [0.5, 0.5]])


def test_normalize_returns_shifts_only_non_positive_objectives() -> None:
    returns = np.array([[-2.0, 4.0], [0.0, 1.0], [3.0, 2.0]])
    nr = normalize_returns(returns, eps=1e-3)
    shifted = np.column_stack([returns[:, 0] + 2.0 + 1e-3, returns[:, 1]])
    np.testing.assert_allclose(nr, shifted / shifted.sum(1, keepdims=True))
    assert (nr > 0).all()
    np.testing.assert_allclose(nr.sum(1), 1.0)
    # The order of the policies along each objective survives the shift.
    assert list(np.argsort(nr[:, 0])) == [0, 1, 2]


@pytest.mark.parametrize("kind", ["uniform", "wide", "narrow"])
@pytest.mark.parametrize("front", [FRONT_2, FRONT_3], ids=["2obj", "3obj"])
def test_preferences_lie_on_the_simplex(kind: str, front: np.ndarray) -> None:
    w = sample_preferences(kind, 500, front, np.random.default_rng(0))
    assert w.shape == (500, front.shape[1])
    assert (w >= 0).all()
    np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-12)


@pytest.mark.parametrize("kind", ["uniform", "wide", "narrow"])
def test_two_objective_preferences_stay_in_their_range(kind: str) -> None:
    w = sample_preferences(kind, 2000, FRONT_2, np.random.default_rng(1))
    lo, hi = preference_range(kind, FRONT_2)
    assert (w >= lo - 1e-12).all() and (w <= hi + 1e-12).all()
    if kind == "narrow":
        np.testing.assert_allclose((lo[0], hi[0]), (0.4, 0.6))
    else:
        np.testing.assert_allclose((lo[0], hi[0]), (0.2, 0.8))


def test_narrow_concentrates_nearer_the_middle_than_wide() -> None:
    rng = np.random.default_rng(2)
    wide = sample_preferences("wide", 2000, FRONT_2, rng)[:, 0]
    narrow = sample_preferences("narrow", 2000, FRONT_2, rng)[:, 0]
    uniform = sample_preferences("uniform", 2000, FRONT_2, rng)[:, 0]
    assert narrow.std() < 0.5 * wide.std()
    # Narrow: alpha ratio within [1/2, 2], so x_1 in [1/3, 2/3] of the shrunk range [0.4, 0.6].
    assert narrow.min() >= 0.4 + 0.2 / 3 - 1e-9 and narrow.max() <= 0.4 + 0.4 / 3 + 1e-9
    # Wide and uniform reach close to both ends of the range.
    for x in (wide, uniform):
        assert x.min() < 0.25 and x.max() > 0.75


def test_preference_sampling_is_seeded() -> None:
    a = sample_preferences("wide", 50, FRONT_3, np.random.default_rng(7))
    b = sample_preferences("wide", 50, FRONT_3, np.random.default_rng(7))
    c = sample_preferences("wide", 50, FRONT_3, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_unknown_preference_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="uniform"):
        sample_preferences("gaussian", 3, FRONT_2, np.random.default_rng(0))


def test_closest_policy_on_hand_made_points() -> None:
    nr = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    prefs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.0, 1.0], [0.75, 0.25]])
    # [0.75, 0.25] is exactly as far from policies 0 and 1: the lower index wins.
    np.testing.assert_array_equal(closest_policy(prefs, nr), [0, 1, 1, 2, 0])
    np.testing.assert_array_equal(closest_policy([0.45, 0.55], nr), [1])
    with pytest.raises(ShapeMismatchError):
        closest_policy(np.ones((2, 3)) / 3, nr)


# ------------------------------------------------------------------------- collection
def hand_made_policies(env_id: str, count: int = 4, scale: float = 0.05) -> list[LinearPolicy]:
    """Random linear policies with small actions and distinct made-up evaluated returns.

    The normalization divides observations by 100, so actions stay far inside the action box
    (never clipped) and the cheetah does not flip over.
    """
    env = make_env(env_id)
    obs_dim = env.observation_space.shape[0]
    low, high = env.action_space.low, env.action_space.high
    env.close()
    rng = np.random.default_rng(123)
    out = []
    for i in range(count):
        w = np.array([i / (count - 1), 1 - i / (count - 1)])
        p = LinearPolicy(
            rng.normal(0.0, scale, (low.size, obs_dim)),
            RunningStat(2, np.zeros(obs_dim), np.full(obs_dim, 100.0**2)),
            low,
            high,
            env_id,
            w,
        )
        p.info["return_vector"] = [100.0 + 200.0 * i, 700.0 - 200.0 * i]
        out.append(p)
    return out


@pytest.fixture(scope="module")
def cheetah_policies() -> list[LinearPolicy]:
    return hand_made_policies(HALF_CHEETAH_ID)


def test_collect_shapes_preferences_and_policy_choice(
    cheetah_policies: list[LinearPolicy],
) -> None:
    traj = collect_with_policies(
        "MO-HalfCheetah-v2",
        cheetah_policies,
        6,
        "expert",
        "wide",
        seed=3,
        progress=False,
        max_steps=40,
    )
    assert (traj.num_episodes, traj.obs_dim, traj.act_dim) == (6, 17, 6)
    assert traj.objective_names == ["speed", "energy"]
    assert traj.episode_lengths.max() <= 40
    # Episodes that were not terminated end with a timeout (the cut at 40 steps).
    last = traj.episode_bounds[1:] - 1
    assert (traj.terminals[last] | traj.timeouts[last]).all()
    meta = traj.metadata
    assert meta["env_id"] == HALF_CHEETAH_ID and meta["source_format"] == "tora"
    assert (meta["quality"], meta["prefs"], meta["seed"]) == ("expert", "wide", 3)
    assert meta["behavior"] == "ars-linear"
    assert traj.preferences is not None and traj.preferences.shape == (6, 2)
    np.testing.assert_allclose(traj.preferences.sum(1), 1.0, atol=1e-6)
    index = np.asarray(meta["policy_index"])
    nr = np.asarray(meta["policy_normalized_returns"])
    np.testing.assert_array_equal(index, closest_policy(traj.preferences, nr))
    # Expert data: every action is the chosen policy's deterministic action.
    for e in range(traj.num_episodes):
        sl = traj.episode_slice(e)
        policy = cheetah_policies[index[e]]
        np.testing.assert_allclose(
            traj.actions[sl], policy.act(traj.observations[sl]), rtol=1e-4, atol=1e-5
        )


def test_collect_runs_the_env_episode_by_default(cheetah_policies: list[LinearPolicy]) -> None:
    traj = collect_with_policies(HALF_CHEETAH_ID, cheetah_policies[:1] * 2, 1, progress=False)
    # Small actions do not flip the cheetah: the 500-step time limit ends the episode.
    assert traj.episode_lengths.tolist() == [500]
    assert traj.timeouts[-1] and not traj.terminals.any()


def test_collect_is_seeded(cheetah_policies: list[LinearPolicy]) -> None:
    def run(seed: int):
        return collect_with_policies(
            HALF_CHEETAH_ID, cheetah_policies, 4, "amateur", "uniform", seed, False, max_steps=30
        )

    a, b, c = run(5), run(5), run(6)
    for name in ("observations", "actions", "rewards", "terminals", "timeouts", "preferences"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.metadata == b.metadata
    assert not np.array_equal(a.preferences, c.preferences)
    assert not np.array_equal(a.observations[0], c.observations[0])


def test_amateur_scales_or_keeps_the_expert_action(
    cheetah_policies: list[LinearPolicy],
) -> None:
    kwargs = {"seed": 11, "progress": False, "max_steps": 50}
    expert = collect_with_policies(HALF_CHEETAH_ID, cheetah_policies, 4, "expert", **kwargs)
    amateur = collect_with_policies(HALF_CHEETAH_ID, cheetah_policies, 4, "amateur", **kwargs)
    # Same seed: same preferences, policies and start states, then the noise makes them differ.
    np.testing.assert_array_equal(expert.preferences, amateur.preferences)
    np.testing.assert_array_equal(expert.observations[0], amateur.observations[0])
    assert not np.array_equal(expert.actions, amateur.actions)
    index = amateur.metadata["policy_index"]
    kept = 0
    for e in range(amateur.num_episodes):
        sl = amateur.episode_slice(e)
        det = cheetah_policies[index[e]].act(amateur.observations[sl])
        taken = amateur.actions[sl].astype(np.float64)
        assert np.abs(det).max() < 1 / AMATEUR_SCALE[1]  # never clipped, so ratios are exact
        ratio = taken / det
        # One factor per step, shared by all action dimensions, within D4MORL's range.
        np.testing.assert_allclose(ratio, ratio[:, :1].repeat(det.shape[1], 1), rtol=1e-3)
        assert (ratio > AMATEUR_SCALE[0] - 1e-3).all() and (ratio < AMATEUR_SCALE[1] + 1e-3).all()
        kept += int(np.sum(np.all(np.abs(ratio - 1) < 1e-4, axis=1)))
    assert 0.2 < kept / amateur.num_transitions < 0.5  # 35% kept in expectation


def test_swimmer_amateur_takes_random_actions() -> None:
    policies = hand_made_policies(SWIMMER_ID, count=2, scale=0.01)
    traj = collect_with_policies(
        SWIMMER_ID, policies, 2, "amateur", seed=0, progress=False, max_steps=60
    )
    det = np.concatenate(
        [
            policies[i].act(traj.observations[traj.episode_slice(e)])
            for e, i in enumerate(traj.metadata["policy_index"])
        ]
    )
    same = np.all(np.isclose(traj.actions, det, atol=1e-5), axis=1)
    assert 0.15 < same.mean() < 0.6
    # Random actions cover the action box, far beyond the tiny deterministic ones.
    assert np.abs(traj.actions[~same]).max() > 0.5 and np.abs(det).max() < 0.2


def test_collect_rejects_unusable_policies(cheetah_policies: list[LinearPolicy]) -> None:
    bare = cheetah_policies[0].copy()
    bare.info.pop("return_vector")
    with pytest.raises(ToraError, match="return_vector"):
        collect_with_policies(HALF_CHEETAH_ID, [bare], 1, progress=False)
    swimmer = hand_made_policies(SWIMMER_ID, count=2)
    with pytest.raises(ShapeMismatchError, match="17"):
        collect_with_policies(HALF_CHEETAH_ID, swimmer, 1, progress=False)
    with pytest.raises(ToraError, match="quality"):
        collect_with_policies(HALF_CHEETAH_ID, cheetah_policies, 1, "novice", progress=False)


# ------------------------------------------------------------------ shipped sets and the CLI
@pytest.fixture(scope="module")
def policy_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) set from train_behavior_set: 3 policies, 1 ARS iteration of 5 steps."""
    out = tmp_path_factory.mktemp("policies") / "MO-HalfCheetah-v0"
    config = ARSConfig(
        directions=2, top=1, iterations=1, episode_steps=5, eval_episodes=1, step_size=0.5
    )
    train_behavior_set(HALF_CHEETAH_ID, out, 3, config, progress=False)
    return out


def test_missing_shipped_policies_say_how_to_train(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shipped, "POLICIES_DIR", tmp_path / "none")
    with pytest.raises(ToraError) as exc:
        shipped.load_shipped_policies("MO-Ant-v2")
    message = str(exc.value)
    assert "no behaviour policies ship for tora/MO-Ant-v0" in message
    assert "tora behavior train" in message and "--policies DIR" in message
    assert shipped.shipped_policy_envs() == []


def test_shipped_policies_load_from_the_package_folder(
    policy_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shipped, "POLICIES_DIR", tmp_path)
    shutil.copytree(policy_set, tmp_path / "MO-HalfCheetah-v0")
    assert shipped.shipped_policy_dir("MO-HalfCheetah-v2") == tmp_path / "MO-HalfCheetah-v0"
    assert shipped.shipped_policy_envs() == ["MO-HalfCheetah-v0"]
    policies = shipped.load_shipped_policies(HALF_CHEETAH_ID)
    assert len(policies) == 3 and all("return_vector" in p.info for p in policies)


def _make(policy_set: Path, out: Path, *extra: str) -> None:
    args = ["data", "make", "--env", "MO-HalfCheetah-v2", "--policies", str(policy_set)]
    args += ["--episodes", "3", "--seed", "4", "--out", str(out), "--no-progress", *extra]
    assert main(args) == 0


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("tora", "data.h5"), ("d4morl", "MO-HalfCheetah-v2_3_amateur_narrow.pkl")],
)
def test_data_make_is_byte_identical_per_seed(
    policy_set: Path, tmp_path: Path, fmt: str, name: str
) -> None:
    extra = ("--format", fmt, "--quality", "amateur", "--prefs", "narrow", "--no-plot")
    _make(policy_set, tmp_path / "a" / name, *extra)
    _make(policy_set, tmp_path / "b" / name, *extra)
    assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_data_make_round_trips_through_d4morl(
    policy_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    native, pkl = tmp_path / "data.h5", tmp_path / "MO-HalfCheetah-v2_3_expert_wide.pkl"
    _make(policy_set, native, "--prefs", "wide")
    out = capsys.readouterr().out
    assert f"to {native}" in out and "hypervolume" in out and "card plot" in out
    assert Path(f"{native}.card.png").stat().st_size > 0
    _make(policy_set, pkl, "--prefs", "wide", "--format", "d4morl", "--no-plot")
    a, b = load_dataset(native), load_dataset(pkl)
    assert a.metadata["policy_set"] == "dir:MO-HalfCheetah-v0"
    assert len(a.metadata["policy_index"]) == 3
    assert b.metadata["source_format"] == "d4morl" and b.objective_names == ["speed", "energy"]
    assert (b.metadata["quality"], b.metadata["preference_dist"]) == ("expert", "wide")
    np.testing.assert_array_equal(a.episode_returns(), b.episode_returns())
    np.testing.assert_array_equal(a.preferences, b.preferences)
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_array_equal(a.terminals, b.terminals)


def test_data_make_uses_the_shipped_set_and_d4morl_names(
    policy_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shipped, "POLICIES_DIR", tmp_path / "shipped")
    shutil.copytree(policy_set, tmp_path / "shipped" / "MO-HalfCheetah-v0")
    monkeypatch.chdir(tmp_path)
    args = ["data", "make", "--env", HALF_CHEETAH_ID, "--episodes", "2", "--no-progress"]
    assert main([*args, "--no-plot", "--format", "d4morl"]) == 0
    traj = load_dataset(tmp_path / "data" / "MO-HalfCheetah-v2_2_expert_uniform.pkl")
    assert traj.num_episodes == 2 and traj.metadata["env_id"] == "MO-HalfCheetah-v2"


def test_data_make_reports_missing_policies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(shipped, "POLICIES_DIR", tmp_path / "none")
    code = main(["data", "make", "--env", "MO-Swimmer-v2", "--out", str(tmp_path / "x.h5")])
    assert code == 2
    assert "no behaviour policies ship for tora/MO-Swimmer-v0" in capsys.readouterr().err
    assert not (tmp_path / "x.h5").exists()


def test_data_make_warns_that_cruise_ignores_quality(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cruise.h5"
    args = ["data", "make", "--episodes", "2", "--out", str(out), "--no-progress", "--no-plot"]
    assert main([*args, "--quality", "amateur"]) == 0
    assert "do not apply" in capsys.readouterr().err
    assert load_dataset(out).metadata["behavior"] == "scripted"


def test_data_make_warns_when_a_d4morl_name_hides_the_env(
    policy_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _make(policy_set, tmp_path / "plain.pkl", "--format", "d4morl", "--no-plot")
    assert "MO-HalfCheetah-v2_<...>.pkl" in capsys.readouterr().err
    assert load_dataset(tmp_path / "plain.pkl").objective_names == ["objective_0", "objective_1"]
