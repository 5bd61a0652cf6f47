"""A cell's settings check: fields added later read as their legacy values, in every section."""

from __future__ import annotations

from pathlib import Path

import pytest

from tora.bench.cells import CELL_FILE, check_cell
from tora.errors import ToraError
from tora.io import atomic_write_json


def test_sections_added_fields_read_as_their_legacy_values(tmp_path: Path) -> None:
    # Made before select.cost_z (and config.extra) existed.
    atomic_write_json(
        tmp_path / CELL_FILE,
        {"settings": {"config": {"lr": 1.0}, "select": {"episodes": 20}, "seed": 0}},
    )
    defaults = {"lr": 1.0, "extra": "old"}
    select_defaults = {"select": {"episodes": 20, "cost_z": 0.0}}
    same = {"config": {"lr": 1.0, "extra": "old"}, "select": {"episodes": 20, "cost_z": 0.0}}
    check_cell(tmp_path, {**same, "seed": 0}, defaults, select_defaults)
    changed = {**same, "select": {"episodes": 20, "cost_z": 1.645}, "seed": 0}
    with pytest.raises(ToraError, match="cost_z"):
        check_cell(tmp_path, changed, defaults, select_defaults)
    # Without the section's defaults a field it lacks is a change, as before.
    with pytest.raises(ToraError, match="other settings"):
        check_cell(tmp_path, {**same, "seed": 0}, defaults)
