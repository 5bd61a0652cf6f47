"""The suite driver (tora.bench.runner) on a fake suite kind whose cells only record that they
ran: which cells run, in which order, which are read back, what is refused before anything
runs, and what the table (tora.bench.results) says after a whole or a partial run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tora.bench.cells import EVAL_FILE
from tora.bench.results import TABLE_JSON, TABLE_MD
from tora.bench.runner import SUITE_FILE, EntryCells, cell_sources, run_suite_cells
from tora.configs import config_to_dict
from tora.errors import ToraError

from .fake_suite import FakeConfig, FakeSuite

ALL_CELLS = [(e, m, s) for e in "ab" for m in ("m1", "m2") for s in (0, 1, 2)]


def run(fake: FakeSuite, **choice: Any) -> tuple[dict[str, Any], list[str]]:
    logged: list[str] = []
    results = run_suite_cells(fake.kind(), progress=False, log=logged.append, **choice)
    return results, logged


def test_runs_every_cell_in_the_suites_order_then_writes_the_table(tmp_path: Path) -> None:
    suite = FakeConfig(out=str(tmp_path / "s"))
    fake = FakeSuite(suite)
    results, logged = run(fake)
    assert fake.ran == ALL_CELLS
    assert fake.prepared == ["a", "b"]  # once per entry, before its cells
    assert logged == [f"[{e} | {m} | seed {s}] done" for e, m, s in ALL_CELLS]
    assert json.loads((suite.out_dir / SUITE_FILE).read_text()) == config_to_dict(suite)
    # mean and sample sd over seeds 0, 1, 2: m1 scores 0, 2, 4; m2 scores 10, 11, 12
    by_row = {(r["entry"], r["method"]): r for r in results["rows"]}
    assert by_row["a", "m1"]["score"] == {"mean": 2.0, "std": 2.0}
    assert by_row["b", "m2"]["score"] == {"mean": 11.0, "std": 1.0}
    assert json.loads((suite.out_dir / TABLE_JSON).read_text()) == results
    assert (suite.out_dir / TABLE_MD).read_text().splitlines()[0] == "| a | m1 | [0, 1, 2] |"


def test_a_finished_cell_is_read_back_and_an_unfinished_one_rerun(tmp_path: Path) -> None:
    suite = FakeConfig(out=str(tmp_path / "s"))
    first, _ = run(FakeSuite(suite))
    evals = {p: p.stat().st_mtime_ns for p in suite.out_dir.rglob(EVAL_FILE)}
    assert len(evals) == len(ALL_CELLS)

    again = FakeSuite(suite)
    results, logged = run(again)
    assert again.ran == [] and logged == []
    assert results == first
    assert {p: p.stat().st_mtime_ns for p in suite.out_dir.rglob(EVAL_FILE)} == evals

    (suite.out_dir / "b" / "m1" / "seed2" / EVAL_FILE).unlink()
    redo = FakeSuite(suite)
    run(redo)
    assert redo.ran == [("b", "m1", 2)]


@pytest.mark.parametrize(
    ("choice", "cells", "prepared"),
    [
        ({"only_entries": ["B"]}, [c for c in ALL_CELLS if c[0] == "b"], ["b"]),
        ({"only_methods": ["m2"]}, [c for c in ALL_CELLS if c[1] == "m2"], ["a", "b"]),
        ({"only_seeds": [2, 0]}, [c for c in ALL_CELLS if c[2] != 1], ["a", "b"]),
        (
            {"only_entries": ["a"], "only_methods": ["m1"], "only_seeds": [1]},
            [("a", "m1", 1)],
            ["a"],
        ),
    ],
)
def test_the_users_choice_runs_exactly_its_cells(
    tmp_path: Path, choice: dict[str, Any], cells: list[tuple[str, str, int]], prepared: list[str]
) -> None:
    fake = FakeSuite(FakeConfig(out=str(tmp_path / "s")))
    results, _ = run(fake, **choice)
    assert fake.ran == cells  # in the suite's order, whatever the order of the choice
    assert fake.prepared == prepared  # an entry not chosen does not even make its data
    assert sorted((r["entry"], r["method"]) for r in results["rows"]) == sorted(
        {(e, m) for e, m, _ in cells}
    )


@pytest.mark.parametrize(
    ("choice", "error"),
    [
        ({"only_methods": ["m1", "m3"]}, r"method 'm3' is not in this suite \(m1, m2\)"),
        ({"only_seeds": [0, 7]}, r"seed 7 is not in this suite \(its cases list \[0, 1, 2\]\)"),
        ({"only_entries": ["a", "z"]}, "unknown entry 'z'"),
    ],
)
def test_a_choice_the_suite_does_not_have_is_refused_before_anything_runs(
    tmp_path: Path, choice: dict[str, Any], error: str
) -> None:
    suite = FakeConfig(out=str(tmp_path / "s"))
    fake = FakeSuite(suite)
    with pytest.raises(ToraError, match=error):
        run(fake, **choice)
    assert fake.ran == [] and fake.prepared == []
    assert not suite.out_dir.exists()  # not even suite.json is written


def test_a_suite_that_cannot_run_is_refused_first(tmp_path: Path) -> None:
    suite = FakeConfig(out=str(tmp_path / "s"), entries=[])
    with pytest.raises(ToraError, match="lists no entries"):
        run(FakeSuite(suite), only_methods=["m3"])
    assert not suite.out_dir.exists()


def test_an_entry_that_cannot_run_here_is_skipped_with_its_reason(tmp_path: Path) -> None:
    fake = FakeSuite(FakeConfig(out=str(tmp_path / "s")), unavailable=("a",))
    results, logged = run(fake)
    assert logged[0] == "skipping A: no simulator here"
    assert fake.prepared == ["b"]
    assert fake.ran == [c for c in ALL_CELLS if c[0] == "b"]
    assert {r["entry"] for r in results["rows"]} == {"b"}


def test_the_table_is_written_from_what_is_on_disk_after_a_partial_run(tmp_path: Path) -> None:
    suite = FakeConfig(out=str(tmp_path / "s"))
    # A run killed in its fifth cell (a, m2, seed 1): four cells are finished, and the one
    # killed has its settings on disk but no evaluation.
    with pytest.raises(RuntimeError, match="killed"):
        run(FakeSuite(suite, crash_at=("a", "m2", 1)))
    table = FakeSuite(suite).write_table()
    assert [(r["entry"], r["method"], r["seeds"]) for r in table["rows"]] == [
        ("a", "m1", [0, 1, 2]),
        ("a", "m2", [0]),
    ]
    assert table["rows"][1]["score"] == {"mean": 10.0, "std": None}  # one seed: no spread
    assert json.loads((suite.out_dir / TABLE_JSON).read_text()) == table

    # Another process runs seed 2 only; its table holds every finished cell, not only its own.
    other = FakeSuite(suite)
    results, _ = run(other, only_entries=["a"], only_seeds=[2])
    assert other.ran == [("a", "m2", 2)]  # (a, m1, 2) was finished: read back
    assert [(r["method"], r["seeds"]) for r in results["rows"]] == [
        ("m1", [0, 1, 2]),
        ("m2", [0, 2]),
    ]


def test_a_cell_made_under_other_settings_is_refused(tmp_path: Path) -> None:
    suite = FakeConfig(out=str(tmp_path / "s"))
    run(FakeSuite(suite), only_entries=["a"], only_methods=["m1"], only_seeds=[0])
    suite.data_seed = 1
    fake = FakeSuite(suite)
    with pytest.raises(ToraError, match="other settings"):
        run(fake, only_entries=["a"])
    assert fake.ran == []


@pytest.mark.parametrize(
    ("chosen", "sources"),
    [
        # Every cell chosen: each waits for the cells of the methods it depends on.
        (["m1", "m2", "m3"], {"m1": [], "m2": ["m1"], "m3": ["m1"]}),
        # m1 not chosen: m2 makes what m1 would have (as it does in a serial run), so m3,
        # which needs the same, waits for m2 instead; m2 waits for nothing.
        (["m2", "m3"], {"m2": [], "m3": ["m2"]}),
        (["m3"], {"m3": []}),
    ],
)
def test_a_cell_waits_for_the_cells_whose_work_it_takes(
    tmp_path: Path, chosen: list[str], sources: dict[str, list[str]]
) -> None:
    suite = FakeConfig(out=str(tmp_path / "s"), methods=["m1", "m2", "m3"])
    fake = FakeSuite(suite, depends={"m2": ["m1"], "m3": ["m1"]})
    item = EntryCells(suite.entries[0], "a", [(m, s) for m in chosen for s in (0, 1)])
    assert cell_sources(fake.kind(), item) == {
        ("a", m, s): [("a", source, s) for source in sources[m]] for m in chosen for s in (0, 1)
    }


def test_methods_that_wait_for_each_other_in_a_loop_are_refused(tmp_path: Path) -> None:
    suite = FakeConfig(out=str(tmp_path / "s"), methods=["m1", "m2"])
    fake = FakeSuite(suite, depends={"m1": ["m2"], "m2": ["m1"]})
    item = EntryCells(suite.entries[0], "a", [("m1", 0), ("m2", 0)])
    with pytest.raises(ToraError, match="in a loop: m1 -> m2 -> m1"):
        cell_sources(fake.kind(), item)
