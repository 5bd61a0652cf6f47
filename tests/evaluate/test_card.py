"""Dataset cards: front hypervolume and sparsity by hand, coverage, inspect output, plot."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tora.cli.main import main
from tora.data.formats import save_dataset
from tora.data.trajectories import Trajectories, objectives_from_names
from tora.evaluate.card import dataset_card, format_card, plot_card
from tora.evaluate.inspect import format_summary, inspect_dataset

# Episode returns; the last one is below the reference point 0 on the first objective.
RETURNS = np.array([[3.0, 1.0], [1.0, 3.0], [2.0, 2.0], [1.0, 1.0], [-1.0, 5.0]])
PREFS = np.array([[0.95, 0.05], [0.05, 0.95], [0.5, 0.5], [0.55, 0.45], [0.15, 0.85]])


def make_traj(
    preferences: np.ndarray | None = PREFS, minimize: tuple[str, ...] = ()
) -> Trajectories:
    """One episode per row of RETURNS that splits its return in equal steps: two steps ending
    in a timeout, except episode 1, four steps ending in a terminal (a fall). Halves and
    quarters keep the sums exact, so the returns' ties stay ties."""
    episodes = []
    for i, ret in enumerate(RETURNS):
        n = 4 if i == 1 else 2
        ep = {
            "observations": np.full((n, 3), i, np.float32),
            "next_observations": np.full((n, 3), i + 0.5, np.float32),
            "actions": np.zeros((n, 1), np.float32),
            "rewards": np.tile(ret / n, (n, 1)),
            "terminals": np.arange(n) == 3,
            "timeouts": (np.arange(n) == 1) & (n == 2),
        }
        if preferences is not None:
            ep["preference"] = preferences[i]
        episodes.append(ep)
    return Trajectories.from_episodes(
        episodes,
        objectives_from_names(["speed", "energy"], minimize),
        metadata={"quality": "expert", "prefs": "wide"},
    )


def test_card_values_by_hand() -> None:
    card = dataset_card(make_traj())
    # Front of all returns: (-1, 5), (1, 3), (2, 2), (3, 1). Beyond 0 on both: the last three
    # (and the dominated (1, 1)); their union of boxes: 3*1 + 2*1 + 1*1 = 6.
    assert card["hypervolume"] == pytest.approx(6.0)
    assert card["front_episodes"] == 4 and card["episodes_beyond_ref"] == 4
    # Sparsity: sorted speeds -1, 1, 2, 3 (gaps 2, 1, 1) and energies 1, 2, 3, 5 (1, 1, 2):
    # (4 + 1 + 1 + 1 + 1 + 4) / (4 - 1) = 4.
    assert card["sparsity"] == pytest.approx(4.0)
    assert card["ref_point"] == [0.0, 0.0]
    assert card["returns"]["speed"] == pytest.approx({"min": -1.0, "mean": 1.2, "max": 3.0})
    assert card["returns"]["energy"] == pytest.approx({"min": 1.0, "mean": 2.4, "max": 5.0})
    assert (card["quality"], card["prefs"]) == ("expert", "wide")
    assert card["lengths"] == pytest.approx({"min": 2.0, "mean": 12 / 5, "max": 4.0})
    assert card["terminated_episodes"] == 1  # episode 1's last step; timeouts do not count
    assert "1 of 5 episodes end in a terminal state" in format_card(card, episodes=5)
    prefs = card["preferences"]
    assert prefs["min"] == pytest.approx([0.05, 0.05]) and prefs["max"] == pytest.approx(
        [0.95, 0.95]
    )
    hist = prefs["first_histogram"]
    assert hist["counts"] == [1, 1, 0, 0, 0, 2, 0, 0, 0, 1]
    assert hist["edges"] == pytest.approx(np.linspace(0, 1, 11).tolist())
    # Steering in the data, Spearman per objective on centred ranks (ties share the mean
    # rank). Speed: weight ranks (2, -2, 0, 1, -1) against return ranks (2, -.5, 1, -.5, -2):
    # 6.5 / sqrt(10 * 9.5). Energy: (-2, 2, 0, -1, 1) against (-1.5, 1, 0, -1.5, 2):
    # 8.5 / sqrt(95). Their mean: 7.5 / sqrt(95) = 0.769.
    assert prefs["steering"] == pytest.approx(7.5 / np.sqrt(95))
    assert "steering in the data: 0.769" in format_card(card)
    json.dumps(card)  # JSON-ready


def test_card_reference_point_and_cost_direction() -> None:
    # With reference (0.5, 0.5) the box of (1, 1) shrinks too: 2.5*0.5 + 1.5*1 + 0.5*1 = 3.25.
    assert dataset_card(make_traj(), ref_point=[0.5, 0.5])["hypervolume"] == pytest.approx(3.25)
    # Energy as a cost (smaller is better), reference (0, 6): (3, 1) dominates every other
    # episode, so the front is (3, 1) alone and HV = (3 - 0) * (6 - 1) = 15.
    card = dataset_card(make_traj(minimize=("energy",)), ref_point=[0.0, 6.0])
    assert card["hypervolume"] == pytest.approx(15.0)
    assert card["front_episodes"] == 1 and card["episodes_beyond_ref"] == 4


def test_card_without_preferences() -> None:
    card = dataset_card(make_traj(preferences=None))
    assert card["preferences"] is None
    assert "not recorded" in format_card(card)


def test_inspect_shows_the_card(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.h5"
    save_dataset(make_traj(), path)
    info = inspect_dataset(path)
    assert info["card"]["hypervolume"] == pytest.approx(6.0)
    text = format_summary(info)
    # The summary's " : " column stays aligned with the card appended after it.
    assert len({line.index(" : ") for line in text.splitlines() if " : " in line}) == 1
    assert "card" in text and "hypervolume 6" in text and "1 1 0 0 0 2 0 0 0 1" in text
    # Returns and lengths appear once: the summary computes them, the card does not repeat them.
    assert text.count("episode length") == 0 and text.count("episode_length") == 1
    assert not any(line.strip().startswith("return ") for line in text.splitlines())
    assert "  return " in format_card(info["card"]) and "episode length" in format_card(
        info["card"]
    )

    assert main(["data", "inspect", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["episodes"] == 5 and out["transitions"] == 12  # the existing keys stay
    assert out["card"]["front_episodes"] == 4
    assert out["card"]["preferences"]["first_histogram"]["counts"][5] == 2
    assert main(["data", "inspect", str(path)]) == 0
    assert "behaviour front: hypervolume 6" in capsys.readouterr().out


def test_plot_card_writes_a_png(tmp_path: Path) -> None:
    path = plot_card(make_traj(), tmp_path / "card.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
