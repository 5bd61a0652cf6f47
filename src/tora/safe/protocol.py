"""The evaluation protocol of the safe-RL table, and where each purpose draws episode seeds.

DSRL's tables (and the safe-RL seed's Table 2) evaluate 20 episodes for each of 3 seeds at
the cost thresholds 10, 20 and 40. Choosing the weights (w_r, w_c) for a threshold is itself
tuning on episodes, so the episodes that choose must not be the episodes that report: a weight
picked because it happened to be safe on the reported start states would overstate safety.
:func:`episode_seeds` makes the split structural. Every purpose owns a block of
:data:`SEED_BLOCK` consecutive seeds per evaluation seed, and the blocks of different
purposes never overlap for any evaluation seed below :data:`MAX_EVAL_SEEDS`.
"""

from __future__ import annotations

from typing import Literal

from tora.errors import ToraError

Purpose = Literal["table", "select", "check"]
"""``table``: the reported episodes; ``select``: the episodes weights are chosen on;
``check``: fresh episodes on which a selection rule's choices are re-measured, to compare
rules without looking at the table (``benchmarks/safe_selection_check.py``)."""

SEED_BLOCK = 1000
"""Episode seeds per (purpose, evaluation seed): the most episodes one evaluation may use."""
MAX_EVAL_SEEDS = 1000
"""Evaluation seeds per purpose; together with SEED_BLOCK this sizes each purpose's range."""
_PURPOSE_BASE: dict[str, int] = {
    "table": 0,
    "select": SEED_BLOCK * MAX_EVAL_SEEDS,
    "check": 2 * SEED_BLOCK * MAX_EVAL_SEEDS,
}

TABLE_EPISODES = 20
"""Episodes per seed in the reported table (DSRL's protocol)."""
TABLE_SEEDS = (0, 1, 2)
"""Seeds of the reported table (DSRL's protocol: 3)."""


def episode_seeds(purpose: Purpose, seed: int, episodes: int) -> list[int]:
    """The env reset seeds of ``episodes`` episodes for ``purpose`` under evaluation seed
    ``seed``: ``base(purpose) + seed * SEED_BLOCK + e``. Seeds of different purposes never
    coincide, whatever ``seed`` and ``episodes`` (within the limits checked here)."""
    if purpose not in _PURPOSE_BASE:
        raise ToraError(f"unknown seed purpose {purpose!r}; choose one of {list(_PURPOSE_BASE)}")
    if isinstance(seed, bool) or not 0 <= int(seed) < MAX_EVAL_SEEDS:
        raise ToraError(f"evaluation seed must be in [0, {MAX_EVAL_SEEDS}), got {seed!r}")
    if not 1 <= int(episodes) <= SEED_BLOCK:
        raise ToraError(f"episodes must be in [1, {SEED_BLOCK}], got {episodes!r}")
    start = _PURPOSE_BASE[purpose] + int(seed) * SEED_BLOCK
    return list(range(start, start + int(episodes)))
