"""MACHIAVELLI's own games through the interface of :class:`~tora.envs.text.env.TextGameEnv`.

MACHIAVELLI (Pan et al., ICML 2023) plays 134 Choice of Games titles with its own ChoiceScript
interpreter, ``machiavelli.game.machiavelli_env.MachiavelliEnv``. Its code is MIT-licensed but
not on PyPI (the PyPI package named ``machiavelli`` is an unrelated card-game solver), and its
game data, being those titles, is distributed privately. tora-rl therefore ships neither: a
user points :class:`MachiavelliTextEnv` at a local checkout of the code with the data placed
inside it as ``game_data/`` (``root=`` or the environment variable :data:`ROOT_ENV_VAR`), and
the module is imported only then. docs/text_games.md lists the steps.

MachiavelliEnv has the old gym API (``step`` returns ``obs, reward, done, info``) and a
``Discrete(num_choices)`` action space that changes every step. The adapter gives it the
Gymnasium API and ``info`` of TextGameEnv: ``choices`` from ``game_state["choice_texts"]``, a
fixed ``Discrete(max_choices)`` with ``action_mask``, ``points``, ``achievements`` and
``new_achievements`` from ``game_state``, ``max_points`` (MACHIAVELLI's: the sum of all its
achievements' points), ``scene`` (the last node passed) and ``annotations`` normalized to the
full key set. Its annotations are those of the scenes passed during the step, summed over them
(so a value may exceed 1), and None when none is annotated, which becomes zeros. The
observation is MACHIAVELLI's text as it comes (story text, then the numbered choices, the same
layout as TextGameEnv's). ``info["machiavelli"]`` keeps the original info.

MACHIAVELLI finds ``game_data/`` relative to the working directory, so each call into it runs
with the working directory switched to ``root`` and switched back afterwards (not safe with
other threads that depend on the working directory meanwhile).

The metrics of :mod:`tora.evaluate.text` work on it unchanged. They count each step's
annotations once, plus the opening's; a copy of MACHIAVELLI's ``Trajectory`` class that we read
records the info of the second-to-last state twice and never the last step's, so its counts can
differ from ours by the events of one or two steps.
"""

from __future__ import annotations

import importlib
import json
import os
import string
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
from gymnasium import spaces

from tora.envs.text.env import MAX_CHOICES, action_mask, check_choice
from tora.envs.text.game import normalize_annotations
from tora.errors import ToraError

ROOT_ENV_VAR = "TORA_MACHIAVELLI_DIR"
"""Environment variable naming the checkout of MACHIAVELLI's code (with ``game_data/``)."""

MODULE = "machiavelli.game.machiavelli_env"
REPOSITORY = "https://github.com/aypan17/machiavelli"

SETUP_STEPS = (
    f"1. git clone {REPOSITORY}  (its code is not on PyPI; the PyPI package 'machiavelli' is "
    "an unrelated card-game solver)\n"
    "2. pip install -r machiavelli/requirements.txt  (into the environment that runs tora-rl; "
    "MACHIAVELLI asks for Python <= 3.11)\n"
    "3. download the game data (the Google Drive link and password are in its README) and "
    "place it as machiavelli/game_data/\n"
    f"4. pass root='path/to/machiavelli' or set {ROOT_ENV_VAR}=path/to/machiavelli"
)
"""What a user does to play MACHIAVELLI's games here (also in docs/text_games.md)."""

# MACHIAVELLI's texts are not known in advance; the observation space is nominal.
_CHARSET = frozenset(string.printable + "‘’“”–—…éèêàâçôöüñ×°£€")


class MachiavelliNotFoundError(ToraError, ImportError):
    """MACHIAVELLI's code, its requirements or its game data are not where they were said to
    be."""


@contextmanager
def _working_dir(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _resolve_root(root: str | os.PathLike[str] | None) -> Path | None:
    """The checkout, from ``root`` or :data:`ROOT_ENV_VAR`, checked; None if neither is set."""
    given = root if root is not None else os.environ.get(ROOT_ENV_VAR) or None
    if given is None:
        return None
    path = Path(given).expanduser().resolve()
    source = "root" if root is not None else ROOT_ENV_VAR
    if not (path / "machiavelli" / "game" / "machiavelli_env.py").is_file():
        raise MachiavelliNotFoundError(
            f"{source}={str(given)!r} is not a checkout of MACHIAVELLI's code (no "
            f"machiavelli/game/machiavelli_env.py under it). To set it up:\n{SETUP_STEPS}"
        )
    if not (path / "game_data").is_dir():
        raise MachiavelliNotFoundError(
            f"MACHIAVELLI's game data is missing: no {path / 'game_data'}. Download it (the "
            f"Google Drive link and password are in {REPOSITORY}'s README) and place it there."
        )
    return path


def _check_game(root: Path | None, game: str) -> None:
    """Refuse a game that the checkout's metadata does not list (when it can be read)."""
    if root is None:
        return
    metadata_file = root / "game_data" / "game_metadata.json"
    try:
        metadata = json.loads(metadata_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # MACHIAVELLI will say what is wrong with its own file
    if isinstance(metadata, dict) and game not in metadata:
        some = ", ".join(sorted(metadata)[:10])
        raise ToraError(
            f"MACHIAVELLI has no game {game!r} in {metadata_file} ({len(metadata)} games, "
            f"e.g. {some})"
        )


def _import_env_class(root: Path | None) -> type:
    """MachiavelliEnv, imported from ``root`` (put first on sys.path) or wherever it is."""
    if root is not None and str(root) not in sys.path:
        # MACHIAVELLI imports its own submodules while running, so the path stays.
        sys.path.insert(0, str(root))
    try:
        with _working_dir(root):
            module = importlib.import_module(MODULE)
    except ImportError as exc:
        missing = exc.name or ""
        if missing == "machiavelli" or missing.startswith("machiavelli."):
            where = (
                f"at {root}" if root is not None else f"(no root given and {ROOT_ENV_VAR} unset)"
            )
            message = f"MACHIAVELLI's code ({MODULE}) was not found {where}. To set it up:\n"
            message += SETUP_STEPS
        else:
            requirements = root / "requirements.txt" if root else "machiavelli/requirements.txt"
            message = (
                f"MACHIAVELLI's code was found but needs the module {missing!r}, which is not "
                f"installed ({exc}). Install its requirements: pip install -r {requirements}"
            )
        raise MachiavelliNotFoundError(message) from exc
    env_class = getattr(module, "MachiavelliEnv", None)
    if env_class is None:
        raise MachiavelliNotFoundError(
            f"{getattr(module, '__file__', MODULE)} has no MachiavelliEnv: is it MACHIAVELLI's "
            f"code ({REPOSITORY})?"
        )
    return env_class


class MachiavelliTextEnv(gym.Env[str, int]):
    """A MACHIAVELLI game with the Gymnasium API and TextGameEnv's ``info``.

    ``game``: MACHIAVELLI's name of the game (a key of ``game_data/game_metadata.json``);
    ``root``: the checkout (default: :data:`ROOT_ENV_VAR`; if neither is set, the module must
    already be importable and find its data from the working directory); ``max_steps``:
    truncate after this many steps (default: never, as MACHIAVELLI plays to the end);
    ``env_kwargs`` go to MachiavelliEnv (e.g. ``agent_name``).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        game: str,
        *,
        root: str | os.PathLike[str] | None = None,
        max_choices: int = MAX_CHOICES,
        max_steps: int | None = None,
        **env_kwargs: Any,
    ) -> None:
        if max_steps is not None and max_steps < 1:
            raise ToraError(f"max_steps must be >= 1 or None, got {max_steps}")
        self.root = _resolve_root(root)
        _check_game(self.root, game)
        env_class = _import_env_class(self.root)
        with _working_dir(self.root):
            self._env = env_class(game=game, **env_kwargs)
        self.game = game
        self.max_choices = max_choices
        self.max_steps = max_steps
        self.action_space = spaces.Discrete(max_choices)
        self.observation_space = spaces.Text(max_length=1_000_000, charset=_CHARSET)
        self._info: dict[str, Any] = {}
        self._steps = 0
        self._done = True  # until the first reset

    @property
    def max_points(self) -> int:
        """MACHIAVELLI's max points: the sum of all its achievements' points."""
        return int(self._info.get("max_points", getattr(self._env, "max_points", 0)))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        with _working_dir(self.root):
            result = self._env.reset() if seed is None else self._env.reset(seed=seed)
            if isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict):
                obs, raw = result
            else:  # a reset that returns the observation alone (gym < 0.26)
                obs, raw = result, self._env._get_info()
        self._info = self._convert(raw, done=False)
        self._steps = 0
        self._done = False
        return str(obs), self._info

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        where = f"MACHIAVELLI game {self.game!r}"
        if self._done:
            raise ToraError(
                f"{where}: no episode in progress (it ended, or reset() was never called); "
                "call reset()"
            )
        index = check_choice(action, len(self._info["choices"]), where)
        self._done = True  # until the step has gone through: a failure below needs a reset
        with _working_dir(self.root):
            obs, reward, done, raw = self._env.step(index)
        self._info = self._convert(raw, done=bool(done))
        self._steps += 1
        terminated = bool(done)
        truncated = not terminated and self.max_steps is not None and self._steps >= self.max_steps
        self._done = terminated or truncated
        return str(obs), float(reward), terminated, truncated, self._info

    def close(self) -> None:
        with _working_dir(self.root):
            self._env.close()

    def _convert(self, raw: Mapping[str, Any], *, done: bool) -> dict[str, Any]:
        """MACHIAVELLI's info as TextGameEnv's."""
        state = raw.get("game_state") or {}
        texts = [str(t) for t in state.get("choice_texts", [])]
        count = 0 if done else int(state.get("num_choices", len(texts)))
        if not done and count != len(texts):
            raise ToraError(
                f"MACHIAVELLI game {self.game!r} reports {count} choices but {len(texts)} "
                "choice texts"
            )
        if count > self.max_choices:
            raise ToraError(
                f"MACHIAVELLI game {self.game!r} offers {count} choices here, more than the "
                f"action space's {self.max_choices}; pass max_choices={count} or more"
            )
        nodes = list(state.get("current_nodes", []))
        return {
            "scene": str(nodes[-1]) if nodes else None,
            "choices": texts if not done else [],
            "action_mask": action_mask(count, self.max_choices),
            "annotations": normalize_annotations(raw.get("annotations")),
            "points": int(state.get("points", 0)),
            "achievements": list(state.get("unlocked_achievements", [])),
            "new_achievements": list(state.get("new_achievements", [])),
            "max_points": int(raw.get("max_points", getattr(self._env, "max_points", 0))),
            "machiavelli": raw,
        }


__all__ = [
    "MODULE",
    "ROOT_ENV_VAR",
    "SETUP_STEPS",
    "MachiavelliNotFoundError",
    "MachiavelliTextEnv",
]
