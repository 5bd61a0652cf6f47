"""Reference agents that play text games to make offline data (issue 7; the text-game seed).

Every agent is a callable ``agent(obs, info) -> choice index``, the policy interface of
:func:`tora.evaluate.text.play`, which hands it the observation and ``info`` *without* the
annotations. The agents:

- :class:`RandomAgent` (from :mod:`tora.evaluate.text`): uniform over the offered choices;
- :class:`KeywordPointsAgent`: seeks points from the text alone, scoring each choice's words
  with a small lexicon of ambitious, grasping acts (take, claim, sell, secret, first, ...)
  against cautious ones (wait, refuse, report, ...); no lookahead, no annotations, no scene
  graph;
- :class:`AnnotationAwareAgent`: for *making data* only. It reads the game's scene graph, so
  it knows each offered choice's immediate points and morality annotations, and prefers
  ``points - harm_weight * harm``; the collection draws ``harm_weight`` per episode, so the
  data holds schemers and saints. Annotations may shape behaviour here (they are the labels
  of the data, the issue allows that); they are never a policy's input;
- :class:`tora.text.llm.LLMAgent`: an LLM through an OpenAI-compatible endpoint.

All but the LLM pick with noise (a softmax temperature and an epsilon of uniform choices), so
no agent is the oracle the tests grade against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tora.envs.text.env import format_observation
from tora.envs.text.game import Game
from tora.errors import ToraError
from tora.evaluate.text import RandomAgent
from tora.nn.text_encoder import tokenize


def scene_text(obs: str, choices: Sequence[str]) -> str:
    """The scene's text in an observation: ``obs`` without its numbered choice lines (the
    layout of :func:`~tora.envs.text.env.format_observation`). An observation in another layout
    is returned whole."""
    if not choices:
        return obs.strip()
    suffix = format_observation("", choices).lstrip("\n")
    stripped = obs.rstrip()
    if stripped.endswith(suffix):
        return stripped[: -len(suffix)].strip()
    return obs.strip()


def offered_choices(info: Mapping[str, Any]) -> np.ndarray:
    """Indices of the offered choices (``info["action_mask"]``); raises if there are none."""
    offered = np.flatnonzero(np.asarray(info["action_mask"]))
    if offered.size == 0:
        raise ToraError("an agent was asked to act where no choice is offered")
    return offered


def noisy_pick(
    scores: np.ndarray,
    rng: np.random.Generator,
    *,
    temperature: float,
    epsilon: float,
) -> int:
    """Index into ``scores``: uniform with probability ``epsilon``, else drawn from
    ``softmax(scores / temperature)`` (argmax when ``temperature`` is 0, first on ties)."""
    if rng.random() < epsilon:
        return int(rng.integers(len(scores)))
    if temperature <= 0:
        return int(np.argmax(scores))
    z = (scores - scores.max()) / temperature
    p = np.exp(z) / np.exp(z).sum()
    return int(rng.choice(len(scores), p=p))


# Words that signal grasping, ambitious or risky acts (which tend to pay in games built on the
# points/ethics tension) and words that signal holding back. Stems match word prefixes.
POINTS_WORDS: dict[str, float] = {
    "take": 1.0,
    "claim": 1.5,
    "sell": 1.5,
    "keep": 1.0,
    "seize": 1.5,
    "grab": 1.0,
    "win": 1.0,
    "secure": 1.0,
    "profit": 1.5,
    "money": 1.0,
    "cash": 1.0,
    "pay": 0.5,
    "bonus": 1.0,
    "deal": 1.0,
    "offer": 0.5,
    "sign": 0.5,
    "buy": 0.5,
    "bribe": 1.0,
    "secret": 1.0,
    "copy": 1.0,
    "own": 1.0,
    "first": 1.0,
    "fast": 1.0,
    "push": 1.0,
    "lead": 1.0,
    "credit": 1.5,
    "name": 0.5,
    "promot": 1.0,
    "record": 0.5,
    "publish": 1.0,
    "announce": 1.0,
    "demand": 1.0,
    "force": 1.0,
    "threat": 1.0,
    "pressure": 1.0,
    "override": 1.0,
    "bypass": 1.0,
    "skip": 0.5,
    "quiet": 0.5,
    "hide": 0.5,
    "tell": 0.3,
    "now": 0.5,
    "tonight": 0.5,
    "yourself": 0.5,
    "control": 1.0,
    "power": 1.0,
    "accept": 0.5,
    "exclusive": 1.0,
    "contract": 1.0,
    "reward": 1.0,
}
CAUTION_WORDS: dict[str, float] = {
    "wait": 1.0,
    "refuse": 1.5,
    "decline": 1.5,
    "leave": 1.0,
    "walk": 0.5,
    "apolog": 1.0,
    "return": 1.0,
    "admit": 1.0,
    "confess": 1.0,
    "report": 0.5,
    "honest": 1.0,
    "ask": 0.5,
    "share": 1.0,
    "give": 0.5,
    "help": 0.5,
    "rest": 1.0,
    "slow": 1.0,
    "careful": 1.0,
    "manual": 1.0,
    "closed": 0.5,
    "alone": 0.5,
    "nothing": 1.0,
    "sleep": 1.0,
    "later": 0.5,
    "let": 0.5,
    "warn": 0.5,
    "protect": 0.5,
    "safe": 0.5,
}


def keyword_score(text: str) -> float:
    """Points-seeking score of a choice text: lexicon weights of its words, grasping minus
    cautious (a word counts for every stem it starts with)."""
    score = 0.0
    for word in tokenize(text):
        score += sum(w for stem, w in POINTS_WORDS.items() if word.startswith(stem))
        score -= sum(w for stem, w in CAUTION_WORDS.items() if word.startswith(stem))
    return score


class KeywordPointsAgent:
    """Seeks points from the choice texts alone (:func:`keyword_score`), with noise."""

    def __init__(
        self,
        seed: int | Sequence[int] | None = None,
        *,
        temperature: float = 0.5,
        epsilon: float = 0.1,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.temperature = temperature
        self.epsilon = epsilon

    def __call__(self, obs: str, info: Mapping[str, Any]) -> int:
        offered = offered_choices(info)
        scores = np.array([keyword_score(info["choices"][i]) for i in offered])
        return int(
            offered[
                noisy_pick(scores, self.rng, temperature=self.temperature, epsilon=self.epsilon)
            ]
        )


def choice_harm(annotations: Any) -> float:
    """Sum of an annotated act's morality values (0 for a harmless act)."""
    return float(sum(annotations.morality.values()))


class AnnotationAwareAgent:
    """Data-collection agent that reads the game's annotations: it prefers the offered choice
    with the highest ``points / largest achievement - harm_weight * harm`` (noisily).

    Points are those of the achievements the choice unlocks that are not yet unlocked
    (``info["achievements"]``); harm is the sum of the choice's morality values. Harm weight
    0 is a noisy one-step points seeker, large weights a noisy saint. It needs a tora-rl
    :class:`~tora.envs.text.game.Game` (the scene graph), so it does not play MACHIAVELLI's games.
    """

    def __init__(
        self,
        game: Game,
        harm_weight: float,
        seed: int | Sequence[int] | None = None,
        *,
        temperature: float = 0.25,
        epsilon: float = 0.1,
    ) -> None:
        if not isinstance(game, Game):
            raise ToraError("the annotation-aware agent needs a tora-rl Game (its scene graph)")
        self.game = game
        self.harm_weight = float(harm_weight)
        self.rng = np.random.default_rng(seed)
        self.temperature = temperature
        self.epsilon = epsilon
        self._scale = max((a.points for a in game.achievements.values()), default=1)

    def __call__(self, obs: str, info: Mapping[str, Any]) -> int:
        offered = offered_choices(info)
        scene = self.game.scenes[info["scene"]]
        unlocked = set(info.get("achievements", ()))
        scores = np.zeros(len(offered))
        for k, i in enumerate(offered):
            choice = scene.choices[i]
            points = sum(
                self.game.achievements[a].points for a in choice.achievements if a not in unlocked
            )
            scores[k] = points / self._scale - self.harm_weight * choice_harm(choice.annotations)
        return int(
            offered[
                noisy_pick(scores, self.rng, temperature=self.temperature, epsilon=self.epsilon)
            ]
        )


__all__ = [
    "CAUTION_WORDS",
    "POINTS_WORDS",
    "AnnotationAwareAgent",
    "KeywordPointsAgent",
    "RandomAgent",
    "choice_harm",
    "keyword_score",
    "noisy_pick",
    "offered_choices",
    "scene_text",
]
