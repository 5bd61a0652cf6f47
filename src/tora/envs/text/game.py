"""tora-rl's text-game format: a scene graph in one JSON file, its validator and loader.

A game is a directed graph of scenes. Each scene has a text and a list of choices; each choice
has a text, the scene it leads to, the achievements it unlocks (their points are the game's
reward) and annotations of the act of taking it, with the keys of the MACHIAVELLI benchmark
(Pan et al., "Do the Rewards Justify the Means?", ICML 2023): 13 morality keys, utility to
the player and to others, money, physical power and social influence. Scenes with an
``ending`` and no choices end the game. MACHIAVELLI annotates the scenes of its games; here the
*choice* is the act, so the annotations sit on the choice. The full format, for people writing
games, is docs/text_games.md.

:func:`validate_game` checks every rule and raises one :class:`GameFormatError` that lists all
problems found, each naming the game, the scene and the choice, so a game writer fixes a file
in one pass instead of one error at a time. :func:`load_game` reads a file (and checks that
the game's id is the file's name); :func:`list_games` and :func:`load_shipped_game` find the
games shipped inside the package (``tora/envs/text/games/*.json``).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tora.errors import FormatError, ToraError

FORMAT_NAME = "tora-text-game"
FORMAT_VERSION = 1

MORALITY_KEYS: tuple[str, ...] = (
    "killing",
    "physical_harm",
    "non_physical_harm",
    "intending_harm",
    "deception",
    "manipulation",
    "promises",
    "stealing",
    "trespassing",
    "spying",
    "vandalism",
    "fairness",
    "other",
)
"""MACHIAVELLI's morality keys, in its order."""

UTILITY_LEVELS: tuple[str, ...] = ("-3", "-2", "-1", "0", "1", "2", "3")
"""Utility levels (very bad ... very good), as strings because they are JSON object keys."""

INFLUENCE_LEVELS: tuple[str, ...] = ("0", "1", "2")
"""Social influence levels (none, some, a lot)."""

MORALITY_VALUES: tuple[float, ...] = (0.0, 1 / 3, 2 / 3, 1.0)
"""Allowed morality values: MACHIAVELLI's labels are the mean of three 0/1 votes."""

_MORALITY_TOLERANCE = 0.01  # so 0.33, 0.333 and 1/3 are all the value one third
ENDING_KINDS: tuple[str, ...] = ("good", "neutral", "bad")
GAME_ID_PATTERN = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

_TOP_REQUIRED = (
    "format",
    "version",
    "id",
    "title",
    "summary",
    "player",
    "start",
    "achievements",
    "scenes",
)
_ACHIEVEMENT_KEYS = ("title", "description", "points")
_SCENE_REQUIRED = ("text",)
_SCENE_OPTIONAL = ("choices", "ending")
_CHOICE_REQUIRED = ("text", "next")
_CHOICE_OPTIONAL = ("achievements", "annotations")
_ENDING_KEYS = ("title", "kind")
_ANNOTATION_KEYS = ("morality", "utility", "money", "physical", "social")


class GameFormatError(FormatError):
    """A text game breaks the format; ``problems`` lists every problem found."""

    def __init__(self, game: str, problems: list[str]) -> None:
        self.game = game
        self.problems = tuple(problems)
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"text game {game} has {count}:\n{lines}")

    def __reduce__(self) -> tuple[type, tuple[str, list[str]]]:
        # The default rebuilds from the message alone, which this __init__ does not take; an
        # error raised in a worker process must survive the trip back.
        return (type(self), (self.game, list(self.problems)))


class UnknownGameError(ToraError, KeyError):
    """A game id that is not among the games shipped with tora-rl."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


# ------------------------------------------------------------------------------ data model
@dataclass(frozen=True)
class Annotations:
    """What taking a choice does, on MACHIAVELLI's keys; every key present (0 = not at all).

    Treat the mappings as read-only: a game's annotations are shared by every env playing it.
    """

    morality: dict[str, float] = field(default_factory=lambda: dict.fromkeys(MORALITY_KEYS, 0.0))
    """Each of :data:`MORALITY_KEYS` -> 0, 1/3, 2/3 or 1 (how clearly the act is that harm)."""
    utility_self: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(UTILITY_LEVELS, 0.0)
    )
    """Utility level "-3".."3" for the player -> confidence in [0, 1]."""
    utility_others: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(UTILITY_LEVELS, 0.0)
    )
    """Utility level "-3".."3" for others -> confidence in [0, 1]."""
    dollars: float = 0.0
    """Money gained or moved by the act."""
    watts: float = 0.0
    """Physical power exerted by the act."""
    influence: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(INFLUENCE_LEVELS, 0.0)
    )
    """Social influence level "0".."2" -> confidence in [0, 1]."""

    def to_dict(self) -> dict[str, Any]:
        """A fresh nested dict in MACHIAVELLI's layout (the form ``info["annotations"]`` has)."""
        return {
            "morality": dict(self.morality),
            "utility": {"self": dict(self.utility_self), "others": dict(self.utility_others)},
            "money": {"dollars": self.dollars},
            "physical": {"watts": self.watts},
            "social": {"influence": dict(self.influence)},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Annotations:
        """Read annotations leniently: absent keys are 0, unknown keys are ignored, values are
        not range-checked. For MACHIAVELLI's per-step annotations (``None`` when no annotated
        scene was passed; sums over several scenes may exceed 1) and hand-built ones; game
        files go through :func:`validate_game`, which is strict."""
        data = data or {}
        utility = data.get("utility") or {}
        return cls(
            morality=_levels(data.get("morality"), MORALITY_KEYS),
            utility_self=_levels(utility.get("self"), UTILITY_LEVELS),
            utility_others=_levels(utility.get("others"), UTILITY_LEVELS),
            dollars=float((data.get("money") or {}).get("dollars", 0.0)),
            watts=float((data.get("physical") or {}).get("watts", 0.0)),
            influence=_levels((data.get("social") or {}).get("influence"), INFLUENCE_LEVELS),
        )


def _levels(values: Mapping[str, Any] | None, keys: tuple[str, ...]) -> dict[str, float]:
    values = values or {}
    return {key: float(values.get(key, 0.0)) for key in keys}


def normalize_annotations(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """``data`` (partial, ``None`` or full) as a nested dict with every key, zeros filled in."""
    return Annotations.from_dict(data).to_dict()


@dataclass(frozen=True)
class Achievement:
    """Something a playthrough can unlock once, worth ``points``."""

    id: str
    title: str
    description: str
    points: int


@dataclass(frozen=True)
class Choice:
    """One option offered in a scene."""

    text: str
    next: str
    """Id of the scene it leads to."""
    achievements: tuple[str, ...] = ()
    """Ids of the achievements taking it unlocks (each at most once per playthrough)."""
    annotations: Annotations = field(default_factory=Annotations)


@dataclass(frozen=True)
class Ending:
    """What an ending scene is called and whether it ends well."""

    title: str
    kind: str
    """One of :data:`ENDING_KINDS`."""


@dataclass(frozen=True)
class Scene:
    """A scene: its text and either choices or an ending."""

    id: str
    text: str
    choices: tuple[Choice, ...] = ()
    ending: Ending | None = None

    @property
    def is_ending(self) -> bool:
        return self.ending is not None


@dataclass(frozen=True)
class Game:
    """A validated text game (build one with :func:`validate_game` or :func:`load_game`)."""

    id: str
    title: str
    summary: str
    """A few sentences about the game, shown to agents (as MACHIAVELLI's prompts do)."""
    player: str
    """Who the player character is, shown to agents."""
    start: str
    """Id of the first scene."""
    achievements: dict[str, Achievement]
    scenes: dict[str, Scene]

    @property
    def max_choices(self) -> int:
        """The most choices any scene offers."""
        return max(len(scene.choices) for scene in self.scenes.values())

    @property
    def endings(self) -> tuple[str, ...]:
        """Ids of the ending scenes, in file order."""
        return tuple(sid for sid, scene in self.scenes.items() if scene.is_ending)


# ------------------------------------------------------------------------------- validation
class _Problems:
    """Problems found so far, each prefixed with where it is."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}" if where else message)


def _is_number(value: Any) -> bool:
    # JSON true/false arrive as bool, a subclass of int; JSON's NaN/Infinity extensions as
    # non-finite floats. Neither is a number a game may contain.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_keys(
    obj: Any,
    required: tuple[str, ...],
    optional: tuple[str, ...],
    where: str,
    problems: _Problems,
) -> bool:
    """Report missing and unknown keys of a JSON object; False if ``obj`` is not an object."""
    if not isinstance(obj, dict):
        problems.add(where, f"must be a JSON object, got {type(obj).__name__}")
        return False
    missing = [k for k in required if k not in obj]
    if missing:
        problems.add(where, f"missing key(s): {', '.join(map(repr, missing))}")
    allowed = set(required) | set(optional)
    unknown = [k for k in obj if k not in allowed]
    if unknown:
        problems.add(
            where,
            f"unknown key(s): {', '.join(map(repr, unknown))} "
            f"(allowed: {', '.join(sorted(allowed))})",
        )
    return True


def _text(obj: dict, key: str, where: str, problems: _Problems) -> str | None:
    """``obj[key]`` if it is a non-empty string (absent keys were reported already)."""
    if key not in obj:
        return None
    value = obj[key]
    if not isinstance(value, str) or not value.strip():
        problems.add(where, f"{key!r} must be a non-empty string, got {value!r}")
        return None
    return value


def _confidences(
    values: Any, keys: tuple[str, ...], what: str, where: str, problems: _Problems
) -> dict[str, float]:
    """A level -> confidence object: keys from ``keys``, values in [0, 1]."""
    out = dict.fromkeys(keys, 0.0)
    if not isinstance(values, dict):
        problems.add(where, f"{what} must be an object of level -> confidence, got {values!r}")
        return out
    for key, value in values.items():
        if key not in keys:
            problems.add(where, f"{what} has unknown level {key!r} (levels: {', '.join(keys)})")
        elif not _is_number(value) or not 0.0 <= value <= 1.0:
            problems.add(where, f"{what}[{key!r}] must be a confidence in [0, 1], got {value!r}")
        else:
            out[key] = float(value)
    return out


def _morality(values: Any, where: str, problems: _Problems) -> dict[str, float]:
    out = dict.fromkeys(MORALITY_KEYS, 0.0)
    if not isinstance(values, dict):
        problems.add(where, f"morality must be an object of key -> value, got {values!r}")
        return out
    for key, value in values.items():
        if key not in MORALITY_KEYS:
            problems.add(
                where,
                f"unknown morality key {key!r} (MACHIAVELLI's keys: {', '.join(MORALITY_KEYS)})",
            )
        elif not _is_number(value) or not any(
            abs(value - allowed) <= _MORALITY_TOLERANCE for allowed in MORALITY_VALUES
        ):
            problems.add(where, f"morality[{key!r}] must be 0, 0.33, 0.67 or 1, got {value!r}")
        else:
            out[key] = float(value)
    return out


def _amount(obj: Any, key: str, what: str, where: str, problems: _Problems) -> float:
    """``obj[key]`` for money/physical: an object with one optional non-negative number."""
    if not _check_keys(obj, (), (key,), f"{where} {what}", problems):
        return 0.0
    value = obj.get(key, 0.0)
    if not _is_number(value) or value < 0:
        problems.add(where, f"{what}.{key} must be a number >= 0, got {value!r}")
        return 0.0
    return float(value)


def _annotations(obj: Any, where: str, problems: _Problems) -> Annotations:
    where_ann = f"{where} annotations"
    if not _check_keys(obj, (), _ANNOTATION_KEYS, where_ann, problems):
        return Annotations()
    morality = _morality(obj.get("morality", {}), where_ann, problems)
    utility = obj.get("utility", {})
    selves = others = dict.fromkeys(UTILITY_LEVELS, 0.0)
    if _check_keys(utility, (), ("self", "others"), f"{where_ann} utility", problems):
        selves = _confidences(
            utility.get("self", {}), UTILITY_LEVELS, "utility.self", where_ann, problems
        )
        others = _confidences(
            utility.get("others", {}), UTILITY_LEVELS, "utility.others", where_ann, problems
        )
    social = obj.get("social", {})
    influence = dict.fromkeys(INFLUENCE_LEVELS, 0.0)
    if _check_keys(social, (), ("influence",), f"{where_ann} social", problems):
        influence = _confidences(
            social.get("influence", {}), INFLUENCE_LEVELS, "social.influence", where_ann, problems
        )
    return Annotations(
        morality=morality,
        utility_self=selves,
        utility_others=others,
        dollars=_amount(obj.get("money", {}), "dollars", "money", where_ann, problems),
        watts=_amount(obj.get("physical", {}), "watts", "physical", where_ann, problems),
        influence=influence,
    )


def _choice(
    obj: Any, where: str, scene_ids: set[str], achievement_ids: set[str], problems: _Problems
) -> Choice | None:
    """The choice, or None when its target is missing or broken (so no edge is drawn)."""
    if not isinstance(obj, dict):
        problems.add(where, f"must be a JSON object, got {type(obj).__name__}")
        return None
    _check_keys(obj, ("text",), ("next", *_CHOICE_OPTIONAL), where, problems)
    text = _text(obj, "text", where, problems) or ""
    target = obj.get("next")
    if "next" not in obj:
        problems.add(where, "has no 'next': every choice must lead to a scene")
    elif not isinstance(target, str):
        problems.add(where, f"'next' must be a scene id (a string), got {target!r}")
    elif target not in scene_ids:
        problems.add(where, f"'next' names no scene: {target!r}")
    achievements = obj.get("achievements", [])
    if not isinstance(achievements, list):
        problems.add(where, f"'achievements' must be a list of ids, got {achievements!r}")
        achievements = []
    for ach in achievements:
        if not isinstance(ach, str) or ach not in achievement_ids:
            problems.add(where, f"unlocks unknown achievement {ach!r}")
    if len(set(map(repr, achievements))) != len(achievements):
        problems.add(where, "lists an achievement twice")
    annotations = _annotations(obj.get("annotations", {}), where, problems)
    if not isinstance(target, str) or target not in scene_ids:
        return None
    return Choice(
        text=text,
        next=target,
        achievements=tuple(a for a in achievements if isinstance(a, str) and a in achievement_ids),
        annotations=annotations,
    )


def _choice_where(scene_where: str, index: int, obj: Any) -> str:
    where = f"{scene_where} choices[{index}]"
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        short = obj["text"] if len(obj["text"]) <= 40 else obj["text"][:37] + "..."
        where += f" ({short!r})"
    return where


def _ending(obj: Any, where: str, problems: _Problems) -> Ending | None:
    if not _check_keys(obj, _ENDING_KEYS, (), f"{where} ending", problems):
        return None
    title = _text(obj, "title", f"{where} ending", problems)
    kind = obj.get("kind")
    if "kind" in obj and kind not in ENDING_KINDS:
        problems.add(where, f"ending kind must be one of {', '.join(ENDING_KINDS)}, got {kind!r}")
        return None
    return Ending(title=title, kind=kind) if title is not None and kind is not None else None


def _scene(
    scene_id: str,
    obj: Any,
    scene_ids: set[str],
    achievement_ids: set[str],
    problems: _Problems,
) -> tuple[Scene, bool]:
    """The scene (with the choices that have valid targets) and whether any choice is broken."""
    where = f"scene {scene_id!r}"
    if not scene_id:
        problems.add(where, "scene ids must not be empty")
    if not _check_keys(obj, _SCENE_REQUIRED, _SCENE_OPTIONAL, where, problems):
        return Scene(id=scene_id, text=""), True
    text = _text(obj, "text", where, problems) or ""
    raw_choices = obj.get("choices", [])
    broken = False
    if not isinstance(raw_choices, list):
        problems.add(where, f"'choices' must be a list, got {type(raw_choices).__name__}")
        raw_choices, broken = [], True
    ending = None
    if "ending" in obj:
        ending = _ending(obj["ending"], where, problems)
        if raw_choices:
            problems.add(where, "an ending scene must have no choices")
    elif "choices" not in obj:
        problems.add(where, "missing key 'choices' (only an ending scene may have none)")
    elif not raw_choices and not broken:
        problems.add(where, "has no choices and is not an ending: the game would stop here")
    choices = []
    for index, raw in enumerate(raw_choices):
        choice_where = _choice_where(where, index, raw)
        choice = _choice(raw, choice_where, scene_ids, achievement_ids, problems)
        if choice is None:
            broken = True
        else:
            choices.append(choice)
    if ending is not None:
        choices = []
    if "ending" in obj and ending is None:
        broken = True  # a malformed ending: do not also call the scene a dead end
    return Scene(id=scene_id, text=text, choices=tuple(choices), ending=ending), broken


def _achievement(ach_id: str, obj: Any, problems: _Problems) -> Achievement | None:
    where = f"achievement {ach_id!r}"
    if not ach_id:
        problems.add(where, "achievement ids must not be empty")
    if not _check_keys(obj, _ACHIEVEMENT_KEYS, (), where, problems):
        return None
    title = _text(obj, "title", where, problems)
    description = _text(obj, "description", where, problems)
    points = obj.get("points")
    if "points" in obj and (not isinstance(points, int) or isinstance(points, bool) or points <= 0):
        problems.add(where, f"'points' must be a positive integer, got {points!r}")
        return None
    if title is None or description is None or points is None:
        return None
    return Achievement(id=ach_id, title=title, description=description, points=points)


def _reachable(scenes: Mapping[str, Scene], start: str) -> set[str]:
    seen = {start}
    queue = deque([start])
    while queue:
        for choice in scenes[queue.popleft()].choices:
            if choice.next not in seen:
                seen.add(choice.next)
                queue.append(choice.next)
    return seen


def _can_end(scenes: Mapping[str, Scene], assumed: set[str]) -> set[str]:
    """Scenes from which some path reaches an ending (``assumed`` are counted as such)."""
    parents: dict[str, list[str]] = {sid: [] for sid in scenes}
    for sid, scene in scenes.items():
        for choice in scene.choices:
            parents[choice.next].append(sid)
    done = {sid for sid, scene in scenes.items() if scene.is_ending} | assumed
    queue = deque(done)
    while queue:
        for parent in parents[queue.popleft()]:
            if parent not in done:
                done.add(parent)
                queue.append(parent)
    return done


def _check_graph(
    scenes: Mapping[str, Scene], start: str, broken: set[str], problems: _Problems
) -> None:
    """Every scene reachable from the start, and an ending reachable from every scene."""
    reachable = _reachable(scenes, start)
    # A scene with a broken choice might reach an ending through it once fixed: assume it
    # does rather than report a dead end that is only a consequence of the broken choice.
    can_end = _can_end(scenes, broken)
    for sid in scenes:
        if sid not in reachable:
            problems.add(f"scene {sid!r}", f"cannot be reached from the start scene {start!r}")
        elif sid not in can_end:
            problems.add(
                f"scene {sid!r}",
                "no ending can be reached from here (a loop without an exit?)",
            )


def _check_achievements_used(
    achievements: Mapping[str, Achievement], scenes: Mapping[str, Scene], problems: _Problems
) -> None:
    used = {a for scene in scenes.values() for c in scene.choices for a in c.achievements}
    for ach_id in achievements:
        if ach_id not in used:
            problems.add(f"achievement {ach_id!r}", "is unlocked by no choice")


def _check_header(data: dict, expected_id: str | None, problems: _Problems) -> None:
    if data.get("format") != FORMAT_NAME:
        problems.add("", f"'format' must be {FORMAT_NAME!r}, got {data.get('format')!r}")
    version = data.get("version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        problems.add(
            "", f"unsupported 'version' {version!r} (this tora-rl reads version {FORMAT_VERSION})"
        )
    for key in ("title", "summary", "player"):
        _text(data, key, "", problems)
    game_id = data.get("id")
    if "id" in data and (not isinstance(game_id, str) or not GAME_ID_PATTERN.match(game_id)):
        problems.add("", f"'id' must be lowercase letters, digits and dashes, got {game_id!r}")
    elif expected_id is not None and game_id != expected_id:
        problems.add(
            "", f"'id' is {game_id!r} but the file is named {expected_id!r}: they must match"
        )


def _game_label(data: Any, source: str | None) -> str:
    game_id = data.get("id") if isinstance(data, dict) else None
    label = repr(game_id) if isinstance(game_id, str) and game_id else "(no id)"
    return f"{label} ({source})" if source else label


def validate_game(data: Any, *, source: str | None = None, expected_id: str | None = None) -> Game:
    """Check ``data`` (a parsed game file) against every rule of the format; return the Game.

    ``source`` (e.g. the file path) is named in the error; ``expected_id``, when given, must
    equal the game's ``id`` (:func:`load_game` passes the file name). Raises
    :class:`GameFormatError` listing all problems found.
    """
    problems = _Problems()
    label = _game_label(data, source)
    if not _check_keys(data, _TOP_REQUIRED, (), "", problems):
        raise GameFormatError(label, problems.items)
    _check_header(data, expected_id, problems)

    raw_achievements = data.get("achievements", {})
    if not isinstance(raw_achievements, dict):
        problems.add("", "'achievements' must be an object of achievement id -> achievement")
        raw_achievements = {}
    achievements: dict[str, Achievement] = {}
    for ach_id, obj in raw_achievements.items():
        achievement = _achievement(ach_id, obj, problems)
        if achievement is not None:
            achievements[ach_id] = achievement
    achievement_ids = set(raw_achievements)

    raw_scenes = data.get("scenes", {})
    scenes: dict[str, Scene] = {}
    broken: set[str] = set()
    if isinstance(raw_scenes, dict) and raw_scenes:
        for scene_id, obj in raw_scenes.items():
            scene, is_broken = _scene(scene_id, obj, set(raw_scenes), achievement_ids, problems)
            scenes[scene_id] = scene
            if is_broken:
                broken.add(scene_id)
    elif "scenes" in data:
        problems.add("", "'scenes' must be a non-empty object of scene id -> scene")

    start = data.get("start")
    if "start" in data and (not isinstance(start, str) or start not in scenes):
        problems.add("", f"'start' names no scene: {start!r}")
    elif scenes and isinstance(start, str):
        _check_graph(scenes, start, broken, problems)
    _check_achievements_used(achievements, scenes, problems)

    if problems.items:
        raise GameFormatError(label, problems.items)
    return Game(
        id=data["id"],
        title=data["title"],
        summary=data["summary"],
        player=data["player"],
        start=start,
        achievements=achievements,
        scenes=scenes,
    )


# ---------------------------------------------------------------------------------- loading
def _parse_json(text: str, source: str) -> Any:
    """Parse JSON, reporting keys that appear twice in one object: the JSON module would keep
    the last silently, and a scene pasted twice under one id would vanish without a word."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        raise GameFormatError(
            repr(source), [f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"]
        ) from exc
    if duplicates:
        raise GameFormatError(
            _game_label(data, source),
            [f"key {key!r} appears twice in one JSON object" for key in duplicates],
        )
    return data


def load_game(path: str | os.PathLike[str]) -> Game:
    """Read and validate the game file ``path`` (``<game_id>.json``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise FormatError(f"no text game file at {path}") from exc
    except UnicodeDecodeError as exc:
        raise GameFormatError(repr(str(path)), [f"not UTF-8 text: {exc}"]) from exc
    return validate_game(_parse_json(text, str(path)), source=str(path), expected_id=path.stem)


def _games_dir() -> Any:
    return resources.files("tora.envs.text.games")


def list_games() -> list[str]:
    """Ids of the games shipped with tora-rl, sorted."""
    return sorted(
        entry.name.removesuffix(".json")
        for entry in _games_dir().iterdir()
        if entry.name.endswith(".json")
    )


def load_shipped_game(game_id: str) -> Game:
    """The shipped game ``game_id`` (one of :func:`list_games`)."""
    if game_id not in list_games():
        raise UnknownGameError(
            f"no shipped text game {game_id!r}; shipped games: {', '.join(list_games()) or 'none'}"
        )
    entry = _games_dir() / f"{game_id}.json"
    with resources.as_file(entry) as path:
        return load_game(path)


# An exact search with a cap: a game whose achievements combine in more ways than this is
# refused with a clear error rather than left running for hours.
_MAX_SEARCH_STATES = 2_000_000


# ------------------------------------------------------------------------------- max points
def _add_if_not_dominated(front: list[int], mask: int) -> bool:
    """Keep ``front`` the maximal sets of achievements seen at a scene; True if ``mask`` is new
    there. Arriving with a superset of achievements is never worse: every continuation ends
    with a superset of what it would have ended with."""
    if any(mask & ~old == 0 for old in front):
        return False
    front[:] = [old for old in front if old & ~mask != 0]
    front.append(mask)
    return True


def _choice_masks(game: Game) -> dict[str, list[tuple[str, int]]]:
    """scene -> [(next scene, bit mask of the achievements the choice unlocks)]."""
    bits = {ach_id: 1 << i for i, ach_id in enumerate(game.achievements)}
    return {
        sid: [(c.next, sum({bits[a] for a in c.achievements})) for c in scene.choices]
        for sid, scene in game.scenes.items()
    }


def _reachable_achievements(edges: Mapping[str, list[tuple[str, int]]]) -> dict[str, int]:
    """scene -> mask of every achievement some path from the scene can still unlock."""
    reach: dict[str, int] = {}
    for sid in edges:
        seen, stack, mask = {sid}, [sid], 0
        while stack:
            for nxt, bits in edges[stack.pop()]:
                mask |= bits
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        reach[sid] = mask
    return reach


def max_points(game: Game) -> int:
    """The most points one playthrough of ``game`` can collect, each achievement once.

    Exact, by a depth-first branch-and-bound search over (scene, achievements unlocked so far).
    Two prunings keep it small on story graphs: at each scene only the sets of achievements
    that no other set seen there contains are expanded (a superset is never worse), and a
    state whose points plus every achievement still reachable from its scene cannot beat the
    best found is dropped. Depth first, so the big sets that prune the rest come early. Every
    scene of a valid game can reach an ending, so the best state is the best playthrough.
    """
    points = [a.points for a in game.achievements.values()]

    def value(mask: int) -> int:
        return sum(p for i, p in enumerate(points) if mask >> i & 1)

    edges = _choice_masks(game)
    reach = _reachable_achievements(edges)
    fronts: dict[str, list[int]] = {sid: [] for sid in game.scenes}
    fronts[game.start].append(0)
    stack = [(game.start, 0)]
    best, states = 0, 1
    while stack:
        scene_id, mask = stack.pop()
        if mask not in fronts[scene_id]:
            continue  # a superset reached this scene since; its successors cover these
        if value(mask) + value(reach[scene_id] & ~mask) <= best:
            continue
        for nxt, bits in edges[scene_id]:
            new = mask | bits
            if _add_if_not_dominated(fronts[nxt], new):
                stack.append((nxt, new))
                best = max(best, value(new))
                states += 1
                if states > _MAX_SEARCH_STATES:
                    raise ToraError(
                        f"text game {game.id!r}: the max-points search passed "
                        f"{_MAX_SEARCH_STATES} states; the game has too many ways to combine "
                        "its achievements for an exact answer"
                    )
    return best


__all__ = [
    "ENDING_KINDS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "INFLUENCE_LEVELS",
    "MORALITY_KEYS",
    "MORALITY_VALUES",
    "UTILITY_LEVELS",
    "Achievement",
    "Annotations",
    "Choice",
    "Ending",
    "Game",
    "GameFormatError",
    "Scene",
    "UnknownGameError",
    "list_games",
    "load_game",
    "load_shipped_game",
    "max_points",
    "normalize_annotations",
    "validate_game",
]
