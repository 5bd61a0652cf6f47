"""Agent(accel=...): the accelerated denoiser call inside the sampling loop. On the CPU a CUDA
graph falls back to the eager call with a warning and the same actions; bf16 stays close."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tora
from tora.diffusion.accel import AccelConfig, AccelerationWarning
from tora.diffusion.samplers import SamplerConfig
from tora.errors import ConfigError

SAMPLER = SamplerConfig(steps=3, eta=1.0)
OBS = np.array([[0.0, 1.0, 0.0], [0.5, 0.5, 0.2]], dtype=np.float32)
WEIGHTS = np.array([[0.3, 0.7], [1.0, 0.0]])


def _act(run: Path, accel: AccelConfig | None) -> np.ndarray:
    agent = tora.Agent.load(run, device="cpu", sampler=SAMPLER, seed=5, accel=accel)
    return agent.act(OBS, WEIGHTS)


def test_cuda_graph_on_the_cpu_warns_and_acts_as_the_eager_agent(tiny_run: Path) -> None:
    plain = _act(tiny_run, None)
    with pytest.warns(AccelerationWarning, match="CUDA graphs need a CUDA device"):
        graphed = _act(tiny_run, AccelConfig(compile="cuda_graph"))
    assert np.array_equal(graphed, plain)


def test_bf16_acts_close_to_fp32(tiny_run: Path) -> None:
    plain = _act(tiny_run, None)
    agent = tora.Agent.load(
        tiny_run, device="cpu", sampler=SAMPLER, seed=5, accel=AccelConfig(precision="bf16")
    )
    assert agent._fast_eps is not None and agent._fast_eps.precision == "bf16"
    low = agent.act(OBS, WEIGHTS)
    # bf16 keeps 2-3 significant digits in the denoiser; the three-step sampler and the
    # inverse dynamics (fp32) carry that into actions of size ~1.
    assert np.allclose(low, plain, atol=0.1)


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown compile mode"):
        AccelConfig(compile="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown precision"):
        AccelConfig(precision="fp8")  # type: ignore[arg-type]
