"""One cell of a benchmark suite on disk, whatever the suite's kind (MuJoCo or safe RL).

A cell (entry, method, seed) is a directory holding the settings it was made with
(``cell.json``) and, once finished, its evaluation (``eval.json``). Both suites keep this
layout, so a killed run resumes the same way in both and a cell made under other settings is
refused the same way in both; this module is the one place that knows it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tora.configs import fill_missing, settings_diff
from tora.errors import ToraError
from tora.io import atomic_write_json, read_json_object

CELL_FILE = "cell.json"
"""The settings a cell was made with."""
EVAL_FILE = "eval.json"
"""A finished cell's evaluation; its presence is what "finished" means."""
TRAIN_FILE = "train.json"
"""Marks finished training (and its seconds), so a resumed cell does not train again."""


def check_cell(
    cell: Path,
    settings: dict[str, Any],
    config_defaults: dict[str, Any],
    section_defaults: Mapping[str, dict[str, Any]] | None = None,
) -> None:
    """Refuse to mix a cell's results with settings it was not made with; record them in a new
    cell. A config field added after the cell was made counts as the value that reproduces the
    behaviour from before it (``config_defaults``: its default, or its config class's LEGACY
    value, :func:`tora.configs.legacy_defaults`); any other value is a change. The same
    holds for the other settings sections named in ``section_defaults`` (section -> its
    legacy defaults). Both suites' cells (MuJoCo and safe) are checked here."""
    path = cell / CELL_FILE
    if path.is_file():
        saved = read_json_object(path).get("settings")
        sections = {"config": config_defaults, **(section_defaults or {})}
        if isinstance(saved, dict):
            saved = {
                key: fill_missing(value, sections[key])
                if key in sections and isinstance(value, dict)
                else value
                for key, value in saved.items()
            }
        if saved != settings:
            changed = "; ".join(settings_diff(saved, settings))
            raise ToraError(
                f"{cell} was made with other settings than the suite now asks for ({changed}); "
                "use another suite name/out directory, or delete that cell to redo it"
            )
    else:
        cell.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, {"settings": settings})


def run_or_read_cell(
    cell: Path,
    settings: dict[str, Any],
    config_defaults: dict[str, Any],
    evaluate: Callable[[], dict[str, Any]],
    section_defaults: Mapping[str, dict[str, Any]] | None = None,
) -> Path:
    """The evaluation file of ``cell``, made by ``evaluate`` only if the cell is not finished.

    The cell's settings are checked first (:func:`check_cell`), so a finished cell is read
    back only under the settings it was made with. The file is written atomically after
    ``evaluate`` returns, so a run killed inside ``evaluate`` leaves an unfinished cell that
    the next run redoes (resuming whatever the cell itself saved on the way)."""
    check_cell(cell, settings, config_defaults, section_defaults)
    path = cell / EVAL_FILE
    if not path.is_file():
        atomic_write_json(path, evaluate())
    return path


def without_timing(result: Any) -> Any:
    """A cell's evaluation without its wall-clock figures (``*_s`` and ``*_seconds`` fields,
    ``timing`` blocks), which no two runs share: what two runs of the same seeds must agree
    on exactly, wherever their cells ran."""
    if isinstance(result, dict):
        return {
            key: without_timing(value)
            for key, value in result.items()
            if key != "timing" and not key.endswith(("_s", "_seconds"))
        }
    if isinstance(result, list):
        return [without_timing(value) for value in result]
    return result
