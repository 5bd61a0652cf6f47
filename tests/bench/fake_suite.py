"""A fake suite kind for the driver's tests (tora.bench.runner): cells that only record that
they ran and score a known number, in memory (:class:`FakeSuite`) or, for cells that run in
other processes such as Ray workers, on disk with a chosen misbehaviour (:class:`DiskSuite`)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from tora.bench.cells import run_or_read_cell
from tora.bench.results import finished_by_method, mean_sd, write_table
from tora.bench.runner import SuiteKind
from tora.errors import ToraError

Cell = tuple[str, str, int]
"""(entry, method, seed)."""


@dataclass
class FakeEntry:
    id: str
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])


@dataclass
class FakeConfig:
    out: str
    methods: list[str] = field(default_factory=lambda: ["m1", "m2"])
    entries: list[FakeEntry] = field(default_factory=lambda: [FakeEntry("a"), FakeEntry("b")])
    data_seed: int = 0
    device: str = "cpu"

    @property
    def out_dir(self) -> Path:
        return Path(self.out)


def score(method: str, seed: int) -> float:
    """A cell's known result: m1 scores 2 * seed, m2 scores 10 + seed."""
    return 2.0 * seed if method == "m1" else 10.0 + seed


class FakeSuite:
    """A suite kind's parts, recording what the driver asks of them. Entries "a" and "b"
    (picked by any case); a cell records its run and scores :func:`score`; ``unavailable``
    entries cannot run; ``crash_at`` fails that cell; a method's cells wait for the cells
    of the methods ``depends`` lists for it."""

    def __init__(
        self,
        suite: FakeConfig,
        unavailable: tuple[str, ...] = (),
        crash_at: tuple[str, str, int] | None = None,
        depends: dict[str, list[str]] | None = None,
    ) -> None:
        self.suite = suite
        self.unavailable = unavailable
        self.crash_at = crash_at
        self.depends = depends or {}
        self.prepared: list[str] = []
        self.ran: list[tuple[str, str, int]] = []

    def kind(self) -> SuiteKind[FakeEntry, str]:
        return SuiteKind(
            suite=self.suite,
            entries=self.suite.entries,
            check=self.check,
            entry_id=self.entry_id,
            seeds=lambda entry: entry.seeds,
            prepare=self.prepare,
            run_cell=self.run_cell,
            write_table=self.write_table,
            entry_word="case",
            skip_reason=self.skip_reason,
            entry_name=str.upper,
            cell_dir=lambda entry, method, seed: self.cell_dir(entry.id, method, seed),
            depends_on=self.depends_on,
        )

    def depends_on(self, entry: FakeEntry, method: str) -> Sequence[str]:
        return self.depends.get(method, [])

    def check(self) -> None:
        if not self.suite.entries:
            raise ToraError("the suite lists no entries")

    def entries(self) -> list[FakeEntry]:
        return self.suite.entries

    def entry_id(self, name: str) -> str:
        if name.lower() not in {e.id for e in self.suite.entries}:
            raise ToraError(f"unknown entry {name!r}")
        return name.lower()

    def skip_reason(self, entry: FakeEntry) -> str | None:
        return "no simulator here" if entry.id in self.unavailable else None

    def prepare(self, entry: FakeEntry, progress: bool) -> str:
        self.prepared.append(entry.id)
        return f"data of {entry.id}, seed {self.suite.data_seed}"

    def cell_dir(self, entry_id: str, method: str, seed: int) -> Path:
        return self.suite.out_dir / entry_id / method / f"seed{seed}"

    def run_cell(
        self,
        entry: FakeEntry,
        data: str,
        method: str,
        seed: int,
        progress: bool,
        log: Callable[[str], None],
    ) -> Path:
        def evaluate() -> dict[str, Any]:
            self.ran.append((entry.id, method, seed))
            if self.crash_at == (entry.id, method, seed):
                raise RuntimeError("killed")
            log(f"[{entry.id} | {method} | seed {seed}] done")
            return {"score": score(method, seed)}

        settings = {"method": method, "data": data}
        return run_or_read_cell(self.cell_dir(entry.id, method, seed), settings, {}, evaluate)

    def write_table(self) -> dict[str, Any]:
        rows = []
        for entry in self.suite.entries:
            cells = partial(self.cell_dir, entry.id)
            for method, done in finished_by_method(self.suite.methods, entry.seeds, cells).items():
                rows.append(
                    {
                        "entry": entry.id,
                        "method": method,
                        "seeds": [c.seed for c in done],
                        "score": mean_sd(c.result["score"] for c in done),
                    }
                )
        markdown = "".join(f"| {r['entry']} | {r['method']} | {r['seeds']} |\n" for r in rows)
        results = {"rows": rows}
        write_table(self.suite.out_dir, results, markdown)
        return results


class DiskSuite(FakeSuite):
    """The fake kind for cells run in other processes: every attempt at a cell records its
    start and end times in a file under ``attempts/`` of the suite's directory. A cell in
    ``exit_once`` kills its own process on its first attempt, one in ``raise_once`` raises a
    RuntimeError on its first attempt, one in ``bad`` raises a ToraError every time, and
    every cell of a method in ``slow`` takes that many seconds."""

    def __init__(
        self,
        suite: FakeConfig,
        depends: dict[str, list[str]] | None = None,
        exit_once: Sequence[Cell] = (),
        raise_once: Sequence[Cell] = (),
        bad: Sequence[Cell] = (),
        slow: dict[str, float] | None = None,
    ) -> None:
        super().__init__(suite, depends=depends)
        self.exit_once, self.raise_once, self.bad = list(exit_once), list(raise_once), list(bad)
        self.slow = slow or {}

    @property
    def attempts_dir(self) -> Path:
        return self.suite.out_dir / "attempts"

    def attempts(self, cell: Cell) -> list[dict[str, float]]:
        """Each attempt at ``cell`` so far, in order: {"start": t[, "end": t]}."""
        found = sorted(self.attempts_dir.glob("{}-{}-{}-*.json".format(*cell)))
        return [json.loads(path.read_text()) for path in found]

    def run_cell(
        self,
        entry: FakeEntry,
        data: str,
        method: str,
        seed: int,
        progress: bool,
        log: Callable[[str], None],
    ) -> Path:
        cell = (entry.id, method, seed)

        def evaluate() -> dict[str, Any]:
            attempt = len(self.attempts(cell))
            self.attempts_dir.mkdir(parents=True, exist_ok=True)
            mark = self.attempts_dir / "{}-{}-{}-{}.json".format(*cell, attempt)
            record = {"start": time.time()}
            mark.write_text(json.dumps(record))
            if cell in self.exit_once and attempt == 0:
                os._exit(1)  # the worker dies mid-cell, as one killed by the OOM killer would
            if cell in self.raise_once and attempt == 0:
                raise RuntimeError("a passing fault")
            if cell in self.bad:
                raise ToraError("this cell's settings cannot work")
            time.sleep(self.slow.get(method, 0.0))
            log(f"[{entry.id} | {method} | seed {seed}] done")
            mark.write_text(json.dumps({**record, "end": time.time()}))
            return {"score": score(method, seed)}

        settings = {"method": method, "data": data}
        return run_or_read_cell(self.cell_dir(entry.id, method, seed), settings, {}, evaluate)
