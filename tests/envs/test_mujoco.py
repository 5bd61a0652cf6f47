"""D4MORL's MuJoCo tasks: spaces, objectives by hand, termination, seeding, ids and model files."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from tora.data.formats.d4morl import ENV_OBJECTIVES
from tora.envs import (
    ANT_ID,
    CRUISE_ID,
    D4MORL_ALIASES,
    ENV_IDS,
    EPISODE_STEPS,
    HALF_CHEETAH_ID,
    HOPPER_3OBJ_ID,
    HOPPER_ID,
    MUJOCO_ENV_IDS,
    SWIMMER_ID,
    WALKER2D_ID,
    make_env,
    mujoco_mo,
    objective_names,
    resolve_env_id,
)
from tora.envs.mujoco_models import (
    CACHE_ENV_VAR,
    gymnasium_asset,
    model_path,
    pgmorl_model_xml,
)
from tora.errors import ToraError

# id -> (obs dim, action dim, objective names, dt); dt = MuJoCo timestep x frame_skip.
SPEC = {
    HALF_CHEETAH_ID: (17, 6, ("speed", "energy"), 0.01 * 5),
    WALKER2D_ID: (17, 6, ("speed", "energy"), 0.002 * 4),
    HOPPER_ID: (11, 3, ("speed", "jump"), 0.002 * 5),
    HOPPER_3OBJ_ID: (11, 3, ("speed", "jump", "energy"), 0.002 * 5),
    SWIMMER_ID: (8, 2, ("speed", "energy"), 0.01 * 4),
    ANT_ID: (27, 8, ("x_speed", "y_speed"), 0.01 * 5),
}
STAYS_UP = (HALF_CHEETAH_ID, SWIMMER_ID, ANT_ID)  # zero actions never end these early
TOL = {"rtol": 1e-6, "atol": 1e-6}


def _reset(env_id: str, seed: int = 0, **kwargs: object) -> gym.Env:
    env = make_env(env_id, **kwargs)
    env.reset(seed=seed)
    env.action_space.seed(seed)
    return env


def _set(env: gym.Env, **qpos: float) -> None:
    """Place the robot at its initial pose at rest, with some qpos entries replaced."""
    u = env.unwrapped
    q = u.init_qpos.copy()
    for index, value in qpos.items():
        q[int(index.lstrip("q"))] = value
    u.set_state(q, np.zeros_like(u.init_qvel))


# ------------------------------------------------------------------------- every tora env
def test_registry_lists_every_tora_env() -> None:
    assert set(MUJOCO_ENV_IDS) == set(SPEC)
    assert (CRUISE_ID, *MUJOCO_ENV_IDS) == ENV_IDS
    assert EPISODE_STEPS == mujoco_mo.EPISODE_STEPS == 500
    for env_id in ENV_IDS:
        assert resolve_env_id(env_id) == env_id and env_id in gym.registry


@pytest.mark.parametrize("env_id", MUJOCO_ENV_IDS)
def test_spaces_reward_vector_and_info(env_id: str) -> None:
    obs_dim, act_dim, names, dt = SPEC[env_id]
    env = make_env(env_id)
    u = env.unwrapped
    assert env.spec is not None and env.spec.max_episode_steps == 500
    assert env.observation_space.shape == (obs_dim,) and env.action_space.shape == (act_dim,)
    assert u.reward_names == names == objective_names(env_id)
    assert u.reward_space.shape == (len(names),) and u.reward_space.dtype == np.float32
    assert u.dt == pytest.approx(dt)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.action_space.seed(0)
    for _ in range(20):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert reward.dtype == np.float32 and reward.shape == (len(names),)
        assert u.reward_space.contains(reward)
        np.testing.assert_array_equal(info["reward_vector"], reward)
        assert info["reward_vector"] is not reward  # a copy: editing one leaves the other
        assert not truncated
        if terminated:
            break


@pytest.mark.parametrize("env_id", MUJOCO_ENV_IDS)
def test_zero_action_episode_is_finite_and_ends_by_step_500(env_id: str) -> None:
    env = _reset(env_id)
    zero = np.zeros(env.action_space.shape)
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, _ = env.step(zero)
        steps += 1
        assert np.isfinite(obs).all() and np.isfinite(reward).all()
    if env_id in STAYS_UP:
        assert (steps, terminated, truncated) == (500, False, True)
    else:  # Walker2d and the Hopper fall over without control, then terminate
        assert terminated and not truncated and steps < 500


@pytest.mark.parametrize("env_id", MUJOCO_ENV_IDS)
def test_same_seed_same_trajectory_other_seed_differs(env_id: str) -> None:
    env = make_env(env_id)
    low, high = env.action_space.low, env.action_space.high
    actions = np.random.default_rng(0).uniform(low, high, size=(25, *low.shape))

    def run(seed: int) -> tuple[np.ndarray, np.ndarray]:
        env = make_env(env_id)
        obs, _ = env.reset(seed=seed)
        observations, rewards = [obs], []
        for a in actions:
            obs, reward, terminated, *_ = env.step(a)
            observations.append(obs)
            rewards.append(reward)
            if terminated:
                break
        return np.array(observations), np.array(rewards)

    first, again, other = run(7), run(7), run(8)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0][0], other[0][0])


@pytest.mark.parametrize("env_id", MUJOCO_ENV_IDS)
def test_reset_noise_is_d4morls(env_id: str) -> None:
    env = make_env(env_id)
    u = env.unwrapped
    dq, dv = [], []
    for seed in range(5):
        env.reset(seed=seed)
        dq.append(u.data.qpos - u.init_qpos)
        dv.append(u.data.qvel - u.init_qvel)
    dq_all, dv_all = np.abs(np.concatenate(dq)), np.abs(np.concatenate(dv))
    assert 0 < dq_all.max() <= 1e-3
    if env_id in (HALF_CHEETAH_ID, ANT_ID):  # qvel + N(0, 1e-3^2): beyond 1e-3 about 1 in 3
        assert dv_all.max() > 1e-3
    else:  # qvel + U(-1e-3, 1e-3)
        assert 0 < dv_all.max() <= 1e-3
    if env_id in (HOPPER_ID, HOPPER_3OBJ_ID):  # PEDA's hopper starts at exactly h0
        assert all(d[1] == 0.0 for d in dq)


# ------------------------------------------------------------------- objectives by hand
def _hand_step(env_id: str, action: np.ndarray, **kwargs: object) -> tuple:
    """Run 5 random steps (so the robot moves), then step ``action``; return the pieces."""
    env = _reset(env_id, seed=1, **kwargs)
    for _ in range(5):
        env.step(0.5 * env.action_space.sample())
    u = env.unwrapped
    before = u.data.qpos.copy()
    _, reward, _, _, info = env.step(action)
    return u, before, u.data.qpos.copy(), reward, info


def test_half_cheetah_objectives_by_hand() -> None:
    action = np.array([1.5, -0.3, 0.2, -2.0, 0.7, 0.1])
    u, before, after, reward, info = _hand_step(HALF_CHEETAH_ID, action)
    a = np.clip(action, -1, 1)
    v = (after[0] - before[0]) / 0.05
    np.testing.assert_allclose(u.data.ctrl, a)
    np.testing.assert_allclose(reward, [min(4.0, v) + 1, 4 - np.sum(a**2) + 1], **TOL)
    assert info["x_velocity"] == pytest.approx(v)


def test_half_cheetah_speed_is_capped_at_4() -> None:
    env = _reset(HALF_CHEETAH_ID)
    u = env.unwrapped
    qvel = np.zeros_like(u.init_qvel)
    qvel[0] = 12.0  # far faster than 4 m/s
    u.set_state(u.init_qpos, qvel)
    _, reward, *_ = env.step(np.zeros(6))
    assert reward[0] == 5.0 and reward[1] == 5.0


def test_walker_objectives_by_hand() -> None:
    action = np.array([0.4, -1.3, 0.9, 0.0, 2.0, -0.5])
    _, before, after, reward, _ = _hand_step(WALKER2D_ID, action)
    a = np.clip(action, -1, 1)
    v = (after[0] - before[0]) / 0.008
    np.testing.assert_allclose(reward, [v + 1, 4 - np.sum(a**2) + 1], **TOL)


@pytest.mark.parametrize("env_id", [HOPPER_ID, HOPPER_3OBJ_ID])
def test_hopper_objectives_by_hand_with_d4morl_clipping(env_id: str) -> None:
    action = np.array([3.0, -1.5, -5.0])
    u, before, after, reward, _ = _hand_step(env_id, action)
    a = np.array([2.0, -1.5, -4.0])  # clipped to [-2,2] x [-2,2] x [-4,4]
    np.testing.assert_allclose(u.data.ctrl, a)
    assert u.initial_height == 1.25
    v = (after[0] - before[0]) / 0.01
    jump = 12 * (after[1] - 1.25)
    if env_id == HOPPER_ID:
        others = 1 - 2e-4 * np.sum(a**2)
        expected = [1.5 * v + others, jump + others]
    else:
        expected = [1.5 * v + 1, jump + 1, 4 - np.sum(a**2) + 1]
    np.testing.assert_allclose(reward, expected, **TOL)


def test_swimmer_objectives_by_hand() -> None:
    action = np.array([0.5, -1.5])
    _, before, after, reward, _ = _hand_step(SWIMMER_ID, action)
    a = np.array([0.5, -1.0])
    v = (after[0] - before[0]) / 0.04
    np.testing.assert_allclose(reward, [v, 0.3 - 0.15 * np.sum(a**2)], **TOL)


def test_ant_objectives_by_hand() -> None:
    action = np.array([1.2, -0.4, 0.9, -1.7, 0.3, 0.0, -0.8, 0.6])
    _, before, after, reward, info = _hand_step(ANT_ID, action)
    a = np.clip(action, -1, 1)
    vx, vy = (after[:2] - before[:2]) / 0.05
    others = 1 - 0.5 * np.sum(a**2)
    np.testing.assert_allclose(reward, [vx + others, vy + others], **TOL)
    assert info["y_velocity"] == pytest.approx(vy)


def test_ant_curriculum_variant_only_lowers_the_control_cost() -> None:
    # The warm-up variant must be the same robot and motion: only c in v + 1 - c |a|^2 moves.
    from tora.envs import curriculum_kwargs

    kwargs = curriculum_kwargs(ANT_ID)
    assert kwargs == {"ctrl_cost_weight": 0.05}
    action = np.array([1.2, -0.4, 0.9, -1.7, 0.3, 0.0, -0.8, 0.6])
    _, _, after, reward, _ = _hand_step(ANT_ID, action)
    _, _, after_easy, reward_easy, _ = _hand_step(ANT_ID, action, **kwargs)
    np.testing.assert_array_equal(after, after_easy)
    lowered = (0.5 - 0.05) * np.sum(np.clip(action, -1, 1) ** 2)
    np.testing.assert_allclose(np.asarray(reward_easy) - reward, [lowered, lowered], **TOL)
    with pytest.raises(ToraError, match="ctrl_cost_weight"):
        _reset(ANT_ID, ctrl_cost_weight=float("nan"))
    assert curriculum_kwargs(HALF_CHEETAH_ID) == {}


# ------------------------------------------------------------------------------ termination
@pytest.mark.parametrize("degrees", [80.0, -80.0, 20.0])
def test_half_cheetah_terminates_past_50_degrees(degrees: float) -> None:
    env = _reset(HALF_CHEETAH_ID)
    _set(env, q2=np.deg2rad(degrees))
    _, _, terminated, *_ = env.step(np.zeros(6))
    angle = env.unwrapped.data.qpos[2]
    assert terminated == (abs(degrees) > 50)
    assert terminated == (abs(angle) >= np.deg2rad(50))


@pytest.mark.parametrize(
    ("qpos", "expected"),
    [
        ({"q1": 0.3}, True),  # torso height below 0.4
        ({"q3": np.deg2rad(-100)}, True),  # thigh bent past 90° (PGMORL's joints are free)
        ({"q5": np.deg2rad(95)}, True),  # foot
        ({"q3": np.deg2rad(-85)}, False),
        ({}, False),
    ],
)
def test_hopper_terminates_when_low_or_bent_past_90_degrees(
    qpos: dict[str, float], expected: bool
) -> None:
    env = _reset(HOPPER_ID)
    _set(env, **qpos)
    _, _, terminated, *_ = env.step(np.zeros(3))
    q = env.unwrapped.data.qpos
    assert terminated is expected
    assert expected == (q[1] <= 0.4 or bool(np.any(np.abs(q[2:6]) >= np.pi / 2)))


@pytest.mark.parametrize(
    ("qpos", "expected"),
    [({"q1": 0.7}, True), ({"q2": 1.1}, True), ({"q2": -1.1}, True), ({"q2": 0.9}, False)],
)
def test_walker_terminates_outside_healthy_box(qpos: dict[str, float], expected: bool) -> None:
    env = _reset(WALKER2D_ID)
    _set(env, **qpos)
    assert env.step(np.zeros(6))[2] is expected


def test_ant_terminates_only_on_non_finite_state(monkeypatch: pytest.MonkeyPatch) -> None:
    env = _reset(ANT_ID)
    u = env.unwrapped
    _set(env, q2=1.5)  # torso above z = 1: Gymnasium's Ant-v5 would call this unhealthy
    assert env.step(np.zeros(8))[2] is False
    assert u.data.qpos[2] > 1.0
    # MuJoCo resets a diverged simulation itself, so inject the NaN after the physics step.
    monkeypatch.setattr(u, "do_simulation", lambda a, n: u.data.qvel.__setitem__(0, np.nan))
    assert env.step(np.zeros(8))[2] is True


# ------------------------------------------------------------------------------ ids
def test_d4morl_names_resolve_to_tora_envs() -> None:
    env = make_env("MO-HalfCheetah-v2")
    assert env.spec is not None and env.spec.id == HALF_CHEETAH_ID
    assert type(env.unwrapped).__name__ == "MOHalfCheetahEnv"
    assert D4MORL_ALIASES["MO-Hopper-v3"] == HOPPER_3OBJ_ID
    assert set(D4MORL_ALIASES.values()) == set(MUJOCO_ENV_IDS)
    for alias, target in D4MORL_ALIASES.items():
        assert resolve_env_id(alias) == target
        # the D4MORL loader names a file's objectives the same way the env does
        assert objective_names(alias) == ENV_OBJECTIVES[alias]


def test_unknown_id_lists_tora_ids_and_aliases() -> None:
    with pytest.raises(ToraError, match="unknown environment id 'MO-Humanoid-v9'") as err:
        make_env("MO-Humanoid-v9")
    for name in (*ENV_IDS, *D4MORL_ALIASES):
        assert name in str(err.value)


def test_plain_gymnasium_ids_still_work() -> None:
    assert resolve_env_id("CartPole-v1") == "CartPole-v1"


def test_mo_gymnasium_id_without_the_package_names_the_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if "mo-halfcheetah-v5" in gym.registry:
        pytest.skip("mo-gymnasium is installed and already imported")
    monkeypatch.setitem(sys.modules, "mo_gymnasium", None)  # makes `import` fail
    with pytest.raises(ToraError, match="pip install mo-gymnasium packaging"):
        make_env("mo-halfcheetah-v5")


@pytest.fixture
def fake_mo_gymnasium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A stand-in ``mo_gymnasium`` that registers one env on import, like the real one."""
    package = tmp_path / "mo_gymnasium"
    package.mkdir()
    (package / "__init__.py").write_text(
        "import gymnasium\n"
        "gymnasium.register('mo-tora-test-v0', entry_point='tora.envs.cruise:CruiseEnv')\n"
    )
    real = sys.modules.pop("mo_gymnasium", None)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("mo_gymnasium", None)
    if real is not None:
        sys.modules["mo_gymnasium"] = real
    gym.registry.pop("mo-tora-test-v0", None)


def test_mo_gymnasium_ids_are_registered_by_a_lazy_import(fake_mo_gymnasium: None) -> None:
    assert "mo-tora-test-v0" not in gym.registry
    env = make_env("mo-tora-test-v0")
    assert env.spec is not None and env.spec.id == "mo-tora-test-v0"
    assert objective_names("mo-tora-test-v0") == ("speed", "energy")


# ------------------------------------------------------------------------------ model files
def test_pgmorl_hopper_model_differs_from_gymnasiums() -> None:
    pg = make_env(HOPPER_ID).unwrapped
    v5 = make_env(HOPPER_ID, model="gymnasium").unwrapped
    assert pg.model_variant == "pgmorl" and v5.model_variant == "gymnasium"
    np.testing.assert_array_equal(pg.model.actuator_gear[:, 0], [200, 200, 300])
    np.testing.assert_array_equal(pg.model.actuator_ctrlrange, [[-2, 2], [-2, 2], [-4, 4]])
    np.testing.assert_array_equal(pg.model.dof_damping[3:], [40, 40, 40])
    assert not pg.model.jnt_limited.any()
    np.testing.assert_array_equal(v5.model.actuator_gear[:, 0], [200, 200, 200])
    np.testing.assert_array_equal(v5.model.actuator_ctrlrange, [[-1, 1]] * 3)
    np.testing.assert_array_equal(v5.model.dof_damping[3:], [1, 1, 1])
    assert v5.model.jnt_limited[3:].all()
    np.testing.assert_array_equal(pg.action_space.high, [2, 2, 4])
    np.testing.assert_array_equal(v5.action_space.high, [1, 1, 1])
    # Everything else (geometry, masses, timestep) is Gymnasium's.
    np.testing.assert_array_equal(pg.model.body_mass, v5.model.body_mass)
    assert pg.model.opt.timestep == v5.model.opt.timestep


def test_gymnasium_hopper_model_clips_to_its_own_action_space() -> None:
    u, _, _, reward, _ = _hand_step(HOPPER_ID, np.array([3.0, -1.5, -5.0]), model="gymnasium")
    np.testing.assert_array_equal(u.data.ctrl, [1.0, -1.0, -1.0])
    assert np.isfinite(reward).all()


def test_pgmorl_walker_model_differs_from_gymnasiums() -> None:
    pg = make_env(WALKER2D_ID).unwrapped.model
    v5 = make_env(WALKER2D_ID, model="gymnasium").unwrapped.model
    np.testing.assert_array_equal(pg.dof_damping[3:], [3.0] * 6)
    np.testing.assert_array_equal(v5.dof_damping[3:], [0.1] * 6)
    np.testing.assert_allclose(pg.body_mass, 1.5 * v5.body_mass)  # density 1500 vs 1000

    def foot(model: mujoco.MjModel, name: str) -> float:
        return float(model.geom(name).friction[0])

    assert (foot(pg, "foot_geom"), foot(pg, "foot_left_geom")) == (0.9, 1.9)
    assert (foot(v5, "foot_geom"), foot(v5, "foot_left_geom")) == (1.9, 1.9)


@pytest.mark.parametrize(
    ("env_id", "pgmorl", "gymnasium"), [(SWIMMER_ID, 300, 150), (ANT_ID, 100, 150)]
)
def test_pgmorl_swimmer_and_ant_differ_only_in_gear(
    env_id: str, pgmorl: int, gymnasium: int
) -> None:
    pg = make_env(env_id).unwrapped.model
    v5 = make_env(env_id, model="gymnasium").unwrapped.model
    assert set(pg.actuator_gear[:, 0]) == {pgmorl} and set(v5.actuator_gear[:, 0]) == {gymnasium}
    for field in ("body_mass", "dof_damping", "geom_friction", "jnt_range", "actuator_ctrlrange"):
        np.testing.assert_array_equal(getattr(pg, field), getattr(v5, field))


def test_half_cheetah_model_is_gymnasiums_either_way() -> None:
    pg = make_env(HALF_CHEETAH_ID).unwrapped
    v5 = make_env(HALF_CHEETAH_ID, model="gymnasium").unwrapped
    assert pg.fullpath == v5.fullpath == str(gymnasium_asset("half_cheetah.xml"))
    with pytest.raises(ToraError, match="unknown model variant"):
        make_env(HALF_CHEETAH_ID, model="mujoco-menagerie")


def test_pgmorl_model_files_build_deterministically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(CACHE_ENV_VAR, str(tmp_path))
    assert pgmorl_model_xml("hopper") == pgmorl_model_xml("hopper")
    first = model_path("hopper")
    content = first.read_bytes()
    assert first.parent == tmp_path and first.name.startswith("hopper-pgmorl-")
    first.write_text("<mujoco>half written")  # a damaged cache file is rebuilt
    second = model_path("hopper")
    assert second == first and second.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == [first.name]  # no temp files left
    assert model_path("walker2d") != first
    assert model_path("hopper", "gymnasium") == gymnasium_asset("hopper.xml")
    with pytest.raises(ToraError, match="unknown model variant"):
        model_path("hopper", "pgmorl-v9")


def test_pickled_env_keeps_its_model_variant() -> None:
    env = make_env(HOPPER_ID, model="gymnasium").unwrapped
    clone = pickle.loads(pickle.dumps(env))
    assert type(clone) is type(env) and clone.model_variant == "gymnasium"
    assert clone.action_space == env.action_space


def test_building_envs_leaves_no_mujoco_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Gymnasium's half_cheetah.xml makes MuJoCo warn (deprecated settotalmass); by default
    # MuJoCo appends that to MUJOCO_LOG.TXT in the working directory on every build.
    monkeypatch.chdir(tmp_path)
    handler = mujoco.get_mju_user_warning()
    make_env(HALF_CHEETAH_ID)
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
    assert mujoco.get_mju_user_warning() is handler
