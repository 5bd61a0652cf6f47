"""Evaluation of multi-objective policies: preference grids, front metrics and plots.

``preferences`` builds the D4MORL evaluation grids and checks user weights; ``pareto`` holds
the metrics (hypervolume, sparsity, expected utility) as pure functions of return vectors;
``plots`` writes PNG figures. Plotting imports matplotlib only when a plot is drawn.
``planning`` checks a planner's predicted next states against a dataset's.
"""

from tora.evaluate.pareto import (
    expected_utility,
    front_metrics,
    hypervolume,
    pareto_front,
    pareto_mask,
    sparsity,
    steering_correlation,
)
from tora.evaluate.planning import next_state_error
from tora.evaluate.plots import plot_pareto_front, plot_training_curves, plot_weight_sweep
from tora.preferences import lattice_size, simplex_grid, validate_weights

__all__ = [
    "expected_utility",
    "front_metrics",
    "hypervolume",
    "lattice_size",
    "next_state_error",
    "pareto_front",
    "pareto_mask",
    "plot_pareto_front",
    "plot_training_curves",
    "plot_weight_sweep",
    "simplex_grid",
    "sparsity",
    "steering_correlation",
    "validate_weights",
]
