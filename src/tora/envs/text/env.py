"""A Gymnasium environment that plays a text game of tora-rl's format.

The observation is text: the scene's text, a blank line, then the offered choices numbered from
0, one per line (:func:`format_observation`); an ending shows its text alone. This is the
layout of MACHIAVELLI's observations (Pan et al. 2023), so agents and prompts written for one
read the other.

Scenes offer different numbers of choices, so the action space is ``Discrete(max_choices)``
(:data:`MAX_CHOICES` by default, the same for every game so one policy can play them all) and
``info["action_mask"]`` (int8, 1 for each offered choice, the form ``Discrete.sample(mask=)``
takes) says which actions are valid now. A masked action raises
:class:`InvalidChoiceError` rather than being clipped or ignored: a policy that picks an
absent choice has a bug worth seeing.

The reward of a step is the points of the achievements the taken choice unlocks for the first
time in the episode. ``info`` carries, after reset and after every step:

- ``scene``: id of the current scene; ``choices``: the offered choices' texts;
  ``action_mask``: as above;
- ``annotations``: the annotations of the choice just taken, as a nested dict in MACHIAVELLI's
  layout with every key present (zeros after reset). They are for labels and metrics; an agent
  that is to be judged on its morality must not read them;
- ``points``: points so far; ``achievements``: ids unlocked so far, in order;
  ``new_achievements``: ids unlocked by this step; ``max_points``: the most points any
  playthrough can collect (:func:`tora.envs.text.game.max_points`);
- ``ending``: ``{"title", "kind"}`` at an ending, otherwise None.

An episode terminates at an ending and is truncated after ``max_steps`` steps (default
:data:`DEFAULT_MAX_STEPS`; games may loop). Nothing is random: the same actions give the same
episode, whatever the seed.

Shipped games are registered with Gymnasium as ``tora/Text-<game_id>-v0``; ``tora/Text-v0``
builds any game given as ``game=`` (a :class:`~tora.envs.text.game.Game`, a path to a game file or
a shipped game's id), so ``tora.make_env("tora/Text-v0", game="my-game.json")`` works.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from tora.envs.text.game import (
    Annotations,
    Game,
    list_games,
    load_game,
    load_shipped_game,
    max_points,
)
from tora.errors import ToraError

MAX_CHOICES = 16
"""Size of the action space: the most choices a scene may offer to be playable here."""

DEFAULT_MAX_STEPS = 200
"""Steps before truncation: several times the length of a playthrough of a 40-scene game."""

TEXT_ENV_ID = "tora/Text-v0"
"""Builds the game given as ``game=``."""


class InvalidChoiceError(ToraError, ValueError):
    """An action that is not one of the choices the current scene offers."""


def text_env_id(game_id: str) -> str:
    """The Gymnasium id of the shipped game ``game_id``."""
    return f"tora/Text-{game_id}-v0"


def format_observation(text: str, choices: Sequence[str]) -> str:
    """A scene's observation: its text, a blank line, then ``i: choice`` lines (none at an
    ending)."""
    lines = [text.strip()]
    if choices:
        lines.append("")
        lines.extend(f"{i}: {choice.strip()}" for i, choice in enumerate(choices))
    return "\n".join(lines)


def action_mask(num_choices: int, size: int) -> np.ndarray:
    """int8 mask of ``size`` entries, 1 for the first ``num_choices``."""
    mask = np.zeros(size, dtype=np.int8)
    mask[:num_choices] = 1
    return mask


def check_choice(action: Any, num_choices: int, where: str) -> int:
    """``action`` as a choice index in ``range(num_choices)``; raises InvalidChoiceError."""
    if isinstance(action, bool | np.bool_):
        raise InvalidChoiceError(f"{where}: the action must be a choice index, got {action!r}")
    try:
        index = operator.index(action)
    except TypeError as exc:
        raise InvalidChoiceError(
            f"{where}: the action must be an integer choice index, got {action!r}"
        ) from exc
    if not 0 <= index < num_choices:
        raise InvalidChoiceError(
            f"{where}: action {index} is not an offered choice; this scene offers choices "
            f"0..{num_choices - 1} (info['action_mask'] marks them)"
        )
    return index


class TextGameEnv(gym.Env[str, int]):
    """Plays one :class:`~tora.envs.text.game.Game` (see the module docstring for the interface)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi"]}

    def __init__(
        self,
        game: Game,
        *,
        max_steps: int = DEFAULT_MAX_STEPS,
        max_choices: int = MAX_CHOICES,
        render_mode: str | None = None,
    ) -> None:
        if not isinstance(game, Game):
            raise ToraError(
                f"TextGameEnv takes a Game (from load_game or load_shipped_game), got "
                f"{type(game).__name__}; make_text_env also takes a path or a shipped id"
            )
        if max_steps < 1:
            raise ToraError(f"max_steps must be >= 1, got {max_steps}")
        if game.max_choices > max_choices:
            raise ToraError(
                f"text game {game.id!r} has a scene with {game.max_choices} choices, more than "
                f"the action space's {max_choices}; pass max_choices={game.max_choices} or more"
            )
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ToraError(f"render_mode must be None or 'ansi', got {render_mode!r}")
        self.game = game
        self.max_steps = max_steps
        self.max_choices = max_choices
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(max_choices)
        observations = [self._observation(sid) for sid in game.scenes]
        self.observation_space = spaces.Text(
            max_length=max(map(len, observations)),
            charset=frozenset("".join(observations)),
        )
        self._max_points: int | None = None
        self._scene_id = game.start
        self._steps = 0
        self._unlocked: list[str] = []
        self._points = 0
        self._done = True  # until the first reset

    # ------------------------------------------------------------------------- properties
    @property
    def max_points(self) -> int:
        """The most points any playthrough of the game can collect (computed once)."""
        if self._max_points is None:
            self._max_points = max_points(self.game)
        return self._max_points

    # ---------------------------------------------------------------------------- the API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        # The game is deterministic; the seed only seeds self.np_random, as Gymnasium asks.
        super().reset(seed=seed)
        self._scene_id = self.game.start
        self._steps = 0
        self._unlocked = []
        self._points = 0
        self._done = False
        return self._observation(self._scene_id), self._info(Annotations().to_dict(), [])

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        scene = self.game.scenes[self._scene_id]
        where = f"text game {self.game.id!r}, scene {scene.id!r}"
        if self._done:
            raise ToraError(
                f"{where}: no episode in progress (it ended, or reset() was never called); "
                "call reset()"
            )
        choice = scene.choices[check_choice(action, len(scene.choices), where)]
        new = [a for a in dict.fromkeys(choice.achievements) if a not in self._unlocked]
        self._unlocked.extend(new)
        reward = sum(self.game.achievements[a].points for a in new)
        self._points += reward
        self._scene_id = choice.next
        self._steps += 1
        terminated = self.game.scenes[self._scene_id].is_ending
        truncated = not terminated and self._steps >= self.max_steps
        self._done = terminated or truncated
        info = self._info(choice.annotations.to_dict(), new)
        return self._observation(self._scene_id), float(reward), terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode == "ansi":
            return self._observation(self._scene_id)
        return None

    # ---------------------------------------------------------------------------- helpers
    def _observation(self, scene_id: str) -> str:
        scene = self.game.scenes[scene_id]
        return format_observation(scene.text, [c.text for c in scene.choices])

    def _info(self, annotations: dict[str, Any], new: list[str]) -> dict[str, Any]:
        scene = self.game.scenes[self._scene_id]
        return {
            "scene": scene.id,
            "choices": [c.text for c in scene.choices],
            "action_mask": action_mask(len(scene.choices), self.max_choices),
            "annotations": annotations,
            "points": self._points,
            "achievements": list(self._unlocked),
            "new_achievements": list(new),
            "max_points": self.max_points,
            "ending": (
                {"title": scene.ending.title, "kind": scene.ending.kind} if scene.ending else None
            ),
        }


def make_text_env(game: Game | str | os.PathLike[str] | None = None, **kwargs: Any) -> TextGameEnv:
    """A :class:`TextGameEnv` for ``game``: a Game, a path to a game file (a string ending in
    ``.json`` or containing a path separator, or a path object) or a shipped game's id.
    ``kwargs`` go to TextGameEnv (``max_steps``, ``max_choices``, ``render_mode``)."""
    if game is None:
        raise ToraError(
            f"{TEXT_ENV_ID} needs the game: make_env({TEXT_ENV_ID!r}, game='my-game.json') or "
            f"a shipped game's id ({', '.join(list_games()) or 'none shipped'})"
        )
    if isinstance(game, Game):
        return TextGameEnv(game, **kwargs)
    if isinstance(game, os.PathLike) or game.endswith(".json") or os.sep in game or "/" in game:
        return TextGameEnv(load_game(game), **kwargs)
    return TextGameEnv(load_shipped_game(game), **kwargs)


def register_text_envs() -> None:
    """Register ``tora/Text-v0`` and one id per shipped game with Gymnasium (idempotent;
    lists the game files without reading them, so a broken game fails only when built)."""
    entry_point = "tora.envs.text.env:make_text_env"
    if TEXT_ENV_ID not in gym.registry:
        gym.register(TEXT_ENV_ID, entry_point=entry_point)
    for game_id in list_games():
        env_id = text_env_id(game_id)
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, kwargs={"game": game_id})


__all__ = [
    "DEFAULT_MAX_STEPS",
    "MAX_CHOICES",
    "TEXT_ENV_ID",
    "InvalidChoiceError",
    "TextGameEnv",
    "action_mask",
    "check_choice",
    "format_observation",
    "make_text_env",
    "register_text_envs",
    "text_env_id",
]
