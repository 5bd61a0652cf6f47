"""Cost labels, BC-safe's data and the (return, cost)-conditioned planner's targets."""

from __future__ import annotations

import numpy as np
import pytest

from tora.data.pairs import make_pairs
from tora.data.trajectories import Direction
from tora.errors import ToraError
from tora.safe.bench import safe_episodes
from tora.safe.conditioned import reward_target, to_go
from tora.safe.toy import collect_toy


@pytest.fixture(scope="module")
def toy_data():
    return collect_toy(30, seed=0)


def test_dpo_cost_labels_prefer_lower_cost(toy_data) -> None:
    k = toy_data.objective_index("cost")
    assert toy_data.objectives[k].direction is Direction.MINIMIZE
    pairs = make_pairs(toy_data, 500, segment_length=5, discount=1.0, seed=0)
    # As tora.train.dpo.finetune_objective labels: by the objective's direction.
    minimize = toy_data.objectives[k].direction is Direction.MINIMIZE
    winners, losers, _ = pairs.labelled(k, minimize=minimize)
    seg = {int(s): r for s, r in zip(pairs.first, pairs.returns[:, 0, k], strict=True)}
    seg.update({int(s): r for s, r in zip(pairs.second, pairs.returns[:, 1, k], strict=True)})
    assert all(seg[int(w)] < seg[int(lo)] for w, lo in zip(winners, losers, strict=True))


def test_to_go_sums_each_episode_to_its_end(toy_data) -> None:
    g = to_go(toy_data)
    returns = toy_data.episode_returns()
    starts = toy_data.episode_bounds[:-1]
    np.testing.assert_allclose(g[starts], returns, rtol=1e-5)
    last = toy_data.episode_bounds[1:] - 1
    np.testing.assert_allclose(g[last], toy_data.rewards[last], rtol=1e-5)


def test_reward_target_is_the_best_return_under_the_threshold() -> None:
    returns, costs = np.array([5.0, 9.0, 7.0]), np.array([0.0, 30.0, 9.0])
    assert reward_target(returns, costs, 10.0) == 7.0
    assert reward_target(returns, costs, 40.0) == 9.0
    assert reward_target(returns, costs, 0.0) == 5.0  # none under: the cheapest episode


def test_safe_episodes_keeps_only_cheap_ones(toy_data) -> None:
    cheap = safe_episodes(toy_data, 2.0)
    assert (cheap.episode_returns()[:, 1] < 2.0).all()
    costly = toy_data.select_episodes(np.argsort(toy_data.episode_returns()[:, 1])[-3:])
    with pytest.raises(ToraError, match="BC-safe"):
        safe_episodes(costly, 1e-9)
