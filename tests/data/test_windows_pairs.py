"""State windows, preference pairs, normalization and the trajectory container, on a tiny
hand-built dataset whose every number is known.

The dataset has three episodes of lengths 4, 3 and 5. State j of episode e is
``[10 e + j, -j]``, so a window's first column reads off which states it holds.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from tora.data.normalize import MIN_STD, Normalizer
from tora.data.pairs import (
    PreferencePairs,
    make_pairs,
    segment_returns,
    valid_segment_starts,
    window_labels,
)
from tora.data.trajectories import Direction, Objective, Trajectories
from tora.data.windows import WindowIndex, WindowSpec
from tora.errors import DataError, ShapeMismatchError, UnknownObjectiveError

LENGTHS = (4, 3, 5)
REWARDS = (
    [[1, 0], [2, 1], [3, 0], [4, 1]],
    [[10, 2], [0, 2], [5, 2]],
    [[1, -1], [1, 0], [1, 1], [1, 2], [1, 3]],
)
OBJECTIVES = (Objective("speed"), Objective("cost", Direction.MINIMIZE))


# ----------------------------------------------------------------------------------- helpers
def _episode(e: int, length: int, rewards: Any) -> dict[str, np.ndarray]:
    states = np.array([[10.0 * e + j, -float(j)] for j in range(length + 1)])
    return {
        "observations": states[:-1],
        "next_observations": states[1:],
        "actions": np.full((length, 1), float(e)),
        "rewards": np.asarray(rewards, dtype=np.float64),
        "timeouts": np.arange(length) == length - 1,
    }


def _traj(lengths: tuple[int, ...] = LENGTHS, rewards: tuple = REWARDS) -> Trajectories:
    eps = [_episode(e, n, r) for e, (n, r) in enumerate(zip(lengths, rewards, strict=True))]
    return Trajectories.from_episodes(eps, OBJECTIVES)


def _arrays(**overrides: Any) -> dict[str, Any]:
    """Keyword arguments of a valid 2-episode Trajectories (lengths 2 and 1), with overrides."""
    kwargs: dict[str, Any] = {
        "observations": np.zeros((3, 2)),
        "actions": np.zeros((3, 1)),
        "rewards": np.ones((3, 2)),
        "next_observations": np.zeros((3, 2)),
        "terminals": np.zeros(3, bool),
        "timeouts": np.zeros(3, bool),
        "episode_bounds": np.array([0, 2, 3]),
        "objectives": ("a", "b"),
    }
    kwargs.update(overrides)
    return kwargs


# ------------------------------------------------------------------------------------ windows
def test_window_spec_validation_and_span() -> None:
    assert WindowSpec(3, 2).span == 4
    assert WindowSpec(4).span == 3
    with pytest.raises(DataError):
        WindowSpec(1)
    with pytest.raises(DataError):
        WindowSpec(3, 0)


def test_window_index_stacks_states_with_final_next_observation() -> None:
    index = WindowIndex(_traj(), WindowSpec(3, 2))
    assert len(index) == 12  # one window per transition
    assert index.states.shape == (5 + 4 + 6, 2)
    assert index.states[:, 0].tolist() == [0, 1, 2, 3, 4, 10, 11, 12, 13, 20, 21, 22, 23, 24, 25]


@pytest.mark.parametrize(
    ("transition", "states"),
    [
        (0, [0, 2, 4]),
        (1, [1, 3, 4]),  # s_5 is past the end: repeats s_4, the final next_observation
        (3, [3, 4, 4]),
        (4, [10, 12, 13]),
        (6, [12, 13, 13]),
        (7, [20, 22, 24]),
        (9, [22, 24, 25]),
        (11, [24, 25, 25]),
    ],
)
def test_windows_stride2_horizon3_exact_states(transition: int, states: list[int]) -> None:
    window = WindowIndex(_traj(), WindowSpec(3, 2)).windows(np.array([transition]))[0]
    assert window.shape == (3, 2)
    assert window[:, 0].tolist() == states
    assert window[:, 1].tolist() == [-(s % 10) for s in states]


def test_window_rows_and_inverse_dynamics_pairs() -> None:
    index = WindowIndex(_traj(), WindowSpec(3, 2))
    assert index.rows(np.array([0, 4, 11])).tolist() == [[0, 2, 4], [5, 7, 8], [13, 14, 14]]
    pairs = index.pairs_for_inverse_dynamics(np.array([0, 6]))
    assert pairs.shape == (2, 2, 2)
    assert pairs[:, :, 0].tolist() == [[0, 2], [12, 13]]


# ---------------------------------------------------------------------------- segment returns
def test_segment_returns_discount_half_by_hand() -> None:
    seg = segment_returns(_traj(), length=2, discount=0.5)
    # r_t + 0.5 r_{t+1}, the last step of each episode keeps r_t alone.
    assert seg[:, 0].tolist() == [2, 3.5, 5, 4, 10, 2.5, 5, 1.5, 1.5, 1.5, 1.5, 1]
    assert seg[:, 1].tolist() == [0.5, 1, 0.5, 1, 3, 3, 2, -1, 0.5, 2, 3.5, 3]


def test_segment_returns_longer_than_episode_are_cut_at_its_end() -> None:
    seg = segment_returns(_traj(), length=10, discount=0.5)
    assert seg[0, 0] == pytest.approx(1 + 2 * 0.5 + 3 * 0.25 + 4 * 0.125)
    assert seg[1, 0] == pytest.approx(2 + 3 * 0.5 + 4 * 0.25)
    assert seg[4, 0] == pytest.approx(10 + 0 + 5 * 0.25)
    assert seg[7, 1] == pytest.approx(-1 + 0 + 0.25 + 2 * 0.125 + 3 * 0.0625)


def test_segment_length_must_be_positive() -> None:
    with pytest.raises(DataError):
        segment_returns(_traj(), 0, 0.9)


def test_valid_segment_starts_stay_inside_episodes() -> None:
    assert valid_segment_starts(_traj(), 3).tolist() == [0, 1, 4, 7, 8, 9]
    assert valid_segment_starts(_traj(), 4).tolist() == [0, 7, 8]
    with pytest.raises(DataError, match="exceeds every episode"):
        valid_segment_starts(_traj(), 6)


def _with_terminal_end(traj: Trajectories, episode: int) -> Trajectories:
    """``traj`` with episode ``episode`` ended by a terminal (a fall) instead of a timeout."""
    end = int(traj.episode_bounds[episode + 1]) - 1
    terminals, timeouts = traj.terminals.copy(), traj.timeouts.copy()
    terminals[end], timeouts[end] = True, False
    return Trajectories(
        observations=traj.observations,
        actions=traj.actions,
        rewards=traj.rewards,
        next_observations=traj.next_observations,
        terminals=terminals,
        timeouts=timeouts,
        episode_bounds=traj.episode_bounds,
        objectives=traj.objectives,
    )


def test_starts_through_terminals_keep_windows_of_recorded_states() -> None:
    # Lengths 4, 3, 5 (starts 0-3, 4-6, 7-11); episode 1 falls. A segment of 4 fits episode 0
    # from 0 and episode 2 from 7 and 8; in the falling episode every start whose window of
    # span 2 ends at a recorded state (t + 2 <= 7) counts: 4 and 5.
    traj = _with_terminal_end(_traj(), 1)
    assert valid_segment_starts(traj, 4).tolist() == [0, 7, 8]
    assert valid_segment_starts(traj, 4, span=2, through_terminals=True).tolist() == [0, 4, 5, 7, 8]
    # Episodes cut by a timeout are not changed: their rewards after the cut are unknown.
    assert valid_segment_starts(_traj(), 4, span=2, through_terminals=True).tolist() == [0, 7, 8]
    # The labels of the falling episode's late starts sum what came before the fall.
    pairs = make_pairs(traj, 300, 4, 1.0, seed=0, span=2, through_terminals=True)
    late = pairs.first == 5
    assert late.any() and np.all(pairs.returns[late, 0] == [0.0 + 5.0, 2.0 + 2.0])


def test_advantage_labels_remove_what_the_start_state_explains() -> None:
    # Segment length 1: a window's return is its reward r_t = q(s_t) + u_t, where q is a
    # quadratic function of the state (what the start decides) and u_t a per-step choice.
    # The advantage label must recover u_t; the return label is dominated by q.
    rng = np.random.default_rng(0)
    n_eps, length = 40, 25
    states = rng.normal(size=(n_eps, length + 1, 3))
    s = states[:, :-1].reshape(-1, 3)
    q = 5.0 * s[:, 0] - 3.0 * s[:, 1] * s[:, 2] + 2.0 * s[:, 2] ** 2
    u = 0.3 * rng.normal(size=q.shape)
    rewards = (q + u).reshape(n_eps, length)
    episodes = [
        {
            "observations": states[e, :-1],
            "next_observations": states[e, 1:],
            "actions": np.zeros((length, 1)),
            "rewards": np.stack([rewards[e], -rewards[e]], axis=1),
            "timeouts": np.arange(length) == length - 1,
        }
        for e in range(n_eps)
    ]
    traj = Trajectories.from_episodes(episodes, ("a", "b"))
    adv = make_pairs(traj, 2000, 1, 1.0, seed=0, label="advantage")
    ret = make_pairs(traj, 2000, 1, 1.0, seed=0, label="return")
    assert np.array_equal(adv.first, ret.first) and np.array_equal(adv.second, ret.second)
    got = adv.returns[:, 0, 0]
    want = u[adv.first]
    # Measured: correlation 0.990, mean |error| 0.035 against u's scale of 0.3 (a 10-feature
    # fit on 1,000 starts, slightly shrunk by the ridge).
    assert np.corrcoef(got, want)[0, 1] > 0.98
    assert np.abs(got - want).mean() < 0.05
    assert adv.info["value_r2"][0] == pytest.approx(1 - 0.09 / (q + u).var(), abs=0.01)
    assert np.corrcoef(ret.returns[:, 0, 0], want)[0, 1] < 0.2
    _, _, stats = adv.labelled(1, minimize=False)
    assert stats["value_r2"] == pytest.approx(adv.info["value_r2"][1])
    with pytest.raises(DataError, match="pair label"):
        make_pairs(traj, 10, 1, 1.0, seed=0, label="regret")


def test_td_advantage_labels_by_hand() -> None:
    # One state s_t = c + t per episode and reward r_t = s_t, discount 1/2, segments of 4:
    # a segment's return is A s + B with A = 1.875 and B = 0.5 + 2 * 0.25 + 3 * 0.125 = 1.375,
    # linear in the state, so the fitted value is exact. Over a planned window of 4 states
    # (k = 3 steps): r_t + r_{t+1} / 2 + r_{t+2} / 4 = 1.75 s + 1, plus V(s + 3) / 8, minus
    # V(s): 0.109375 s + 0.5.
    episodes = []
    for c in (0.0, 3.5, 7.25):
        states = (c + np.arange(11.0))[:, None]
        episodes.append(
            {
                "observations": states[:-1],
                "next_observations": states[1:],
                "actions": np.zeros((10, 1)),
                "rewards": np.repeat(states[:-1], 2, axis=1) * [1.0, -2.0],
                "timeouts": np.arange(10) == 9,
            }
        )
    traj = Trajectories.from_episodes(episodes, ("a", "b"))
    labels = window_labels(traj, 4, 0.5, "td_advantage", span=4)
    s = traj.observations[labels.starts, 0]
    assert labels.starts.size == 3 * 7  # every start whose 4-step segment fits
    # The value fit's ridge shrinks it slightly (measured: at most 1.2e-3 off on objective a).
    assert labels.labels[labels.starts, 0] == pytest.approx(0.109375 * s + 0.5, abs=5e-3)
    assert labels.labels[labels.starts, 1] == pytest.approx(-2 * (0.109375 * s + 0.5), abs=1e-2)
    assert labels.info["value_r2"][0] == pytest.approx(1.0, abs=1e-4)


# ------------------------------------------------------------------------------------- pairs
EPISODE_OF = np.repeat(np.arange(3), LENGTHS)


def test_make_pairs_never_pairs_an_episode_with_itself() -> None:
    traj = _traj()
    pairs = make_pairs(traj, num_pairs=300, segment_length=3, discount=0.5, seed=0)
    assert len(pairs) == 300
    assert np.all(EPISODE_OF[pairs.first] != EPISODE_OF[pairs.second])
    valid = set(valid_segment_starts(traj, 3).tolist())
    assert set(pairs.first.tolist()) | set(pairs.second.tolist()) <= valid
    seg = segment_returns(traj, 3, 0.5)
    assert pairs.returns.shape == (300, 2, 2)
    assert np.array_equal(pairs.returns[:, 0], seg[pairs.first])
    assert np.array_equal(pairs.returns[:, 1], seg[pairs.second])


def test_make_pairs_same_seed_same_pairs_other_seed_differs() -> None:
    traj = _traj()
    a = make_pairs(traj, 50, 2, 0.9, seed=3)
    b = make_pairs(traj, 50, 2, 0.9, seed=3)
    c = make_pairs(traj, 50, 2, 0.9, seed=4)
    assert np.array_equal(a.first, b.first) and np.array_equal(a.second, b.second)
    assert np.array_equal(a.returns, b.returns)
    assert not (np.array_equal(a.first, c.first) and np.array_equal(a.second, c.second))


def test_nearest_matching_pairs_windows_that_start_alike() -> None:
    # Episode e's states are (10 e + j, -j): episodes 0 and 2 are each 10 away from episode 1
    # in the first coordinate and 20 from each other, so a matched partner of an episode-0 or
    # episode-2 start is always in episode 1 (256 candidates cover every start).
    traj = _traj()
    pairs = make_pairs(traj, 200, 1, 1.0, seed=0, matching="nearest")
    assert np.all(EPISODE_OF[pairs.first] != EPISODE_OF[pairs.second])
    outer = EPISODE_OF[pairs.first] != 1
    assert outer.any() and np.all(EPISODE_OF[pairs.second[outer]] == 1)
    scale = traj.observations.std(axis=0)

    def gap(p: PreferencePairs) -> float:
        diff = (traj.observations[p.first] - traj.observations[p.second]) / scale
        return float(np.square(diff).sum(axis=1).mean())

    random = make_pairs(traj, 200, 1, 1.0, seed=0, matching="random")
    assert gap(pairs) < 0.5 * gap(random)
    again = make_pairs(traj, 200, 1, 1.0, seed=0, matching="nearest")
    assert np.array_equal(pairs.second, again.second)
    with pytest.raises(DataError, match="pair matching"):
        make_pairs(traj, 10, 1, 1.0, seed=0, matching="closest")


def test_make_pairs_errors() -> None:
    with pytest.raises(DataError, match="exceeds every episode"):
        make_pairs(_traj(), 10, segment_length=6, discount=1.0, seed=0)
    with pytest.raises(DataError, match="only one episode"):
        make_pairs(_traj(), 10, segment_length=5, discount=1.0, seed=0)
    with pytest.raises(DataError, match="at least two episodes"):
        make_pairs(_traj((4,), REWARDS[:1]), 10, segment_length=2, discount=1.0, seed=0)
    with pytest.raises(DataError, match="num_pairs"):
        make_pairs(_traj(), 0, segment_length=2, discount=1.0, seed=0)


def _hand_pairs() -> PreferencePairs:
    a = [1.0, 2.0, 3.0, 4.0]  # objective 0 of the first window
    b = [0.0, 5.0, 3.0, 1.0]  # objective 0 of the second: pair 2 ties
    returns = np.stack([np.array([a, a]).T, np.array([b, b]).T], axis=1)  # (4, 2, K=2)
    return PreferencePairs(np.array([0, 1, 2, 3]), np.array([10, 11, 12, 13]), returns)


def test_labelled_higher_return_wins_ties_dropped() -> None:
    winners, losers, stats = _hand_pairs().labelled(0)
    assert winners.tolist() == [0, 11, 3]
    assert losers.tolist() == [10, 1, 13]
    assert stats["pairs"] == 3 and stats["ties"] == 1
    assert stats["first_wins"] == pytest.approx(2 / 3)
    assert stats["mean_gap"] == pytest.approx((1 + 3 + 3) / 3)


def test_labelled_minimize_lower_return_wins() -> None:
    winners, losers, stats = _hand_pairs().labelled(1, minimize=True)
    assert winners.tolist() == [10, 1, 13]
    assert losers.tolist() == [0, 11, 3]
    assert stats["first_wins"] == pytest.approx(1 / 3)


def test_labelled_all_ties_raise() -> None:
    returns = np.ones((3, 2, 1))
    pairs = PreferencePairs(np.arange(3), np.arange(3) + 5, returns)
    with pytest.raises(DataError, match="every pair ties"):
        pairs.labelled(0)


# ------------------------------------------------------------------------------- normalizer
def test_normalizer_fit_by_hand_with_std_floor() -> None:
    norm = Normalizer.fit(np.array([[1.0, 5.0], [3.0, 5.0]]))
    assert norm.mean.tolist() == [2.0, 5.0]
    assert norm.std.tolist() == pytest.approx([1.0, MIN_STD])
    out = norm.normalize(torch.tensor([[3.0, 5.0], [1.0, 5.002]], dtype=torch.float64))
    assert out.flatten().tolist() == pytest.approx([1.0, 0.0, -1.0, 2.0], rel=1e-4)


def test_normalizer_round_trip_and_standardizes() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal([1.0, -5.0, 20.0], [0.5, 3.0, 10.0], size=(400, 3))
    norm = Normalizer.fit(x.reshape(20, 20, 3))  # any leading shape
    xt = torch.tensor(x, dtype=torch.float64)
    z = norm.normalize(xt)
    assert torch.allclose(z.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(z.std(0, unbiased=False), torch.ones(3, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(norm.unnormalize(z), xt, atol=1e-5)
    assert norm.dim == 3


def test_normalizer_dict_round_trip() -> None:
    norm = Normalizer.fit(np.array([[0.0, 1.0], [2.0, 7.0]]))
    again = Normalizer.from_dict(norm.to_dict())
    assert np.array_equal(again.mean, norm.mean) and np.array_equal(again.std, norm.std)


def test_normalizer_shape_mismatch_raises() -> None:
    norm = Normalizer.fit(np.zeros((4, 3)))
    with pytest.raises(ShapeMismatchError, match="dimension 2"):
        norm.normalize(torch.zeros(5, 2))
    with pytest.raises(ShapeMismatchError):
        norm.unnormalize(torch.zeros(1, 4, 4))


# ----------------------------------------------------------------------------- trajectories
def test_from_episodes_layout() -> None:
    traj = _traj()
    assert traj.episode_bounds.tolist() == [0, 4, 7, 12]
    assert traj.episode_lengths.tolist() == list(LENGTHS)
    assert traj.objective_names == ["speed", "cost"] and traj.has_costs
    assert traj.episode_states(1)[:, 0].tolist() == [10, 11, 12, 13]


def test_episode_returns_discount_by_hand() -> None:
    returns = _traj().episode_returns(discount=0.5)
    assert returns[0].tolist() == pytest.approx([1 + 1 + 0.75 + 0.5, 0 + 0.5 + 0 + 0.125])
    assert returns[1].tolist() == pytest.approx([10 + 0 + 1.25, 2 + 1 + 0.5])
    assert returns[2, 1] == pytest.approx(-1 + 0 + 0.25 + 0.25 + 3 / 16)
    assert _traj().episode_returns()[:, 0].tolist() == [10, 15, 5]


def test_select_episodes_in_given_order() -> None:
    sub = _traj().select_episodes([2, 0])
    assert sub.episode_bounds.tolist() == [0, 5, 9]
    assert sub.observations[:, 0].tolist() == [20, 21, 22, 23, 24, 0, 1, 2, 3]
    assert sub.episode_returns()[:, 0].tolist() == [5, 10]
    with pytest.raises(DataError):
        _traj().select_episodes([])
    with pytest.raises(DataError):
        _traj().select_episodes([3])


def test_objective_index_and_unknown_name() -> None:
    traj = _traj()
    assert traj.objective_index("cost") == 1
    with pytest.raises(UnknownObjectiveError) as info:
        traj.objective_index("north")
    assert "'north'" in str(info.value) and "['speed', 'cost']" in str(info.value)
    assert isinstance(info.value, KeyError)


def test_valid_arrays_build() -> None:
    assert Trajectories(**_arrays()).num_episodes == 2


@pytest.mark.parametrize("name", ["observations", "next_observations", "actions", "rewards"])
def test_validate_rejects_nan(name: str) -> None:
    kwargs = _arrays()
    bad = np.array(kwargs[name], dtype=np.float64)
    bad[1, 0] = np.nan
    with pytest.raises(DataError, match=f"{name} contains NaN"):
        Trajectories(**_arrays(**{name: bad}))


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"observations": np.zeros(3)}, "observations must be 2-D"),
        ({"actions": np.zeros((2, 1))}, "actions has shape"),
        ({"rewards": np.zeros((4, 2))}, "rewards has shape"),
        ({"next_observations": np.zeros((3, 3))}, "next_observations has shape"),
        ({"timeouts": np.zeros(2, bool)}, "timeouts has shape"),
    ],
)
def test_validate_rejects_wrong_shapes(override: dict, match: str) -> None:
    with pytest.raises(DataError, match=match):
        Trajectories(**_arrays(**override))


@pytest.mark.parametrize("bounds", [[1, 2, 3], [0, 2, 4], [0, 2, 2, 3], [0, 3, 2, 3], [3]])
def test_validate_rejects_bad_episode_bounds(bounds: list[int]) -> None:
    with pytest.raises(DataError, match="episode_bounds"):
        Trajectories(**_arrays(episode_bounds=np.array(bounds)))


def test_validate_rejects_objective_count_mismatch() -> None:
    with pytest.raises(DataError, match="3 objectives"):
        Trajectories(**_arrays(objectives=("a", "b", "c")))
    with pytest.raises(DataError, match="unique"):
        Trajectories(**_arrays(objectives=("a", "a")))


def test_validate_catches_arrays_corrupted_after_construction() -> None:
    traj = _traj()
    traj.rewards[2, 1] = np.inf
    with pytest.raises(DataError, match=r"rewards contains NaN or inf \(first at index \(2, 1\)\)"):
        traj.validate()
