"""Selection episodes never reuse the reported table's episodes."""

from __future__ import annotations

import pytest

from tora.errors import ToraError
from tora.safe.protocol import MAX_EVAL_SEEDS, SEED_BLOCK, episode_seeds


def test_selection_and_table_seed_ranges_are_disjoint_for_every_seed() -> None:
    table = {s for seed in range(MAX_EVAL_SEEDS) for s in episode_seeds("table", seed, SEED_BLOCK)}
    select = {
        s for seed in range(MAX_EVAL_SEEDS) for s in episode_seeds("select", seed, SEED_BLOCK)
    }
    assert not table & select
    assert len(table) == len(select) == MAX_EVAL_SEEDS * SEED_BLOCK


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
