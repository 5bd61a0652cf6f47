"""Preferences: weights checked once at the edge, then carried through rollouts and act()
calls that only match them against the models' objectives."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

import tora.preferences as prefs_module
from tora.envs import CRUISE_ID, make_env
from tora.errors import InvalidWeightsError, ShapeMismatchError
from tora.evaluate.rollout import rollout_sweep
from tora.planning.inputs import batch_inputs
from tora.preferences import Preferences, spread_rows, validate_weights


def test_made_from_bad_weights_is_refused_as_validate_weights_refuses() -> None:
    for bad in ([0.5, 0.6], [np.nan, 1.0], [-0.5, 1.5], [1.0]):
        with pytest.raises(InvalidWeightsError):
            Preferences(bad, 2)


def test_rows_are_read_only_and_consumers_get_copies() -> None:
    p = Preferences([[0.25, 0.75], [1.0, 0.0]], 2, ["speed", "energy"])
    with pytest.raises(ValueError, match="read-only"):
        p.rows[0, 0] = 1.0
    rows = validate_weights(p, 2, ["speed", "energy"])
    rows[0, 0] = 9.0  # the caller's copy, not the Preferences
    assert p.rows[0, 0] == 0.25
    assert np.array_equal(p.take(np.array([1])).rows, [[1.0, 0.0]])
    assert np.array_equal(p.repeat(2).rows, [[0.25, 0.75], [0.25, 0.75], [1.0, 0.0], [1.0, 0.0]])


def test_matched_against_the_consumers_objectives() -> None:
    p = Preferences([0.25, 0.75], 2, ["speed", "energy"])
    with pytest.raises(InvalidWeightsError, match="expected 3"):
        validate_weights(p, 3)
    with pytest.raises(InvalidWeightsError, match="order speed, energy"):
        validate_weights(p, 2, ["energy", "speed"])
    unnamed = Preferences([0.25, 0.75], 2)
    assert np.array_equal(validate_weights(unnamed, 2, ["energy", "speed"]), [[0.25, 0.75]])


def test_spread_rows() -> None:
    one = np.array([[0.5, 0.5]])
    assert np.array_equal(spread_rows(one, 3), np.repeat(one, 3, axis=0))
    three = np.eye(3)[:, :2] + [[0, 0], [0, 0], [0.5, 0.5]]
    assert spread_rows(three, 3) is three
    with pytest.raises(ShapeMismatchError, match="2 weight rows for 3 observations"):
        spread_rows(np.ones((2, 2)) / 2, 3)


def test_batch_inputs_gives_the_same_rows_for_a_preferences() -> None:
    obs = np.zeros((3, 4))
    _, w_plain, _ = batch_inputs(obs, [0.25, 0.75], 4, ["a", "b"])
    _, w_prefs, _ = batch_inputs(obs, Preferences([0.25, 0.75], 2, ["a", "b"]), 4, ["a", "b"])
    assert np.array_equal(w_plain, w_prefs)


def test_a_sweep_checks_its_weights_once_and_returns_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A rollout of 3 preferences x 2 episodes with a policy that validates its weights on
    every call: given a Preferences, the full check runs once (when it is made), not once per
    step; the returns are those of the plain array."""
    calls = {"n": 0}
    check = prefs_module._check_values

    def counting(*args: object, **kwargs: object) -> np.ndarray:
        calls["n"] += 1
        return check(*args, **kwargs)

    monkeypatch.setattr(prefs_module, "_check_values", counting)

    def policy(obs: np.ndarray, weights: object) -> np.ndarray:
        _, w, _ = batch_inputs(obs, weights, obs.shape[1], ["speed", "energy"])
        return (w[:, :1] * 2.0 - 1.0).astype(np.float32)  # throttle from w_speed

    grid = np.array([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])
    env = partial(make_env, CRUISE_ID)
    plain = rollout_sweep(policy, env, grid, 2, seed=0, max_steps=20, progress=False)
    per_step = calls["n"]
    calls["n"] = 0
    checked = Preferences(grid, 2, ["speed", "energy"])
    once = rollout_sweep(policy, env, checked, 2, seed=0, max_steps=20, progress=False)
    assert calls["n"] == 1 and per_step >= 20
    assert np.array_equal(once.returns, plain.returns)
    assert np.array_equal(once.weights, grid)
