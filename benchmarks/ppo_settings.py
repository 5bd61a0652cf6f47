"""PPO settings compared on one behaviour policy: its training curve and final return vector.

    python benchmarks/ppo_settings.py --env tora/MO-Hopper-v0 --weights 1 0 \\
        --variant plain --variant return_std=reward_scale:return_std --updates 300 \\
        --seed 0 --out runs/ppo_settings

Each variant is ``NAME`` or ``NAME=FIELD:VALUE[,FIELD:VALUE...]`` (fields of
:class:`tora.behavior.ppo.PPOConfig`; the name ``plain`` with no fields is the defaults).
Each (variant, seed) trains in ``OUT/<env>/<name>/seed<S>`` with resumable state
(warm-started from ``--init``'s policy if given), so a killed run continues; a finished one
is read back. The JSON summary (``OUT/<env>/summary.json``) holds per variant and seed the
deterministic return vector (``eval_episodes`` episodes), the scalarized training return
every 10 updates, the environment steps and seconds. Choose settings on this
(training-side) evidence, then judge the behaviour set built with them by its hypervolume
(``tora behavior train`` + ``tora data make``), never the other way round.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from tora.behavior.ppo import PPOConfig, load_mlp_policy, train_ppo
from tora.io import atomic_write_json

FIELD_TYPES = {f.name: f.type for f in fields(PPOConfig)}


def parse_variant(spec: str) -> tuple[str, dict[str, Any]]:
    """``NAME`` or ``NAME=FIELD:VALUE,...`` -> (name, PPOConfig overrides)."""
    name, _, rest = spec.partition("=")
    overrides: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition(":")
        if key not in FIELD_TYPES:
            raise SystemExit(f"{spec}: {key!r} is not a PPOConfig field")
        kind = str(FIELD_TYPES[key])
        if kind in ("int", "int | None"):
            overrides[key] = int(value)
        elif "float" in kind:
            overrides[key] = float(value)
        else:
            overrides[key] = value
    return name, overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True)
    parser.add_argument("--weights", type=float, nargs="+", required=True)
    parser.add_argument("--variant", action="append", required=True)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--seed", type=int, action="append")
    parser.add_argument("--out", type=Path, default=Path("runs/ppo_settings"))
    parser.add_argument(
        "--init", type=Path, help="Warm-start every run from this saved MLP policy (stem)."
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    root = args.out / args.env.replace("/", "_")
    summary_path = root / "summary.json"
    summary: dict[str, Any] = (
        json.loads(summary_path.read_text()) if summary_path.exists() else {"runs": {}}
    )
    summary.update(env=args.env, weights=args.weights)
    init = load_mlp_policy(args.init) if args.init else None
    if init is not None:
        summary["init"] = str(args.init)
    for spec in args.variant:
        name, overrides = parse_variant(spec)
        for seed in args.seed or [0]:
            config = PPOConfig(updates=args.updates, seed=seed, **overrides)
            policy = train_ppo(
                args.env,
                args.weights,
                config,
                init=init,
                state_path=root / name / f"seed{seed}",
                progress=not args.no_progress,
                desc=f"{name} seed {seed}",
            )
            info = policy.info
            history = np.asarray(info["history"])
            summary["runs"][f"{name}/seed{seed}"] = {
                "overrides": overrides,
                "updates": info["updates"],
                "env_steps": info["env_steps"],
                "eval_steps": info.get("eval_steps"),
                "eval_episodes": config.eval_episodes,
                "seconds": info["seconds"],
                "return_vector": info.get("return_vector"),
                "scalarized_return": info.get("scalarized_return"),
                "history_every_10": history[9::10].round(2).tolist(),
            }
            atomic_write_json(summary_path, summary)
            print(
                f"{name} seed {seed}: return vector {np.round(info.get('return_vector'), 1)}, "
                f"{info['env_steps']} env steps, {info['seconds']:.0f} s"
            )


if __name__ == "__main__":
    main()
