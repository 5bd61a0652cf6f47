"""The tiny test game of the text-game tests (tests/data/text/tiny-test-game.json) and the
choice paths whose outcomes the tests know; the fixtures are in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

TINY_PATH = Path(__file__).resolve().parent / "data" / "text" / "tiny-test-game.json"
"""Seven scenes, two endings; selling the crate (45 points) beats reporting it (15 or 25)."""

SELL = [1, 0, 0]
"""The high-scoring path: steal the key (+5), pry the seal (+10), sell (+30): 45 points."""

LOOPING_REPORT = [0, 1, 0, 0, 1, 2, 0, 1, 0]
"""The honest path with loops: ask the foreman, go back, ask again, explain (+5), log the
crate, return the key, explain again (the key is already unlocked: +0), log the crate,
report (+10): 15 points."""
