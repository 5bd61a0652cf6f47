"""One driver for every kind of benchmark suite: entries x methods x seeds, run or read back.

A suite kind (MuJoCo's :mod:`tora.bench.suite`, safe RL's :mod:`tora.safe.bench`) says what
its entries are (environments, tasks), what an entry's cells share (its dataset), which seeds
an entry has, how one cell runs and how its table is written (:class:`SuiteKind`).
:func:`run_suite_cells` does the rest the same way for every kind: it checks the suite and
the user's choice of entries, methods and seeds before anything is written, records the
suite, runs the chosen cells in the suite's order (each kind's cell is read back once
finished, :func:`tora.bench.cells.run_or_read_cell`) and writes the table from everything on
disk, so a partial run still gives a (partial) table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from tora.configs import config_to_dict
from tora.errors import ToraError
from tora.io import atomic_write_json

SUITE_FILE = "suite.json"
"""The suite's settings as last run, in its output directory."""

Log = Callable[[str], None]


class SuiteSettings(Protocol):
    """What the driver reads of a suite's config (a dataclass: it is recorded whole)."""

    methods: list[str]

    @property
    def out_dir(self) -> Path: ...


class SuiteEntry(Protocol):
    """An entry of a suite (an environment, a task): the user picks entries by its ``id``."""

    @property
    def id(self) -> str: ...


EntryT = TypeVar("EntryT", bound=SuiteEntry)
DataT = TypeVar("DataT")


def _every_entry_runs(entry: Any) -> str | None:
    return None


def _as_is(entry_id: str) -> str:
    return entry_id


@dataclass(frozen=True)
class SuiteKind(Generic[EntryT, DataT]):
    """One kind of suite, as the driver sees it. ``DataT`` is what all cells of an entry share
    (its dataset, and what identifies it in the cells' settings)."""

    suite: SuiteSettings
    """The suite's config."""
    entries: Sequence[EntryT]
    """The entries (environments, tasks), in the suite's order."""
    check: Callable[[], None]
    """Raise :class:`~tora.errors.ToraError` for a suite that cannot run."""
    entry_id: Callable[[str], str]
    """The canonical id of an entry's ``id`` or of a name the user picks entries by (an error
    for a name that is no entry of this kind), so that both compare equal."""
    seeds: Callable[[EntryT], Sequence[int]]
    """The training seeds of every method of an entry."""
    prepare: Callable[[EntryT, bool], DataT]
    """What an entry's cells share, made once (or read back) before its first cell; the
    second argument asks for progress bars."""
    run_cell: Callable[[EntryT, DataT, str, int, bool, Log], Path]
    """Run (or read back) the cell (entry, its data, method, seed, progress, log); returns its
    evaluation file."""
    write_table: Callable[[], dict[str, Any]]
    """Write the table from the cells on disk; returns its JSON object."""
    entry_word: str = "env"
    """What an entry is called in messages."""
    skip_reason: Callable[[EntryT], str | None] = _every_entry_runs
    """Why an entry cannot run on this machine (None: it can)."""
    entry_name: Callable[[str], str] = _as_is
    """An entry's name in progress lines, from its id."""


def check_request(
    kind: SuiteKind[EntryT, DataT],
    only_entries: Sequence[str] | None,
    only_methods: Sequence[str] | None,
    only_seeds: Sequence[int] | None,
) -> set[str] | None:
    """Refuse a choice of entries, methods or seeds that names something the suite does not
    have, before anything runs or is written; returns the chosen entries' ids (None: all)."""
    wanted = {kind.entry_id(name) for name in only_entries} if only_entries else None
    methods = kind.suite.methods
    for name in only_methods or []:
        if name not in methods:
            raise ToraError(f"method {name!r} is not in this suite ({', '.join(methods)})")
    listed = sorted({seed for entry in kind.entries for seed in kind.seeds(entry)})
    for seed in only_seeds or []:
        if seed not in listed:
            raise ToraError(
                f"seed {seed} is not in this suite (its {kind.entry_word}s list {listed})"
            )
    return wanted


def run_suite_cells(
    kind: SuiteKind[EntryT, DataT],
    progress: bool = True,
    only_entries: Sequence[str] | None = None,
    only_methods: Sequence[str] | None = None,
    only_seeds: Sequence[int] | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Run every chosen cell of the suite (finished ones are read back), then write its table
    from everything on disk; returns the table's JSON object.

    ``only_entries``, ``only_methods`` and ``only_seeds`` run a piece of the suite: an entry
    by any name :attr:`SuiteKind.entry_id` resolves, a method or seed only if the suite lists
    it. An entry that cannot run here is skipped with its reason in the log."""
    kind.check()
    wanted = check_request(kind, only_entries, only_methods, only_seeds)
    out_dir = kind.suite.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / SUITE_FILE, config_to_dict(kind.suite))
    for entry in kind.entries:
        entry_id = kind.entry_id(entry.id)
        if wanted is not None and entry_id not in wanted:
            continue
        reason = kind.skip_reason(entry)
        if reason is not None:
            log(f"skipping {kind.entry_name(entry_id)}: {reason}")
            continue
        data = kind.prepare(entry, progress)
        for method in kind.suite.methods:
            if only_methods and method not in only_methods:
                continue
            for seed in kind.seeds(entry):
                if only_seeds and seed not in only_seeds:
                    continue
                kind.run_cell(entry, data, method, seed, progress, log)
    return kind.write_table()
