"""Reproduce the Diffusion-DPO settings table of BENCHMARKS.md (section 1) on Cruise.

Trains one reference planner (the demo's settings), then for each setting lr:steps:beta:L
fine-tunes both objectives on top of it and evaluates 11 preferences x 10 episodes.

    python benchmarks/dpo_settings.py --out /tmp/dpo-grid 1e-5:2000:2000:20 3e-5:1000:5000:20
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np

from tora.demo import DemoConfig
from tora.diffusion.samplers import SamplerConfig
from tora.envs import CRUISE_ID
from tora.envs.scripted import collect_cruise
from tora.evaluate import hypervolume
from tora.pipeline import evaluate_run, finetune_run, pretrain_run
from tora.preferences import simplex_grid
from tora.train.dpo import DPOConfig
from tora.train.loop import OptimConfig


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("settings", nargs="+", help="lr:steps:beta:segment_length")
    parser.add_argument("--out", default="/tmp/dpo-grid")
    args = parser.parse_args()
    demo = DemoConfig(progress=False)
    traj = collect_cruise(demo.episodes, demo.seed, progress=False)
    base = Path(args.out) / "base"
    pretrain_run(traj, base, demo.pretrain, demo.inverse, progress=False)
    for setting in args.settings:
        lr, steps, beta, length = (float(v) for v in setting.split(":"))
        run = Path(args.out) / setting.replace(":", "_")
        shutil.rmtree(run, ignore_errors=True)
        for part in ("reference", "inverse_dynamics"):
            shutil.copytree(base / part, run / part)
        dpo = DPOConfig(
            steps=int(steps),
            batch_size=64,
            beta=beta,
            segment_length=int(length),
            optim=OptimConfig(lr=lr, ema_decay=0.0, checkpoint_every=100_000),
        )
        start = time.perf_counter()
        finetune_run(traj, run, dpo, progress=False)
        seconds = time.perf_counter() - start
        result = evaluate_run(
            run,
            simplex_grid(2, 11),
            10,
            100,
            CRUISE_ID,
            sampler=SamplerConfig(steps=20),
            device="cpu",
            progress=False,
        )
        m = result.mean_returns
        print(
            f"{setting}: HV {hypervolume(m, [0, 0]):.0f}  speed-only {np.round(m[0], 1)}  "
            f"energy-only {np.round(m[-1], 1)}  DPO {seconds:.0f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
