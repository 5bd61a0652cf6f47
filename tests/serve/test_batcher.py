"""MicroBatcher without HTTP or an agent: which jobs share a call, and that every caller gets
exactly its own rows back."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from tora.serve.batcher import MicroBatcher

WAIT_S = 30.0
"""Long enough that every batch in these tests closes on max_rows, an overflow or a key
change, never on the clock: the outcome does not depend on timing. (So each test's last batch
is exactly full, or the test would wait this long.)"""


class Recorder:
    """A batched function whose answer row r is (obs[r, 0], seeds[r]): it names its input."""

    def __init__(self, fail_first: bool = False) -> None:
        self.calls: list[tuple[Any, int]] = []
        self.fail_first = fail_first

    def __call__(
        self, key: Any, obs: np.ndarray, weights: np.ndarray, seeds: np.ndarray
    ) -> np.ndarray:
        self.calls.append((key, obs.shape[0]))
        if self.fail_first and len(self.calls) == 1:
            raise RuntimeError("agent broke")
        return np.stack([obs[:, 0], seeds.astype(np.float64)], axis=1)


def job(rows: int, first: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows numbered first .. first + rows - 1 (in obs and seeds alike)."""
    ids = np.arange(first, first + rows)
    return ids[:, None].astype(np.float64), np.ones((rows, 2)) / 2, ids.astype(np.uint64)


def run_jobs(
    fn: Recorder, sizes: list[int], keys: list[Any] | None = None, wait_s: float = WAIT_S, **kw: Any
) -> list[Any]:
    """Submit one job per size concurrently (in this order); each job's result or error."""
    keys = keys or ["agent"] * len(sizes)

    async def main() -> list[Any]:
        with ThreadPoolExecutor(max_workers=1) as pool:
            batcher = MicroBatcher(fn, pool, wait_s=wait_s, **kw)
            batcher.start()
            firsts = np.cumsum([0, *sizes[:-1]])
            jobs = [
                batcher.submit(key, *job(n, int(f)))
                for key, n, f in zip(keys, sizes, firsts, strict=True)
            ]
            try:
                return await asyncio.gather(*jobs, return_exceptions=True)
            finally:
                await batcher.close()

    return asyncio.run(main())


def assert_own_rows(results: list[Any], sizes: list[int]) -> None:
    first = 0
    for result, n in zip(results, sizes, strict=True):
        ids = np.arange(first, first + n)
        np.testing.assert_array_equal(result, np.stack([ids, ids], axis=1))
        first += n


def test_jobs_share_calls_up_to_max_rows_and_get_their_own_rows() -> None:
    fn = Recorder()
    sizes = [1, 2, 1, 3, 6, 4]
    results = run_jobs(fn, sizes, max_rows=4)
    # 1+2+1 fill a batch; 3 goes next, and 6 would overflow it, so it waits for the next call,
    # where it is alone (more rows than max_rows); 4 fills the last.
    assert [rows for _, rows in fn.calls] == [4, 3, 6, 4]
    assert_own_rows(results, sizes)


def test_only_jobs_checked_against_the_same_agent_share_a_call() -> None:
    fn = Recorder()
    sizes = [1, 1, 1]
    results = run_jobs(fn, sizes, keys=["old", "new", "new"], max_rows=2)
    assert fn.calls == [("old", 1), ("new", 2)]
    assert_own_rows(results, sizes)


def test_without_waiting_every_job_is_its_own_call() -> None:
    fn = Recorder()
    sizes = [2, 1, 3]
    results = run_jobs(fn, sizes, wait_s=0.0, max_rows=64)
    assert [rows for _, rows in fn.calls] == sizes
    assert_own_rows(results, sizes)


def test_a_failed_call_fails_its_callers_only() -> None:
    fn = Recorder(fail_first=True)
    sizes = [1, 1, 2]
    results = run_jobs(fn, sizes, max_rows=2)
    assert [rows for _, rows in fn.calls] == [2, 2]
    assert all(isinstance(r, RuntimeError) and "agent broke" in str(r) for r in results[:2])
    np.testing.assert_array_equal(results[2], [[2, 2], [3, 3]])


def test_settings_are_checked() -> None:
    with ThreadPoolExecutor(max_workers=1) as pool, pytest.raises(ValueError, match="max_rows"):
        MicroBatcher(Recorder(), pool, wait_s=0.001, max_rows=0)


def test_callers_that_left_are_skipped_and_closing_cancels_the_rest() -> None:
    fn = Recorder()

    async def main() -> None:
        with ThreadPoolExecutor(max_workers=1) as pool:
            batcher = MicroBatcher(fn, pool, wait_s=WAIT_S, max_rows=3)
            batcher.start()
            left, stays = (asyncio.ensure_future(batcher.submit("a", *job(1, i))) for i in (0, 1))
            await asyncio.sleep(0)  # both queued; the batch waits for a third row
            left.cancel()  # a client that disconnected
            last = asyncio.ensure_future(batcher.submit("a", *job(1, 2)))
            np.testing.assert_array_equal(await stays, [[1, 1]])
            np.testing.assert_array_equal(await last, [[2, 2]])
            assert fn.calls == [("a", 2)]  # the batch filled up; only two callers were left

            waiting = asyncio.ensure_future(batcher.submit("a", *job(1, 3)))
            await asyncio.sleep(0)
            await batcher.close()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        assert fn.calls == [("a", 2)]

    asyncio.run(main())
