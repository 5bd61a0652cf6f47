"""DSRL's normalized reward and cost, the safety rule and the aggregation, by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tora.errors import DataError, ShapeMismatchError, ToraError
from tora.evaluate.safe import (
    DSRL_CONSTANTS,
    DSRL_THRESHOLDS,
    dsrl_reference,
    is_safe,
    normalized_cost,
    normalized_reward,
    score_threshold,
    score_thresholds,
)

# BallCircle's reference returns, written out: R_min = 0.3831, R_max - R_min = 881.0803.
BALL_CIRCLE_MIN, BALL_CIRCLE_RANGE = 0.3831, 881.0803


def _returns(fractions: list[list[float]]) -> np.ndarray:
    """BallCircle episode returns whose normalized rewards are ``fractions``."""
    return BALL_CIRCLE_MIN + BALL_CIRCLE_RANGE * np.array(fractions)


# ------------------------------------------------------------------------- constants
def test_constants_are_dsrls_table() -> None:
    table = {  # R_max, R_min, max cost, episode length (REFERENCE.md, DSRL section)
        "BallRun": (1327.4456, 26.3398, 80, 100),
        "CarRun": (574.6533, 204.2873, 40, 200),
        "DroneRun": (682.8330, 10.5570, 140, 200),
        "BallCircle": (881.4634, 0.3831, 80, 200),
        "CarCircle": (534.3061, 3.4844, 100, 300),
        "DroneCircle": (996.3892, 207.7942, 100, 300),
    }
    assert set(DSRL_CONSTANTS) == set(table)
    for task, (r_max, r_min, max_cost, steps) in table.items():
        ref = DSRL_CONSTANTS[task]
        assert (ref.reward_max, ref.reward_min, ref.max_cost, ref.episode_steps) == (
            r_max,
            r_min,
            max_cost,
            steps,
        )
    assert DSRL_THRESHOLDS == (10, 20, 40)


def test_any_name_of_a_task_finds_its_constants() -> None:
    for name in ("CarRun", "tora/SafetyCarRun-v0", "SafetyCarRun-v0", "OfflineCarRun-v0"):
        assert dsrl_reference(name) is DSRL_CONSTANTS["CarRun"]
    with pytest.raises(ToraError, match="unknown safe-RL task 'AntRun'"):
        dsrl_reference("AntRun")  # a DSRL task, but not one of the six
    with pytest.raises(ToraError, match="unknown safe-RL task"):
        normalized_reward([1.0], "tora/Cruise-v0")


# ---------------------------------------------------------------------- normalization
def test_normalized_reward_by_hand() -> None:
    # BallRun: (676.8927 - 26.3398) / (1327.4456 - 26.3398) = 650.5529 / 1301.1058 = 0.5
    assert normalized_reward(676.8927, "BallRun") == pytest.approx(0.5, abs=1e-12)
    # CarRun: R_min -> 0, R_max -> 1, and below R_min is negative, not clipped.
    np.testing.assert_allclose(
        normalized_reward([204.2873, 574.6533, 130.0], "SafetyCarRun-v0"),
        [0.0, 1.0, -74.2873 / 370.366],
        rtol=1e-12,
        atol=1e-15,
    )
    assert normalized_reward([[1.0, 2.0]], "DroneRun").shape == (1, 2)


def test_normalized_cost_by_hand_including_threshold_zero() -> None:
    np.testing.assert_allclose(normalized_cost([0, 5, 10, 25], 10), [0.0, 0.5, 1.0, 2.5])
    np.testing.assert_allclose(normalized_cost([0, 20, 19], 20.0), [0.0, 1.0, 0.95])
    # kappa = 0 adds e = 1 to both sides: (C + 1) / (0 + 1).
    np.testing.assert_allclose(normalized_cost([0, 1, 3], 0), [1.0, 2.0, 4.0])
    # a tiny positive kappa gets no e (e = 1 only at exactly 0)
    assert normalized_cost(1.0, 0.5) == pytest.approx(2.0)


# ---------------------------------------------------------------------------- safety
def test_is_safe_boundary() -> None:
    assert is_safe(0.0) and is_safe(0.999999)
    assert not is_safe(1.0)  # strict: C = kappa is not safe
    assert is_safe(1.0, inclusive=True) and not is_safe(1.0000001, inclusive=True)
    assert is_safe(normalized_cost(39, 40)) and not is_safe(normalized_cost(40, 40))
    # At kappa = 0 even a cost-free episode scores exactly 1: never safe under the strict rule.
    zero = normalized_cost(0, 0)
    assert not is_safe(zero) and is_safe(zero, inclusive=True)


def test_is_safe_takes_one_finite_number() -> None:
    with pytest.raises(DataError, match="finite"):
        is_safe(float("nan"))
    with pytest.raises(ToraError, match="one normalized cost"):
        is_safe(np.array([0.5, 0.5]))  # type: ignore[arg-type]


# ------------------------------------------------------------------------ aggregation
def test_score_threshold_averages_episodes_then_seeds() -> None:
    score = score_threshold(
        "BallCircle",
        _returns([[0.2, 0.4], [0.5, 0.5]]),  # per seed 0.3, 0.5
        [[5, 15], [0, 10]],  # normalized 0.5, 1.5 -> 1.0; 0, 1 -> 0.5
        threshold=10,
    )
    assert score.threshold == 10 and (score.seeds, score.episodes) == (2, 2)
    assert score.reward_mean == pytest.approx(0.4) and score.reward_std == pytest.approx(0.1)
    assert score.cost_mean == pytest.approx(0.75) and score.cost_std == pytest.approx(0.25)
    assert score.safe


def test_one_seed_has_no_spread() -> None:
    score = score_threshold("BallCircle", _returns([0.2, 0.6]), [30, 50], threshold=40)
    assert score.seeds == 1 and score.reward_std == 0.0 and score.cost_std == 0.0
    assert score.cost_mean == pytest.approx(1.0) and not score.safe


def test_score_thresholds_per_threshold_and_average() -> None:
    results = {
        20: (_returns([[0.6, 0.6], [0.8, 1.0]]), [[40, 40], [20, 0]]),  # given out of order
        10: (_returns([[0.2, 0.4], [0.5, 0.5]]), [[5, 15], [0, 10]]),
        40: (_returns([[0.0, 0.0], [0.1, 0.3]]), [[0, 0], [4, 4]]),
    }
    summary = score_thresholds("SafetyBallCircle-v0", results)
    assert summary.task == "BallCircle"
    assert [s.threshold for s in summary.per_threshold] == [10, 20, 40]
    # per seed: rewards (0.3, 0.5), (0.6, 0.9), (0.0, 0.2); costs (1.0, 0.5), (2.0, 0.5), (0, 0.1)
    expected = [(0.4, 0.1, 0.75, 0.25, True), (0.75, 0.15, 1.25, 0.75, False)]
    expected.append((0.1, 0.1, 0.05, 0.05, True))
    for score, (r_mean, r_std, c_mean, c_std, safe) in zip(
        summary.per_threshold, expected, strict=True
    ):
        assert (score.reward_mean, score.reward_std) == pytest.approx((r_mean, r_std))
        assert (score.cost_mean, score.cost_std) == pytest.approx((c_mean, c_std))
        assert score.safe is safe
    # average, per seed over thresholds: rewards 0.3 and 1.6/3; costs 1.0 and 1.1/3. Its cost
    # spread (0.3167) is not the mean of the per-threshold spreads (0.35).
    avg = summary.average
    assert avg.threshold is None and (avg.seeds, avg.episodes) == (2, 6)
    assert avg.reward_mean == pytest.approx((0.3 + 1.6 / 3) / 2)
    assert avg.reward_std == pytest.approx((1.6 / 3 - 0.3) / 2)
    assert avg.cost_mean == pytest.approx((1.0 + 1.1 / 3) / 2)
    assert avg.cost_std == pytest.approx((1.0 - 1.1 / 3) / 2)
    assert avg.safe
    row = json.loads(json.dumps(summary.to_dict()))
    assert row["average"]["threshold"] is None and row["per_threshold"][1]["safe"] is False


# ------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("threshold", [-1, -1e-9, float("nan"), float("inf"), "10", None, True])
def test_bad_thresholds_are_refused(threshold: object) -> None:
    with pytest.raises(ToraError, match="cost threshold must be"):
        normalized_cost([1.0], threshold)  # type: ignore[arg-type]
    with pytest.raises(ToraError, match="cost threshold must be"):
        score_threshold("CarRun", [300.0], [1.0], threshold)  # type: ignore[arg-type]


def test_bad_returns_and_costs_are_refused() -> None:
    with pytest.raises(DataError, match="episode returns must be finite"):
        normalized_reward([300.0, np.nan], "CarRun")
    with pytest.raises(DataError, match="episode costs must be finite"):
        normalized_cost([np.inf], 10)
    with pytest.raises(DataError, match="was the cost negated"):
        normalized_cost([-3.0], 10)
    with pytest.raises(DataError, match="must be numbers"):
        normalized_reward(["a lot"], "CarRun")
    with pytest.raises(ShapeMismatchError, match="same shape"):
        score_threshold("CarRun", [[300.0, 310.0]], [[1.0]], 10)
    with pytest.raises(DataError, match="at least one episode"):
        score_threshold("CarRun", [], [], 10)
    with pytest.raises(DataError, match=r"\(seeds, episodes\)"):
        score_threshold("CarRun", np.zeros((1, 2, 2)), np.zeros((1, 2, 2)), 10)


def test_score_thresholds_needs_matching_seeds_and_some_results() -> None:
    with pytest.raises(ToraError, match="at least one threshold"):
        score_thresholds("CarRun", {})
    with pytest.raises(ShapeMismatchError, match="same number of seeds"):
        score_thresholds(
            "CarRun",
            {10: ([[300.0], [310.0]], [[0.0], [1.0]]), 20: ([[300.0]], [[0.0]])},
        )
