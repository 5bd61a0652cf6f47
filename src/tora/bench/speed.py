"""Planning latency of composed planners: how long one action takes, alone and in a sweep.

A plan costs ``sampler steps x K`` denoiser calls, so latency depends on the architecture, the
horizon, the sampler and K, not on trained weights: the benchmark times randomly initialised
networks of the requested shape. Timings are medians over repeats after warm-up.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from tora.device import resolve_device
from tora.diffusion.compose import ComposedDenoiser
from tora.diffusion.samplers import SamplerConfig, sample
from tora.diffusion.schedule import NoiseSchedule
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
    """torch CPU threads (0 keeps torch's default)."""
    out: str = ""
    """Optional JSON file for the results."""
    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    """Architecture timed."""
    sampler: SamplerConfig = field(default_factory=lambda: SamplerConfig(steps=20))
    """Sampler timed (DDIM steps)."""


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


@torch.no_grad()
def run_speed_benchmark(config: SpeedConfig) -> dict[str, Any]:
    """Median milliseconds per action (plan + inverse dynamics) for each (K, batch size)."""
    device = resolve_device(config.device)
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    torch.manual_seed(0)
    schedule = NoiseSchedule(100)
    models = [
        build_denoiser(config.horizon, config.obs_dim, config.denoiser).to(device).eval()
        for _ in range(max(config.models))
    ]
    params = sum(p.numel() for p in models[0].parameters())
    inverse = (
        InverseDynamics(
            config.obs_dim,
            config.act_dim,
            -torch.ones(config.act_dim),
            torch.ones(config.act_dim),
            InverseDynamicsConfig(),
        )
        .to(device)
        .eval()
    )
    rng = np.random.default_rng(0)
    rows = []
    for k in config.models:
        composed = ComposedDenoiser(models[:k]).to(device)
        for b in config.batch_sizes:
            weights = torch.as_tensor(
                rng.dirichlet(np.ones(k), size=b), dtype=torch.float32, device=device
            )
            first = torch.randn(b, config.obs_dim, device=device)
            shape = (b, config.horizon, config.obs_dim)

            def act(first=first, weights=weights, shape=shape, composed=composed) -> torch.Tensor:
                plan = sample(
                    lambda x, t: composed(x, t, weights, validate=False),
                    schedule,
                    shape,
                    first,
                    config.sampler,
                )
                return inverse(plan[:, 0], plan[:, 1])

            seconds = _time(act, config.repeats, config.warmup, device)
            rows.append(
                {
                    "models": k,
                    "batch": b,
                    "ms_per_call": 1e3 * seconds,
                    "ms_per_action": 1e3 * seconds / b,
                }
            )
    base = {r["batch"]: r["ms_per_call"] for r in rows if r["models"] == min(config.models)}
    for r in rows:
        r["ratio_to_k1"] = r["ms_per_call"] / base[r["batch"]]
    return {
        "device": str(device),
        "device_name": _device_name(device),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "denoiser_params": params,
        "config": asdict(config),
        "rows": rows,
    }


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
        f"{'K':>3} {'batch':>6} {'ms/call':>9} {'ms/action':>10} {'call vs K=1':>12}",
    ]
    for r in results["rows"]:
        lines.append(
            f"{r['models']:>3} {r['batch']:>6} {r['ms_per_call']:>9.2f} "
            f"{r['ms_per_action']:>10.3f} {r['ratio_to_k1']:>12.2f}"
        )
    return "\n".join(lines)
