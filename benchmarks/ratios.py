"""Each method of a suite against the behaviour front and a baseline, per environment.

Reads a suite's results.json (written by `tora bench run` / `tora bench table`) and prints,
per env and method, the hypervolume's mean and spread over seeds (the spread also as a share
of the mean), its ratio to the dataset's behaviour front and to a baseline method, and the
steering next to the data's own steering (the behaviour row's, when recorded).

    python benchmarks/ratios.py runs/bench/reduced/results.json --baseline bc_p
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any


def _fmt(x: float | None, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


def ratio_rows(rows: list[dict[str, Any]], baseline: str) -> list[list[str]]:
    by_env: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_env.setdefault(row["env_id"], []).append(row)
    out = []
    for env_id, env_rows in by_env.items():
        behaviour = next((r for r in env_rows if r["method"] == "behaviour"), None)
        base = next((r for r in env_rows if r["method"] == baseline), None)
        beh_hv = behaviour["hypervolume"]["mean"] if behaviour else None
        base_hv = base["hypervolume"]["mean"] if base else None
        data_steer = behaviour["steering_correlation"]["mean"] if behaviour else None
        for r in env_rows:
            if r["method"] == "behaviour":
                continue
            hv, sd = r["hypervolume"]["mean"], r["hypervolume"]["std"]
            steer = r["steering_correlation"]
            out.append(
                [
                    env_id.split("/")[-1],
                    r["label"],
                    f"{len(r['seeds'])}/{r['seeds_planned']}",
                    f"{_fmt(hv)} ± {_fmt(sd)}" if sd is not None else _fmt(hv),
                    _fmt(sd / hv * 100, ".1f") + "%" if sd is not None and hv else "-",
                    _fmt(hv / beh_hv, ".2f") if beh_hv else "-",
                    _fmt(hv / base_hv, ".2f") if base_hv else "-",
                    f"{_fmt(steer['mean'], '.2f')} ± {_fmt(steer['std'], '.2f')}"
                    if steer["std"] is not None
                    else _fmt(steer["mean"], ".2f"),
                    _fmt(data_steer, ".2f"),
                ]
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="a suite's results.json")
    parser.add_argument("--baseline", default="bc_p", help="method the ratios are taken to")
    args = parser.parse_args()
    rows = json.loads(args.results.read_text())["rows"]
    header = [
        "env",
        "method",
        "seeds",
        "hypervolume",
        "spread",
        "/ behaviour",
        f"/ {args.baseline}",
        "steering",
        "data steering",
    ]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for line in ratio_rows(rows, args.baseline):
        print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    main()
