"""The Drone's cascade flight controllers: the controller's signs on hand-built states, real
flights reaching DSRL's reward range, the search and set, files, resumption and the command."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from tora.behavior import flight
from tora.behavior.flight import (
    FLIGHT_ENV_ID,
    PARAM_NAMES,
    FlightConfig,
    FlightPolicy,
    choose_pair,
    flight_action,
    load_flight_policy,
)
from tora.behavior.loader import load_behavior_policy
from tora.behavior.train import load_behavior_set, train_behavior_set
from tora.errors import CheckpointError, ShapeMismatchError, ToraError

# DSRL's DroneCircle constants (REFERENCE.md): R_max 996.3892, R_min 207.7942, max cost 100.
R_MIN, R_MAX = 207.7942, 996.3892
TINY = FlightConfig(radii=(5.5, 7.0), speeds=(4.0, 5.0), episodes=1)


def _state(
    pos: tuple[float, float, float],
    vel: tuple[float, float, float] = (0.0, 0.0, 0.0),
    roll: float = 0.0,
) -> np.ndarray:
    """An observation in the package's scaling, level or rolled by ``roll`` about x."""
    obs = np.zeros(18)
    obs[0:3] = np.asarray(pos) / 10.0
    obs[3:6] = np.asarray(vel) / 5.0
    obs[6:10] = [np.sin(roll / 2), 0.0, 0.0, np.cos(roll / 2)]  # (x, y, z, w)
    return obs


def test_the_controller_holds_a_hover_and_corrects_height_and_roll() -> None:
    # At rest, level, on the circle at the flight height, with speed 0: nothing to correct, so
    # every rotor spins at hover speed (action 0).
    hover = FlightConfig().params(6.0, 0.0)
    np.testing.assert_allclose(flight_action(_state((6.0, 0.0, 1.0)), hover), 0.0, atol=1e-12)
    # Too low: all four rotors speed up by the same amount.
    low = flight_action(_state((6.0, 0.0, 0.5)), hover)
    assert (low > 0).all() and np.ptp(low) < 1e-12
    # Rolled about +x, the body axis leans to -y: rotor 1 (-y) pushes harder than rotor 3
    # (+y) to roll back, and the pitch rotors 0 and 2 stay equal.
    rolled = flight_action(_state((6.0, 0.0, 1.0), roll=0.2), hover)
    assert rolled[1] > rolled[3]
    assert rolled[0] == pytest.approx(rolled[2], abs=1e-12)
    # A batch gives the rows one by one would.
    batch = np.stack([_state((6.0, 0.0, 0.5)), _state((6.0, 0.0, 1.0), roll=0.2)])
    np.testing.assert_allclose(flight_action(batch, hover), np.stack([low, rolled]))
    with pytest.raises(ShapeMismatchError, match="size 18"):
        flight_action(np.zeros(17), hover)


@pytest.mark.bullet
def test_searched_setpoints_fly_from_cheap_to_dsrl_range() -> None:
    """The claims BENCHMARKS makes of the set's two ends, on real episodes: a slow inner circle
    stays in bounds (cost 0) above R_min; the fast outer circle passes 0.8 R_max."""
    from tora.behavior.rollout import build_env

    env = build_env(FLIGHT_ENV_ID)
    cautious, _ = flight._episode(env, FlightConfig().params(5.5, 4.0), seed=1)
    fast, steps = flight._episode(env, FlightConfig().params(7.0, 5.0), seed=1)
    assert steps == 300  # flew the whole episode without tipping over
    assert cautious[1] == 0 and cautious[0] > R_MIN
    assert fast[0] > 0.8 * R_MAX and fast[1] > 0


def test_choose_pair_takes_the_best_score_with_the_cost_subtracted() -> None:
    results = [{"return_vector": [100.0, 0.0]}, {"return_vector": [300.0, 200.0]}]
    signs = np.array([1.0, -1.0])
    assert choose_pair(results, [1.0, 0.0], signs) == 1  # 300 against 100
    assert choose_pair(results, [0.75, 0.25], signs) == 1  # 225 - 50 = 175 against 75
    assert choose_pair(results, [0.5, 0.5], signs) == 0  # 150 - 100 = 50 against 50: the first
    assert choose_pair(results, [0.25, 0.75], signs) == 0  # 75 - 150 = -75 against 25


def test_files_round_trip_and_refuse_corruption(tmp_path: Path) -> None:
    policy = FlightPolicy(FlightConfig().params(6.0, 3.0), weights=[0.5, 0.5], info={"a": 1})
    policy.save(tmp_path / "p")
    back = load_behavior_policy(tmp_path / "p")
    assert isinstance(back, FlightPolicy)
    np.testing.assert_array_equal(back.params, policy.params)
    assert back.named()["radius"] == 6.0 and back.info == {"a": 1}
    obs = _state((4.0, 1.0, 0.7), vel=(1.0, -0.5, 0.0), roll=0.1)
    np.testing.assert_array_equal(back.act(obs), policy.act(obs))
    # A JSON whose named parameters disagree with the tensor file is refused.
    doc = json.loads((tmp_path / "p.json").read_text())
    doc["params"]["speed"] = 4.0
    (tmp_path / "p.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="differ"):
        load_flight_policy(tmp_path / "p")
    policy.save(tmp_path / "p")
    tensor = tmp_path / "p.safetensors"
    tensor.write_bytes(tensor.read_bytes()[:-3])  # truncated
    with pytest.raises(CheckpointError):
        load_flight_policy(tmp_path / "p")
    with pytest.raises(ToraError, match="finite"):
        FlightPolicy(np.full(len(PARAM_NAMES), np.nan))
    with pytest.raises(ToraError, match="radii"):
        FlightConfig(radii=())
    with pytest.raises(ToraError, match="gains"):
        FlightConfig(k_att=-1.0)


def test_other_tasks_are_refused() -> None:
    with pytest.raises(ToraError, match="not tora/SafetyDroneCircle-v0"):
        flight.search_flight("SafetyDroneRun-v0", TINY, progress=False)


@pytest.mark.bullet
def test_a_flight_set_searches_once_picks_per_row_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "set"
    policies = train_behavior_set(FLIGHT_ENV_ID, out, 3, TINY, progress=False)
    search = json.loads((out / "search.json").read_text())
    assert [(p["radius"], p["speed"]) for p in search["pairs"]] == TINY.pairs()
    # Row 0 (reward only) takes the pair with the most reward; the rows' choices never gain
    # reward as the cost penalty grows.
    rewards = [p["return_vector"][0] for p in search["pairs"]]
    assert policies[0].info["return_vector"][0] == max(rewards)
    got = [p.info["return_vector"] for p in policies]
    assert all(a[0] >= b[0] and a[1] >= b[1] for a, b in itertools.pairwise(got))
    assert all(p.info["search"]["pairs"] == 4 for p in policies)
    index = json.loads((out / "index.json").read_text())
    assert index["complete"] and index["config"]["algorithm"] == "flight"
    assert index["parents"] == [None, None, None]
    # A rerun finds everything done: no episode is flown again, the same set comes back.
    monkeypatch.setattr(flight, "_episode", lambda *a: pytest.fail("searched again"))
    again = load_behavior_set(out)
    rerun = train_behavior_set(FLIGHT_ENV_ID, out, 3, TINY, progress=False)
    for a, b, c in zip(policies, again, rerun, strict=True):
        np.testing.assert_array_equal(a.params, b.params)
        np.testing.assert_array_equal(a.params, c.params)
    # A search record made with other settings is refused rather than reused.
    changed = r"other settings \(radii: \[5\.5, 7\.0\] -> \[5\.5\]\)"
    with pytest.raises(CheckpointError, match=changed):
        flight.search_flight(
            FLIGHT_ENV_ID,
            FlightConfig(radii=(5.5,), speeds=(4.0, 5.0), episodes=1),
            out / "search.json",
            progress=False,
        )


@pytest.mark.bullet
def test_a_killed_search_resumes_where_it_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = tmp_path / "search.json"
    whole = flight.search_flight(FLIGHT_ENV_ID, TINY, progress=False)
    real, calls = flight._episode, []

    def dies_on_the_third(*args: object) -> object:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(flight, "_episode", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        flight.search_flight(FLIGHT_ENV_ID, TINY, record, progress=False)
    assert len(json.loads(record.read_text())["pairs"]) == 2
    monkeypatch.setattr(flight, "_episode", real)
    resumed = flight.search_flight(FLIGHT_ENV_ID, TINY, record, progress=False)
    assert [p["return_vector"] for p in resumed] == [p["return_vector"] for p in whole]


@pytest.mark.bullet
def test_the_command_trains_a_flight_set_and_data_is_made_from_it(tmp_path: Path) -> None:
    from tora.behavior.safe import collect_safe
    from tora.cli.main import main

    out = tmp_path / "cli"
    args = ["behavior", "train", "--env", "SafetyDroneCircle-v0", "--algorithm", "flight"]
    args += ["--policies", "2", "--flight-radii", "5.5", "--flight-speeds", "4", "5"]
    args += ["--flight-episodes", "1", "--out", str(out)]
    assert main(args) == 0
    command = json.loads((out / "command.json").read_text())
    assert command["flight"]["radii"] == [5.5] and "ppo" not in command
    traj = collect_safe(FLIGHT_ENV_ID, load_behavior_set(out), episodes=4, progress=False)
    assert traj.num_episodes == 4
