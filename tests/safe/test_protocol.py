"""Selection episodes never reuse the reported table's episodes."""

from __future__ import annotations

import pytest

from tora.errors import ToraError
from tora.safe.protocol import MAX_EVAL_SEEDS, SEED_BLOCK, episode_seeds


def test_purposes_seed_ranges_are_disjoint_for_every_seed() -> None:
    ranges = {
        purpose: {
            s for seed in range(MAX_EVAL_SEEDS) for s in episode_seeds(purpose, seed, SEED_BLOCK)
        }
        for purpose in ("table", "select", "check")
    }
    assert not ranges["table"] & ranges["select"]
    assert not ranges["check"] & (ranges["table"] | ranges["select"])
    assert all(len(r) == MAX_EVAL_SEEDS * SEED_BLOCK for r in ranges.values())


def test_seeds_of_different_eval_seeds_do_not_overlap() -> None:
    assert not set(episode_seeds("table", 0, 20)) & set(episode_seeds("table", 1, 20))
    assert episode_seeds("table", 2, 3) == episode_seeds("table", 2, 3)


@pytest.mark.parametrize(
    ("purpose", "seed", "episodes"),
    [
        ("table", -1, 20),
        ("table", MAX_EVAL_SEEDS, 20),
        ("select", 0, 0),
        ("select", 0, SEED_BLOCK + 1),
        ("train", 0, 20),
    ],
)
def test_out_of_range_requests_are_refused(purpose: str, seed: int, episodes: int) -> None:
    with pytest.raises(ToraError):
        episode_seeds(purpose, seed, episodes)  # type: ignore[arg-type]
