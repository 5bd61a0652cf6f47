"""How well a planner predicts the next state: a diagnostic for plans that act badly.

TORA acts through an inverse dynamics model fed the planner's first planned transition
``(s_t, s_hat_{t+m})``. When an agent fails although behaviour cloning on the same data works,
either that model or the planned state is at fault. The inverse model is easy to check (its
training loss); this module checks the planner: on transitions of a dataset it compares the
planned next state with the recorded one, in the planner's normalized units (so every state
dimension counts alike), next to two references computed on the same transitions:

- ``still``: predicting "the state does not change" (``|s_t - s_{t+m}|``): a planner that has
  learned anything about the dynamics should beat it;
- ``shuffled``: predicting another transition's next state (a random permutation): a planner
  that ignores the state it starts from scores about this.

With the inverse dynamics model at hand, :func:`diagnose_planners` also scores the action
the agent would take, ``f(s_t, s_hat_{t+m})``, against the data's ``a_t`` (RMSE per action
dimension over the data's standard deviation, averaged): the same model fed the recorded next
state gives that score's floor, another transition's action its ceiling. A small state error
can hide a large action error where one step moves the state little (fast gaits at dt = 0.01 s).

Measured on SafetyDroneCircle (BENCHMARKS.md section 6): the safe suite's reference planner
(4,000 steps) scores 1.05 against still 0.18 and shuffled 0.90, worse than guessing; 20,000
steps bring it to 0.53, and the drone still crashes, while the same inverse dynamics model
fed the true next states flies it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tora.data.normalize import Normalizer
from tora.data.regression import QuadraticRidge
from tora.data.trajectories import Trajectories
from tora.errors import ShapeMismatchError, ToraError

__all__ = [
    "InverseFn",
    "PlannerDiagnosis",
    "action_error",
    "diagnose_planners",
    "next_state_error",
    "transition_reward_model",
]

PlanFn = Callable[[np.ndarray], np.ndarray]
"""Observations (B, D) -> planned windows (B, H, D), row 0 the observation itself."""

InverseFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""(s_t (B, D), s_{t+m} (B, D)) in environment units -> actions (B, A): an inverse dynamics
model, e.g. an agent's, for the action error of :func:`diagnose_planners`."""


def _pairs(
    traj: Trajectories, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All (s_t, s_{t+stride}) inside one episode, as two (N, D) arrays, the action a_t taken
    at each s_t (N, A) and the sum of the ``stride`` rewards in between (N, K)."""
    firsts, seconds, actions, rewards = [], [], [], []
    for i in range(traj.num_episodes):
        states = traj.episode_states(i)
        if len(states) > stride:
            firsts.append(states[:-stride])
            seconds.append(states[stride:])
            actions.append(traj.actions[traj.episode_slice(i)][: len(states) - stride])
            r = traj.rewards[traj.episode_slice(i)].astype(np.float64)
            csum = np.concatenate([np.zeros((1, r.shape[1])), np.cumsum(r, axis=0)])
            rewards.append(csum[stride:] - csum[:-stride])
    if not firsts:
        raise ToraError(f"no episode is longer than the stride ({stride})")
    return (
        np.concatenate(firsts),
        np.concatenate(seconds),
        np.concatenate(actions),
        np.concatenate(rewards),
    )


def next_state_error(
    plan: PlanFn,
    traj: Trajectories,
    normalizer: Normalizer,
    stride: int = 1,
    samples: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Mean absolute error of the planned next state on ``samples`` random transitions of
    ``traj`` (at most), in the planner's normalized units ``(x - mean) / std``.

    For a loaded agent: ``next_state_error(lambda s: agent.plan(s, w), traj,
    agent.spec.normalizer, agent.spec.stride)``.

    Returns ``planned``, ``still`` and ``shuffled`` (module docstring), ``per_dim`` (the
    planned error per state dimension) and ``samples`` (transitions used)."""
    s, s_next, _, shuffle = _sample_transitions(traj, normalizer, stride, samples, seed)
    return _scores(_plan_checked(plan, s), s, s_next, shuffle, normalizer)


def _sample_transitions(
    traj: Trajectories, normalizer: Normalizer, stride: int, samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``samples`` random (s_t, s_{t+stride}, a_t) of ``traj`` (at most), after checking that
    the normalizer fits them, and the permutation of the "shuffled" baseline; the same
    ``seed`` draws the same ones."""
    if stride < 1 or samples < 2:
        raise ToraError(f"need stride >= 1 and samples >= 2, got {stride} and {samples}")
    s, s_next, a, _ = _pairs(traj, stride)
    mean = np.asarray(normalizer.mean, np.float64)
    std = np.asarray(normalizer.std, np.float64)
    if mean.shape != (s.shape[1],) or std.shape != (s.shape[1],) or (std <= 0).any():
        raise ShapeMismatchError(
            f"the normalizer must have {s.shape[1]} positive stds for these states, got "
            f"mean {mean.shape}, std {std.shape}"
        )
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(s), size=min(samples, len(s)), replace=False)
    return (
        s[pick].astype(np.float64),
        s_next[pick].astype(np.float64),
        a[pick].astype(np.float64),
        rng.permutation(pick.size),
    )


def action_error(actions: np.ndarray, reference: np.ndarray) -> float:
    """RMSE of ``actions`` against ``reference`` (both (N, A)) per action dimension, over
    that dimension's standard deviation in ``reference``, averaged over dimensions: 0 is
    exact, about 1.4 is another transition's action (independent draws of the same spread).
    A dimension that never varies counts in raw units."""
    actions = np.asarray(actions, np.float64)
    reference = np.asarray(reference, np.float64)
    if actions.shape != reference.shape or actions.ndim != 2:
        raise ShapeMismatchError(
            f"actions {actions.shape} and the data's actions {reference.shape} must both be "
            "(N, act_dim)"
        )
    rmse = np.sqrt(((actions - reference) ** 2).mean(axis=0))
    std = reference.std(axis=0)
    return float(np.mean(rmse / np.where(std > 0, std, 1.0)))


def _plan_checked(plan: PlanFn, s: np.ndarray) -> np.ndarray:
    planned = np.asarray(plan(s), np.float64)
    if planned.ndim != 3 or planned.shape[0] != len(s) or planned.shape[1] < 2:
        raise ShapeMismatchError(
            f"plan() must return (B, H >= 2, D) windows for {len(s)} states, got {planned.shape}"
        )
    return planned


def _scores(
    planned: np.ndarray,
    s: np.ndarray,
    s_next: np.ndarray,
    shuffle: np.ndarray,
    normalizer: Normalizer,
) -> dict[str, Any]:
    mean = np.asarray(normalizer.mean, np.float64)
    std = np.asarray(normalizer.std, np.float64)
    z = lambda x: (x - mean) / std  # noqa: E731  (a one-line local helper)
    err = np.abs(z(planned[:, 1]) - z(s_next))
    shuffled = s_next[shuffle]
    return {
        "planned": float(err.mean()),
        "still": float(np.abs(z(s) - z(s_next)).mean()),
        "shuffled": float(np.abs(z(shuffled) - z(s_next)).mean()),
        "per_dim": err.mean(axis=0).tolist(),
        "samples": len(s),
    }


def transition_reward_model(
    traj: Trajectories, stride: int = 1, samples: int = 50000, seed: int = 0
) -> QuadraticRidge:
    """A model of each objective's reward over ``stride`` steps from the transition
    (s_t, s_{t+stride}) alone (inputs: :func:`transition_features`), fitted on at most
    ``samples`` transitions of ``traj`` (quadratic ridge regression; its ``r2`` says how far
    to trust it). It scores planned transitions, which have states but no rewards."""
    s, s_next, _, r = _pairs(traj, stride)
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(s), size=min(samples, len(s)), replace=False)
    return QuadraticRidge.fit(transition_features(s[pick], s_next[pick]), r[pick])


def transition_features(s: np.ndarray, s_next: np.ndarray) -> np.ndarray:
    """(s, s_next - s): the change is what a reward of the transition mostly depends on
    (velocities, effort), and as its own input a quadratic in it needs no cancellation
    between large terms such as s_next^2 - 2 s s_next + s^2."""
    s, s_next = np.asarray(s, np.float64), np.asarray(s_next, np.float64)
    return np.concatenate([s, s_next - s], axis=1)


@dataclass(frozen=True)
class PlannerDiagnosis:
    """What :func:`diagnose_planners` found for each planner, on the same transitions."""

    next_state_error: dict[str, float]
    """Planned next state's mean absolute error (normalized units), per planner."""
    still: float
    """The error of predicting "no change": a planner should beat it."""
    shuffled: float
    """The error of predicting another transition's next state: about a planner that ignores
    its start state."""
    planned_reward: dict[str, list[float]]
    """Per planner, the mean predicted reward of its first planned transition, per objective."""
    data_reward: list[float]
    """The same reward model on the data's own transitions."""
    reward_model_r2: list[float]
    """How well the reward model fits each objective (1 = exactly)."""
    objectives: list[str]
    action_error: dict[str, float] = field(default_factory=dict)
    """Per planner, :func:`action_error` of the inverse dynamics' action on its first planned
    transition against the data's action (empty without an inverse dynamics model)."""
    action_floor: float | None = None
    """The same inverse dynamics fed the data's next state: what a perfect plan would score."""
    action_shuffled: float | None = None
    """Another transition's action: about an agent that ignores its state."""


def diagnose_planners(
    planners: Mapping[str, PlanFn],
    traj: Trajectories,
    normalizer: Normalizer,
    stride: int = 1,
    samples: int = 2000,
    seed: int = 0,
    inverse: InverseFn | None = None,
) -> PlannerDiagnosis:
    """Planner health before any rollout: for each planner (e.g. the reference and each
    objective model alone), the next-state error (:func:`next_state_error`) and the
    objectives' reward its first planned transition would earn according to a reward model
    fitted on the data (:func:`transition_reward_model`).

    A healthy objective model predicts the next state about as well as the reference (DPO
    should not unlearn the dynamics) and plans more of its own objective than the reference
    does (DPO moved it the right way). With ``inverse`` (the agent's inverse dynamics), also
    each planner's :func:`action_error` against the data's actions, with its floor and the
    shuffled baseline."""
    model = transition_reward_model(traj, stride, seed=seed)
    s, s_next, a, shuffle = _sample_transitions(traj, normalizer, stride, samples, seed)
    data_reward = model.predict(transition_features(s, s_next)).mean(0)
    errors: dict[str, float] = {}
    actions: dict[str, float] = {}
    rewards: dict[str, list[float]] = {}
    scores: dict[str, Any] = {}
    for name, plan in planners.items():
        planned = _plan_checked(plan, s)
        scores = _scores(planned, s, s_next, shuffle, normalizer)
        errors[name] = scores["planned"]
        predicted = model.predict(transition_features(s, planned[:, 1]))
        rewards[name] = predicted.mean(0).tolist()
        if inverse is not None:
            actions[name] = action_error(inverse(s, planned[:, 1]), a)
    still = scores.get("still", float("nan"))
    shuffled = scores.get("shuffled", float("nan"))
    return PlannerDiagnosis(
        next_state_error=errors,
        still=still,
        shuffled=shuffled,
        planned_reward=rewards,
        data_reward=data_reward.tolist(),
        reward_model_r2=model.r2.tolist(),
        objectives=traj.objective_names,
        action_error=actions,
        action_floor=None if inverse is None else action_error(inverse(s, s_next), a),
        action_shuffled=None if inverse is None else action_error(a[shuffle], a),
    )
