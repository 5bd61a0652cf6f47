"""Ray as the engine of a suite run: every chosen cell is a Ray task, on this machine or a
cluster.

A suite's cells are independent but for the few that take over a sibling cell's finished work
(:attr:`tora.bench.runner.SuiteKind.depends_on`), and each is deterministic per seed, so they
can run side by side and give what a serial run gives. :class:`RayExecutor` is the executor
:func:`tora.bench.runner.run_suite_cells` takes for that:

- an entry's data is made on the driver (:attr:`SuiteKind.prepare`) and put in Ray's object
  store once, before its cells are submitted;
- a finished cell is read back on the driver (its settings checked) and not submitted;
- a cell is submitted once the cells it depends on have finished
  (:func:`tora.bench.runner.cell_sources`), and not at all if one of them failed;
- each task declares its resources (``cell_cpus`` CPUs, and a GPU when the suite trains on
  CUDA) and runs torch on that many threads;
- a task whose worker died, or that raised anything but a :class:`~tora.errors.ToraError`,
  is retried up to ``retries`` times (the cell resumes from what it saved); a ToraError
  means the cell's input is wrong, which a retry cannot mend, so it fails the cell at once;
- a failed cell does not stop the others: the driver reports it when the run ends.

The driver prints one line per change of a cell (submitted, running, retried, finished,
failed) and the cells' own log lines, as the tasks report them through a Ray queue. Ray is
started or joined by :func:`tora.scale.session.ray_session` when a run starts, so the package
and every other command work without it (the ``scale`` extra installs it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tora.bench.cells import EVAL_FILE
from tora.bench.runner import (
    CellFailure,
    CellKey,
    EntryCells,
    Log,
    SuiteKind,
    cell_name,
    cell_sources,
)
from tora.errors import ToraError
from tora.scale.session import (
    RaySession,
    check_address,
    describe,
    describe_ray_error,
    ray_session,
)

PURPOSE = "running suite cells on Ray"
"""What a suite run on Ray is, in the message given when Ray is not installed."""

POLL_S = 0.5
"""How long the driver waits for a result before it prints what the running cells reported."""

Event = tuple[str, CellKey, str]
"""(what happened: "started", "log" or "raised"; the cell; its detail)."""


@dataclass(frozen=True)
class RayExecutor:
    """Runs a suite's cells as Ray tasks (see the module's docstring); an executor for
    :func:`tora.bench.runner.run_suite_cells`.

    With no ``address`` and no Ray started in this process, a local Ray is started for the
    run with ``cpus`` CPUs (default: this machine's cores) and shut down after it; with an
    ``address``, the run connects to that cluster, whose workers must have tora installed
    and see the suite's output directory at the same path (a shared filesystem)."""

    address: str | None = None
    """A running Ray cluster to use (e.g. "ray://head:10001" or "auto"); None: a local Ray."""
    cpus: int | None = None
    """CPUs of the local Ray (None: this machine's cores); only without ``address``."""
    cell_cpus: int = 1
    """CPUs each cell asks for; its torch runs on that many threads."""
    retries: int = 2
    """How many times a cell is retried after its worker died or it raised an error that is
    not a ToraError."""

    def __post_init__(self) -> None:
        check_address(self.address, self.cpus)
        if self.cell_cpus < 1:
            raise ToraError(f"a cell needs at least 1 CPU, got {self.cell_cpus}")
        if self.retries < 0:
            raise ToraError(f"retries must be >= 0, got {self.retries}")

    def __call__(
        self,
        kind: SuiteKind[Any, Any],
        plan: Iterable[EntryCells[Any]],
        progress: bool,
        log: Log,
    ) -> list[CellFailure]:
        with ray_session(self.address, self.cpus, log, PURPOSE) as session:
            return _Run(session, kind, self, log).run(plan, progress)


@dataclass(frozen=True)
class CellOutcome:
    """What a cell's task returns: its evaluation file, or the ToraError that stopped it."""

    path: str | None
    error: str | None
    seconds: float


def run_cell_task(
    run_cell: Callable[..., Path],
    entry: Any,
    data: Any,
    key: CellKey,
    threads: int,
    events: Any,
    cwd: str,
) -> CellOutcome:
    """One cell in a Ray worker; ``events`` is the run's queue of :data:`Event`. Each put
    returns once the queue holds the event, so the driver has all of a cell's lines by the
    time its result arrives."""
    import torch

    torch.set_num_threads(threads)
    # The suite's paths may be relative to where the command ran; a local worker starts
    # there already, a cluster's worker finds it there on a shared filesystem (or not at all).
    if os.path.isdir(cwd):
        os.chdir(cwd)

    def post(what: str, detail: str) -> None:
        events.put((what, key, detail))

    post("started", str(os.getpid()))
    _, method, seed = key
    start = time.perf_counter()
    try:
        path = run_cell(entry, data, method, seed, False, lambda line: post("log", line))
    except ToraError as error:
        return CellOutcome(None, describe(error), time.perf_counter() - start)
    except Exception as error:
        post("raised", describe(error))
        raise
    return CellOutcome(str(path), None, time.perf_counter() - start)


@dataclass
class _Waiting:
    """A cell not yet submitted: what its task needs, and the cells it waits for."""

    entry: Any
    data: Any
    """The entry's data in the object store."""
    sources: list[CellKey]


class _Run:
    """One suite run on Ray: submit cells as their sources finish, collect the results."""

    def __init__(
        self,
        session: RaySession,
        kind: SuiteKind[Any, Any],
        executor: RayExecutor,
        log: Log,
    ) -> None:
        ray = session.ray
        self.ray, self.kind, self.executor, self.log = ray, kind, executor, log
        gpus = self._check_resources(session)
        self.task = ray.remote(run_cell_task).options(
            num_cpus=executor.cell_cpus,
            num_gpus=gpus,
            max_retries=executor.retries,
            retry_exceptions=True,  # a ToraError is returned, not raised: never retried
        )
        # Ray's queue is a small actor that imports nothing of ours: it starts in a moment.
        from ray.util.queue import Queue

        self.events = Queue(actor_options={"num_cpus": 0})
        self.run_cell = ray.put(kind.run_cell)
        self.cwd = os.getcwd()
        self.waiting: dict[CellKey, _Waiting] = {}
        self.pending: dict[Any, CellKey] = {}
        self.finished: set[CellKey] = set()
        self.failed: dict[CellKey, str] = {}
        self.attempts: dict[CellKey, int] = {}

    def _check_resources(self, session: RaySession) -> int:
        """The GPUs a cell asks for; refuses a cell this local Ray could never place (a
        cluster may grow, so there a cell just waits)."""
        have = self.ray.cluster_resources()
        device = self.kind.suite.device
        if device.startswith("cuda"):
            gpus = 1
        else:  # "auto" trains on CUDA where there is one: on Ray, where the cluster has one
            gpus = 1 if device == "auto" and have.get("GPU", 0) >= 1 else 0
        cpus = self.executor.cell_cpus
        session.check_fits("a cell", {"CPU": cpus, "GPU": gpus}, self.log, "cells wait")
        gpu_note = ", 1 GPU" if gpus else ""
        self.log(
            f"ray: {have.get('CPU', 0):g} CPUs in {session.where}; each cell takes {cpus} "
            f"CPU{'s' if cpus > 1 else ''}{gpu_note} and is retried up to "
            f"{self.executor.retries} times"
        )
        return gpus

    def run(self, plan: Iterable[EntryCells[Any]], progress: bool) -> list[CellFailure]:
        try:
            for item in plan:
                self._add(item, progress)
                self._submit_ready()
                self._collect(timeout=0)
            while self.pending:
                self._collect(timeout=POLL_S)
                self._submit_ready()
        except BaseException:
            for ref in self.pending:  # a cluster outlives this run: leave it no orphans
                self.ray.cancel(ref, force=True)
            raise
        return [CellFailure(cell_name(self.kind, key), e) for key, e in self.failed.items()]

    def _add(self, item: EntryCells[Any], progress: bool) -> None:
        """Make the entry's data (as a serial run does, even when none of its cells runs: a
        kind may write part of its table there), read back its finished cells, queue the
        others."""
        try:
            data = self.kind.prepare(item.entry, progress)
        except ToraError as error:
            for method, seed in item.cells:
                self._fail(item.key(method, seed), f"not run: its data failed: {describe(error)}")
            return
        sources = cell_sources(self.kind, item)
        stored = None
        for method, seed in item.cells:
            key = item.key(method, seed)
            if (self.kind.cell_dir(item.entry, method, seed) / EVAL_FILE).is_file():
                try:  # read back here (its settings are checked): nothing to submit
                    self.kind.run_cell(item.entry, data, method, seed, False, self.log)
                except ToraError as error:
                    self._fail(key, describe(error))
                else:
                    self.finished.add(key)
                continue
            if stored is None:
                stored = self.ray.put(data)
            self.waiting[key] = _Waiting(item.entry, stored, sources[key])

    def _submit_ready(self) -> None:
        """Submit every waiting cell whose sources finished, in the suite's order; a cell
        whose source failed fails too (and so may its own dependents)."""
        changed = True
        while changed:
            changed = False
            for key, cell in list(self.waiting.items()):
                lost = [source for source in cell.sources if source in self.failed]
                if lost:
                    del self.waiting[key]
                    names = ", ".join(cell_name(self.kind, source) for source in lost)
                    self._fail(key, f"not run: it needs {names}, which failed")
                    changed = True
                elif all(source in self.finished for source in cell.sources):
                    del self.waiting[key]
                    ref = self.task.remote(
                        self.run_cell,
                        cell.entry,
                        cell.data,
                        key,
                        self.executor.cell_cpus,
                        self.events,
                        self.cwd,
                    )
                    self.pending[ref] = key
                    self.log(f"{cell_name(self.kind, key)} submitted")

    def _collect(self, timeout: float) -> None:
        """Print what the running cells reported, then take every result that arrived."""
        refs = list(self.pending)
        ready: Sequence[Any] = []
        if refs:
            ready, _ = self.ray.wait(refs, num_returns=1, timeout=timeout)
            if ready:
                ready, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        self._show_events()
        for ref in ready:
            self._finish(ref)

    def _show_events(self) -> None:
        waiting = self.events.qsize()
        for what, key, detail in self.events.get_nowait_batch(waiting) if waiting else []:
            name = cell_name(self.kind, key)
            if what == "started":
                attempt = self.attempts[key] = self.attempts.get(key, 0) + 1
                if attempt == 1:
                    self.log(f"{name} running (pid {detail})")
                else:
                    total = self.executor.retries + 1
                    self.log(f"{name} retried (attempt {attempt} of {total}, pid {detail})")
            elif what == "raised":
                self.log(f"{name} attempt {self.attempts.get(key, 1)} raised {detail}")
            else:
                self.log(detail)

    def _finish(self, ref: Any) -> None:
        key = self.pending.pop(ref)
        try:
            outcome: CellOutcome = self.ray.get(ref)
        except self.ray.exceptions.RayError as error:
            self._fail(key, self._ray_failure(key, error))
            return
        if outcome.error is not None:
            self._fail(key, outcome.error)
            return
        self.finished.add(key)
        self.log(f"{cell_name(self.kind, key)} finished in {outcome.seconds:.1f} s")

    def _ray_failure(self, key: CellKey, error: Exception) -> str:
        """Why a task failed for good: the cell's own error, or its worker's death."""
        attempts = self.attempts.get(key, 0)
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        return f"{describe_ray_error(error)} ({tries})"

    def _fail(self, key: CellKey, error: str) -> None:
        self.failed[key] = error
        self.log(f"{cell_name(self.kind, key)} failed: {error}")
