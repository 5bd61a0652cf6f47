"""Preference pairs for Diffusion-DPO: two windows from different episodes, labelled per objective.

A sample is a planning window (see :mod:`tora.data.windows`). Its label for an objective is
the discounted return over a segment of ``segment_length`` steps starting at the window's first
state: at horizon 4 the window's own few rewards say too little about where it leads. Only
starts whose whole segment lies inside the episode are drawn, so every label sums the same
number of rewards. Higher wins for a maximized objective, lower for a minimized one; exact ties
are skipped.

Two refinements (issue 17), each an option of :func:`make_pairs`:

- ``through_terminals``: an episode that ends in a terminal (a fall) has no reward after it,
  so a segment cut by the terminal is a true segment return, not a truncated one: starts up to
  the last whose *window* is still made of recorded states are drawn, and falls are counted
  in the labels (windows just before a fall become the losers they are). Episodes cut by a
  timeout keep the full-segment rule.
- ``label="advantage"``: the planner is given its first state and only generates what follows,
  yet the segment return mostly measures that state (on MO-HalfCheetah a linear fit on the
  first state explains R^2 0.98 of the speed label). The advantage label subtracts a value of
  the start state, fitted per objective by ridge regression of the segment return on the
  state's linear and quadratic features, so the label compares continuations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tora.data.regression import QuadraticRidge
from tora.data.trajectories import Trajectories
from tora.errors import DataError


def segment_returns(traj: Trajectories, length: int, discount: float) -> np.ndarray:
    """(T, K): sum_{i<length} discount^i r_{t+i} for every transition t, cut at episode end."""
    if length < 1:
        raise DataError(f"segment length must be >= 1, got {length}")
    kernel = discount ** np.arange(length)
    out = np.zeros(traj.rewards.shape, dtype=np.float64)
    for i in range(traj.num_episodes):
        sl = traj.episode_slice(i)
        r = traj.rewards[sl].astype(np.float64)
        n = r.shape[0]
        for k in range(r.shape[1]):
            # full[t + length - 1] = sum_i kernel[i] * r[t + i]: the forward-looking sum,
            # with the zero padding of a full convolution cutting it at the episode's end.
            out[sl, k] = np.convolve(r[:, k], kernel[::-1])[length - 1 : length - 1 + n]
    return out


def valid_segment_starts(
    traj: Trajectories, length: int, span: int = 0, through_terminals: bool = False
) -> np.ndarray:
    """Transition indices whose segment of ``length`` steps stays inside their episode.

    With ``through_terminals``, in an episode that ends in a terminal every start whose
    window of ``span`` steps ends at a recorded state qualifies too (its segment is cut by the
    terminal, after which the MDP gives nothing)."""
    if span < 0:
        raise DataError(f"span must be >= 0, got {span}")
    ends_in_terminal = np.zeros(traj.num_episodes, dtype=bool)
    if through_terminals:
        ends_in_terminal = traj.terminals[traj.episode_bounds[1:] - 1]
    starts = []
    for i, (b, e) in enumerate(zip(traj.episode_bounds[:-1], traj.episode_bounds[1:], strict=True)):
        # e - b transitions, states b .. e: a window from t ends at state t + span <= e.
        last = e - span if ends_in_terminal[i] else e - length
        if last >= b:
            starts.append(np.arange(b, last + 1))
    if not starts:
        raise DataError(
            f"segment length {length} exceeds every episode (longest "
            f"{int(traj.episode_lengths.max())} steps); lower --segment-length"
        )
    return np.concatenate(starts)


def start_values(
    traj: Trajectories, starts: np.ndarray, targets: np.ndarray, ridge: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """(values (T, K), R^2 (K,)): a per-objective value of every transition's state, fitted
    by ridge regression of ``targets[starts]`` (T, K) on the state's linear and quadratic
    features (:class:`~tora.data.regression.QuadraticRidge`; one solve, no network).
    R^2 is measured on the fitted starts."""
    fit = QuadraticRidge.fit(traj.observations[starts], targets[starts], ridge)
    return fit.predict(traj.observations), fit.r2


@dataclass(frozen=True)
class PreferencePairs:
    """N pairs of window starts with their labels for every objective.

    first, second: (N,) transition indices (window starts) from different episodes.
    returns: (N, 2, K) labels of (first, second) for each objective: segment returns, or
        segment returns minus the start state's value (``make_pairs(label="advantage")``).
    info: how the labels were made (e.g. the value fit's R^2 per objective).
    """

    first: np.ndarray
    second: np.ndarray
    returns: np.ndarray
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.first.size)

    def labelled(
        self, objective: int, minimize: bool = False
    ) -> tuple[np.ndarray, np.ndarray, dict]:
        """(winners, losers, stats) for one objective; ties are dropped.

        stats: ``pairs`` kept, ``ties`` dropped, ``first_wins`` (label balance: near 0.5
        means the order of a pair says nothing about its label), ``mean_gap`` (mean absolute
        return difference between winner and loser).
        """
        a, b = self.returns[:, 0, objective], self.returns[:, 1, objective]
        first_better = a < b if minimize else a > b
        tie = a == b
        keep = ~tie
        winners = np.where(first_better, self.first, self.second)[keep]
        losers = np.where(first_better, self.second, self.first)[keep]
        stats = {
            "pairs": int(keep.sum()),
            "ties": int(tie.sum()),
            "first_wins": float(first_better[keep].mean()) if keep.any() else float("nan"),
            "mean_gap": float(np.abs(a - b)[keep].mean()) if keep.any() else 0.0,
        }
        if not keep.any():
            raise DataError(f"every pair ties on objective {objective}; no preference to learn")
        stats.update({k: v[objective] if isinstance(v, list) else v for k, v in self.info.items()})
        return winners, losers, stats


PAIR_MATCHING = ("random", "nearest")
PAIR_LABELS = ("return", "advantage", "td_advantage")


@dataclass(frozen=True)
class WindowLabels:
    """The windows pairs are drawn from and their labels (:func:`window_labels`).

    starts: transition indices that may start a labelled window.
    labels: (T, K) label of the window starting at every transition, per objective.
    info: how the labels were made (e.g. the value fit's R^2 per objective).
    """

    starts: np.ndarray
    labels: np.ndarray
    info: dict = field(default_factory=dict)


def window_labels(
    traj: Trajectories,
    segment_length: int,
    discount: float,
    label: str = "return",
    span: int = 0,
    through_terminals: bool = False,
) -> WindowLabels:
    """Label every window once, for any number of pair draws (:func:`draw_pairs`).

    ``label`` "return" labels a window by its segment return, "advantage" by that minus its
    start state's fitted value (:func:`start_values`), "td_advantage" by what happens over the
    planned window itself: the discounted reward of its ``span - 1`` steps plus the discounted
    fitted value of its last state, minus its first state's (the part of a segment's return
    that the states a planner generates decide). ``span`` (the planned window's steps) and
    ``through_terminals`` choose the starts (:func:`valid_segment_starts`)."""
    if label not in PAIR_LABELS:
        raise DataError(f"unknown pair label {label!r}; choose one of {PAIR_LABELS}")
    starts = valid_segment_starts(traj, segment_length, span, through_terminals)
    seg = segment_returns(traj, segment_length, discount)
    info: dict = {}
    if label in ("advantage", "td_advantage"):
        values, r2 = start_values(traj, starts, seg)
        info["value_r2"] = [float(v) for v in r2]
        if label == "advantage":
            seg = seg - values
        else:
            k = max(span - 1, 1)  # the window's last state, k steps after its first
            # Every start's window ends inside its episode (valid_segment_starts), so t + k
            # indexes a state of the same episode for the starts that are ever drawn.
            ahead = np.minimum(np.arange(len(seg)) + k, len(seg) - 1)
            seg = segment_returns(traj, k, discount) + discount**k * values[ahead] - values
    info["starts"] = int(starts.size)
    return WindowLabels(starts, seg, info)


def draw_pairs(
    traj: Trajectories,
    windows: WindowLabels,
    num_pairs: int,
    seed: int,
    matching: str = "random",
    candidates: int = 256,
) -> PreferencePairs:
    """Draw ``num_pairs`` pairs of labelled window starts from different episodes (seeded);
    see :func:`make_pairs` for ``matching``."""
    if traj.num_episodes < 2:
        raise DataError("preference pairs need at least two episodes")
    if num_pairs < 1:
        raise DataError(f"num_pairs must be >= 1, got {num_pairs}")
    if matching not in PAIR_MATCHING:
        raise DataError(f"unknown pair matching {matching!r}; choose one of {PAIR_MATCHING}")
    if candidates < 1:
        raise DataError(f"candidates must be >= 1, got {candidates}")
    rng = np.random.default_rng(seed)
    starts = windows.starts
    episode_of = np.repeat(np.arange(traj.num_episodes), traj.episode_lengths)
    if np.unique(episode_of[starts]).size < 2:
        raise DataError("only one episode is long enough for the segment length; lower it")
    first = rng.choice(starts, size=num_pairs)
    if matching == "nearest":
        second = _nearest_partners(traj, first, starts, episode_of, candidates, rng)
    else:
        second = rng.choice(starts, size=num_pairs)
    same = episode_of[first] == episode_of[second]
    while same.any():  # redraw partners from the same episode; terminates with >= 2 episodes
        second[same] = rng.choice(starts, size=int(same.sum()))
        same = episode_of[first] == episode_of[second]
    seg = windows.labels
    return PreferencePairs(
        first, second, np.stack([seg[first], seg[second]], axis=1), dict(windows.info)
    )


def make_pairs(
    traj: Trajectories,
    num_pairs: int,
    segment_length: int,
    discount: float,
    seed: int,
    matching: str = "random",
    candidates: int = 256,
    label: str = "return",
    span: int = 0,
    through_terminals: bool = False,
) -> PreferencePairs:
    """Draw ``num_pairs`` pairs of window starts from different episodes (seeded):
    :func:`window_labels`, then :func:`draw_pairs`.

    ``matching="random"`` draws both starts independently. ``"nearest"`` gives each first
    start the partner, among ``candidates`` random starts of other episodes, whose first
    state is closest (Euclidean distance after scaling each state dimension by its standard
    deviation). The planner is given its first state and only generates what follows, so a
    label that compares two windows from very different states mostly says which *state* is
    better, something the planner cannot choose; pairs that start alike make the label about
    the continuation, which it can.

    ``label``, ``span`` and ``through_terminals``: see :func:`window_labels`.
    """
    windows = window_labels(traj, segment_length, discount, label, span, through_terminals)
    return draw_pairs(traj, windows, num_pairs, seed, matching, candidates)


def _nearest_partners(
    traj: Trajectories,
    first: np.ndarray,
    starts: np.ndarray,
    episode_of: np.ndarray,
    candidates: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """For each start in ``first``, the closest-state start of another episode among
    ``candidates`` random ones (same-episode candidates are never chosen unless all are)."""
    obs = traj.observations.astype(np.float64)
    scale = obs.std(axis=0)
    scale[scale < 1e-8] = 1.0
    z = obs / scale
    out = np.empty_like(first)
    chunk = max(1, 2**20 // max(1, candidates * z.shape[1]))  # bounds memory per block
    for lo in range(0, first.size, chunk):
        a = first[lo : lo + chunk]
        cand = rng.choice(starts, size=(a.size, candidates))
        dist = np.square(z[cand] - z[a, None, :]).sum(axis=-1)
        dist[episode_of[cand] == episode_of[a, None]] = np.inf
        out[lo : lo + chunk] = cand[np.arange(a.size), dist.argmin(axis=1)]
    return out
