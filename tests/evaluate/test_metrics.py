"""Front metrics and preference grids against answers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tora.errors import InvalidWeightsError, ShapeMismatchError, ToraError
from tora.evaluate import (
    expected_utility,
    front_metrics,
    hypervolume,
    lattice_size,
    pareto_front,
    pareto_mask,
    simplex_grid,
    sparsity,
    validate_weights,
)

# ---------------------------------------------------------------------------- hypervolume


def test_hypervolume_single_point_is_its_box() -> None:
    assert hypervolume([[3.0, 4.0]], [0.0, 0.0]) == pytest.approx(12.0)


def test_hypervolume_scalar_reference_point_is_broadcast() -> None:
    assert hypervolume([[3.0, 4.0]], 0.0) == pytest.approx(12.0)


def test_hypervolume_staircase() -> None:
    # Boxes 1x3, 2x2, 3x1; union = 3 (column x<=1) + 2 (1<x<=2) + 1 (2<x<=3) = 6.
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [0, 0]) == pytest.approx(6.0)


def test_hypervolume_drops_points_not_beyond_reference() -> None:
    # (-1, 5) is below the reference on objective 0, (2, 0) lies on it: both enclose nothing.
    assert hypervolume([[3, 4], [-1, 5], [2, 0]], [0, 0]) == pytest.approx(12.0)
    assert hypervolume([[-1, 5]], [0, 0]) == 0.0


def test_hypervolume_dominated_point_adds_nothing() -> None:
    base = hypervolume([[1, 3], [2, 2], [3, 1]], [0, 0])
    assert hypervolume([[1, 3], [2, 2], [3, 1], [1, 1], [2, 2]], [0, 0]) == pytest.approx(base)


def test_hypervolume_empty_is_zero() -> None:
    assert hypervolume(np.zeros((0, 2)), [0, 0]) == 0.0
    assert hypervolume([], [0, 0]) == 0.0


def test_hypervolume_minimized_cost_objective() -> None:
    # Objective 0 a reward (maximized), objective 1 a cost (minimized) with reference cost 5:
    # (3, 2) spans 3 x (5 - 2) = 9, (1, 1) adds the strip 1 x (2 - 1) = 1. (4, 6) costs more
    # than the reference and is dropped.
    points = [[3.0, 2.0], [1.0, 1.0], [4.0, 6.0]]
    assert hypervolume(points, [0.0, 5.0], maximize=[True, False]) == pytest.approx(10.0)


def test_hypervolume_three_objectives() -> None:
    # Two unit-overlapping boxes: 2*1*1 + 1*2*1 - overlap 1*1*1 = 3.
    assert hypervolume([[2, 1, 1], [1, 2, 1]], [0, 0, 0]) == pytest.approx(3.0)


def test_hypervolume_rejects_mismatched_reference() -> None:
    with pytest.raises(ToraError, match="ref_point"):
        hypervolume([[1.0, 2.0]], [0.0, 0.0, 0.0])


def test_hypervolume_rejects_non_finite_points() -> None:
    with pytest.raises(ToraError, match="finite"):
        hypervolume([[1.0, np.nan]], [0.0, 0.0])


# ------------------------------------------------------------------------------ dominance


def test_pareto_mask_keeps_first_duplicate_only() -> None:
    points = np.array([[1, 3], [2, 2], [1, 3], [0, 0], [2, 2], [3, 1]], dtype=float)
    assert pareto_mask(points).tolist() == [True, True, False, False, False, True]


def test_pareto_mask_weak_dominance_on_ties() -> None:
    # (2, 2) is weakly dominated by (2, 3): equal on one objective, worse on the other.
    assert pareto_mask([[2, 2], [2, 3]]).tolist() == [False, True]


def test_pareto_mask_minimize_direction() -> None:
    # Minimizing objective 1, (1, 1) beats (1, 3); maximizing it, the reverse.
    assert pareto_mask([[1, 3], [1, 1]], maximize=[True, False]).tolist() == [False, True]
    assert pareto_mask([[1, 3], [1, 1]]).tolist() == [True, False]


def test_pareto_mask_empty() -> None:
    assert pareto_mask(np.zeros((0, 2))).shape == (0,)


def test_pareto_front_sorted_and_unique() -> None:
    points = [[3, 1], [0, 0], [1, 3], [2, 2], [3, 1]]
    np.testing.assert_array_equal(pareto_front(points), [[1, 3], [2, 2], [3, 1]])


def test_maximize_flags_must_match_objectives() -> None:
    with pytest.raises(ToraError, match="maximize"):
        pareto_mask([[1, 2]], maximize=[True])


# ------------------------------------------------------------------------------- sparsity


def test_sparsity_hand_computed() -> None:
    # Objective 0 sorted 0,1,3: gaps 1,2 -> 1+4; objective 1 sorted 0,2,3: gaps 2,1 -> 4+1.
    # (5 + 5) / (3 - 1) = 5.
    assert sparsity([[0, 3], [1, 2], [3, 0]]) == pytest.approx(5.0)


def test_sparsity_ignores_dominated_and_repeated_points() -> None:
    assert sparsity([[0, 3], [1, 2], [3, 0], [0, 0], [1, 2]]) == pytest.approx(5.0)


def test_sparsity_of_fewer_than_two_points_is_zero() -> None:
    assert sparsity([[1.0, 2.0]]) == 0.0
    assert sparsity(np.zeros((0, 2))) == 0.0
    assert sparsity([[1.0, 2.0], [0.0, 0.0]]) == 0.0  # one front point left


# ----------------------------------------------------------------------- expected utility


def test_expected_utility_hand_computed() -> None:
    # w=(1,0): max(1, 0) = 1; w=(.5,.5): max(.5, 1) = 1; w=(0,1): max(0, 2) = 2. Mean 4/3.
    points = [[1.0, 0.0], [0.0, 2.0]]
    weights = [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    assert expected_utility(points, weights) == pytest.approx(4.0 / 3.0)


def test_expected_utility_minimized_objective_enters_negated() -> None:
    # Cost objective 1: utilities of (1, 0) and (0, 2) become w.(1, 0) and w.(0, -2).
    # w=(1,0): 1; w=(.5,.5): max(.5, -1) = .5; w=(0,1): max(0, -2) = 0. Mean 0.5.
    points = [[1.0, 0.0], [0.0, 2.0]]
    weights = [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]
    assert expected_utility(points, weights, maximize=[True, False]) == pytest.approx(0.5)


def test_expected_utility_validates_weights() -> None:
    with pytest.raises(InvalidWeightsError):
        expected_utility([[1.0, 0.0]], [[0.5, 0.6]])


# ---------------------------------------------------------------------------- front_metrics


def test_front_metrics_keys_and_values() -> None:
    points = [[0, 3], [1, 2], [3, 0], [0, 0]]
    out = front_metrics(points, [0, 0], weights=[[1.0, 0.0], [0.0, 1.0]])
    # Only (1, 2) strictly dominates the origin.
    assert out["hypervolume"] == pytest.approx(2.0)
    assert out["sparsity"] == pytest.approx(5.0)
    assert out["expected_utility"] == pytest.approx(3.0)  # (3 + 3) / 2
    assert out["num_front_points"] == 3
    assert out["front"] == [[0.0, 3.0], [1.0, 2.0], [3.0, 0.0]]


def test_front_metrics_default_weights() -> None:
    # A single point: every weight's best utility is w . (2, 2) = 2.
    out = front_metrics([[2.0, 2.0]], 0.0)
    assert out["expected_utility"] == pytest.approx(2.0)
    out3 = front_metrics([[1.0, 1.0, 1.0]], 0.0)
    assert out3["expected_utility"] == pytest.approx(1.0)
    assert out3["hypervolume"] == pytest.approx(1.0)


# ------------------------------------------------------------------------------ preferences


def test_simplex_grid_two_objectives_d4morl() -> None:
    grid = simplex_grid(2, 501)
    assert grid.shape == (501, 2)
    np.testing.assert_array_equal(grid[0], [1.0, 0.0])
    np.testing.assert_array_equal(grid[-1], [0.0, 1.0])
    np.testing.assert_allclose(np.diff(grid[:, 0]), -0.002, atol=1e-12)
    assert np.all(grid.sum(axis=1) == 1.0)


def test_simplex_grid_three_objectives_d4morl() -> None:
    grid = simplex_grid(3, 325)
    assert grid.shape == (325, 3)
    assert np.all(grid.sum(axis=1) == 1.0)
    assert np.all(grid >= 0.0)
    assert len({tuple(row) for row in grid}) == 325
    # Every point is on the 24-division lattice.
    np.testing.assert_allclose(grid * 24, np.round(grid * 24), atol=1e-9)
    np.testing.assert_array_equal(grid[0], [1.0, 0.0, 0.0])


def test_simplex_grid_rows_sum_exactly_to_one_for_many_sizes() -> None:
    for k in (2, 3, 4, 5):
        for d in range(1, 30):
            grid = simplex_grid(k, lattice_size(k, d))
            assert np.all(grid.sum(axis=1) == 1.0), (k, d)


def test_simplex_grid_single_objective() -> None:
    np.testing.assert_array_equal(simplex_grid(1, 1), [[1.0]])


def test_simplex_grid_invalid_count_names_nearest() -> None:
    # C(d+2, 2): d=23 -> 300, d=24 -> 325.
    assert lattice_size(3, 23) == 300
    with pytest.raises(InvalidWeightsError, match=r"300 \(d=23\) or 325 \(d=24\)"):
        simplex_grid(3, 320)


def test_simplex_grid_too_few_points() -> None:
    with pytest.raises(InvalidWeightsError):
        simplex_grid(2, 1)
    with pytest.raises(InvalidWeightsError):
        simplex_grid(0, 5)


def test_validate_weights_shapes_and_dtype() -> None:
    single = validate_weights([0.25, 0.75], 2)
    assert single.shape == (1, 2)
    assert single.dtype == np.float64
    batch = validate_weights(np.array([[1, 0], [0.5, 0.5]], dtype=np.float32), 2)
    assert batch.shape == (2, 2)
    assert batch.dtype == np.float64


def test_validate_weights_wrong_length_names_objectives() -> None:
    with pytest.raises(InvalidWeightsError, match=r"expected 3 weights.*\(speed, energy, height\)"):
        validate_weights([0.5, 0.5], 3, names=["speed", "energy", "height"])


def test_validate_weights_non_finite() -> None:
    with pytest.raises(InvalidWeightsError, match=r"finite.*nan.*'energy'"):
        validate_weights([0.5, math.nan], 2, names=["speed", "energy"])
    with pytest.raises(InvalidWeightsError, match=r"finite.*inf"):
        validate_weights([[0.5, 0.5], [math.inf, 0.0]], 2)


def test_validate_weights_negative() -> None:
    with pytest.raises(InvalidWeightsError, match=r"non-negative.*-0\.5.*objective 0"):
        validate_weights([-0.5, 1.5], 2)


def test_validate_weights_sum() -> None:
    with pytest.raises(InvalidWeightsError, match=r"sum to 1.*sum to 0\.9"):
        validate_weights([0.4, 0.5], 2)
    with pytest.raises(InvalidWeightsError, match=r"row 1\) sum to 1\.1"):
        validate_weights([[0.5, 0.5], [0.6, 0.5]], 2)
    # Within tolerance is accepted.
    validate_weights([0.5, 0.5 + 1e-8], 2)


def test_validate_weights_not_numbers() -> None:
    with pytest.raises(InvalidWeightsError, match="numbers"):
        validate_weights(["a", "b"], 2)


def test_steering_correlation_known_answers() -> None:
    from tora.evaluate import steering_correlation

    w = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    steered = np.array([[3.0, 1.0], [2.0, 2.0], [1.0, 3.0]])
    assert steering_correlation(w, steered) == pytest.approx(1.0)
    assert steering_correlation(w, steered[::-1]) == pytest.approx(-1.0)
    # Ignoring the preference: constant returns steer nothing.
    assert steering_correlation(w, np.ones((3, 2))) == 0.0
    # A cost (minimized): less cost with more weight on it is steering the right way ...
    less_cost = np.array([[3.0, 3.0], [2.0, 2.0], [1.0, 1.0]])
    assert steering_correlation(w, less_cost, maximize=[True, False]) == pytest.approx(1.0)
    # ... more cost with more weight on it is the wrong way: (+1 - 1) / 2.
    more_cost = np.array([[3.0, 1.0], [2.0, 2.0], [1.0, 3.0]])
    assert steering_correlation(w, more_cost, maximize=[True, False]) == pytest.approx(0.0)
    # Ties get mean ranks: hand-computed Spearman of (0, 1, 1) against (0, 0.5, 1) is 0.866.
    w3 = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    tied = np.array([[0.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    assert steering_correlation(w3, tied) == pytest.approx(np.sqrt(3) / 2)
    with pytest.raises(ShapeMismatchError):
        steering_correlation(w, steered[:2])
