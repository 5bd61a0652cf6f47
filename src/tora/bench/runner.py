"""One driver for every kind of benchmark suite: entries x methods x seeds, run or read back.

A suite kind (MuJoCo's :mod:`tora.bench.suite`, safe RL's :mod:`tora.safe.bench`) says what
its entries are (environments, tasks), what an entry's cells share (its dataset), which seeds
an entry has, how one cell runs and how its table is written (:class:`SuiteKind`).
:func:`run_suite_cells` does the rest the same way for every kind: it checks the suite and
the user's choice of entries, methods and seeds before anything is written, records the
suite, hands the chosen cells to an executor and writes the table from everything on disk,
so a partial run still gives a (partial) table.

The executor decides where cells run. The default, :func:`run_serially`, runs them in this
process in the suite's order (each kind's cell is read back once finished,
:func:`tora.bench.cells.run_or_read_cell`) and stops at the first error. Another executor
(:class:`tora.bench.ray_executor.RayExecutor`) runs them in parallel; it learns from
:func:`cell_sources` which cells must wait for which, since some cells take over a sibling
cell's finished work (:attr:`SuiteKind.depends_on`), and reports failed cells instead of
stopping, so that the others still finish.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
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
    device: str
    """The torch device the cells train on ("auto", "cpu", "cuda"): what a cell asks of a
    cluster's GPUs."""

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


def _independent(entry: Any, method: str) -> Sequence[str]:
    return ()


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
    cell_dir: Callable[[EntryT, str, int], Path]
    """The directory of the cell (entry, method, seed); the cell is finished once its
    :data:`~tora.bench.cells.EVAL_FILE` is there."""
    entry_word: str = "env"
    """What an entry is called in messages."""
    skip_reason: Callable[[EntryT], str | None] = _every_entry_runs
    """Why an entry cannot run on this machine (None: it can)."""
    entry_name: Callable[[str], str] = _as_is
    """An entry's name in progress lines, from its id."""
    depends_on: Callable[[EntryT, str], Sequence[str]] = _independent
    """The methods whose cell (same entry and seed) a cell of this method takes work from
    (their trained stages, their model directory, their selection), and which must
    therefore be finished before it starts when cells run side by side. A serial run meets
    this by the suite's order or by the cell running its source itself; the graph must have
    no loops (:func:`cell_sources`)."""


CellKey = tuple[str, str, int]
"""A cell by (entry id, method, seed)."""


@dataclass(frozen=True)
class EntryCells(Generic[EntryT]):
    """An entry that runs here, with its chosen cells in the suite's order."""

    entry: EntryT
    id: str
    """The entry's canonical id (:attr:`SuiteKind.entry_id`)."""
    cells: list[tuple[str, int]]
    """(method, seed) of each chosen cell."""

    def key(self, method: str, seed: int) -> CellKey:
        return (self.id, method, seed)


@dataclass(frozen=True)
class CellFailure:
    """A cell that did not finish, and why."""

    name: str
    """The cell as progress lines show it ("[entry | method | seed N]")."""
    error: str


class CellsFailed(ToraError):
    """Cells of a suite run failed (the others finished); ``results`` is the table written
    from every cell that finished."""

    def __init__(self, failures: Sequence[CellFailure], results: dict[str, Any]) -> None:
        self.failures = list(failures)
        self.results = results
        lines = "".join(f"\n  {f.name} {f.error}" for f in self.failures)
        count = f"{len(self.failures)} cell{'s' if len(self.failures) > 1 else ''}"
        super().__init__(
            f"{count} of the suite failed (the table holds every cell that finished; "
            f"rerun the same command to retry only those):{lines}"
        )


class CellExecutor(Protocol):
    """Runs the chosen cells of a suite: each entry's data (:attr:`SuiteKind.prepare`) is
    made before its cells start, and a finished cell is read back, not run again. Returns the
    cells that failed (an executor may instead raise at the first failure)."""

    def __call__(
        self,
        kind: SuiteKind[Any, Any],
        plan: Iterable[EntryCells[Any]],
        progress: bool,
        log: Log,
    ) -> list[CellFailure]: ...


def cell_name(kind: SuiteKind[Any, Any], key: CellKey) -> str:
    """A cell as progress lines name it."""
    entry_id, method, seed = key
    return f"[{kind.entry_name(entry_id)} | {method} | seed {seed}]"


def run_serially(
    kind: SuiteKind[EntryT, DataT],
    plan: Iterable[EntryCells[EntryT]],
    progress: bool,
    log: Log,
) -> list[CellFailure]:
    """The default executor: every cell in this process, in the suite's order; the first
    error stops the run (and is raised)."""
    for item in plan:
        data = kind.prepare(item.entry, progress)
        for method, seed in item.cells:
            kind.run_cell(item.entry, data, method, seed, progress, log)
    return []


def cell_sources(
    kind: SuiteKind[EntryT, Any], item: EntryCells[EntryT]
) -> dict[CellKey, list[CellKey]]:
    """For each chosen cell of an entry, the chosen cells that must finish before it starts.

    A cell waits for the cell of each method it depends on (:attr:`SuiteKind.depends_on`;
    same entry and seed). When that method is not chosen, a serial run has the first chosen
    cell that needs it make what it shares (e.g. a safe ``tora_adaptive`` cell trains the
    ``tora`` model itself), so the cell waits instead for the chosen cells before it, in
    the suite's order, that need the same method: the same order a serial run has, with no
    two cells making one thing at once."""
    chosen = {method for method, _ in item.cells}
    order = [m for m in kind.suite.methods if m in chosen]
    needs = {m: list(kind.depends_on(item.entry, m)) for m in order}
    _refuse_loops(needs)
    sources: dict[CellKey, list[CellKey]] = {}
    for method, seed in item.cells:
        before: list[str] = []
        for source in needs[method]:
            if source in chosen:
                before.append(source)
            else:
                earlier = order[: order.index(method)]
                before.extend(m for m in earlier if source in needs[m])
        sources[item.key(method, seed)] = [item.key(m, seed) for m in dict.fromkeys(before)]
    return sources


def _refuse_loops(needs: dict[str, list[str]]) -> None:
    """A kind whose methods wait for each other in a loop would never run them."""
    done: set[str] = set()

    def visit(method: str, path: tuple[str, ...]) -> None:
        if method in path:
            loop = " -> ".join((*path[path.index(method) :], method))
            raise ToraError(f"methods depend on each other in a loop: {loop}")
        if method in done or method not in needs:
            return
        for source in needs[method]:
            visit(source, (*path, method))
        done.add(method)

    for method in needs:
        visit(method, ())


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
    executor: CellExecutor | None = None,
) -> dict[str, Any]:
    """Run every chosen cell of the suite (finished ones are read back), then write its table
    from everything on disk; returns the table's JSON object.

    ``only_entries``, ``only_methods`` and ``only_seeds`` run a piece of the suite: an entry
    by any name :attr:`SuiteKind.entry_id` resolves, a method or seed only if the suite lists
    it. An entry that cannot run here is skipped with its reason in the log. ``executor``
    runs the cells (default: :func:`run_serially`); when it reports failed cells, the table
    is still written, then :class:`CellsFailed` is raised."""
    kind.check()
    wanted = check_request(kind, only_entries, only_methods, only_seeds)
    out_dir = kind.suite.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / SUITE_FILE, config_to_dict(kind.suite))
    plan = _plan(kind, wanted, only_methods, only_seeds, log)
    failures = (executor or run_serially)(kind, plan, progress, log)
    results = kind.write_table()
    if failures:
        raise CellsFailed(failures, results)
    return results


def _plan(
    kind: SuiteKind[EntryT, DataT],
    wanted: set[str] | None,
    only_methods: Sequence[str] | None,
    only_seeds: Sequence[int] | None,
    log: Log,
) -> Iterator[EntryCells[EntryT]]:
    """The chosen cells, entry by entry in the suite's order. A generator, so that an entry
    skipped here is logged when the run reaches it, as it always was."""
    for entry in kind.entries:
        entry_id = kind.entry_id(entry.id)
        if wanted is not None and entry_id not in wanted:
            continue
        reason = kind.skip_reason(entry)
        if reason is not None:
            log(f"skipping {kind.entry_name(entry_id)}: {reason}")
            continue
        cells = [
            (method, seed)
            for method in kind.suite.methods
            if not only_methods or method in only_methods
            for seed in kind.seeds(entry)
            if not only_seeds or seed in only_seeds
        ]
        yield EntryCells(entry, entry_id, cells)
