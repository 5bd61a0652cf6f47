"""TORA-safe variants side by side on their *selection* evidence, never the table's episodes.

Each argument is a safe suite's output directory; for every task and seed that all of them
have a finished ``tora`` cell for, print per threshold the weight each variant chose and its
mean return / cost on the selection episodes (``*`` where no weight was safe), and count the
(task, threshold) pairs where a safe weight was found. Settings are chosen on this evidence.

    python benchmarks/safe_selection_compare.py runs/safe/safe runs/safe/safe_planner_validation
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def selections(root: Path) -> dict[tuple[str, str], dict[str, dict]]:
    out = {}
    for path in sorted(root.glob("*/tora/seed*/eval.json")):
        task, seed = path.parts[-4], path.parts[-2]
        thresholds = json.loads(path.read_text())["thresholds"]
        out[(task, seed)] = {k: v["selection"] for k, v in thresholds.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="Safe suite output directories.")
    args = parser.parse_args()
    found = {run: selections(Path(run)) for run in args.runs}
    common = sorted(set.intersection(*(set(f) for f in found.values())))
    names = [Path(run).name for run in args.runs]
    print("| task | seed | kappa | " + " | ".join(f"{n}: w_r, return / cost" for n in names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    safe = dict.fromkeys(args.runs, 0)
    for task, seed in common:
        for kappa in found[args.runs[0]][(task, seed)]:
            cells = []
            for run in args.runs:
                s = found[run][(task, seed)][kappa]
                safe[run] += bool(s["found"])
                mark = "" if s["found"] else "*"
                cells.append(f"{s['weight'][0]:.2f}: {s['reward']:.0f} / {s['cost']:.1f}{mark}")
            print(f"| {task} | {seed} | {float(kappa):g} | " + " | ".join(cells) + " |")
    pairs = sum(len(found[args.runs[0]][key]) for key in common)
    for run, name in zip(args.runs, names, strict=True):
        print(f"{name}: a safe weight at {safe[run]} of {pairs} (task, seed, threshold)")


if __name__ == "__main__":
    main()
