"""Episodes whose policy sees the reward and cost spent so far."""

from __future__ import annotations

import numpy as np
import pytest

from tora.errors import ShapeMismatchError, ToraError
from tora.safe.policies import fixed_rows
from tora.safe.rollout import EpisodeState, run_episodes
from tora.safe.toy import EPISODE_STEPS, SAFE_DASH_ID

from .conftest import dash_episodes


def test_returns_and_costs_are_the_hand_computed_sums() -> None:
    ep = dash_episodes(fixed_rows((0.75, 0.25)), [0, 1])
    # Throttle 0.75 every step: reward 0.75, cost 2 * (0.75 - 0.5) = 0.5 per step.
    np.testing.assert_allclose(ep.returns, 0.75 * EPISODE_STEPS)
    np.testing.assert_allclose(ep.costs, 0.5 * EPISODE_STEPS)
    assert ep.lengths.tolist() == [EPISODE_STEPS] * 2


def test_the_policy_sees_what_each_episode_has_spent() -> None:
    seen: list[EpisodeState] = []

    def policy(obs: np.ndarray, state: EpisodeState) -> np.ndarray:
        seen.append(state)
        return np.ones((obs.shape[0], 1), np.float32)  # full throttle: cost 1 per step

    run_episodes(policy, SAFE_DASH_ID, [3, 4, 5], progress=False)
    assert [s.step for s in seen] == list(range(EPISODE_STEPS))
    np.testing.assert_allclose(seen[7].cost, [7.0, 7.0, 7.0])
    assert seen[0].rows.tolist() == [0, 1, 2]


def test_bad_policies_and_empty_batches_are_refused() -> None:
    with pytest.raises(ShapeMismatchError):
        run_episodes(lambda o, s: np.zeros((1, 1)), SAFE_DASH_ID, [0, 1], progress=False)
    with pytest.raises(ToraError, match="at least one"):
        run_episodes(lambda o, s: o, SAFE_DASH_ID, [], progress=False)


def test_blocks_see_global_rows_and_give_the_unblocked_result() -> None:
    """A batch run in blocks of 2 reports the same episodes as one lockstep, and the policy
    is always told each episode's row in the whole batch (per-row weights and noise rely
    on it)."""
    seen_rows: list[int] = []

    def policy(obs: np.ndarray, state: EpisodeState) -> np.ndarray:
        seen_rows.extend(state.rows.tolist())
        # Row r acts r / 4 (throttle (1 + r / 4) / 2), so each return identifies its row.
        return (state.rows[:, None] / 4.0).astype(np.float32)

    seeds = [10, 11, 12, 13, 14]
    whole = run_episodes(policy, SAFE_DASH_ID, seeds, progress=False)
    seen_rows.clear()
    blocked = run_episodes(policy, SAFE_DASH_ID, seeds, progress=False, batch=2)
    assert sorted(set(seen_rows)) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(blocked.returns, whole.returns)
    np.testing.assert_array_equal(blocked.costs, whole.costs)
    np.testing.assert_allclose(whole.returns, (1 + np.arange(5) / 4.0) / 2 * EPISODE_STEPS)
    with pytest.raises(ToraError, match="batch"):
        run_episodes(policy, SAFE_DASH_ID, seeds, progress=False, batch=0)
