"""The half of a results table that every suite kind shares: which cells are finished, grouped
by (entry, method) in the suite's order, their spread over seeds, and the two files a table is
written as.

A table is always rebuilt from the cells on disk, never from what a run remembers, so a partly
finished suite (or one run in pieces by several processes) gives the table of what is done.
The kind's table writer (:mod:`tora.bench.table`, :mod:`tora.safe.table`) adds its own
columns and metrics; its Markdown is rendered from the JSON object written beside it, so the
two files cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tora.bench.cells import EVAL_FILE
from tora.io import atomic_write_bytes, atomic_write_json, read_json_object

TABLE_MD = "results.md"
TABLE_JSON = "results.json"


@dataclass(frozen=True)
class FinishedCell:
    """One finished seed of an (entry, method): where its cell is and what it evaluated to."""

    seed: int
    dir: Path
    result: dict[str, Any]
    """The cell's ``eval.json``."""


def finished_cells(cell_dir: Callable[[int], Path], seeds: Iterable[int]) -> Iterator[FinishedCell]:
    """The finished cells among ``seeds`` (``cell_dir(seed)``: a seed's cell), in the order of
    ``seeds``. Lazy, so a caller that needs only the first reads only one file."""
    for seed in seeds:
        path = cell_dir(seed) / EVAL_FILE
        if path.is_file():
            yield FinishedCell(seed, path.parent, read_json_object(path))


def finished_by_method(
    methods: Iterable[str], seeds: Iterable[int], cell_dir: Callable[[str, int], Path]
) -> dict[str, list[FinishedCell]]:
    """Method -> its finished cells of one entry (``cell_dir(method, seed)``), in the suite's
    order of methods and seeds; a method with none is left out (its row is not shown yet)."""
    seeds = list(seeds)
    grouped = {}
    for method in methods:
        done = list(finished_cells(lambda seed, m=method: cell_dir(m, seed), seeds))
        if done:
            grouped[method] = done
    return grouped


def mean_sd(values: Iterable[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation over seeds; ``std`` is None for a single seed (there is
    no spread to report) and both are None for none."""
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        return {"mean": None, "std": None}
    return {"mean": float(arr.mean()), "std": float(arr.std(ddof=1)) if arr.size > 1 else None}


def write_table(out_dir: Path, results: dict[str, Any], markdown: str) -> list[Path]:
    """Write a table as ``results.json`` (``results``) and ``results.md`` (``markdown``, rendered
    from it) into ``out_dir``, each atomically; returns the two paths (Markdown first)."""
    md, js = out_dir / TABLE_MD, out_dir / TABLE_JSON
    atomic_write_json(js, results)
    atomic_write_bytes(md, markdown.encode("utf-8"))
    return [md, js]
