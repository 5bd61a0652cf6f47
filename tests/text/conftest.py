"""Shared fixtures of the text-game tests: the tiny test game, as a file and as parsed JSON."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tora.envs.text.game import Game, load_game

TINY_PATH = Path(__file__).resolve().parents[1] / "data" / "text" / "tiny-test-game.json"
"""Seven scenes, two endings; selling the crate (45 points) beats reporting it (15 or 25)."""

SELL = [1, 0, 0]
"""The high-scoring path: steal the key (+5), pry the seal (+10), sell (+30): 45 points."""

LOOPING_REPORT = [0, 1, 0, 0, 1, 2, 0, 1, 0]
"""The honest path with loops: ask the foreman, go back, ask again, explain (+5), log the
crate, return the key, explain again (the key is already unlocked: +0), log the crate,
report (+10): 15 points."""

_TINY_DATA: dict[str, Any] = json.loads(TINY_PATH.read_text(encoding="utf-8"))


@pytest.fixture
def tiny_data() -> dict[str, Any]:
    """A fresh copy of the tiny game's JSON, free to break."""
    return copy.deepcopy(_TINY_DATA)


@pytest.fixture(scope="session")
def tiny_game() -> Game:
    return load_game(TINY_PATH)
