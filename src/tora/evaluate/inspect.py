"""Summaries of dataset files, for ``tora data inspect`` and for quick checks in notebooks.

:func:`inspect_dataset` loads a file in any supported format and returns
:meth:`Trajectories.summary` plus its path and its dataset card (under ``"card"``, see
:mod:`tora.evaluate.card`) as a JSON-ready dict; :func:`format_summary` renders such a dict as
aligned ``key: value`` lines with one line per objective, followed by the card.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tora.data.formats import load_dataset
from tora.data.formats._io import PathLike
from tora.evaluate.card import dataset_card, format_card

# Keys shown one per line, in this order; objectives and returns get their own block.
_LINES = (
    "path",
    "format",
    "env_id",
    "episodes",
    "transitions",
    "obs_dim",
    "act_dim",
    "episode_length",
    "terminals",
    "timeouts",
    "has_costs",
)
_RETURN_KEYS = ("return_min", "return_mean", "return_max")


def inspect_dataset(path: PathLike, format: str | None = None) -> dict[str, Any]:
    """Load the dataset at ``path`` and return its summary dict with ``"path"`` and ``"card"``
    (:func:`tora.evaluate.card.dataset_card`, reference point 0) added."""
    traj = load_dataset(path, format=format)
    return {"path": str(path), **traj.summary(), "card": dataset_card(traj)}


def _value_text(value: Any) -> str:
    if isinstance(value, dict) and {"min", "mean", "max"} <= set(value):
        return f"min {value['min']}, mean {_num(value['mean'])}, max {value['max']}"
    return "-" if value is None else str(value)


def _num(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


def _objective_lines(d: dict[str, Any]) -> list[str]:
    names: Sequence[str] = d.get("objectives") or []
    directions = d.get("directions") or ["?"] * len(names)
    lows, means, highs = (d.get(k) or [None] * len(names) for k in _RETURN_KEYS)
    width = max((len(n) for n in names), default=0)
    # strict=False: a hand-edited or partial summary dict still renders what it has.
    rows = zip(names, directions, lows, means, highs, strict=False)
    return [
        f"  {name:<{width}}  {direction:<8}  return min {_num(lo)}  mean {_num(mean)}  "
        f"max {_num(hi)}"
        for name, direction, lo, mean, hi in rows
    ]


def format_summary(d: dict[str, Any]) -> str:
    """A readable multi-line report of a summary dict (from :func:`inspect_dataset`)."""
    keys = [k for k in _LINES if k in d]
    width = max((len(k) for k in [*keys, "objectives"]), default=0)
    lines = [f"{k:<{width}} : {_value_text(d[k])}" for k in keys]
    lines.append(f"{'objectives':<{width}} : {len(d.get('objectives') or [])}")
    lines.extend(_objective_lines(d))
    if d.get("card"):
        episodes = d.get("episodes")
        lines.append(
            format_card(
                d["card"], episodes if isinstance(episodes, int) else None, with_returns=False
            )
        )
    return "\n".join(lines)
