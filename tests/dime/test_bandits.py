"""The DiME toy bandits and the LS / DiME solvers on them.

The rewards are checked against their formulas at hand-picked actions; the solvers against
answers known in advance: LS on Schaffer's convex front lands where the weighted sum peaks,
a = 2 (1 - alpha); on Fonseca-Fleming's concave front LS lands near the front's ends and
DiME between them.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tora.dime import (
    BanditSolverConfig,
    BanditSweep,
    FonsecaFleming,
    Schaffer,
    make_bandit,
    plot_bandit_sweeps,
    run_bandit_sweep,
)
from tora.errors import InvalidWeightsError, ShapeMismatchError
from tora.evaluate.pareto import hypervolume

E4 = 1 - math.exp(-4)  # f at the far end of Fonseca-Fleming's Pareto set
# Trade-offs for the front tests: exactly 0.5 is left out, where LS's two optima tie and the
# policy needs many more steps to leave the unstable middle.
FRONT_ALPHAS = [0.3, 0.4, 0.6, 0.7]
FRONT_STEPS = 1500


def _rewards(bandit: Schaffer | FonsecaFleming, *action: float) -> list[float]:
    return bandit.rewards(torch.tensor([action], dtype=torch.float64))[0].tolist()


# ----------------------------------------------------------------------------- bandits
@pytest.mark.parametrize(
    ("a", "expected"),
    [(0.0, (0.0, -4.0)), (1.0, (-1.0, -1.0)), (2.0, (-4.0, 0.0)), (-1.5, (-2.25, -12.25))],
)
def test_schaffer_rewards_are_minus_its_function(a: float, expected: tuple[float, float]) -> None:
    assert _rewards(Schaffer(), a) == pytest.approx(list(expected))


@pytest.mark.parametrize(
    ("a", "expected"),
    [
        (0.0, (-(1 - math.exp(-1)), -(1 - math.exp(-1)))),
        (1.0, (0.0, -E4)),
        (-1.0, (-E4, 0.0)),
        (0.5, (-(1 - math.exp(-0.25)), -(1 - math.exp(-2.25)))),
    ],
)
def test_fonseca_fleming_rewards_are_minus_its_function(
    a: float, expected: tuple[float, float]
) -> None:
    assert _rewards(FonsecaFleming(), a) == pytest.approx(list(expected))


def test_fonseca_fleming_in_two_dimensions() -> None:
    c = 1 / math.sqrt(2)
    x = (0.5, -0.25)
    f1 = 1 - math.exp(-((x[0] - c) ** 2 + (x[1] - c) ** 2))
    f2 = 1 - math.exp(-((x[0] + c) ** 2 + (x[1] + c) ** 2))
    assert _rewards(FonsecaFleming(action_dim=2), *x) == pytest.approx([-f1, -f2])


def test_actions_outside_the_box_are_clipped() -> None:
    assert _rewards(Schaffer(), 7.0) == _rewards(Schaffer(), 4.0) == pytest.approx([-16.0, -4.0])
    assert _rewards(FonsecaFleming(), -9.0) == _rewards(FonsecaFleming(), -4.0)


def test_true_fronts_and_reference_points() -> None:
    schaffer = Schaffer().pareto_front(3)
    np.testing.assert_allclose(schaffer, [[0.0, -4.0], [-1.0, -1.0], [-4.0, 0.0]], atol=1e-12)
    ff = FonsecaFleming().pareto_front(3)
    np.testing.assert_allclose(ff[[0, -1]], [[0.0, -E4], [-E4, 0.0]], atol=1e-12)
    # Concave: the front's midpoint lies below the chord between its ends.
    assert ff[1].sum() < ff[[0, -1]].sum() / 2
    # nadir - 0.1 (ideal - nadir), the rule stated in tora.dime.bandits.
    assert Schaffer().ref_point().tolist() == pytest.approx([-4.4, -4.4])
    assert FonsecaFleming().ref_point().tolist() == pytest.approx([-1.1 * E4, -1.1 * E4])
    assert FonsecaFleming(action_dim=3).ref_point().tolist() == pytest.approx([-1.1 * E4] * 2)


def test_bandit_errors() -> None:
    with pytest.raises(ValueError, match="unknown bandit"):
        make_bandit("zdt1")
    with pytest.raises(ValueError, match="one action dimension"):
        Schaffer(action_dim=2)
    with pytest.raises(ShapeMismatchError, match=r"\(\.\.\., 1\)"):
        Schaffer().rewards(torch.zeros(4, 2))
    assert isinstance(make_bandit("Fonseca-Fleming"), FonsecaFleming)


# ----------------------------------------------------------------------------- solvers
@pytest.fixture(scope="module")
def ff_sweeps() -> dict[str, BanditSweep]:
    torch.set_num_threads(1)
    return {
        method: run_bandit_sweep("fonseca_fleming", method, FRONT_ALPHAS, FRONT_STEPS, seed=0)
        for method in ("ls", "dime")
    }


def test_dime_finds_the_interior_of_the_concave_front_and_ls_does_not(
    ff_sweeps: dict[str, BanditSweep],
) -> None:
    """The paper's Fig. 1a: on Fonseca-Fleming LS only reaches the front's ends (mean action
    near -1 or +1), DiME also its interior. Swapping the two methods fails every check."""
    ls, dime = ff_sweeps["ls"].actions[:, 0], ff_sweeps["dime"].actions[:, 0]
    assert np.all(np.abs(ls) > 0.75), ls
    assert np.all(np.abs(dime) < 0.75), dime
    # DiME's points move with the trade-off: more weight on r1 moves towards its optimum +1.
    assert np.all(np.diff(dime) > 0.1), dime
    assert ff_sweeps["dime"].hypervolume > ff_sweeps["ls"].hypervolume + 0.1


def test_sweep_result_is_consistent(ff_sweeps: dict[str, BanditSweep]) -> None:
    sweep = ff_sweeps["dime"]
    bandit = FonsecaFleming()
    expected = bandit.rewards(torch.from_numpy(sweep.actions)).numpy()
    np.testing.assert_allclose(sweep.rewards, expected)
    assert sweep.hypervolume == pytest.approx(hypervolume(sweep.rewards, bandit.ref_point()))
    assert 0 < sweep.hypervolume < sweep.front_hypervolume
    assert sweep.temperatures.shape == (4, 2)
    assert ff_sweeps["ls"].temperatures.shape == (4, 1)
    record = json.loads(json.dumps(sweep.to_dict()))
    assert record["alphas"] == FRONT_ALPHAS
    assert record["config"]["steps"] == FRONT_STEPS


def test_ls_on_the_convex_front_lands_where_the_weighted_sum_peaks() -> None:
    """-alpha a^2 - (1 - alpha)(a - 2)^2 peaks at a = 2 (1 - alpha): LS is exact on Schaffer."""
    alphas = np.linspace(0.0, 1.0, 6)
    sweep = run_bandit_sweep("schaffer", "ls", alphas, steps=FRONT_STEPS, seed=0)
    np.testing.assert_allclose(sweep.actions[:, 0], 2 * (1 - alphas), atol=0.1)


def test_seeded_sweeps_repeat_exactly_and_seeds_differ() -> None:
    def sweep(seed: int) -> BanditSweep:
        return run_bandit_sweep("fonseca_fleming", "dime", [0.2, 0.6], steps=150, seed=seed)

    first, again, other = sweep(3), sweep(3), sweep(4)
    np.testing.assert_array_equal(first.actions, again.actions)
    np.testing.assert_array_equal(first.stds, again.stds)
    np.testing.assert_array_equal(first.temperatures, again.temperatures)
    assert not np.array_equal(first.actions, other.actions)


def test_a_trade_off_does_not_depend_on_its_neighbours_in_the_sweep() -> None:
    """Rows share the action noise but not parameters: a trade-off trained alone or inside a
    sweep ends at the same point (up to Adam's rounding)."""
    alone = run_bandit_sweep("schaffer", "dime", [0.3], steps=200, seed=1)
    inside = run_bandit_sweep("schaffer", "dime", [0.9, 0.3, 0.0], steps=200, seed=1)
    np.testing.assert_allclose(alone.actions[0], inside.actions[1], atol=1e-4)


def test_solver_errors() -> None:
    with pytest.raises(ValueError, match="unknown method"):
        run_bandit_sweep("schaffer", "mo-mpo", [0.5], steps=1)
    with pytest.raises(InvalidWeightsError, match=r"\[0, 1\]"):
        run_bandit_sweep("schaffer", "dime", [0.5, 1.5], steps=1)
    with pytest.raises(InvalidWeightsError, match="non-empty"):
        run_bandit_sweep("schaffer", "dime", [], steps=1)
    with pytest.raises(ValueError, match="log\\(num_actions\\)"):
        BanditSolverConfig(num_actions=4, epsilon=2.0)
    with pytest.raises(ValueError, match="steps"):
        BanditSolverConfig(steps=0)


def test_plot_draws_the_true_front_and_each_method(
    ff_sweeps: dict[str, BanditSweep], tmp_path: Path
) -> None:
    path = plot_bandit_sweeps(list(ff_sweeps.values()), tmp_path / "figs" / "ff.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    schaffer = dataclasses.replace(ff_sweeps["ls"], problem="schaffer")
    with pytest.raises(ValueError, match="one bandit"):
        plot_bandit_sweeps([ff_sweeps["dime"], schaffer], tmp_path / "mixed.png")
