"""tora.configs.settings_diff: what a refused resume tells the user changed."""

from __future__ import annotations

import dataclasses
from typing import ClassVar


def test_settings_diff_names_what_changed() -> None:
    from tora.configs import settings_diff

    saved = {"data": {"file": "a.h5", "seed": 0}, "steps": 10, "gone": 1}
    wanted = {"data": {"file": "b.h5", "seed": 0}, "steps": 10, "new": [1, 2]}
    assert settings_diff(saved, wanted) == [
        "data.file: 'a.h5' -> 'b.h5'",
        "gone: 1 -> <missing>",
        "new: <missing> -> [1, 2]",
    ]
    assert settings_diff(saved, saved) == []
    assert len(settings_diff({f"k{i}": i for i in range(9)}, {}, limit=3)) == 3
    assert settings_diff(None, {"a": 1}) == ["(top): None -> {'a': 1}"]
    # Long values are cut to 60 characters so one setting cannot flood the message.
    assert settings_diff({"x": "y" * 100}, {}) == ["x: '" + "y" * 56 + "... -> <missing>"]


@dataclasses.dataclass
class _Inner:
    LEGACY: ClassVar[dict] = {"mode": "old"}
    mode: str = "new"
    size: int = 3


@dataclasses.dataclass
class _Outer:
    LEGACY: ClassVar[dict] = {"rate": 0.0}
    rate: float = 0.5
    name: str = "x"
    inner: _Inner = dataclasses.field(default_factory=_Inner)


def test_legacy_defaults_give_the_behaviour_from_before_a_field_existed() -> None:
    from tora.configs import fill_missing, legacy_defaults

    assert legacy_defaults(_Outer) == {
        "rate": 0.0,
        "name": "x",
        "inner": {"mode": "old", "size": 3},
    }
    # Settings saved before "rate" and "inner.mode" existed read as the old behaviour: equal to
    # a run that asks for it, different from one that takes today's defaults.
    saved = {"name": "x", "inner": {"size": 3}}
    filled = fill_missing(saved, legacy_defaults(_Outer))
    assert filled == {"rate": 0.0, "name": "x", "inner": {"mode": "old", "size": 3}}
    assert filled != {"rate": 0.5, "name": "x", "inner": {"mode": "new", "size": 3}}
