"""The tables the ``tora dime`` commands print: bandit sweeps summarized over seeds, and the
returns of offline LS / DiME policies per trade-off."""

from __future__ import annotations

import numpy as np

from tora.tables import aligned_table

__all__ = ["dime_bandit_summary", "format_dime_bandit_table", "format_dime_returns"]


def dime_bandit_summary(sweeps: list) -> list[dict[str, object]]:
    """One row per (problem, method): hypervolume mean and std over seeds, the true front's
    hypervolume, and the mean seconds per sweep."""
    rows = []
    keys = list(dict.fromkeys((s.problem, s.method) for s in sweeps))
    for problem, method in keys:
        group = [s for s in sweeps if (s.problem, s.method) == (problem, method)]
        hv = np.array([s.hypervolume for s in group])
        rows.append(
            {
                "problem": problem,
                "method": method,
                "seeds": [s.seed for s in group],
                "hypervolume_mean": float(hv.mean()),
                "hypervolume_std": float(hv.std()),
                "front_hypervolume": float(group[0].front_hypervolume),
                "seconds_per_sweep": float(np.mean([s.seconds for s in group])),
            }
        )
    return rows


def format_dime_bandit_table(rows: list[dict[str, object]]) -> str:
    """Aligned text table of :func:`dime_bandit_summary`."""
    head = ["problem", "method", "hypervolume", "true front", "s/sweep"]
    body = [
        [
            str(r["problem"]),
            str(r["method"]).upper(),
            f"{r['hypervolume_mean']:.4f} ± {r['hypervolume_std']:.4f}",
            f"{r['front_hypervolume']:.4f}",
            f"{r['seconds_per_sweep']:.1f}",
        ]
        for r in rows
    ]
    return aligned_table(head, body, left=len(head))


def format_dime_returns(rows: list[dict[str, object]]) -> str:
    """Aligned text table: one row per (policy, alpha) with its mean returns."""
    names = list(rows[0]["objectives"])  # type: ignore[call-overload]
    head = ["method", "alpha", *(f"return_{n}" for n in names), "task return"]
    body = [
        [
            str(r["label"]),
            f"{r['alpha']:.3f}",
            *(f"{v:.2f}" for v in r["returns"]),  # type: ignore[attr-defined]
            f"{r['task_return']:.2f} ± {r['task_return_std']:.2f}",
        ]
        for r in rows
    ]
    return aligned_table(head, body)
