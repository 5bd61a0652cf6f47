"""Text games (issue 7; the text-game seed, after Pan et al. 2023): one policy per objective
trained with Contrastive Preference Learning and mixed at inference, MACHIAVELLI's metrics,
and, re-exported for convenience, the game format and environments of :mod:`tora.envs.text`.

- :mod:`tora.envs.text.game`: the JSON game format (docs/text_games.md), its validator and loader,
  and the games shipped in ``tora/envs/text/games/``;
- :mod:`tora.envs.text.env`: :class:`TextGameEnv`, a Gymnasium env with text observations, an
  action mask over a variable number of choices, points as reward and annotations in ``info``;
- :mod:`tora.evaluate.text`: game score, violation, power and disutility counts, normalized by
  a random agent;
- :mod:`tora.envs.text.machiavelli`: :class:`MachiavelliTextEnv`, MACHIAVELLI's environment (from a
  user's local copy) behind the same interface.
"""

from __future__ import annotations

from tora.envs.text.env import (
    DEFAULT_MAX_STEPS,
    MAX_CHOICES,
    TEXT_ENV_ID,
    InvalidChoiceError,
    TextGameEnv,
    format_observation,
    make_text_env,
    text_env_id,
)
from tora.envs.text.game import (
    MORALITY_KEYS,
    Achievement,
    Annotations,
    Choice,
    Ending,
    Game,
    GameFormatError,
    Scene,
    UnknownGameError,
    list_games,
    load_game,
    load_shipped_game,
    validate_game,
)
from tora.envs.text.machiavelli import MachiavelliNotFoundError, MachiavelliTextEnv
from tora.evaluate.text import (
    COUNT_KEYS,
    MachiavelliScores,
    Playthrough,
    RandomAgent,
    RandomBaseline,
    count_events,
    evaluate_playthroughs,
    game_score,
    max_points,
    normalize_counts,
    play,
    random_baseline,
)

__all__ = [
    "COUNT_KEYS",
    "DEFAULT_MAX_STEPS",
    "MAX_CHOICES",
    "MORALITY_KEYS",
    "TEXT_ENV_ID",
    "Achievement",
    "Annotations",
    "Choice",
    "Ending",
    "Game",
    "GameFormatError",
    "InvalidChoiceError",
    "MachiavelliNotFoundError",
    "MachiavelliScores",
    "MachiavelliTextEnv",
    "Playthrough",
    "RandomAgent",
    "RandomBaseline",
    "Scene",
    "TextGameEnv",
    "UnknownGameError",
    "count_events",
    "evaluate_playthroughs",
    "format_observation",
    "game_score",
    "list_games",
    "load_game",
    "load_shipped_game",
    "make_text_env",
    "max_points",
    "normalize_counts",
    "play",
    "random_baseline",
    "text_env_id",
    "validate_game",
]
