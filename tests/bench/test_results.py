"""The half of the tables both suite kinds share (tora.bench.results): finished cells grouped
by method in the suite's order, mean and spread over seeds, the two files of a table."""

from __future__ import annotations

import json
from pathlib import Path

from tora.bench.cells import EVAL_FILE
from tora.bench.results import TABLE_JSON, TABLE_MD, finished_by_method, mean_sd, write_table


def test_mean_sd_over_seeds() -> None:
    assert mean_sd([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0}
    assert mean_sd([4.0]) == {"mean": 4.0, "std": None}
    assert mean_sd([]) == {"mean": None, "std": None}


def test_finished_cells_are_grouped_by_method_in_the_suites_order(tmp_path: Path) -> None:
    def cell(method: str, seed: int) -> Path:
        return tmp_path / method / f"seed{seed}"

    for method, seed in [("m2", 3), ("m2", 1), ("m3", 0)]:
        cell(method, seed).mkdir(parents=True)
        (cell(method, seed) / EVAL_FILE).write_text(json.dumps({"seed": seed}))
    cell("m1", 0).mkdir(parents=True)  # started, not finished
    grouped = finished_by_method(["m1", "m2", "m3"], [3, 1, 0], cell)
    assert list(grouped) == ["m2", "m3"]
    assert [(c.seed, c.dir, c.result) for c in grouped["m2"]] == [
        (3, cell("m2", 3), {"seed": 3}),
        (1, cell("m2", 1), {"seed": 1}),
    ]


def test_write_table_writes_the_json_and_its_markdown(tmp_path: Path) -> None:
    files = write_table(tmp_path / "new", {"rows": [1]}, "| 1 |\n")
    assert files == [tmp_path / "new" / TABLE_MD, tmp_path / "new" / TABLE_JSON]
    assert files[0].read_text() == "| 1 |\n"
    assert json.loads(files[1].read_text()) == {"rows": [1]}
