"""Micro-batching: concurrent requests answered by one call of a batched function.

Planning costs nearly the same for one row as for dozens (the denoiser's matrix products are
far from saturated at batch 1), so a server that calls the agent once per request spends its
time on per-call overhead. :class:`MicroBatcher` queues requests, lets the first of a batch
wait up to ``wait_s`` for company (or until ``max_rows`` rows are collected), stacks their
rows, calls the function once in a single worker thread (off the event loop, so the server
keeps answering while torch computes), and hands each caller its own rows back.

Jobs carry a ``key`` (the server passes the agent their inputs were checked against); only
jobs with the same key share a call, so a reload never gives the new agent rows checked for
the old one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

BatchFn = Callable[[Any, np.ndarray, np.ndarray, np.ndarray], np.ndarray]
"""``(key, obs (N, D), weights (N, K), seeds (N,)) -> (N, A)``: the rows answered in order."""


@dataclass
class _Job:
    key: Any
    obs: np.ndarray
    weights: np.ndarray
    seeds: np.ndarray
    arrived: float
    future: asyncio.Future[np.ndarray] = field(repr=False)

    @property
    def rows(self) -> int:
        return int(self.obs.shape[0])


class MicroBatcher:
    """Answer jobs of rows with as few calls of ``fn`` as the waiting allows.

    ``wait_s`` is the longest a job waits for others after it arrived (a job that already
    waited while the previous batch ran goes at once); 0 turns batching off: each job is one
    call. ``executor`` should have a single worker: calls then never overlap, and ``fn`` may
    keep state (the agent's noise streams) between them. Use inside a running event loop:
    :meth:`start` before the first :meth:`submit`, :meth:`close` at shutdown.
    """

    def __init__(self, fn: BatchFn, executor: Executor, wait_s: float, max_rows: int) -> None:
        if wait_s < 0 or max_rows < 1:
            raise ValueError(f"wait_s must be >= 0 and max_rows >= 1, got {wait_s}, {max_rows}")
        self.fn = fn
        self.executor = executor
        self.wait_s = float(wait_s)
        self.max_rows = int(max_rows)
        self.calls = 0
        """Calls of ``fn`` so far (for /health and tests)."""
        self._queue: asyncio.Queue[_Job] | None = None
        self._held: _Job | None = None  # a job that did not fit its batch: first of the next
        self._batch: list[_Job] = []  # the batch being collected or run
        self._task: asyncio.Task[None] | None = None

    @property
    def batching(self) -> bool:
        return self.wait_s > 0

    def start(self) -> None:
        if self.batching and self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._serve())

    async def close(self) -> None:
        """Stop collecting; jobs not answered yet are cancelled (their callers see the error),
        so none waits forever."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        pending = [*self._batch, *([self._held] if self._held else [])]
        while self._queue is not None and not self._queue.empty():
            pending.append(self._queue.get_nowait())
        for job in pending:
            job.future.cancel()  # a no-op on answered jobs
        self._batch, self._held = [], None

    async def submit(
        self, key: Any, obs: np.ndarray, weights: np.ndarray, seeds: np.ndarray
    ) -> np.ndarray:
        """The answer rows for ``obs`` (n, D), ``weights`` (n, K) and ``seeds`` (n,)."""
        loop = asyncio.get_running_loop()
        if not self.batching:
            self.calls += 1
            return await loop.run_in_executor(self.executor, self.fn, key, obs, weights, seeds)
        if self._queue is None:
            raise RuntimeError("MicroBatcher.start() was not called in this event loop")
        job = _Job(key, obs, weights, seeds, loop.time(), loop.create_future())
        self._queue.put_nowait(job)
        return await job.future

    async def _serve(self) -> None:
        while True:
            self._batch = []
            await self._collect(self._batch)
            # Callers that went away (client disconnected) need no rows.
            live = [job for job in self._batch if not job.future.done()]
            if live:
                await self._run(live)

    async def _collect(self, batch: list[_Job]) -> None:
        """Fill ``batch``: the first job, then whatever joins before its wait is over, up to
        ``max_rows`` rows, all with the first job's key."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        first, self._held = self._held or await self._queue.get(), None
        batch.append(first)
        rows = first.rows
        deadline = first.arrived + self.wait_s
        while rows < self.max_rows:
            try:
                if self._queue.empty():
                    job = await asyncio.wait_for(self._queue.get(), deadline - loop.time())
                else:  # already waiting: no need to give up the loop
                    job = self._queue.get_nowait()
            except asyncio.TimeoutError:  # the builtin TimeoutError only from Python 3.11
                break
            if job.key is not first.key or rows + job.rows > self.max_rows:
                self._held = job
                break
            batch.append(job)
            rows += job.rows

    async def _run(self, batch: list[_Job]) -> None:
        loop = asyncio.get_running_loop()
        obs = np.concatenate([job.obs for job in batch])
        weights = np.concatenate([job.weights for job in batch])
        seeds = np.concatenate([job.seeds for job in batch])
        self.calls += 1
        try:
            out = await loop.run_in_executor(
                self.executor, self.fn, batch[0].key, obs, weights, seeds
            )
        except Exception as exc:  # every caller of the batch gets the error; the loop goes on
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        start = 0
        for job in batch:
            if not job.future.done():
                job.future.set_result(out[start : start + job.rows])
            start += job.rows
