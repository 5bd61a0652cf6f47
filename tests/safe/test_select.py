"""The weight selector: a safe weight on a toy whose answer is known, and its edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from tora.errors import ToraError
from tora.safe.policies import per_row
from tora.safe.protocol import episode_seeds
from tora.safe.select import SelectConfig, WeightSearch, best_safe, format_selection
from tora.safe.toy import COST_SLOPE, EPISODE_STEPS, LIMIT

from .conftest import dash_episodes


def dash_evaluate(episodes: int = 2):
    """Mean return and cost of SafeDash's throttle policy per weight, on selection seeds."""
    seeds = episode_seeds("select", 0, episodes)

    def evaluate(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.repeat(weights, episodes, axis=0)
        ep = dash_episodes(per_row(rows), seeds * len(weights))
        shape = (len(weights), episodes)
        return ep.returns.reshape(shape).mean(1), ep.costs.reshape(shape).mean(1)

    return evaluate


def test_selector_finds_the_known_safe_boundary_on_the_toy() -> None:
    # Throttle u = w_r costs T * slope * (u - limit) above the limit, so under kappa = 4 the
    # best safe weight is just below w_r* = 0.5 + 4 / (20 * 2) = 0.6.
    kappa = 4.0
    best = LIMIT + kappa / (EPISODE_STEPS * COST_SLOPE)
    search = WeightSearch(dash_evaluate(), SelectConfig(coarse=6, refine=3, rounds=3, margin=0))
    selection = search.select(kappa)
    assert selection.found
    assert best - 0.02 < selection.weight[0] < best
    assert selection.chosen.cost < kappa
    assert selection.weight[0] + selection.weight[1] == pytest.approx(1.0)
    # The evidence holds every weight evaluated, the coarse grid included.
    assert {0.0, 0.2, 0.4, 0.6, 0.8, 1.0} <= {round(c.w_r, 10) for c in selection.candidates}
    assert "<-" in format_selection(selection)


def test_margin_keeps_the_choice_further_from_the_limit() -> None:
    search = WeightSearch(dash_evaluate(), SelectConfig(rounds=3, margin=0.5))
    selection = search.select(4.0)
    assert selection.found and selection.chosen.cost < 2.0
    assert selection.weight[0] < 0.55 + 1e-9


def test_thresholds_share_the_coarse_grid() -> None:
    calls: list[int] = []
    inner = dash_evaluate(1)

    def counting(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(weights))
        return inner(weights)

    search = WeightSearch(counting, SelectConfig(coarse=6, refine=3, rounds=1))
    search.select(4.0)
    search.select(8.0)
    assert calls[0] == 6 and sum(calls) == search.evaluated < 6 + 2 * 3 + 1


def test_no_safe_weight_returns_the_least_costly_one_marked() -> None:
    def always_costly(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return weights[:, 0] * 10, 5.0 + weights[:, 0]

    selection = WeightSearch(always_costly).select(1.0)
    assert not selection.found
    assert selection.weight == (0.0, 1.0)
    assert selection.to_dict()["found"] is False


def test_a_safe_reward_only_weight_is_kept() -> None:
    selection = WeightSearch(lambda w: (w[:, 0], np.zeros(len(w)))).select(1.0)
    assert selection.found and selection.weight == (1.0, 0.0)


@pytest.mark.parametrize("threshold", [0.0, -1.0, float("nan"), float("inf")])
def test_threshold_must_be_positive_and_finite(threshold: float) -> None:
    with pytest.raises(ToraError, match="threshold"):
        WeightSearch(dash_evaluate()).select(threshold)


def test_best_safe_rejects_nan_and_breaks_ties() -> None:
    with pytest.raises(ToraError, match="finite"):
        best_safe([1.0, float("nan")], [0.0, 0.0], 1.0)
    assert best_safe([1.0, 3.0, 2.0], [0.5, 0.9, 0.1], 1.0) == (1, True)
    assert best_safe([1.0, 3.0], [5.0, 5.0], 1.0) == (1, False)


def test_bad_search_settings_are_refused() -> None:
    with pytest.raises(ToraError, match="coarse"):
        WeightSearch(dash_evaluate(), SelectConfig(coarse=1))
    with pytest.raises(ToraError, match="margin"):
        WeightSearch(dash_evaluate(), SelectConfig(margin=1.0))


def test_refinement_stops_at_the_resolution() -> None:
    calls: list[int] = []
    inner = dash_evaluate(1)

    def counting(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls.append(len(weights))
        return inner(weights)

    config = SelectConfig(coarse=6, refine=3, rounds=10, resolution=0.04, margin=0)
    selection = WeightSearch(counting, config).select(4.0)
    # Gaps 0.2 (refined), 0.05 (refined), 0.0125 (< 0.04: rounds stop though 8 are left).
    assert calls == [6, 3, 3]
    assert 0.5875 - 1e-9 <= selection.weight[0] < 0.6
