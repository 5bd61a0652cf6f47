"""tora.configs.settings_diff: what a refused resume tells the user changed."""

from __future__ import annotations


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
