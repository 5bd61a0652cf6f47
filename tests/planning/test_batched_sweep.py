"""One random stream per batch row: a batched preference sweep equals evaluating each
preference on its own (on Cruise, with a tiny trained run and a stochastic sampler)."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

import tora
from tora.diffusion.samplers import RowNoise, SamplerConfig, sample
from tora.diffusion.schedule import NoiseSchedule
from tora.envs import CRUISE_ID, make_env
from tora.errors import ShapeMismatchError
from tora.evaluate.rollout import SweepResult, rollout_sweep, row_seeds

# Noise in every sampler step (eta = 1), so the per-row streams matter beyond the first draw.
SAMPLER = SamplerConfig(steps=3, eta=1.0)
WEIGHTS = np.array([[1.0, 0.0], [0.6, 0.4], [0.25, 0.75], [0.0, 1.0]])
EPISODES = 2
SEED = 4

RTOL, ATOL = 1e-4, 1e-3
"""Tolerance on returns (about 10-100 per 100-step episode). A batched matrix product may
round differently from a one-row product in float32 (about 1e-7 relative per step); over 100
closed-loop steps this stays far below 1e-3 absolute. Any wiring error (a row drawing another
row's noise) changes returns by whole units."""


def sweep(agent: tora.Agent, weights: np.ndarray, prefs: list[int], workers: int) -> SweepResult:
    agent.seed_rows(row_seeds(SEED, prefs, EPISODES))
    return rollout_sweep(
        agent.act,
        functools.partial(make_env, CRUISE_ID),
        weights,
        EPISODES,
        SEED,
        progress=False,
        workers=workers,
        pass_rows=True,
    )


def test_batched_sweep_equals_each_preference_alone(tiny_run: Path) -> None:
    agent = tora.Agent.load(tiny_run, device="cpu", sampler=SAMPLER)
    batched = sweep(agent, WEIGHTS, list(range(len(WEIGHTS))), workers=2)
    alone = np.stack(
        [sweep(agent, WEIGHTS[i : i + 1], [i], workers=0).returns[0] for i in range(len(WEIGHTS))]
    )
    np.testing.assert_allclose(batched.returns, alone, rtol=RTOL, atol=ATOL)
    # Teeth: one stream shared by the batch gives other returns (noise goes to other rows).
    agent.seed(SEED)
    shared = rollout_sweep(
        agent.act, functools.partial(make_env, CRUISE_ID), WEIGHTS, EPISODES, SEED, progress=False
    )
    assert np.abs(shared.returns - alone).max() > 100 * ATOL


def test_rows_keep_their_streams_when_others_drop_out(tiny_run: Path) -> None:
    agent = tora.Agent.load(tiny_run, device="cpu", sampler=SAMPLER)
    single = tora.Agent.load(tiny_run, device="cpu", sampler=SAMPLER)
    seeds = [11, 12, 13]
    obs = np.array([[0.2, 0.0, 1.0], [0.9, 1.0, 0.0], [0.5, -0.6, 0.8]], dtype=np.float32)
    weights = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])
    agent.seed_rows(seeds)
    first = agent.act(obs, weights)  # all rows, in order
    later = agent.act(obs[[0, 2]], weights[[0, 2]], rows=[0, 2])  # row 1 has finished
    for r in (0, 2):
        single.seed_rows([seeds[r]])
        alone_first = single.act(obs[r : r + 1], weights[r : r + 1])
        alone_later = single.act(obs[r], weights[r], rows=[0])  # unbatched input works too
        np.testing.assert_allclose(first[r : r + 1], alone_first, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(later[[0, 2].index(r)], alone_later, rtol=1e-5, atol=1e-6)


def test_row_stream_misuse_is_refused(tiny_run: Path) -> None:
    agent = tora.Agent.load(tiny_run, device="cpu", sampler=SAMPLER)
    obs = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="seed_rows"):
        agent.act(obs, [0.5, 0.5], rows=[0, 1])
    agent.seed_rows([1, 2, 3])
    assert agent.row_streams == 3
    with pytest.raises(ShapeMismatchError, match="rows="):
        agent.act(obs, [0.5, 0.5])
    with pytest.raises(ValueError, match="one row per call"):
        agent.act(obs, [0.5, 0.5], rows=[1, 1])
    with pytest.raises(IndexError):
        agent.act(obs, [0.5, 0.5], rows=[0, 3])
    agent.seed(0)  # back to one shared stream
    assert agent.row_streams == 0 and agent.act(obs, [0.5, 0.5]).shape == (2, 1)


@pytest.mark.parametrize("config", [SamplerConfig(method="ddpm"), SamplerConfig(steps=4, eta=0.7)])
def test_sampler_with_row_noise_samples_each_row_as_alone(config: SamplerConfig) -> None:
    """With a row-wise denoiser, row b of a batch is exactly row b sampled alone.

    Exact, not approximate, on any machine: ``eps`` and every sampler step are elementwise
    tensor ops (mul, add, div, clamp, copy), each rounded once per element whatever the batch
    shape, and the row noise is read from per-row streams. No matrix product or reduction is
    involved (those may round differently by batch shape; see the sweep test above)."""
    schedule = NoiseSchedule(10)
    first = torch.tensor([[0.1, -0.2], [0.3, 0.0], [1.0, 2.0]])

    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.3 * x - 0.01 * t.view(-1, 1, 1)

    # A block of 25 values and draws of 10 per row: rows start new blocks mid-sampling.
    batched = sample(
        eps, schedule, (3, 5, 2), first, config, noise_fn=RowNoise([7, 8, 9], 25).bind(None)
    )
    for b, s in enumerate([7, 8, 9]):
        noise = RowNoise([s], 25).bind([0])
        alone = sample(eps, schedule, (1, 5, 2), first[b : b + 1], config, noise_fn=noise)
        torch.testing.assert_close(batched[b : b + 1], alone, rtol=0, atol=0)


def test_row_noise_streams_do_not_depend_on_the_other_rows() -> None:
    together, apart = RowNoise([1, 2, 3], block=12), RowNoise([1, 2, 3], block=12)
    draws = [together.draw(None, (2, 2)), together.draw([2, 0], (5,)), together.draw([0], (4,))]
    torch.testing.assert_close(draws[0][1], apart.draw([1], (2, 2))[0], rtol=0, atol=0)
    # Row 0 read 4 + 5 values, so its last draw of 4 starts a new block of 12.
    for r, parts in ((0, [draws[0][0], draws[1][1], draws[2][0]]), (2, [draws[0][2], draws[1][0]])):
        alone = RowNoise([[1, 2, 3][r]], block=12)
        expected = [alone.draw(None, p.shape) for p in parts]
        for got, want in zip(parts, expected, strict=True):
            torch.testing.assert_close(got, want[0], rtol=0, atol=0)
    assert not torch.equal(draws[0][0], draws[0][1])  # distinct seeds, distinct streams
    with pytest.raises(ValueError, match="one row per call"):
        together.draw([1, 1], (2,))
    with pytest.raises(IndexError):
        together.draw([3], (2,))
    with pytest.raises(ValueError, match="exceeds the block"):
        together.draw([0], (13,))
    with pytest.raises(ValueError, match="batch of 2"):
        together.bind([0])((2, 3))
