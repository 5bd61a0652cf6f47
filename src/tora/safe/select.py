"""Choose the weight (w_r, w_c) for a cost threshold: the highest-reward weight that stays safe.

Composition makes the trade-off a dial rather than a training run, and this module turns the
dial for a budget kappa. Weights are rows ``(w_r, 1 - w_r)``; ``evaluate`` runs episodes for a
batch of them and returns each weight's mean episode return and cost. The search:

1. evaluates a coarse grid of w_r over [0, 1];
2. ``rounds`` times: takes the best safe weight so far (highest mean return among weights with
   cost bound below ``(1 - margin) kappa``) and the nearest evaluated weight above it in w_r
   (more reward-heavy, unsafe or not yet better), and evaluates ``refine`` weights evenly
   between the two, i.e. it refines where safety is lost, until the two are closer than
   ``resolution``;
3. returns the best safe weight with every evaluated weight as evidence.

A weight's *cost bound* is its mean selection cost plus ``cost_z`` standard errors of that
mean (``cost_z = 0``: the mean itself). The mean of 20 episodes is a noisy estimate, and the
search keeps the highest-reward weight whose estimate came out under the limit, so a plain
mean favours weights that were lucky on the selection episodes; the bound asks each weight to
be under the limit with room for its own noise (a weight whose episodes vary a lot needs more).

Nothing assumes cost rises with w_r: a safe weight anywhere on the grid counts. When no weight
is safe the least costly one is returned, marked ``found = False``. Evaluations are cached by
w_r, so the thresholds of one table share the coarse grid (:class:`WeightSearch`). The
episodes must be the selection episodes (:func:`tora.safe.protocol.episode_seeds` with
``"select"``), never the reported ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tora.errors import ToraError
from tora.tables import aligned_table

__all__ = [
    "Candidate",
    "Evaluate",
    "SelectConfig",
    "Selection",
    "WeightSearch",
    "best_safe",
    "format_selection",
]

Evaluate = Callable[[np.ndarray], tuple[np.ndarray, ...]]
"""(n, 2) weight rows -> ((n,) mean episode returns, (n,) mean episode costs[, (n,) standard
errors of the mean costs]); without the third, costs count as exact (``cost_z`` has no
effect)."""


@dataclass
class SelectConfig:
    """How :class:`WeightSearch` looks for the weight of a threshold."""

    coarse: int = 6
    """Evenly spaced values of w_r in [0, 1] evaluated first (at least 2)."""
    refine: int = 3
    """Weights evaluated per refinement round, between the best safe weight and the next
    more reward-heavy one."""
    rounds: int = 2
    """Refinement rounds (0: the coarse grid only)."""
    episodes: int = 10
    """Selection episodes per weight (seeds of the "select" range, never the table's)."""
    resolution: float = 0.02
    """Refinement stops once the best safe weight and the next more reward-heavy one are
    closer than this in w_r: finer steps only chase the noise of the selection episodes."""
    margin: float = 0.1
    """Safety margin: a weight counts as safe when its mean cost is below
    ``(1 - margin) * threshold``, so that a weight just under the limit on the selection
    episodes is not chosen only to go over it on others. In [0, 1)."""
    seed: int = 0
    """Evaluation seed of the selection episodes (and of the planners' sampling noise)."""
    cost_z: float = 0.0
    """Standard errors of the mean added to a weight's mean selection cost before it is
    compared with the limit (0: the mean alone; 1.645: a one-sided 95% normal bound)."""

    def check(self) -> None:
        if self.coarse < 2 or self.refine < 1 or self.rounds < 0 or self.episodes < 1:
            raise ToraError(
                "select needs coarse >= 2, refine >= 1, rounds >= 0 and episodes >= 1; got "
                f"{self.coarse}, {self.refine}, {self.rounds}, {self.episodes}"
            )
        if not (np.isfinite(self.resolution) and self.resolution > 0):
            raise ToraError(f"resolution must be > 0, got {self.resolution}")
        if not 0.0 <= self.margin < 1.0:
            raise ToraError(f"margin must lie in [0, 1), got {self.margin}")
        if not (np.isfinite(self.cost_z) and self.cost_z >= 0):
            raise ToraError(f"cost_z must be a finite number >= 0, got {self.cost_z}")


@dataclass(frozen=True)
class Candidate:
    """One evaluated weight."""

    w_r: float
    reward: float
    """Mean episode return over the selection episodes."""
    cost: float
    """Mean episode cost over the selection episodes."""
    cost_se: float = 0.0
    """Standard error of ``cost`` (0 where the evaluation gave none)."""

    def bound(self, z: float) -> float:
        """The cost bound ``cost + z * cost_se`` the search compares with the limit."""
        return self.cost + z * self.cost_se

    @property
    def weight(self) -> tuple[float, float]:
        return (self.w_r, 1.0 - self.w_r)


@dataclass
class Selection:
    """The chosen weight for one threshold, with the evidence it was chosen on."""

    threshold: float
    limit: float
    """The cost bound a weight had to stay below: (1 - margin) * threshold."""
    chosen: Candidate
    found: bool
    """False when no weight was safe (``chosen`` is then the least costly one)."""
    candidates: list[Candidate] = field(default_factory=list)
    cost_z: float = 0.0
    """Standard errors added to the mean costs (:attr:`SelectConfig.cost_z`)."""

    @property
    def weight(self) -> tuple[float, float]:
        return self.chosen.weight

    def is_safe(self, candidate: Candidate) -> bool:
        """Whether ``candidate``'s cost bound is below the limit."""
        return candidate.bound(self.cost_z) < self.limit

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "limit": self.limit,
            "weight": list(self.weight),
            "found": self.found,
            "reward": self.chosen.reward,
            "cost": self.chosen.cost,
            **({"cost_se": self.chosen.cost_se, "cost_z": self.cost_z} if self.cost_z else {}),
            "candidates": [
                {
                    "weight": list(c.weight),
                    "reward": c.reward,
                    "cost": c.cost,
                    **({"cost_se": c.cost_se} if self.cost_z else {}),
                }
                for c in self.candidates
            ],
        }


def best_safe(rewards: Sequence[float], costs: Sequence[float], limit: float) -> tuple[int, bool]:
    """Index of the highest reward among entries with cost below ``limit`` and True; if none
    is below, the index of the lowest cost (ties: higher reward) and False."""
    r = np.asarray(rewards, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if r.size == 0 or r.shape != c.shape:
        raise ToraError(f"need matching non-empty rewards and costs, got {r.shape}, {c.shape}")
    if not (np.isfinite(r).all() and np.isfinite(c).all()):
        raise ToraError("rewards and costs of the candidates must be finite (got NaN or inf)")
    safe = c < limit
    if safe.any():
        return int(np.flatnonzero(safe)[np.argmax(r[safe])]), True
    return int(np.lexsort((-r, c))[0]), False


class WeightSearch:
    """The search of the module docstring over one policy, caching evaluated weights."""

    def __init__(self, evaluate: Evaluate, config: SelectConfig | None = None) -> None:
        self.evaluate = evaluate
        self.config = config or SelectConfig()
        self.config.check()
        self._seen: dict[float, Candidate] = {}

    @property
    def evaluated(self) -> int:
        """Distinct weights evaluated so far."""
        return len(self._seen)

    def _ensure(self, w_rs: np.ndarray) -> None:
        keys = sorted({round(float(w), 10) for w in w_rs} - set(self._seen))
        if not keys:
            return
        weights = np.stack([np.array(keys), 1.0 - np.array(keys)], axis=1)
        out = self.evaluate(weights)
        if len(out) not in (2, 3):
            raise ToraError(f"evaluate must return 2 or 3 arrays, got {len(out)}")
        rewards, costs = np.asarray(out[0], float), np.asarray(out[1], float)
        ses = np.asarray(out[2], float) if len(out) == 3 else np.zeros(len(keys))
        if any(a.shape != (len(keys),) for a in (rewards, costs, ses)):
            raise ToraError(
                f"evaluate returned {rewards.shape}, {costs.shape}, {ses.shape} for {len(keys)}"
            )
        if not (np.isfinite(ses).all() and (ses >= 0).all()):
            raise ToraError(f"cost standard errors must be finite and >= 0, got {ses.tolist()}")
        for w, r, c, se in zip(keys, rewards, costs, ses, strict=True):
            self._seen[w] = Candidate(w, float(r), float(c), float(se))

    def _pick(self, limit: float) -> tuple[Candidate, bool, list[Candidate]]:
        cands = [self._seen[w] for w in sorted(self._seen)]
        bounds = [c.bound(self.config.cost_z) for c in cands]
        i, found = best_safe([c.reward for c in cands], bounds, limit)
        return cands[i], found, cands

    def select(self, threshold: float) -> Selection:
        """The weight for ``threshold`` (> 0), refining at the boundary of safety."""
        kappa = float(threshold)
        if not np.isfinite(kappa) or kappa <= 0:
            raise ToraError(f"select needs a cost threshold > 0, got {threshold!r}")
        cfg = self.config
        limit = (1.0 - cfg.margin) * kappa
        self._ensure(np.linspace(0.0, 1.0, cfg.coarse))
        for _ in range(cfg.rounds):
            best, found, cands = self._pick(limit)
            if not found:
                break
            above = [c.w_r for c in cands if c.w_r > best.w_r]
            if not above or min(above) - best.w_r < cfg.resolution:
                break  # the most reward-heavy weight is already safe, or the gap is closed
            inner = np.linspace(best.w_r, min(above), cfg.refine + 2)[1:-1]
            self._ensure(inner)
        chosen, found, cands = self._pick(limit)
        return Selection(kappa, limit, chosen, found, cands, cfg.cost_z)


def format_selection(selection: Selection) -> str:
    """The evidence of a selection as an aligned text table (the chosen row marked)."""
    rows = [
        [
            f"{c.w_r:.4f}",
            f"{1 - c.w_r:.4f}",
            f"{c.reward:.1f}",
            f"{c.cost:.2f}",
            f"{c.cost / selection.threshold:.3f}",
            "yes" if selection.is_safe(c) else "no",
            "<-" if c.w_r == selection.chosen.w_r else "",
        ]
        for c in selection.candidates
    ]
    header = ["w_r", "w_c", "return", "cost", "cost/kappa", "safe", "chosen"]
    if selection.cost_z:  # the bound the search compared, after the mean
        z = selection.cost_z
        for row, c in zip(rows, selection.candidates, strict=True):
            row.insert(4, f"{c.bound(z):.2f}")
        header.insert(4, f"cost+{z:g}se")
    return aligned_table(header, rows)
