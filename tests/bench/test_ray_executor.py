"""Suite cells as Ray tasks (tora.bench.ray_executor) on a local 2-CPU Ray: the same files as
a serial run, retries after a worker's death, finished cells read back, dependent cells after
their sources, and a failing cell that neither stops the others nor retries forever.

The cells are the fake kind's (tests/bench/fake_suite.py), recording each attempt in a file
since they run in other processes; one real tiny suite runs through the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tora.bench.cells import CELL_FILE, EVAL_FILE, without_timing
from tora.bench.ray_executor import RayExecutor
from tora.bench.results import TABLE_JSON, TABLE_MD
from tora.bench.runner import CellsFailed, run_suite_cells
from tora.cli.main import main

from .fake_suite import DiskSuite, FakeConfig, FakeEntry

ray = pytest.importorskip("ray")

TESTS = Path(__file__).resolve().parents[1]
SAFE_TINY = TESTS / "safe" / "tiny.toml"
ALL_CELLS = [(e, m, s) for e in "ab" for m in ("m1", "m2") for s in (0, 1, 2)]


pytestmark = pytest.mark.usefixtures("local_ray")  # tests/conftest.py


def run_on_ray(fake: DiskSuite, **choice: Any) -> tuple[dict[str, Any], list[str]]:
    logged: list[str] = []
    results = run_suite_cells(
        fake.kind(), progress=False, log=logged.append, executor=RayExecutor(), **choice
    )
    return results, logged


def outputs(out: Path) -> dict[str, bytes]:
    """Every file a run leaves that a serial run leaves too, by path under ``out``: each
    cell's settings and evaluation, and the table."""
    names = {CELL_FILE, EVAL_FILE, TABLE_JSON, TABLE_MD}
    return {
        str(path.relative_to(out)): path.read_bytes()
        for path in sorted(out.rglob("*"))
        if path.name in names
    }


def test_ray_writes_the_serial_runs_files_byte_for_byte(tmp_path: Path) -> None:
    serial = DiskSuite(FakeConfig(out=str(tmp_path / "serial")))
    run_suite_cells(serial.kind(), progress=False, log=lambda _: None)
    parallel = DiskSuite(FakeConfig(out=str(tmp_path / "ray")))
    results, logged = run_on_ray(parallel)
    expected = outputs(serial.suite.out_dir)
    assert len([p for p in expected if p.endswith(EVAL_FILE)]) == len(ALL_CELLS)
    assert outputs(parallel.suite.out_dir) == expected
    assert results == json.loads(expected[TABLE_JSON])
    for entry, method, seed in ALL_CELLS:
        name = f"[{entry.upper()} | {method} | seed {seed}]"
        assert logged.index(f"{name} submitted") < logged.index(
            f"[{entry} | {method} | seed {seed}] done"
        )
        assert any(line.startswith(f"{name} running (pid ") for line in logged)
        assert any(line.startswith(f"{name} finished in ") for line in logged)


def test_a_cell_whose_worker_died_or_that_raised_is_retried(tmp_path: Path) -> None:
    killed, faulty = ("a", "m1", 0), ("b", "m2", 1)
    fake = DiskSuite(FakeConfig(out=str(tmp_path / "s")), exit_once=[killed], raise_once=[faulty])
    results, logged = run_on_ray(fake)
    for cell in (killed, faulty):
        first, second = fake.attempts(cell)
        assert "end" not in first and "end" in second
    assert any(line.startswith("[A | m1 | seed 0] retried (attempt 2 of 3") for line in logged)
    assert "[B | m2 | seed 1] attempt 1 raised RuntimeError: a passing fault" in logged
    assert all(len(fake.attempts(c)) == 1 for c in ALL_CELLS if c not in (killed, faulty))
    assert len(list(fake.suite.out_dir.rglob(EVAL_FILE))) == len(ALL_CELLS)
    assert [r["seeds"] for r in results["rows"]] == [[0, 1, 2]] * 4


def test_a_finished_cell_is_read_back_not_submitted(tmp_path: Path) -> None:
    suite = FakeConfig(out=str(tmp_path / "s"))
    first, _ = run_on_ray(DiskSuite(suite))
    fake = DiskSuite(suite)
    again, logged = run_on_ray(fake)
    assert again == first
    assert not any(line.endswith(" submitted") for line in logged)
    assert all(len(fake.attempts(c)) == 1 for c in ALL_CELLS)

    (suite.out_dir / "b" / "m1" / "seed2" / EVAL_FILE).unlink()
    _, logged = run_on_ray(fake)
    assert [line for line in logged if line.endswith(" submitted")] == [
        "[B | m1 | seed 2] submitted"
    ]
    assert [len(fake.attempts(c)) for c in ALL_CELLS] == [
        2 if c == ("b", "m1", 2) else 1 for c in ALL_CELLS
    ]


def test_a_dependent_cell_starts_after_its_source_finished(tmp_path: Path) -> None:
    suite = FakeConfig(out=str(tmp_path / "s"), entries=[FakeEntry("a")])
    fake = DiskSuite(suite, depends={"m2": ["m1"]}, slow={"m1": 0.5})
    _, logged = run_on_ray(fake)
    for seed in (0, 1, 2):
        (source,) = fake.attempts(("a", "m1", seed))
        (dependent,) = fake.attempts(("a", "m2", seed))
        assert dependent["start"] >= source["end"]
        assert logged.index(f"[A | m2 | seed {seed}] submitted") > next(
            i for i, line in enumerate(logged) if line.startswith(f"[A | m1 | seed {seed}] fini")
        )
    # The cells do run side by side: the first two of m1 overlap.
    first, second = (fake.attempts(("a", "m1", s))[0] for s in (0, 1))
    assert second["start"] < first["end"]


def test_a_cell_raising_tora_error_fails_once_and_the_others_finish(tmp_path: Path) -> None:
    bad = ("a", "m1", 1)
    fake = DiskSuite(FakeConfig(out=str(tmp_path / "s")), depends={"m2": ["m1"]}, bad=[bad])
    with pytest.raises(CellsFailed) as failed:
        run_on_ray(fake)
    assert len(fake.attempts(bad)) == 1  # a ToraError is the cell's input: not retried
    assert [(f.name, f.error) for f in failed.value.failures] == [
        ("[A | m1 | seed 1]", "ToraError: this cell's settings cannot work"),
        ("[A | m2 | seed 1]", "not run: it needs [A | m1 | seed 1], which failed"),
    ]
    assert "2 cells of the suite failed" in str(failed.value)
    assert not fake.attempts(("a", "m2", 1))
    # Every other cell finished, and the table holds them.
    rows = {(r["entry"], r["method"]): r["seeds"] for r in failed.value.results["rows"]}
    assert rows == {
        ("a", "m1"): [0, 2],
        ("a", "m2"): [0, 2],
        ("b", "m1"): [0, 1, 2],
        ("b", "m2"): [0, 1, 2],
    }
    assert json.loads((fake.suite.out_dir / TABLE_JSON).read_text()) == failed.value.results


TINY_MUJOCO = """
name = "tiny-ray"
device = "cpu"
methods = ["tora", "tora_fast"]
[data]
episodes = 30
[eval]
preferences = 3
episodes = 1
seed = 5
[settings.tora]
pretrain = { steps = 40, horizon = 4, optim = { checkpoint_every = 40 } }
inverse = { steps = 40 }
dpo = { steps = 5, batch_size = 16, num_pairs = 100 }
[variants.tora_fast]
method = "tora"
settings = { sampler = { steps = 2 } }
[[envs]]
id = "tora/Cruise-v0"
seeds = [0]
"""


def same_evaluations(serial: Path, parallel: Path) -> None:
    """Both runs made the same cells with the same results (timings aside)."""
    made = sorted(p.relative_to(serial) for p in serial.rglob(EVAL_FILE))
    assert made and made == sorted(p.relative_to(parallel) for p in parallel.rglob(EVAL_FILE))
    for cell in made:
        ours, theirs = (json.loads((out / cell).read_text()) for out in (serial, parallel))
        assert without_timing(theirs) == without_timing(ours), cell


def test_a_mujoco_suite_on_ray_equals_its_serial_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY_MUJOCO)
    serial, parallel = tmp_path / "serial", tmp_path / "ray"
    assert main(["bench", "run", str(suite), "--out", str(serial), "--no-progress"]) == 0
    args = ["bench", "run", str(suite), "--out", str(parallel), "--no-progress", "--ray"]
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    same_evaluations(serial, parallel)
    # The variant waited for TORA's cell and took its stages, as in the serial run.
    lines = out.splitlines()
    tora_done = next(
        i for i, s in enumerate(lines) if s.startswith("[tora/Cruise-v0 | tora | seed 0] fini")
    )
    assert lines.index("[tora/Cruise-v0 | tora_fast | seed 0] submitted") > tora_done
    marks = [
        json.loads((o / "Cruise-v0/tora_fast/seed0/train.json").read_text())
        for o in (serial, parallel)
    ]
    assert (
        marks[0]["reused"]
        == marks[1]["reused"]
        == {
            "reference": "tora",
            "inverse_dynamics": "tora",
            "objectives": "tora",
        }
    )
    assert "results: " in out

    # A cell refused on the driver (made under other settings) fails the run with status 2
    # after the table of the cells that finished is printed.
    suite.write_text(TINY_MUJOCO.replace("steps = 2", "steps = 3"))
    assert main(args) == 2
    printed = capsys.readouterr()
    assert "| TORA |" in printed.out and "results: " in printed.out
    assert "1 cell of the suite failed" in printed.err
    assert "[tora/Cruise-v0 | tora_fast | seed 0] ToraError: " in printed.err
    assert "other settings" in printed.err


def test_a_safe_suite_on_ray_equals_its_serial_run(tmp_path: Path) -> None:
    # TORA-safe's own cell is not chosen: the adaptive cell trains its model and runs its
    # cell, the critic's cell waits for it (as in the serial order), and neither trains it twice.
    choice = ["--seed", "0", "--method", "tora_adaptive", "--method", "tora_critic"]
    serial, parallel = tmp_path / "serial", tmp_path / "ray"
    base = ["safe", "bench", str(SAFE_TINY), "--no-progress", *choice]
    assert main([*base, "--out", str(serial)]) == 0
    assert main([*base, "--out", str(parallel), "--ray"]) == 0
    same_evaluations(serial, parallel)
    assert (parallel / "SafeDash/tora/seed0" / EVAL_FILE).is_file()
