"""The served agent: loading and reloading a run, and acting on requests in micro-batches.

No HTTP here (:mod:`tora.serve.app` maps this to routes), so the serving logic runs and is
tested without a web framework.

Sampling noise. Every row of every agent call draws from its own random stream
(:meth:`Agent.seed_rows`), so a row's action depends on its own stream only, never on which
other requests happened to share its batch:

- a request with ``"seed": s`` gives row i of its observations the stream of
  ``row_seeds(s, n, 1)[i]`` (:func:`tora.evaluate.rollout.row_seeds`): the same request
  always gets the same actions, batched with others or not, up to the floating-point
  differences of batched matrix products (~1e-6), and they equal
  ``agent.seed_rows(row_seeds(s, n, 1)); agent.act(obs, weights)`` on the same run;
- a request without a seed takes one fresh seed per row from the server's stream (``--seed``),
  in order of arrival: repeating a request gives a new sample, as a stochastic policy should,
  and a fresh server answering the same requests in the same order repeats its answers.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tora.diffusion.samplers import SamplerConfig
from tora.errors import ToraError
from tora.evaluate.rollout import row_seeds
from tora.planning.agent import Agent
from tora.serve.batcher import MicroBatcher
from tora.serve.config import ServeConfig
from tora.serve.payload import ActInputs, parse_act_body
from tora.train.checkpoint import read_config
from tora.train.planner_io import objective_dir


class ReloadError(ToraError):
    """Re-loading the run failed; the agent loaded before keeps serving."""


@dataclass(frozen=True)
class LoadedAgent:
    """An agent and what the server reports about it."""

    agent: Agent
    directions: list[str | None]
    """Each composed objective's direction ("maximize" / "minimize") as its model recorded it;
    None for models saved before directions were recorded."""


@dataclass
class AgentLoader:
    """How the run is (re-)loaded: the same settings at start and at every reload."""

    run_dir: Path
    objectives: list[str] | None = None
    """Models to compose, in weight order; None: every model present at (re)load time."""
    device: str = "auto"
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    candidates: int = 1

    def __call__(self) -> LoadedAgent:
        agent = Agent.load(
            self.run_dir, self.objectives, self.device, self.sampler, candidates=self.candidates
        )
        directions = [
            read_config(objective_dir(self.run_dir, name)).get("direction")
            for name in agent.objective_names
        ]
        return LoadedAgent(agent, directions)


def act_rows(agent: Agent, obs: np.ndarray, weights: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """(N, act_dim) actions, row r sampled from the stream seeded with ``seeds[r]``."""
    agent.seed_rows(seeds.tolist())
    return agent.act(obs, weights)


class PolicyService:
    """The agent a server answers with. Loads the run at construction (so a broken run fails
    before the server listens); :meth:`start` and :meth:`close` bracket serving inside the
    event loop."""

    def __init__(
        self, loader: AgentLoader, batch_wait_s: float = 0.002, max_batch: int = 64, seed: int = 0
    ) -> None:
        self.loader = loader
        self.current = loader()
        self.reloads = 0
        self._batch_wait_s = batch_wait_s
        self._max_batch = max_batch
        self._seeds = np.random.default_rng(seed)
        self._executor: ThreadPoolExecutor | None = None
        self._batcher: MicroBatcher | None = None
        self._reload_lock: asyncio.Lock | None = None

    @classmethod
    def from_config(
        cls, run_dir: str | Path, config: ServeConfig, sampler: SamplerConfig | None = None
    ) -> PolicyService:
        loader = AgentLoader(
            Path(run_dir),
            config.objective_names,
            config.device,
            sampler or SamplerConfig(),
            config.candidates,
        )
        return cls(loader, config.batch_wait_s, config.max_batch, config.seed)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        # One worker thread: torch calls never overlap (the agent's noise streams are state),
        # and the event loop stays free to take requests while the agent computes.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tora-agent")
        self._batcher = MicroBatcher(act_rows, self._executor, self._batch_wait_s, self._max_batch)
        self._batcher.start()
        self._reload_lock = asyncio.Lock()

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._batcher = self._executor = None

    # ------------------------------------------------------------------ answers
    @property
    def agent(self) -> Agent:
        return self.current.agent

    @property
    def agent_calls(self) -> int:
        return 0 if self._batcher is None else self._batcher.calls

    @property
    def batching(self) -> bool:
        return self._batch_wait_s > 0

    def describe(self) -> dict[str, Any]:
        """What a client needs to build requests: objective names (the order of positional
        weights), their directions and the agent's sizes."""
        agent = self.agent
        return {
            "objectives": agent.objective_names,
            "directions": list(self.current.directions),
            "obs_dim": agent.obs_dim,
            "act_dim": agent.act_dim,
            "candidates": agent.candidates,
            "run": str(self.loader.run_dir),
        }

    async def act(self, body: Any) -> np.ndarray:
        """The actions for a decoded ``/act`` body: (act_dim,) for one observation, else
        (B, act_dim). Bad inputs raise the Python API's errors before anything is queued."""
        if self._batcher is None:
            raise RuntimeError("PolicyService.start() was not called")
        agent = self.agent  # checked against this agent, so answered by it (see MicroBatcher)
        inputs = parse_act_body(body, agent.obs_dim, agent.objective_names)
        out = await self._batcher.submit(agent, inputs.obs, inputs.weights, self._row_seeds(inputs))
        return out[0] if inputs.single else out

    def _row_seeds(self, inputs: ActInputs) -> np.ndarray:
        # uint64 throughout: mixing int64 and uint64 arrays would make NumPy stack them as
        # float64 and round the seeds.
        if inputs.seed is not None:
            return np.asarray(row_seeds(inputs.seed, inputs.rows, 1), dtype=np.uint64)
        return self._seeds.integers(0, 2**64, size=inputs.rows, dtype=np.uint64)

    # ------------------------------------------------------------------ reload
    async def reload(self) -> dict[str, Any]:
        """Load the run again with the settings of the first load (a model added since by
        `tora finetune` is picked up when no --objectives were given); on success the new
        agent answers every request that arrives afterwards. On failure raise ReloadError and
        keep serving the agent loaded before."""
        if self._reload_lock is None:
            raise RuntimeError("PolicyService.start() was not called")
        async with self._reload_lock:
            before = self.agent.objective_names
            try:
                # Loading reads and hashes files: off the event loop, beside the agent thread.
                loaded = await asyncio.to_thread(self.loader)
            except Exception as exc:  # whatever broke, the old agent must keep serving
                raise ReloadError(
                    f"reload of {self.loader.run_dir} failed, still serving the agent loaded "
                    f"before ({', '.join(before)}): {exc}"
                ) from exc
            self.current = loaded
            self.reloads += 1
            return {"previous_objectives": before, **self.describe()}
