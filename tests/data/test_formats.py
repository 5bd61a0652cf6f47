"""Loaders and writers of every dataset format, on small files each test writes itself."""

from __future__ import annotations

import json
import os
import pickle
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pytest

from tora.data.formats import (
    FORMATS,
    detect_format,
    load_d4morl,
    load_dataset,
    load_dsrl,
    load_minari,
    load_native,
    save_d4morl,
    save_dataset,
    save_dsrl,
    save_minari,
    save_native,
)
from tora.data.trajectories import Direction, Objective, Trajectories
from tora.errors import DataError, FormatError
from tora.evaluate.inspect import format_summary, inspect_dataset

D4MORL_NAME = "MO-HalfCheetah-v2_50000_expert_uniform.pkl"
MINIMIZE_COST = (Objective("reward"), Objective("cost", Direction.MINIMIZE))


# ----------------------------------------------------------------------------------- helpers
def make_trajectories(
    lengths: Sequence[int] = (4, 6, 3),
    objectives: Sequence[Objective] = (Objective("a"), Objective("b")),
    *,
    obs_dim: int = 3,
    act_dim: int = 2,
    with_preferences: bool = True,
    seed: int = 0,
) -> Trajectories:
    """Episodes whose next observations are their following observations (as Minari needs);
    the first episode ends terminal, the others are cut by a timeout."""
    rng = np.random.default_rng(seed)
    k = len(objectives)
    episodes = []
    for i, n in enumerate(lengths):
        states = rng.normal(size=(n + 1, obs_dim)).astype(np.float32)
        terminals, timeouts = np.zeros(n, bool), np.zeros(n, bool)
        (terminals if i == 0 else timeouts)[-1] = True
        episode = {
            "observations": states[:-1],
            "next_observations": states[1:],
            "actions": rng.uniform(-1, 1, size=(n, act_dim)).astype(np.float32),
            "rewards": rng.normal(size=(n, k)).astype(np.float32),
            "terminals": terminals,
            "timeouts": timeouts,
        }
        if with_preferences:
            episode["preference"] = rng.dirichlet(np.ones(k)).astype(np.float32)
        episodes.append(episode)
    return Trajectories.from_episodes(episodes, objectives, {"env_id": "Toy-v0"})


def assert_same_data(a: Trajectories, b: Trajectories, *, preferences: bool = True) -> None:
    for name in ("observations", "next_observations", "actions", "rewards"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    for name in ("terminals", "timeouts", "episode_bounds"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.objectives == b.objectives
    if preferences:
        assert (a.preferences is None) == (b.preferences is None)
        if a.preferences is not None:
            np.testing.assert_array_equal(a.preferences, b.preferences)


def d4morl_records(lengths: Sequence[int] = (5, 3), k: int = 2, terminal_last: bool = False):
    """Raw D4MORL trajectory dicts, as the PEDA pickles hold them."""
    rng = np.random.default_rng(1)
    records = []
    for n in lengths:
        terminals = np.zeros(n, bool)
        terminals[-1] = terminal_last
        pref = rng.dirichlet(np.ones(k))
        records.append(
            {
                "observations": rng.normal(size=(n, 4)),
                "next_observations": rng.normal(size=(n, 4)),
                "actions": rng.normal(size=(n, 2)).astype(np.float32),
                "raw_rewards": rng.normal(size=(n, k)),
                "preference": np.tile(pref, (n, 1)),
                "terminals": terminals,
            }
        )
    return records


def write_dsrl(path: Path, terminals, timeouts, **overrides) -> Path:
    n = len(terminals)
    rng = np.random.default_rng(2)
    arrays = {
        "observations": rng.normal(size=(n, 3)).astype(np.float32),
        "next_observations": rng.normal(size=(n, 3)).astype(np.float32),
        "actions": rng.normal(size=(n, 2)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "costs": (rng.random(n) < 0.3).astype(np.float32),
        "terminals": np.asarray(terminals, bool),
        "timeouts": np.asarray(timeouts, bool),
        **overrides,
    }
    with h5py.File(path, "w") as f:
        for name, arr in arrays.items():
            f.create_dataset(name, data=arr)
    return path


def write_minari(directory: Path, rewards: Sequence[np.ndarray], metadata: dict) -> Path:
    """A Minari dataset written by hand (not by save_minari), episode groups in shuffled order."""
    (directory / "data").mkdir(parents=True)
    rng = np.random.default_rng(3)
    with h5py.File(directory / "data" / "main_data.hdf5", "w") as f:
        for i in reversed(range(len(rewards))):
            g = f.create_group(f"episode_{i * 5}")  # ids 0, 5, 10: sorting must be numeric
            t = len(rewards[i])
            g["observations"] = (i + rng.random((t + 1, 2))).astype(np.float32)
            g["actions"] = rng.normal(size=(t, 1)).astype(np.float32)
            g["rewards"] = rewards[i]
            g["terminations"] = np.zeros(t, bool)
            g["truncations"] = np.eye(1, t, t - 1, dtype=bool)[0]
            g.create_group("infos")
    (directory / "data" / "metadata.json").write_text(json.dumps(metadata))
    return directory


def truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


# ------------------------------------------------------------------------------ round trips
def test_native_round_trip_keeps_everything(tmp_path) -> None:
    traj = make_trajectories(objectives=MINIMIZE_COST)
    traj.metadata.update(source_format="d4morl", quality=np.str_("expert"), n=np.int64(3))
    save_native(traj, tmp_path / "t.h5")
    back = load_native(tmp_path / "t.h5")
    assert_same_data(traj, back)
    assert back.metadata["env_id"] == "Toy-v0"
    assert back.metadata["source_format"] == "tora"
    assert back.metadata["converted_from"] == "d4morl"
    assert back.metadata["n"] == 3 and back.metadata["quality"] == "expert"
    assert back.objectives[1].direction is Direction.MINIMIZE


def test_native_without_preferences(tmp_path) -> None:
    traj = make_trajectories(with_preferences=False)
    save_native(traj, tmp_path / "t.h5")
    assert_same_data(traj, load_dataset(tmp_path / "t.h5"))


def test_d4morl_round_trip(tmp_path) -> None:
    traj = make_trajectories()
    path = tmp_path / "MO-Swimmer-v2_3_amateur_narrow.pkl"
    save_d4morl(traj, path)
    back = load_d4morl(path)
    assert_same_data(traj, back.__class__(**{**vars(back), "objectives": traj.objectives}))
    assert back.objective_names == ["speed", "energy"]
    assert back.metadata == {
        "env_id": "MO-Swimmer-v2",
        "quality": "amateur",
        "preference_dist": "narrow",
        "source_format": "d4morl",
    }


def test_d4morl_save_uses_uniform_preference_when_missing(tmp_path) -> None:
    traj = make_trajectories(objectives=[Objective(n) for n in "xyz"], with_preferences=False)
    save_d4morl(traj, tmp_path / "d.pkl")
    back = load_d4morl(tmp_path / "d.pkl")
    np.testing.assert_allclose(back.preferences, np.full((3, 3), 1 / 3))
    assert back.objective_names == ["objective_0", "objective_1", "objective_2"]
    assert back.metadata["env_id"] is None


def test_dsrl_round_trip(tmp_path, recwarn) -> None:
    traj = make_trajectories(objectives=MINIMIZE_COST, with_preferences=False)
    path = tmp_path / "SafetyBallRun-v0-80-100.hdf5"
    save_dsrl(traj, path)
    back = load_dsrl(path)
    assert_same_data(traj, back)
    assert back.metadata["env_id"] == "SafetyBallRun-v0"
    assert not recwarn.list


def test_dsrl_save_marks_unflagged_episode_ends(tmp_path) -> None:
    traj = make_trajectories(lengths=(3, 4), objectives=MINIMIZE_COST)
    traj.timeouts[:] = False  # episode 2 now ends with no flag; DSRL would merge it away
    save_dsrl(traj, tmp_path / "s.hdf5")
    back = load_dsrl(tmp_path / "s.hdf5")
    np.testing.assert_array_equal(back.episode_bounds, [0, 3, 7])
    assert back.timeouts.tolist() == [False] * 6 + [True]


def test_dsrl_save_needs_a_reward_and_a_cost(tmp_path) -> None:
    with pytest.raises(DataError, match=r"reward.*cost"):
        save_dsrl(make_trajectories(), tmp_path / "s.hdf5")


@pytest.mark.parametrize(
    "objectives",
    [(Objective("reward"),), (Objective("speed"), Objective("energy")), MINIMIZE_COST],
)
def test_minari_round_trip(tmp_path, objectives) -> None:
    traj = make_trajectories(objectives=objectives, with_preferences=False)
    save_minari(traj, tmp_path / "ds")
    assert (tmp_path / "ds" / "data" / "main_data.hdf5").is_file()
    back = load_minari(tmp_path / "ds")
    assert_same_data(traj, back)
    assert back.metadata["env_id"] == "Toy-v0"
    assert back.metadata["source_format"] == "minari"


def test_save_dataset_infers_format_from_suffix(tmp_path) -> None:
    traj = make_trajectories(objectives=MINIMIZE_COST)
    for name, fmt in [("a.h5", "tora"), ("b.pkl", "d4morl"), ("c.hdf5", "dsrl")]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # d4morl warns that it drops directions
            save_dataset(traj, tmp_path / name)
        assert detect_format(tmp_path / name) == fmt
    save_dataset(traj, tmp_path / "m", format="minari")
    assert detect_format(tmp_path / "m") == "minari"
    with pytest.raises(FormatError, match="format="):
        save_dataset(traj, tmp_path / "x.bin")


def test_saves_leave_no_temporary_files(tmp_path) -> None:
    traj = make_trajectories(objectives=MINIMIZE_COST)
    save_native(traj, tmp_path / "a.h5")
    save_dsrl(traj, tmp_path / "b.hdf5")
    save_minari(traj, tmp_path / "m")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.hdf5", "m"]
    assert sorted(p.name for p in (tmp_path / "m" / "data").iterdir()) == [
        "main_data.hdf5",
        "metadata.json",
    ]


# -------------------------------------------------------------------------------- D4MORL
def test_d4morl_metadata_objectives_timeouts_preferences(tmp_path) -> None:
    records = d4morl_records(lengths=(5, 3))
    path = tmp_path / D4MORL_NAME
    path.write_bytes(pickle.dumps(records, protocol=4))
    traj = load_dataset(path)
    assert traj.metadata["env_id"] == "MO-HalfCheetah-v2"
    assert traj.metadata["quality"] == "expert"
    assert traj.metadata["preference_dist"] == "uniform"
    assert traj.metadata["source_format"] == "d4morl"
    assert traj.objective_names == ["speed", "energy"]
    assert all(o.direction is Direction.MAXIMIZE for o in traj.objectives)
    np.testing.assert_array_equal(traj.episode_lengths, [5, 3])
    assert traj.timeouts.tolist() == [False] * 4 + [True] + [False] * 2 + [True]
    assert not traj.terminals.any()
    np.testing.assert_allclose(traj.preferences, [r["preference"][0] for r in records], 1e-6)
    np.testing.assert_allclose(traj.rewards[:5], records[0]["raw_rewards"], rtol=1e-6)


def test_d4morl_terminal_episodes_get_no_timeout(tmp_path) -> None:
    path = tmp_path / "MO-Hopper-v3_2_expert_wide.pkl"
    path.write_bytes(pickle.dumps(d4morl_records(k=3, terminal_last=True), protocol=4))
    traj = load_d4morl(path)
    assert traj.objective_names == ["speed", "jump", "energy"]
    assert not traj.timeouts.any() and traj.terminals.sum() == 2


@pytest.mark.parametrize("module", ["numpy._core.multiarray", "numpy.core.multiarray"])
def test_d4morl_pickled_under_either_numpy_major_version(tmp_path, module) -> None:
    data = pickle.dumps(d4morl_records(), protocol=2)
    for name in (b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"):
        data = data.replace(name, module.encode() + b"\n")
    assert module.encode() + b"\n_reconstruct" in data
    path = tmp_path / "MO-Ant-v2_2_expert_uniform.pkl"
    path.write_bytes(data)
    traj = load_dataset(path)
    assert traj.objective_names == ["x_speed", "y_speed"]
    np.testing.assert_array_equal(traj.episode_lengths, [5, 3])


def test_malicious_d4morl_pickle_is_refused_and_not_run(tmp_path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return os.system, (f"touch {marker}",)

    records = d4morl_records()
    records[1]["observations"] = Exploit()
    path = tmp_path / D4MORL_NAME
    path.write_bytes(pickle.dumps(records, protocol=4))
    with pytest.raises(FormatError, match="refused"):
        load_dataset(path)
    assert not marker.exists()


def test_d4morl_wrong_structure_is_a_format_error(tmp_path) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps({"observations": np.zeros(3)}, protocol=4))
    with pytest.raises(FormatError, match="list of trajectory dicts"):
        load_d4morl(path)
    records = d4morl_records()
    del records[0]["raw_rewards"]
    path.write_bytes(pickle.dumps(records, protocol=4))
    with pytest.raises(FormatError, match="raw_rewards"):
        load_d4morl(path)


def test_d4morl_unequal_widths_are_a_data_error(tmp_path) -> None:
    records = d4morl_records()
    records[1]["observations"] = records[1]["observations"][:, :2]
    (tmp_path / "w.pkl").write_bytes(pickle.dumps(records, protocol=4))
    with pytest.raises(DataError, match="widths"):
        load_d4morl(tmp_path / "w.pkl")


# ---------------------------------------------------------------------------------- DSRL
def test_dsrl_objectives_and_episode_splitting(tmp_path) -> None:
    terminals = [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    timeouts = [0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0]
    path = write_dsrl(tmp_path / "SafetyCarRun-v0-40-651.hdf5", terminals, timeouts)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a file that ends on a flag must not warn
        traj = load_dataset(path)
    assert detect_format(path) == "dsrl"
    assert traj.objectives == MINIMIZE_COST
    assert traj.objectives[1].direction is Direction.MINIMIZE
    assert traj.has_costs and traj.summary()["has_costs"] is True
    np.testing.assert_array_equal(traj.episode_lengths, [3, 4, 3, 2])
    assert traj.metadata["env_id"] == "SafetyCarRun-v0"
    assert traj.metadata["source_format"] == "dsrl"


def test_dsrl_trailing_partial_episode_is_kept_with_warning(tmp_path) -> None:
    path = write_dsrl(tmp_path / "data.hdf5", [0, 1, 0, 0, 0], [0, 0, 0, 0, 0])
    with pytest.warns(UserWarning, match="partial episode"):
        traj = load_dsrl(path)
    np.testing.assert_array_equal(traj.episode_lengths, [2, 3])
    assert traj.metadata["env_id"] is None


def test_dsrl_env_id_from_attributes(tmp_path) -> None:
    path = write_dsrl(tmp_path / "data.hdf5", [0, 1], [0, 0])
    with h5py.File(path, "a") as f:
        f.attrs["env_id"] = "SafetyDroneCircle-v0"
    assert load_dsrl(path).metadata["env_id"] == "SafetyDroneCircle-v0"


def test_dsrl_missing_dataset_is_a_format_error(tmp_path) -> None:
    path = write_dsrl(tmp_path / "d.hdf5", [0, 1], [0, 0])
    with h5py.File(path, "a") as f:
        del f["next_observations"]
    with pytest.raises(FormatError, match="next_observations"):
        load_dsrl(path)


# -------------------------------------------------------------------------------- Minari
def test_minari_vector_rewards(tmp_path) -> None:
    rewards = [np.ones((3, 2), np.float32), np.full((2, 2), 2, np.float32)]
    meta = {"dataset_id": "mo/halfcheetah-v0", "env_spec": json.dumps({"id": "mo-hc-v5"})}
    directory = write_minari(tmp_path / "ds", rewards, meta)
    traj = load_dataset(directory)
    assert traj.objective_names == ["objective_0", "objective_1"]
    assert traj.metadata["env_id"] == "mo-hc-v5"
    assert traj.metadata["dataset_id"] == "mo/halfcheetah-v0"
    np.testing.assert_array_equal(traj.episode_lengths, [3, 2])  # episode_0 before episode_5
    np.testing.assert_array_equal(traj.episode_returns(), [[3, 3], [4, 4]])
    np.testing.assert_array_equal(traj.timeouts, [0, 0, 1, 0, 1])
    # observations are the first T rows, next_observations the last T rows of each episode
    with h5py.File(directory / "data" / "main_data.hdf5") as f:
        states = f["episode_0/observations"][()]
    np.testing.assert_array_equal(traj.observations[:3], states[:-1])
    np.testing.assert_array_equal(traj.next_observations[:3], states[1:])


def test_minari_names_from_metadata_and_file_path(tmp_path) -> None:
    rewards = [np.ones((2, 2), np.float32)] * 3
    meta = {"dataset_id": "x/y-v0", "reward_names": ["forward", "ctrl"]}
    directory = write_minari(tmp_path / "ds", rewards, meta)
    traj = load_minari(directory / "data" / "main_data.hdf5")
    assert traj.objective_names == ["forward", "ctrl"]
    assert traj.metadata["env_id"] == "x/y-v0"
    np.testing.assert_array_equal(traj.episode_lengths, [2, 2, 2])


def test_minari_scalar_rewards_are_named_reward(tmp_path) -> None:
    directory = write_minari(tmp_path / "ds", [np.ones(4, np.float32)], {})
    traj = load_minari(directory)
    assert traj.objective_names == ["reward"] and traj.metadata["env_id"] is None


def test_minari_dict_observations_are_refused(tmp_path) -> None:
    directory = write_minari(tmp_path / "ds", [np.ones(2, np.float32)], {})
    with h5py.File(directory / "data" / "main_data.hdf5", "a") as f:
        del f["episode_0/observations"]
        f.create_group("episode_0/observations").create_dataset("pos", data=np.zeros((3, 2)))
    with pytest.raises(FormatError, match="dict observations are not supported"):
        load_minari(directory)


def test_minari_bad_observation_count_is_a_data_error(tmp_path) -> None:
    directory = write_minari(tmp_path / "ds", [np.ones(2, np.float32)], {})
    with h5py.File(directory / "data" / "main_data.hdf5", "a") as f:
        del f["episode_0/observations"]
        f["episode_0/observations"] = np.zeros((2, 2), np.float32)
    with pytest.raises(DataError, match="expected 3"):
        load_minari(directory)


# ------------------------------------------------------------------------- native format
def _timestamped_file(path: Path) -> bytes:
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.zeros(3), track_times=True)
    return path.read_bytes()


def test_native_bytes_are_identical_on_repeated_save(tmp_path) -> None:
    traj = make_trajectories(objectives=MINIMIZE_COST)
    save_native(traj, tmp_path / "a.h5")
    control = _timestamped_file(tmp_path / "control.h5")
    time.sleep(1.05)  # HDF5 timestamps have 1 s resolution: a stored time would now differ
    save_native(traj, tmp_path / "b.h5")
    # The control proves the pause is long enough for a timestamp to show up in the bytes.
    assert _timestamped_file(tmp_path / "control.h5") != control
    assert (tmp_path / "a.h5").read_bytes() == (tmp_path / "b.h5").read_bytes()
    with h5py.File(tmp_path / "a.h5") as f:
        assert list(f.attrs) == ["format", "version", "objectives", "metadata"]


def test_native_newer_version_is_refused(tmp_path) -> None:
    path = tmp_path / "t.h5"
    save_native(make_trajectories(), path)
    with h5py.File(path, "a") as f:
        f.attrs["version"] = np.int64(2)
    with pytest.raises(FormatError, match="upgrade tora-rl"):
        load_dataset(path)


def test_native_bad_header_is_a_format_error(tmp_path) -> None:
    path = tmp_path / "t.h5"
    save_native(make_trajectories(), path)
    with h5py.File(path, "a") as f:
        f.attrs["objectives"] = "[not json"
    with pytest.raises(FormatError, match="objectives"):
        load_native(path)
    with h5py.File(path, "a") as f:
        del f.attrs["format"]
    with pytest.raises(FormatError, match="not a tora"):
        load_native(path)


# ------------------------------------------------------------------ corrupt and bad files
@pytest.mark.parametrize("fmt", ["tora", "dsrl", "minari"])
def test_truncated_hdf5_is_a_format_error(tmp_path, fmt) -> None:
    traj = make_trajectories(lengths=(50, 60), objectives=MINIMIZE_COST)
    path = tmp_path / ("m" if fmt == "minari" else "t.h5")
    save_dataset(traj, path, format=fmt)
    truncate(path / "data" / "main_data.hdf5" if fmt == "minari" else path)
    with pytest.raises(FormatError, match="truncated"):
        load_dataset(path, format=fmt)


def test_truncated_pickle_is_a_format_error(tmp_path) -> None:
    path = tmp_path / D4MORL_NAME
    path.write_bytes(pickle.dumps(d4morl_records(), protocol=4))
    truncate(path, 0.6)
    with pytest.raises(FormatError, match="truncated"):
        load_dataset(path)


@pytest.mark.parametrize("content", [b"", b"garbage bytes, not a dataset" * 10])
def test_garbage_is_a_format_error(tmp_path, content) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(content)
    with pytest.raises(FormatError, match="supported formats: d4morl, dsrl, minari, tora"):
        load_dataset(path)
    for fmt in FORMATS:
        with pytest.raises(FormatError):
            load_dataset(path, format=fmt)


def test_nan_is_a_data_error(tmp_path) -> None:
    obs = np.zeros((4, 3), np.float32)
    obs[2, 1] = np.nan
    path = write_dsrl(tmp_path / "nan.hdf5", [0, 1, 0, 1], [0, 0, 0, 0], observations=obs)
    with pytest.raises(DataError, match="NaN"):
        load_dataset(path)
    records = d4morl_records()
    records[1]["raw_rewards"][0, 0] = np.inf
    (tmp_path / "nan.pkl").write_bytes(pickle.dumps(records, protocol=4))
    with pytest.raises(DataError, match="rewards"):
        load_dataset(tmp_path / "nan.pkl")


# ------------------------------------------------------------------- detection, dispatch
def test_detect_format_on_each(tmp_path) -> None:
    traj = make_trajectories(objectives=MINIMIZE_COST)
    save_native(traj, tmp_path / "a.h5")
    save_dsrl(traj, tmp_path / "b.hdf5")
    save_minari(traj, tmp_path / "mds")
    (tmp_path / "c.pkl").write_bytes(pickle.dumps(d4morl_records(), protocol=4))
    assert detect_format(tmp_path / "a.h5") == "tora"
    assert detect_format(tmp_path / "b.hdf5") == "dsrl"
    assert detect_format(tmp_path / "mds") == "minari"
    assert detect_format(tmp_path / "mds" / "data" / "main_data.hdf5") == "minari"
    assert detect_format(tmp_path / "c.pkl") == "d4morl"
    # content decides, not the suffix
    os.replace(tmp_path / "a.h5", tmp_path / "a.pkl")
    assert detect_format(tmp_path / "a.pkl") == "tora"


def test_detect_format_errors(tmp_path) -> None:
    with pytest.raises(FormatError, match="does not exist"):
        detect_format(tmp_path / "nope.h5")
    with pytest.raises(FormatError, match="does not exist"):
        load_dataset(tmp_path / "nope.h5", format="tora")
    with pytest.raises(FormatError, match="Minari"):
        detect_format(tmp_path)
    with h5py.File(tmp_path / "other.hdf5", "w") as f:
        f["something"] = np.zeros(3)
    with pytest.raises(FormatError, match="unrecognised layout"):
        detect_format(tmp_path / "other.hdf5")
    with pytest.raises(FormatError, match="supported formats"):
        load_dataset(tmp_path / "other.hdf5", format="d4rl")


# --------------------------------------------------------------------------------- inspect
def test_inspect_dataset_and_format_summary(tmp_path) -> None:
    traj = make_trajectories(lengths=(4, 6), objectives=MINIMIZE_COST)
    save_native(traj, tmp_path / "t.h5")
    summary = inspect_dataset(tmp_path / "t.h5")
    assert summary["path"] == str(tmp_path / "t.h5")
    assert summary["format"] == "tora" and summary["episodes"] == 2
    assert summary["transitions"] == 10 and summary["has_costs"] is True
    text = format_summary(summary)
    lines = text.splitlines()
    assert lines[0].startswith("path") and ": " in lines[0]
    assert len({line.index(" : ") for line in lines if " : " in line}) == 1  # aligned
    cost_line = next(line for line in lines if line.strip().startswith("cost"))
    assert "minimize" in cost_line and "return min" in cost_line and "max" in cost_line
    assert "episode_length" in text and "min 4" in text
