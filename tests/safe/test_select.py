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


def _two_weights(weights: np.ndarray) -> tuple[np.ndarray, ...]:
    # w_r 0: return 8, cost 7 +- 0.5; w_r 1: return 10, cost 5 +- 3 (a noisy weight).
    w_r = weights[:, 0]
    return 8.0 + 2.0 * w_r, 7.0 - 2.0 * w_r, 0.5 + 2.5 * w_r


def test_cost_bound_rejects_a_weight_safe_only_by_luck() -> None:
    # Limit 0.9 * 10 = 9. The mean alone keeps w_r 1 (5 < 9); 1.645 standard errors make its
    # bound 5 + 4.935 = 9.935 > 9, so the steady weight (bound 7 + 0.8225 = 7.8225) is chosen.
    plain = WeightSearch(_two_weights, SelectConfig(coarse=2, rounds=0)).select(10.0)
    assert plain.weight == (1.0, 0.0)
    assert "cost_se" not in plain.to_dict()  # records made without a bound keep their layout
    bounded = WeightSearch(_two_weights, SelectConfig(coarse=2, rounds=0, cost_z=1.645))
    selection = bounded.select(10.0)
    assert selection.weight == (0.0, 1.0) and selection.found
    assert selection.chosen.bound(1.645) == pytest.approx(7.8225)
    record = selection.to_dict()
    assert record["cost_se"] == 0.5 and record["cost_z"] == 1.645
    assert [c["cost_se"] for c in record["candidates"]] == [0.5, 3.0]
    text = format_selection(selection)
    assert "cost+1.645se" in text and "9.94" in text


def test_cost_bound_settings_are_checked() -> None:
    with pytest.raises(ToraError, match="cost_z"):
        WeightSearch(_two_weights, SelectConfig(cost_z=-1.0))
    with pytest.raises(ToraError, match="standard errors"):
        WeightSearch(
            lambda w: (w[:, 0], w[:, 0], -np.ones(len(w))), SelectConfig(cost_z=1.0)
        ).select(1.0)


def test_standard_error_by_hand() -> None:
    from tora.safe.tuning import standard_error

    # Row [1, 3]: sample std sqrt(2) (one degree of freedom removed), over sqrt(2) -> 1.
    np.testing.assert_allclose(standard_error(np.array([[1.0, 3.0], [2.0, 2.0]])), [1.0, 0.0])
    np.testing.assert_allclose(standard_error(np.array([[5.0]])), [0.0])


def test_pick_reserves_by_hand_and_the_cost_bound_moves_it() -> None:
    """Threshold 10 at fraction 0.9 (limit 9): reserve 0.0 earns most but costs 8 +- 2 (its
    standard error is 2/sqrt(2) = 1.414), reserve 0.5 earns less and costs 4 exactly. By the
    mean alone 0.0 is safe (8 < 9); with 1.645 standard errors its bound is 10.33, so 0.5."""
    from tora.safe.tuning import pick_reserves

    starts = {10.0: (0.8, 0.2)}
    returns = np.array([[[100.0, 100.0], [60.0, 60.0]]])
    costs = np.array([[[6.0, 10.0], [4.0, 4.0]]])
    by_mean = pick_reserves(starts, [0.0, 0.5], returns, costs, 0.9)[10.0]
    assert (by_mean["reserve"], by_mean["found"]) == (0.0, True)
    assert by_mean["start"] == [0.8, 0.2]
    assert by_mean["candidates"][0] == {"reserve": 0.0, "reward": 100.0, "cost": 8.0}
    bounded = pick_reserves(starts, [0.0, 0.5], returns, costs, 0.9, cost_z=1.645)[10.0]
    assert (bounded["reserve"], bounded["found"]) == (0.5, True)
    # Nothing under the limit: the lowest bound, reported as not found.
    none = pick_reserves(starts, [0.0, 0.5], returns, costs + 20.0, 0.9)[10.0]
    assert (none["reserve"], none["found"]) == (0.5, False)
    with pytest.raises(ToraError, match="thresholds, reserves, episodes"):
        pick_reserves(starts, [0.0, 0.5, 0.9], returns, costs, 0.9)
