"""The text-game format: the tiny game and the docs' example load; each broken game is refused
with an error that names the game, the scene and the choice."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path
from typing import Any

import pytest

from tiny_text_game import TINY_PATH
from tora.envs.text.game import (
    MORALITY_KEYS,
    Game,
    GameFormatError,
    UnknownGameError,
    list_games,
    load_game,
    load_shipped_game,
    validate_game,
)
from tora.errors import FormatError, ToraError

DOCS = Path(__file__).resolve().parents[3] / "docs" / "text_games.md"


def problems_of(data: Any, **kwargs: Any) -> list[str]:
    with pytest.raises(GameFormatError) as err:
        validate_game(data, **kwargs)
    return list(err.value.problems)


def one_problem(data: Any) -> str:
    problems = problems_of(data)
    assert len(problems) == 1, problems
    return problems[0]


# ---------------------------------------------------------------------------- valid games
def test_tiny_game_loads(tiny_game: Game) -> None:
    assert tiny_game.id == "tiny-test-game"
    assert tiny_game.start == "s_gate"
    assert len(tiny_game.scenes) == 7
    assert tiny_game.endings == ("s_end_rich", "s_end_honest")
    assert tiny_game.max_choices == 3
    assert {a: x.points for a, x in tiny_game.achievements.items()} == {
        "ach_key": 5,
        "ach_crate": 10,
        "ach_sale": 30,
        "ach_report": 10,
    }
    steal = tiny_game.scenes["s_gate"].choices[1]
    assert steal.next == "s_storeroom" and steal.achievements == ("ach_key",)
    assert steal.annotations.morality["stealing"] == 1.0
    assert steal.annotations.morality["trespassing"] == 0.67
    assert set(steal.annotations.morality) == set(MORALITY_KEYS)  # absent keys are 0
    assert steal.annotations.dollars == 0.0
    rich = tiny_game.scenes["s_end_rich"]
    assert rich.is_ending and rich.choices == () and rich.ending.kind == "bad"


def test_docs_example_is_a_valid_game() -> None:
    blocks = re.findall(r"```json\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    examples = [json.loads(b) for b in blocks if '"format": "tora-text-game"' in b]
    assert examples, "docs/text_games.md lost its complete example"
    game = validate_game(examples[0])
    assert game.endings and game.achievements


@pytest.mark.parametrize("game_id", list_games())
def test_every_shipped_game_is_valid(game_id: str) -> None:
    assert load_shipped_game(game_id).id == game_id


def test_unknown_shipped_game() -> None:
    with pytest.raises(UnknownGameError, match="no shipped text game 'no-such-game'"):
        load_shipped_game("no-such-game")


# ------------------------------------------------------------------- structure: the graph
def test_dangling_next_names_scene_and_choice(tiny_data: dict) -> None:
    tiny_data["scenes"]["s_office"]["choices"][1]["next"] = "s_storeroom_typo"
    problem = one_problem(tiny_data)
    assert problem.startswith("scene 's_office' choices[1] ('Go back to the storeroom for")
    assert "'next' names no scene: 's_storeroom_typo'" in problem


def test_choice_without_target(tiny_data: dict) -> None:
    del tiny_data["scenes"]["s_gate"]["choices"][0]["next"]
    problem = one_problem(tiny_data)
    assert problem.startswith("scene 's_gate' choices[0]")
    assert "has no 'next'" in problem


def test_broken_target_is_not_also_reported_as_a_dead_end(tiny_data: dict) -> None:
    # s_foreman's only other way out returns to the gate; without a usable target the scene
    # still counts as able to end, so only the real problem is listed.
    tiny_data["scenes"]["s_foreman"]["choices"][0]["next"] = 7
    assert "'next' must be a scene id (a string), got 7" in one_problem(tiny_data)


def test_unreachable_scene(tiny_data: dict) -> None:
    tiny_data["scenes"]["s_attic"] = {
        "text": "Nobody ever comes up here.",
        "choices": [{"text": "Go down.", "next": "s_end_honest"}],
    }
    assert one_problem(tiny_data) == (
        "scene 's_attic': cannot be reached from the start scene 's_gate'"
    )


def test_no_ending_reachable(tiny_data: dict) -> None:
    # storeroom <-> office with no exit: everything before them is trapped too.
    scenes = tiny_data["scenes"]
    scenes["s_storeroom"]["choices"] = [scenes["s_storeroom"]["choices"][1]]
    scenes["s_office"]["choices"] = [scenes["s_office"]["choices"][1]]
    problems = problems_of(tiny_data)
    trapped = ["s_gate", "s_foreman", "s_storeroom", "s_office"]
    ending_problems = [p for p in problems if "no ending can be reached" in p]
    assert [p.split("'")[1] for p in ending_problems] == trapped
    # s_crate and the rich ending are now unreachable, and the sale and crate achievements
    # unlockable from no reachable choice still count as used (their choices exist).
    assert "scene 's_crate': cannot be reached from the start scene 's_gate'" in problems


def test_non_ending_scene_without_choices(tiny_data: dict) -> None:
    tiny_data["scenes"]["s_office"]["choices"] = []
    problems = problems_of(tiny_data)
    assert "scene 's_office': has no choices and is not an ending" in problems[0]


def test_ending_with_choices_and_bad_kind(tiny_data: dict) -> None:
    end = tiny_data["scenes"]["s_end_rich"]
    end["choices"] = [{"text": "Again?", "next": "s_gate"}]
    end["ending"]["kind"] = "tragic"
    problems = problems_of(tiny_data)
    assert any("ending kind must be one of good, neutral, bad, got 'tragic'" in p for p in problems)
    assert "scene 's_end_rich': an ending scene must have no choices" in problems


def test_bad_start(tiny_data: dict) -> None:
    tiny_data["start"] = "s_nowhere"
    assert "'start' names no scene: 's_nowhere'" in problems_of(tiny_data)


# ------------------------------------------------------------------ structure: the keys
def test_missing_keys(tiny_data: dict) -> None:
    del tiny_data["summary"]
    del tiny_data["scenes"]["s_crate"]["text"]
    del tiny_data["achievements"]["ach_sale"]["points"]
    problems = problems_of(tiny_data)
    assert "missing key(s): 'summary'" in problems
    assert "scene 's_crate': missing key(s): 'text'" in problems
    assert "achievement 'ach_sale': missing key(s): 'points'" in problems
    assert len(problems) == 3


def test_unknown_keys(tiny_data: dict) -> None:
    tiny_data["author"] = "me"
    tiny_data["scenes"]["s_gate"]["mood"] = "tense"
    tiny_data["scenes"]["s_gate"]["choices"][1]["reward"] = 3
    tiny_data["scenes"]["s_gate"]["choices"][1]["annotations"]["honesty"] = {}
    problems = problems_of(tiny_data)
    assert len(problems) == 4
    assert problems[0].startswith("unknown key(s): 'author'")
    assert problems[1].startswith("scene 's_gate': unknown key(s): 'mood'")
    assert problems[2].startswith(
        "scene 's_gate' choices[1] ('Lift the key from the hook while he s...')"
    )
    assert "unknown key(s): 'reward'" in problems[2]
    assert "annotations: unknown key(s): 'honesty'" in problems[3]


def test_missing_choices_key_on_a_plain_scene(tiny_data: dict) -> None:
    del tiny_data["scenes"]["s_office"]["choices"]
    problems = problems_of(tiny_data)
    assert "scene 's_office': missing key 'choices' (only an ending scene may have none)" in (
        problems
    )


# --------------------------------------------------------------------------- annotations
def annotate(tiny_data: dict, annotations: dict) -> dict:
    tiny_data["scenes"]["s_crate"]["choices"][1]["annotations"] = annotations
    return tiny_data


def test_bad_morality_key(tiny_data: dict) -> None:
    problem = one_problem(annotate(tiny_data, {"morality": {"lying": 1}}))
    assert problem.startswith(
        "scene 's_crate' choices[1] ('Call the police and tell them what yo...')"
    )
    assert "unknown morality key 'lying'" in problem and "deception" in problem


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({"morality": {"killing": 0.5}}, "morality['killing'] must be 0, 0.33, 0.67 or 1"),
        ({"morality": {"killing": True}}, "morality['killing'] must be 0, 0.33, 0.67 or 1"),
        ({"utility": {"others": {"3": 1.5}}}, "utility.others['3'] must be a confidence in [0, 1]"),
        ({"utility": {"self": {"4": 1}}}, "utility.self has unknown level '4'"),
        ({"utility": {"friends": {}}}, "utility: unknown key(s): 'friends'"),
        ({"money": {"dollars": -5}}, "money.dollars must be a number >= 0, got -5"),
        ({"physical": {"watts": float("nan")}}, "physical.watts must be a number >= 0"),
        ({"social": {"influence": {"3": 1}}}, "social.influence has unknown level '3'"),
        ({"morality": [1, 0]}, "morality must be an object"),
    ],
)
def test_annotation_values_out_of_range(tiny_data: dict, annotations: dict, message: str) -> None:
    assert message in one_problem(annotate(tiny_data, annotations))


def test_morality_thirds_in_any_precision(tiny_data: dict) -> None:
    annotate(tiny_data, {"morality": {"spying": 1 / 3, "fairness": 0.667, "other": 0.33}})
    choice = validate_game(tiny_data).scenes["s_crate"].choices[1]
    assert choice.annotations.morality["fairness"] == 0.667


# --------------------------------------------------------------------------- achievements
@pytest.mark.parametrize("points", [0, -3, 2.5, "5", True])
def test_points_must_be_positive_integers(tiny_data: dict, points: Any) -> None:
    tiny_data["achievements"]["ach_key"]["points"] = points
    assert "achievement 'ach_key': 'points' must be a positive integer" in one_problem(tiny_data)


def test_unknown_and_unused_achievements(tiny_data: dict) -> None:
    tiny_data["scenes"]["s_gate"]["choices"][0]["achievements"] = ["ach_courage"]
    tiny_data["achievements"]["ach_idle"] = {"title": "Idle", "description": "-", "points": 1}
    problems = problems_of(tiny_data)
    assert len(problems) == 2
    assert problems[0].startswith("scene 's_gate' choices[0]")
    assert problems[0].endswith("unlocks unknown achievement 'ach_courage'")
    assert problems[1] == "achievement 'ach_idle': is unlocked by no choice"


# ------------------------------------------------------------------------ header and file
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("format", "ink", "'format' must be 'tora-text-game', got 'ink'"),
        ("version", 2, "unsupported 'version' 2 (this tora-rl reads version 1)"),
        ("id", "Tiny Game", "'id' must be lowercase letters, digits and dashes"),
        ("title", "  ", "'title' must be a non-empty string"),
    ],
)
def test_header(tiny_data: dict, key: str, value: Any, message: str) -> None:
    tiny_data[key] = value
    assert message in one_problem(tiny_data)


def test_id_must_match_the_file_name(tiny_data: dict, tmp_path: Path) -> None:
    path = tmp_path / "night-clerk.json"
    path.write_text(json.dumps(tiny_data), encoding="utf-8")
    with pytest.raises(GameFormatError) as err:
        load_game(path)
    assert str(path) in str(err.value)
    assert err.value.problems == (
        "'id' is 'tiny-test-game' but the file is named 'night-clerk': they must match",
    )


def test_all_problems_in_one_error_naming_the_game(tiny_data: dict) -> None:
    tiny_data["scenes"]["s_gate"]["choices"][0]["next"] = "s_nowhere"
    del tiny_data["scenes"]["s_foreman"]["choices"][1]["next"]
    tiny_data["scenes"]["s_crate"]["choices"][0]["annotations"]["morality"]["lying"] = 1
    with pytest.raises(GameFormatError) as err:
        validate_game(tiny_data, source="games/tiny-test-game.json")
    message = str(err.value)
    assert message.startswith(
        "text game 'tiny-test-game' (games/tiny-test-game.json) has 3 problems:\n  - scene"
    )
    assert len(err.value.problems) == 3
    # one exception type for the caller to catch, which also survives a process boundary
    assert isinstance(err.value, FormatError | ToraError | ValueError)
    copy = pickle.loads(pickle.dumps(err.value))
    assert str(copy) == message and copy.problems == err.value.problems


def test_duplicate_scene_in_the_file(tmp_path: Path) -> None:
    text = TINY_PATH.read_text(encoding="utf-8")
    duplicated = text.replace(
        '"s_end_honest": {', '"s_end_rich": {"text": "x", "choices": []},\n    "s_end_honest": {'
    )
    path = tmp_path / "tiny-test-game.json"
    path.write_text(duplicated, encoding="utf-8")
    with pytest.raises(GameFormatError, match="key 's_end_rich' appears twice"):
        load_game(path)


def test_invalid_json_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"format": "tora-text-game",\n  "id": }', encoding="utf-8")
    with pytest.raises(GameFormatError, match="not valid JSON: Expecting value at line 2"):
        load_game(path)
    with pytest.raises(FormatError, match="no text game file at"):
        load_game(tmp_path / "absent.json")


def test_not_an_object() -> None:
    assert problems_of([1, 2]) == ["must be a JSON object, got list"]
