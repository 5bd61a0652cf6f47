"""A preference sweep over Ray actors: ``tora evaluate --ray``.

The sweep's rows (row ``i * episodes + e``: preference i's episode e) are cut into N shares of
consecutive rows, one per actor. Each actor loads the agent from the run directory once (paths
and settings travel to it, not models), seeds its rows' noise streams by their index in the
whole sweep and rolls its share out with environments of its own
(:func:`tora.pipeline.sweep_rows`); the driver merges the shares in row order into the
:class:`~tora.evaluate.rollout.SweepResult` the serial sweep returns.

So every row draws the noise it draws in the serial sweep, from the same start state. Its
returns equal the serial sweep's exactly when the actors' batches are those of the serial run
(one actor), and otherwise up to the rounding of batched matrix products: CPU kernels round a
row differently for different batch sizes (about 1e-7 relative per product in float32), and
the closed loop carries that on through the episode (about 1e-7 relative on a 100-step Cruise
return; chaotic dynamics can grow it). The same shares rolled out in one process
(:func:`sweep_shares` with :func:`~tora.pipeline.sweep_rows`) give the Ray sweep's returns
exactly, with torch on one thread as each actor runs it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tora.diffusion.accel import AccelConfig
from tora.diffusion.samplers import SamplerConfig
from tora.errors import ToraError
from tora.evaluate.rollout import RowReturns, SweepResult, merge_rows
from tora.pipeline import env_reward_names, sweep_rows
from tora.planning.agent import Agent
from tora.preferences import Preferences
from tora.scale.session import Log, RaySession, describe_ray_error, ray_session
from tora.train.planner_io import composed_objectives

PURPOSE = "a preference sweep on Ray"
"""What a sweep on Ray is, in the message given when Ray is not installed."""

POLL_S = 1.0
"""How often the driver asks the actors how many rows they have finished."""


@dataclass(frozen=True)
class RaySweepOptions:
    """Where a sweep runs on Ray, and on how many actors."""

    address: str | None = None
    """A running Ray cluster (e.g. "ray://head:10001" or "auto"); None: a local Ray started
    for the sweep on this machine's cores."""
    actors: int | None = None
    """Actors sharing the rows, one CPU each (None: one per CPU of the Ray); never more than
    the sweep has rows."""

    def __post_init__(self) -> None:
        if self.actors is not None and self.actors < 1:
            raise ToraError(f"a sweep on Ray needs at least 1 actor, got {self.actors}")
        if self.address is not None and not self.address.strip():
            raise ToraError("the Ray address is empty")


def sweep_shares(total: int, shares: int) -> list[range]:
    """``total`` sweep rows cut into ``min(shares, total)`` shares of consecutive rows, in
    order, whose sizes differ by one at most (the first ones are the larger)."""
    count = max(1, min(shares, total))
    size, extra = divmod(total, count)
    starts = [i * size + min(i, extra) for i in range(count + 1)]
    return [range(starts[i], starts[i + 1]) for i in range(count)]


@dataclass(frozen=True)
class AgentSettings:
    """What an actor needs to load the agent the serial sweep uses (no torch objects)."""

    run_dir: str
    objectives: list[str]
    device: str
    sampler: SamplerConfig | None
    seed: int
    candidates: int
    accel: AccelConfig | None


class SweepActor:
    """One share of a sweep in a Ray actor: loads the agent, rolls out its rows, and counts
    the rows that have ended for the driver's progress line (asked from a second thread while
    :meth:`run` works, so the actor takes two concurrent calls)."""

    def __init__(self, settings: AgentSettings, cwd: str) -> None:
        import torch

        torch.set_num_threads(1)  # one CPU per actor; the serial sweep to match runs so too
        # Paths relative to where the command ran: a local worker starts there already, a
        # cluster's worker finds it there on a shared filesystem (or not at all).
        if os.path.isdir(cwd):
            os.chdir(cwd)
        self.settings = settings
        self.ended = 0

    def run(
        self, env_id: str, prefs: Preferences, episodes: int, seed: int, rows: range
    ) -> RowReturns:
        s = self.settings
        agent = Agent.load(
            s.run_dir,
            s.objectives,
            device=s.device,
            sampler=s.sampler,
            seed=s.seed,
            candidates=s.candidates,
            accel=s.accel,
        )
        env_reward_names(env_id, agent)  # the env's spaces must fit the agent
        return sweep_rows(
            agent, env_id, prefs, episodes, seed, rows, progress=False, on_end=self._count
        )

    def _count(self, ended: int) -> None:
        self.ended += ended

    def progress(self) -> int:
        return self.ended


def evaluate_run_ray(
    run_dir: Path,
    weights: np.ndarray,
    episodes: int,
    seed: int,
    env_id: str,
    objectives: Sequence[str] | None = None,
    sampler: SamplerConfig | None = None,
    device: str = "auto",
    progress: bool = True,
    candidates: int = 1,
    accel: AccelConfig | None = None,
    options: RaySweepOptions | None = None,
    log: Log | None = None,
) -> SweepResult:
    """:func:`tora.pipeline.evaluate_run` with the rows shared among Ray actors (see the
    module's docstring); the same arguments, but no ``workers`` (each actor steps its own
    environments).

    The actors plan on CPU, each on one thread; with ``device`` "cuda" each takes a GPU
    instead. ``log`` receives the run's lines: the actors and their shares, then (with
    ``progress``) the rows finished as they change, at most once per second. An actor's
    :class:`~tora.errors.ToraError` (e.g. an environment that does not fit the models) is
    raised as it is; any other failure of an actor, as a ToraError naming its rows."""
    options = options or RaySweepOptions()
    log = log or _stderr
    start = time.perf_counter()
    names = composed_objectives(run_dir, objectives)
    # Checked here, before Ray starts: the weights, then the environment.
    prefs = Preferences(weights, len(names), names)
    reward_names = env_reward_names(env_id)
    total = len(prefs) * episodes
    settings = AgentSettings(
        str(Path(run_dir)),
        names,
        "cuda" if device == "cuda" else "cpu",
        sampler,
        seed,
        candidates,
        accel,
    )
    with ray_session(options.address, None, log, PURPOSE) as session:
        ray = session.ray
        count = options.actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
        shares = sweep_shares(total, count)
        gpus = 1 if settings.device == "cuda" else 0
        need = {"CPU": len(shares), "GPU": gpus * len(shares)}
        session.check_fits(f"{len(shares)} actors", need, log, "actors wait")
        actor_class = ray.remote(SweepActor).options(num_cpus=1, num_gpus=gpus, max_concurrency=2)
        actors = [actor_class.remote(settings, os.getcwd()) for _ in shares]
        try:
            plural = "s" if len(shares) > 1 else ""
            log(
                f"ray: {total} sweep rows ({len(prefs)} preferences x {episodes} episodes) on "
                f"{len(shares)} actor{plural}, up to {len(shares[0])} rows each"
            )
            refs = [
                actor.run.remote(env_id, prefs, episodes, seed, share)
                for actor, share in zip(actors, shares, strict=True)
            ]
            parts = _collect(session, actors, refs, shares, log if progress else None)
        finally:
            for actor in actors:  # a cluster outlives the sweep: leave it no actors
                ray.kill(actor)
    result = merge_rows(parts, prefs, episodes, seed, env_id, reward_names or None)
    wall = time.perf_counter() - start
    env_steps = int(result.lengths.sum())
    result.meta["timing"] = {
        "wall_seconds": wall,
        "env_steps": env_steps,
        "env_steps_per_second": env_steps / wall if wall > 0 else float("inf"),
        "sweep_steps": max(part.timing["sweep_steps"] for part in parts),
        "ray_actors": len(shares),
        "actors": [part.timing for part in parts],
    }
    result.meta["models"] = names
    if candidates > 1:
        result.meta["candidates"] = candidates
    return result


def _collect(
    session: RaySession,
    actors: list[Any],
    refs: list[Any],
    shares: list[range],
    log: Log | None,
) -> list[RowReturns]:
    """Every share's returns, in row order, once all have arrived; meanwhile (with ``log``)
    a line whenever the count of finished rows changed."""
    ray = session.ray
    total = sum(len(share) for share in shares)
    pending, shown = list(refs), -1
    while pending:
        _, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S)
        if log is None:
            continue
        ended = _progress(ray, actors, refs, shares, pending)
        done = sum(ended)
        if done != shown:
            each = ", ".join(f"{n}/{len(share)}" for n, share in zip(ended, shares, strict=True))
            log(f"ray: {done}/{total} sweep rows finished (per actor: {each})")
            shown = done
    return [_result(ray, ref, share) for ref, share in zip(refs, shares, strict=True)]


def _progress(
    ray: Any, actors: list[Any], refs: list[Any], shares: list[range], pending: list[Any]
) -> list[int]:
    """Rows finished per actor: a share whose result arrived counts whole, a running one as
    its actor says (one that does not answer in time, or died, as 0: a dead actor's error
    comes with its result)."""
    asked = {
        index: actors[index].progress.remote() for index, ref in enumerate(refs) if ref in pending
    }
    counts = []
    for index, share in enumerate(shares):
        if index not in asked:
            counts.append(len(share))
            continue
        try:
            counts.append(int(ray.get(asked[index], timeout=POLL_S)))
        except ray.exceptions.RayError:  # GetTimeoutError is one too
            counts.append(0)
    return counts


def _result(ray: Any, ref: Any, share: range) -> RowReturns:
    """A share's returns; an actor's ToraError as it is, any other failure as a ToraError
    naming its rows."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as error:
        cause = getattr(error, "cause", None)
        if isinstance(cause, ToraError):
            raise cause from None
        rows = f"rows {share.start}-{share.stop - 1}"
        raise ToraError(
            f"the Ray actor of sweep {rows} failed: {describe_ray_error(error)}"
        ) from None


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
