"""Planning latency of composed planners: how long one action takes, alone and in a sweep.

A plan costs ``sampler steps x K`` denoiser calls, so latency depends on the architecture, the
horizon, the sampler and K, not on trained weights: the benchmark times randomly initialised
networks of the requested shape. Timings are medians over repeats after warm-up.

How the K models run (sequential or stacked), the precision and the compilation are options;
each row reports what actually ran, since unavailable accelerations fall back to eager fp32
(see :mod:`tora.diffusion.accel`).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from tora.bench.sweep import time_sweep
from tora.device import resolve_device
from tora.diffusion.accel import accelerate
from tora.diffusion.compose import ComposedDenoiser
from tora.diffusion.samplers import SamplerConfig, sample
from tora.diffusion.schedule import NoiseSchedule
from tora.envs import make_env, objective_names
from tora.nn.denoisers import DenoiserConfig, build_denoiser
from tora.nn.inverse_dynamics import InverseDynamics, InverseDynamicsConfig


@dataclass
class SpeedConfig:
    """Settings of ``tora bench speed``."""

    horizon: int = 4
    """Planned states per window."""
    obs_dim: int = 17
    """State dimension (17 = MO-HalfCheetah)."""
    act_dim: int = 6
    """Action dimension."""
    models: tuple[int, ...] = (1, 2, 3)
    """Numbers K of composed objective models to time."""
    batch_sizes: tuple[int, ...] = (1, 501)
    """Batch sizes to time (501 = a whole D4MORL preference sweep in one batch)."""
    repeats: int = 10
    """Timed repetitions per setting (the median is reported)."""
    warmup: int = 2
    """Untimed repetitions first."""
    device: str = "auto"
    """Torch device: auto, cpu or cuda."""
    threads: int = 0
    """torch CPU threads (0 keeps the process's: `tora --threads N`, else OMP_NUM_THREADS,
    else 1)."""
    out: str = ""
    """Optional JSON file for the results."""
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    """Architecture timed."""
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(steps=20))
    """Sampler timed (DDIM steps)."""
    compose: Literal["auto", "sequential", "stacked"] = "auto"
    """How the K models run: "sequential" (one after another), "stacked" (all K in one
    vmapped call over stacked parameters: fewer kernel launches), "auto" (stacked on CUDA,
    sequential on the CPU)."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """Denoiser precision: "fp32", or "bf16" autocast (for GPUs; on most CPUs it is slower)."""
    compile: Literal["none", "compile", "cuda_graph"] = "none"
    """Compilation of the denoiser call: "none", "compile" (torch.compile) or "cuda_graph"
    (one captured graph per batch size; CUDA only). Falls back to "none" with a warning."""
    sweep: bool = False
    """Also time a whole preference sweep on --sweep-env (one planner per objective, same
    options), with tora.bench.sweep.time_sweep."""
    sweep_env: str = "MO-HalfCheetah-v2"
    """Environment of the sweep (its observation and action sizes override the ones above)."""
    sweep_preferences: int = 501
    """Preferences in the sweep (501 = D4MORL's two-objective evaluation grid)."""
    sweep_steps: int = 0
    """Cut the sweep's episodes at this many steps (0: the environment's time limit)."""
    sweep_workers: int = 0
    """Processes stepping the sweep's environments (0: one per core)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Any, repeats: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:  # Linux names the CPU model here; platform.processor() is often empty
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
    except OSError:
        pass
    return platform.processor() or platform.machine()


SweepTimer = Callable[..., Any]
"""``time_sweep(env_id, policy, n_prefs=, steps=, workers=, num_objectives=)`` -> dict or
seconds: the signature of :func:`tora.bench.sweep.time_sweep`."""


def _random_planners(
    config: SpeedConfig, device: torch.device, obs_dim: int, num_models: int
) -> list[nn.Module]:
    return [
        build_denoiser(config.horizon, obs_dim, config.denoiser).to(device).eval()
        for _ in range(num_models)
    ]


def _random_inverse(low: torch.Tensor, high: torch.Tensor, obs_dim: int) -> InverseDynamics:
    return InverseDynamics(obs_dim, low.numel(), low, high, InverseDynamicsConfig()).eval()


class _PlannerPolicy:
    """A plan with K composed random-init denoisers plus inverse dynamics, composed,
    accelerated and sampled exactly as the speed options say. Random weights make the actions
    meaningless but the cost real, which is all a timing needs.

    :meth:`act` works on device tensors (what the speed rows time); calling the object takes
    and returns NumPy arrays, as a sweep's policy does.
    """

    def __init__(
        self,
        config: SpeedConfig,
        device: torch.device,
        models: list[nn.Module],
        inverse: InverseDynamics,
    ) -> None:
        self.config, self.device = config, device
        self.schedule = NoiseSchedule(100)
        self.composed = ComposedDenoiser(models, mode=config.compose).to(device).eval()
        self.fast = accelerate(self.composed, config.precision, config.compile, device)
        self.inverse = inverse.to(device)

    def act(self, first: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """(B, D) current states, (B, K) weights -> (B, A) actions."""
        shape = (first.shape[0], self.config.horizon, first.shape[1])
        plan = sample(
            lambda x, t: self.fast(x, t, weights), self.schedule, shape, first, self.config.sampler
        )
        return self.inverse(plan[:, 0], plan[:, 1])

    @torch.no_grad()
    def __call__(self, obs: np.ndarray, weights: np.ndarray) -> np.ndarray:
        first = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        w = torch.as_tensor(np.asarray(weights, dtype=np.float32), device=self.device)
        return self.act(first, w).cpu().numpy()

    def modes(self) -> dict[str, str]:
        """What ran, after any fallback (read after timing: compile falls back lazily)."""
        return {
            "compose": self.composed.execution_mode(self.device),
            "precision": self.fast.precision,
            "compile": self.fast.compile,
        }


def _sweep_figure(
    config: SpeedConfig, device: torch.device, timer: SweepTimer | None
) -> dict[str, Any]:
    """Wall time of one preference sweep on ``config.sweep_env`` with one random-init
    planner per objective (``timer`` defaults to :func:`tora.bench.sweep.time_sweep`)."""

    env = make_env(config.sweep_env)
    try:
        obs_dim = int(np.prod(env.observation_space.shape))  # type: ignore[arg-type]
        space = env.action_space
        low, high = np.asarray(space.low), np.asarray(space.high)  # type: ignore[attr-defined]
    finally:
        env.close()
    k = len(objective_names(config.sweep_env))
    low_t = torch.as_tensor(low, dtype=torch.float32)
    inverse = _random_inverse(low_t, torch.as_tensor(high, dtype=torch.float32), obs_dim)
    policy = _PlannerPolicy(config, device, _random_planners(config, device, obs_dim, k), inverse)
    result = (timer or time_sweep)(
        config.sweep_env,
        policy,
        n_prefs=config.sweep_preferences,
        steps=config.sweep_steps or None,
        workers=config.sweep_workers or None,
        num_objectives=k,
    )
    out = dict(result) if isinstance(result, dict) else {"wall_seconds": float(result)}
    out.update(models=k, **policy.modes())
    return out


@torch.no_grad()
def run_speed_benchmark(
    config: SpeedConfig, sweep_timer: SweepTimer | None = None
) -> dict[str, Any]:
    """Median milliseconds per action (plan + inverse dynamics) for each (K, batch size).

    With ``config.sweep``, also the wall time of a whole preference sweep (under "sweep"),
    timed by ``sweep_timer`` (default: :func:`tora.bench.sweep.time_sweep`).
    """
    device = resolve_device(config.device)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(0)
    models = _random_planners(config, device, config.obs_dim, max(config.models))
    params = sum(p.numel() for p in models[0].parameters())
    bound = torch.ones(config.act_dim)
    inverse = _random_inverse(-bound, bound, config.obs_dim)
    rng = np.random.default_rng(0)
    rows = []
    for k in config.models:
        policy = _PlannerPolicy(config, device, models[:k], inverse)
        for b in config.batch_sizes:
            weights = torch.as_tensor(
                rng.dirichlet(np.ones(k), size=b), dtype=torch.float32, device=device
            )
            first = torch.randn(b, config.obs_dim, device=device)
            act = partial(policy.act, first, weights)
            seconds = _time(act, config.repeats, config.warmup, device)
            rows.append(
                {
                    "models": k,
                    "batch": b,
                    "ms_per_call": 1e3 * seconds,
                    "ms_per_action": 1e3 * seconds / b,
                    **policy.modes(),
                }
            )
    base = {r["batch"]: r["ms_per_call"] for r in rows if r["models"] == min(config.models)}
    for r in rows:
        r["ratio_to_k1"] = r["ms_per_call"] / base[r["batch"]]
    results: dict[str, Any] = {
        "device": str(device),
        "device_name": _device_name(device),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "denoiser_params": params,
        "config": asdict(config),
        "rows": rows,
    }
    if config.sweep:
        results["sweep"] = _sweep_figure(config, device, sweep_timer)
    return results


def format_speed_table(results: dict[str, Any]) -> str:
    cfg = results["config"]
    den = cfg["denoiser"]
    lines = [
        f"device {results['device']} ({results['device_name']}), torch {results['torch']}, "
        f"{results['torch_threads']} threads",
        f"denoiser {den['kind']} width {den['hidden_dim']} depth {den['depth']} "
        f"({results['denoiser_params'] / 1e6:.2f}M params), horizon {cfg['horizon']}, "
        f"obs_dim {cfg['obs_dim']}, {cfg['sampler']['method']} {cfg['sampler']['steps']} steps",
        "",
        "one planning call = a full DDIM plan + inverse dynamics for the whole batch",
        f"{'K':>3} {'batch':>6} {'ms/call':>9} {'ms/action':>10} {'call vs K=1':>12}  "
        "compose / precision / compile",
    ]
    for r in results["rows"]:
        lines.append(
            f"{r['models']:>3} {r['batch']:>6} {r['ms_per_call']:>9.2f} "
            f"{r['ms_per_action']:>10.3f} {r['ratio_to_k1']:>12.2f}  "
            f"{r['compose']} / {r['precision']} / {r['compile']}"
        )
    sweep = results.get("sweep")
    if sweep is not None:
        parts = [
            f"preference sweep on {results['config']['sweep_env']}: "
            f"{sweep.get('preferences', results['config']['sweep_preferences'])} "
            f"preferences, K = {sweep['models']}, {sweep['wall_seconds']:.2f} s wall"
        ]
        if "policy_seconds" in sweep and "env_seconds" in sweep:
            parts.append(
                f"planning {sweep['policy_seconds']:.2f} s, environments "
                f"{sweep['env_seconds']:.2f} s"
            )
        if "sweep_steps" in sweep:
            parts.append(f"{sweep['sweep_steps']} steps")
        lines += ["", ", ".join(parts)]
    return "\n".join(lines)
