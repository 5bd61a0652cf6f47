"""A suite run serially against the same run on Ray: the wall time of each, and whether their
results agree (they must: cells are deterministic per seed).

    python benchmarks/ray_suite.py --out /tmp/ray_suite                 # cruise-smoke, all cores
    python benchmarks/ray_suite.py --out /tmp/ray_suite --method bc     # a quick check it runs

Runs ``tora bench run SUITE`` twice, each in a process of its own and a fresh output directory:
serially, with torch on ``--cell-cpus`` threads, and with ``--ray --ray-cpus N --cell-cpus
C``. The serial run gets the same thread count as each Ray cell because the thread count
changes the rounding of float results; with equal counts every cell's evaluation must be
equal, timings aside (:func:`tora.bench.cells.without_timing`), and the script fails if one
is not. It prints both wall times (Ray's includes starting and stopping the local Ray, as a
user's run does) and the speed-up; ``--json`` also writes them to a file. Time it on an
otherwise idle machine: other work on the cores changes both figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tora.bench.cells import EVAL_FILE, without_timing

SUITE = Path(__file__).with_name("suites") / "cruise-smoke.toml"


def run(args: list[str], threads: int) -> float:
    """Seconds ``tora ARGS`` takes in a process of its own with torch on ``threads``."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "tora.cli.main", *args], env=env, check=True)
    return time.perf_counter() - start


def differing_cells(serial: Path, parallel: Path) -> list[str]:
    """Cells whose evaluations differ between the two runs, or that only one run made."""
    cells = {p.relative_to(serial) for p in serial.rglob(EVAL_FILE)}
    cells |= {p.relative_to(parallel) for p in parallel.rglob(EVAL_FILE)}
    differ = []
    for cell in sorted(cells):
        files = [out / cell for out in (serial, parallel)]
        if not all(f.is_file() for f in files):
            differ.append(f"{cell.parent} (made by one run only)")
            continue
        ours, theirs = (without_timing(json.loads(f.read_text())) for f in files)
        if ours != theirs:
            differ.append(str(cell.parent))
    return differ


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", type=Path, default=SUITE, help="Suite file (MuJoCo kind).")
    parser.add_argument("--out", type=Path, required=True, help="Fresh directory for both runs.")
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs of the Ray.")
    parser.add_argument("--cell-cpus", type=int, default=1, help="CPUs (threads) per cell.")
    parser.add_argument("--method", action="append", default=[], help="Only this method.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    if args.out.exists() and any(args.out.iterdir()):
        parser.error(f"{args.out} is not empty: both runs must start from nothing")
    serial, parallel = args.out / "serial", args.out / "ray"
    common = ["bench", "run", str(args.suite), "--no-progress"]
    common += [flag for method in args.method for flag in ("--method", method)]

    serial_s = run([*common, "--out", str(serial)], args.cell_cpus)
    ray = ["--ray", "--ray-cpus", str(args.cpus), "--cell-cpus", str(args.cell_cpus)]
    ray_s = run([*common, "--out", str(parallel), *ray], args.cell_cpus)
    differ = differing_cells(serial, parallel)
    figures: dict[str, Any] = {
        "suite": str(args.suite),
        "methods": args.method or "all",
        "cells": len(list(serial.rglob(EVAL_FILE))),
        "ray_cpus": args.cpus,
        "cell_cpus": args.cell_cpus,
        "serial_s": round(serial_s, 1),
        "ray_s": round(ray_s, 1),
        "speedup": round(serial_s / ray_s, 2),
        "identical": not differ,
    }
    print(
        f"\n{figures['cells']} cells of {args.suite.name}: serial {serial_s:.1f} s, Ray on "
        f"{args.cpus} CPUs {ray_s:.1f} s (x{serial_s / ray_s:.2f}); "
        + ("results identical" if not differ else f"RESULTS DIFFER: {', '.join(differ)}")
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0 if not differ else 1


if __name__ == "__main__":
    raise SystemExit(main())
