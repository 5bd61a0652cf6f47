"""Offline text-game data: seeded collection with a mix of agents, a JSON-lines file, and
segment pairs labelled per objective for CPL (issue 7; the text-game seed).

**Collection** (:func:`collect`) plays ``episodes`` episodes of each game. Episode ``e`` of a
game draws its agent from the mix (:class:`AgentMix`: random, keyword points-seeker,
annotation-aware with a harm weight drawn per episode, and, given an endpoint, the plain and
the ethically prompted LLM) with a generator seeded by ``(seed, game, e)``, so an episode
does not depend on which other games or how many episodes were collected, and the same
settings give a byte-identical file. One game, :data:`HELD_OUT_GAME`, is left out by default:
it is kept for evaluation, so the policies must generalize from the text.

**File** (``.jsonl``, UTF-8, one JSON object per line, written atomically):

- line 1, the header: ``{"type": "header", "format": "tora-text-trajectories", "version": 1,
  "games": {id: {"title", "max_points"}}, "config": {...collection settings...}}``;
- ``{"type": "text", "id": n, "text": "..."}``: each distinct scene or choice text once, with
  an integer id, before the first episode that uses it (texts repeat in every episode);
- ``{"type": "episode", "game", "index", "agent", "params", "seed", "points",
  "max_points", "terminated", "steps": [...]}``, each step ``{"scene": scene id, "text": text
  id of the scene's text, "choices": [text ids of the offered choices], "action": chosen
  index, "reward": points of the step, "annotations": {...}}``. Annotations are in
  MACHIAVELLI's nested layout with zero entries left out (``{}`` for a harmless act);
  ``label_source`` says where the morality values came from (``game`` or ``llm``).

**Pairs** (:func:`make_pairs`): a segment is ``length`` consecutive steps of one
episode (0: the whole episode). Its value per objective:

- ``points``: the points collected in the segment (more wins);
- ``morality``: minus its morality cost, by default the *sum* of the morality values of its
  acts (``morality_cost="sum"``: milder harms count less; a value is 0, 1/3, 2/3 or 1 per key),
  or the number of values > 0.5 (``"count"``, MACHIAVELLI's violation count); fewer/milder
  wins;
- ``scalarized``: ``w_points * points / sd_points - w_morality * cost / sd_cost``, the single
  fixed-preference baseline; the standard deviations over all segments of the data put both
  on one scale.

The second segment of a pair comes from another episode of the same game, starting at the
same scene when one does (``pairing="same_scene"``: the comparison then isolates what was
done from there), else anywhere in that game. Exact ties are dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tora.configs import config_to_dict
from tora.envs.text.env import TextGameEnv, make_text_env
from tora.envs.text.game import Annotations, Game, list_games
from tora.errors import DataError, FormatError, ToraError
from tora.evaluate.text import CONFIDENCE_THRESHOLD, Playthrough, Policy, play
from tora.io import atomic_write_bytes, file_sha256
from tora.text.agents import (
    AnnotationAwareAgent,
    KeywordPointsAgent,
    RandomAgent,
    scene_text,
)

FORMAT_NAME = "tora-text-trajectories"
FORMAT_VERSION = 1

HELD_OUT_GAME = "gannet-harbour"
"""The shipped game kept out of collection and training by default, for evaluation. Chosen
because it is complete, stable and the random agent does every kind of harm the metrics
count there (violations, power *and* disutility), so every normalized number of a sweep on it
is defined; on two of the other games the random agent never causes disutility."""

AGENT_KINDS = ("random", "points", "annotated", "llm", "llm-ethical")
OBJECTIVES = ("points", "morality", "scalarized")


# --------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class TextStep:
    """One decision: the scene, the offered choices, what was chosen and what it did."""

    scene: str
    """Scene id."""
    text: str
    """The scene's text (the observation without its numbered choices)."""
    choices: tuple[str, ...]
    action: int
    reward: float
    annotations: dict[str, Any]
    """The taken choice's annotations, zero entries left out (MACHIAVELLI's layout)."""


@dataclass(frozen=True)
class TextEpisode:
    """One recorded episode."""

    game: str
    index: int
    agent: str
    params: dict[str, Any]
    """The agent's drawn settings (e.g. its harm weight)."""
    seed: int
    steps: tuple[TextStep, ...]
    points: int
    max_points: int
    terminated: bool
    label_source: str = "game"
    """Where the morality annotations came from: the game's annotations or an LLM labeler."""


@dataclass
class TextDataset:
    """Recorded episodes of one or more games, with the header of their file."""

    episodes: list[TextEpisode]
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def games(self) -> list[str]:
        return sorted({e.game for e in self.episodes})

    @property
    def num_steps(self) -> int:
        return sum(len(e.steps) for e in self.episodes)

    def without_games(self, games: Iterable[str]) -> TextDataset:
        """The episodes of the other games."""
        drop = set(games)
        return TextDataset([e for e in self.episodes if e.game not in drop], dict(self.header))


def compact_annotations(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` without its zero (or empty) entries, recursively."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, Mapping):
            inner = compact_annotations(value)
            if inner:
                out[key] = inner
        elif value:
            out[key] = value
    return out


def morality_cost(annotations: Mapping[str, Any], mode: str = "sum") -> float:
    """The morality cost of one act: the sum of its morality values (``"sum"``) or how many
    are > 0.5 (``"count"``, MACHIAVELLI's violations)."""
    values = Annotations.from_dict(annotations).morality.values()
    if mode == "sum":
        return float(sum(values))
    if mode == "count":
        return float(sum(v > CONFIDENCE_THRESHOLD for v in values))
    raise ToraError(f"morality cost must be 'sum' or 'count', got {mode!r}")


# ------------------------------------------------------------------------------ collection
@dataclass
class AgentMix:
    """Fractions of episodes each reference agent plays (normalized to sum to 1)."""

    random: float = 0.2
    """Uniform over the offered choices."""
    points: float = 0.2
    """The keyword points-seeker (text only)."""
    annotated: float = 0.6
    """The annotation-aware agent, harm weight drawn per episode from ``harm_weights``."""
    llm: float = 0.0
    """The plainly prompted LLM (needs an endpoint)."""
    llm_ethical: float = 0.0
    """The ethically prompted LLM (needs an endpoint)."""

    def probabilities(self) -> np.ndarray:
        p = np.array([self.random, self.points, self.annotated, self.llm, self.llm_ethical])
        if not np.all(np.isfinite(p)) or (p < 0).any() or p.sum() <= 0:
            raise ToraError(
                f"agent fractions must be non-negative with a positive sum, got {asdict(self)}"
            )
        return p / p.sum()

    @property
    def uses_llm(self) -> bool:
        return self.llm > 0 or self.llm_ethical > 0


@dataclass
class CollectConfig:
    """What ``tora text collect`` plays and where it writes."""

    out: str = "data/text/trajectories.jsonl"
    """Output file (JSON lines, see tora.text.data)."""
    games: list[str] = field(default_factory=list)
    """Shipped game ids or game files to play (default: every shipped game but the held-out
    one)."""
    include_held_out: bool = False
    """Also play the held-out evaluation game (left out by default)."""
    episodes: int = 200
    """Episodes per game."""
    seed: int = 0
    """Seed of the agents' draws: the same seed gives a byte-identical file."""
    agents: AgentMix = field(default_factory=AgentMix)
    """Fractions of episodes per reference agent."""
    harm_weights: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.5, 1.0, 2.0])
    """Harm weights the annotation-aware agent draws from, one per episode (0: seeks points
    only; larger: avoids harm more)."""
    epsilon: float = 0.1
    """Probability of a uniformly random choice at each step of the noisy agents."""
    labels: Literal["game", "llm"] = "game"
    """Where the morality labels come from: the game's annotations, or an LLM labeler
    through the endpoint (for games without annotations)."""


def _game_seed(game_id: str) -> int:
    """A stable integer for a game id (Python's str hash is salted per process)."""
    return int.from_bytes(hashlib.blake2b(game_id.encode(), digest_size=4).digest(), "little")


def collection_games(games: Sequence[str] = (), include_held_out: bool = False) -> list[str]:
    """The games to play: ``games`` if given, else every shipped game but the held-out one."""
    chosen = list(games) or list_games()
    if not include_held_out and not games:
        chosen = [g for g in chosen if g != HELD_OUT_GAME]
    if not chosen:
        raise ToraError("no games to collect from")
    return chosen


AgentFactory = Callable[[Game, str, np.random.Generator], Policy]
"""Builds an LLM agent: ``(game, kind, rng) -> agent`` (kind ``llm`` or ``llm-ethical``)."""


def _make_agent(
    kind: str, game: Game, rng: np.random.Generator, config: CollectConfig, llm: AgentFactory | None
) -> tuple[Policy, dict[str, Any]]:
    seed = int(rng.integers(2**32))
    if kind == "random":
        return RandomAgent(seed), {}
    if kind == "points":
        return KeywordPointsAgent(seed, epsilon=config.epsilon), {}
    if kind == "annotated":
        harm = float(rng.choice(config.harm_weights))
        return AnnotationAwareAgent(game, harm, seed, epsilon=config.epsilon), {"harm_weight": harm}
    if llm is None:
        raise ToraError(f"the agent mix asks for {kind!r} episodes but no LLM client was given")
    return llm(game, kind, np.random.default_rng(seed)), {}


class _Recorder:
    """Wraps an agent to record what it saw at each step (``play`` keeps actions and
    annotations; the texts and points-so-far come from here)."""

    def __init__(self, agent: Policy) -> None:
        self.agent = agent
        self.seen: list[tuple[str, str, tuple[str, ...], int]] = []

    def __call__(self, obs: str, info: Mapping[str, Any]) -> int:
        choices = tuple(info["choices"])
        self.seen.append(
            (str(info["scene"]), scene_text(obs, choices), choices, int(info["points"]))
        )
        return self.agent(obs, info)


def record_episode(
    env: TextGameEnv, agent: Policy, *, seed: int | None = None
) -> tuple[tuple[TextStep, ...], Playthrough]:
    """Play one episode with :func:`~tora.evaluate.text.play` and record its steps."""
    recorder = _Recorder(agent)
    playthrough = play(env, recorder, seed=seed)
    points_after = [p for _, _, _, p in recorder.seen[1:]] + [playthrough.points]
    steps = tuple(
        TextStep(
            scene=scene,
            text=text,
            choices=choices,
            action=action,
            reward=float(after - before),
            annotations=compact_annotations(annotations),
        )
        for (scene, text, choices, before), after, action, annotations in zip(
            recorder.seen,
            points_after,
            playthrough.actions,
            playthrough.annotations[1:],
            strict=True,
        )
    )
    return steps, playthrough


def collect(
    config: CollectConfig,
    *,
    llm_agent: AgentFactory | None = None,
    labeler: Callable[[str, str], Mapping[str, float]] | None = None,
    progress: Callable[[str], None] | None = None,
) -> TextDataset:
    """Play ``config.episodes`` episodes of each game with the agent mix and record them.

    ``llm_agent`` builds the LLM agents when the mix has LLM episodes; ``labeler(scene text,
    choice text) -> morality values`` replaces the games' morality annotations when
    ``config.labels == "llm"``.
    """
    if config.episodes < 1:
        raise ToraError(f"episodes must be >= 1, got {config.episodes}")
    if config.labels == "llm" and labeler is None:
        raise ToraError("labels='llm' needs an LLM labeler (an endpoint)")
    if not config.harm_weights:
        raise ToraError("harm_weights must list at least one weight")
    probabilities = config.agents.probabilities()
    games = collection_games(config.games, config.include_held_out)
    episodes: list[TextEpisode] = []
    header_games: dict[str, Any] = {}
    for game_id in games:
        env = make_text_env(game_id)
        game = env.game
        header_games[game.id] = {"title": game.title, "max_points": env.max_points}
        for e in range(config.episodes):
            rng = np.random.default_rng([config.seed, _game_seed(game.id), e])
            kind = AGENT_KINDS[int(rng.choice(len(AGENT_KINDS), p=probabilities))]
            agent, params = _make_agent(kind, game, rng, config, llm_agent)
            steps, playthrough = record_episode(env, agent, seed=config.seed + e)
            if labeler is not None and config.labels == "llm":
                steps = tuple(_relabel(step, labeler) for step in steps)
            episodes.append(
                TextEpisode(
                    game=game.id,
                    index=e,
                    agent=kind,
                    params=params,
                    seed=config.seed + e,
                    steps=steps,
                    points=playthrough.points,
                    max_points=playthrough.max_points,
                    terminated=playthrough.terminated,
                    label_source=config.labels,
                )
            )
        if progress is not None:
            progress(f"{game.id}: {config.episodes} episodes")
    header = {
        "type": "header",
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "games": header_games,
        "config": config_to_dict(config),
    }
    return TextDataset(episodes, header)


def _relabel(step: TextStep, labeler: Callable[[str, str], Mapping[str, float]]) -> TextStep:
    """``step`` with the morality of its act taken from ``labeler``."""
    morality = dict(labeler(step.text, step.choices[step.action]))
    annotations = {k: v for k, v in step.annotations.items() if k != "morality"}
    annotations = compact_annotations({**annotations, "morality": morality})
    return TextStep(step.scene, step.text, step.choices, step.action, step.reward, annotations)


def label_dataset(
    dataset: TextDataset, labeler: Callable[[str, str], Mapping[str, float]]
) -> TextDataset:
    """A copy of ``dataset`` whose morality annotations come from ``labeler`` (an
    :class:`~tora.text.llm.LLMLabeler`): for data from games without annotations."""
    episodes = [
        TextEpisode(
            **{**_episode_fields(e), "steps": tuple(_relabel(s, labeler) for s in e.steps)},
            label_source="llm",
        )
        for e in dataset.episodes
    ]
    return TextDataset(episodes, dict(dataset.header))


def _episode_fields(episode: TextEpisode) -> dict[str, Any]:
    return {
        "game": episode.game,
        "index": episode.index,
        "agent": episode.agent,
        "params": episode.params,
        "seed": episode.seed,
        "steps": episode.steps,
        "points": episode.points,
        "max_points": episode.max_points,
        "terminated": episode.terminated,
    }


# ---------------------------------------------------------------------------------- files
def dataset_lines(dataset: TextDataset) -> list[str]:
    """The file's lines (see the module docstring), texts numbered in first-use order."""
    header = dict(dataset.header) or {"type": "header", "format": FORMAT_NAME}
    header.update(type="header", format=FORMAT_NAME, version=FORMAT_VERSION)
    lines = [json.dumps(header, sort_keys=True, ensure_ascii=False)]
    ids: dict[str, int] = {}

    def text_id(text: str) -> int:
        if text not in ids:
            ids[text] = len(ids)
            lines.append(
                json.dumps({"type": "text", "id": ids[text], "text": text}, ensure_ascii=False)
            )
        return ids[text]

    for episode in dataset.episodes:
        steps = [
            {
                "scene": s.scene,
                "text": text_id(s.text),
                "choices": [text_id(c) for c in s.choices],
                "action": s.action,
                "reward": s.reward,
                "annotations": s.annotations,
            }
            for s in episode.steps
        ]
        record = {**_episode_fields(episode), "steps": steps, "label_source": episode.label_source}
        lines.append(json.dumps({"type": "episode", **record}, sort_keys=True, ensure_ascii=False))
    return lines


def save_text_dataset(dataset: TextDataset, path: str | os.PathLike[str]) -> Path:
    """Write ``dataset`` as JSON lines, atomically (a reader never sees half a file)."""

    path = Path(path)
    atomic_write_bytes(path, ("\n".join(dataset_lines(dataset)) + "\n").encode("utf-8"))
    return path


def load_text_dataset(path: str | os.PathLike[str]) -> TextDataset:
    """Read a file written by :func:`save_text_dataset`; raises :class:`FormatError` naming
    the line of any problem."""
    path = Path(path)
    try:
        raw_lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise FormatError(f"no text trajectory file at {path}") from exc
    texts: dict[int, str] = {}
    episodes: list[TextEpisode] = []
    header: dict[str, Any] = {}
    for number, line in enumerate(raw_lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            kind = record["type"]
            if kind == "header":
                header = record
                if record.get("format") != FORMAT_NAME or record.get("version") != FORMAT_VERSION:
                    raise ValueError(
                        f"not a {FORMAT_NAME} file of version {FORMAT_VERSION} "
                        f"(format {record.get('format')!r}, version {record.get('version')!r})"
                    )
            elif kind == "text":
                texts[int(record["id"])] = str(record["text"])
            elif kind == "episode":
                episodes.append(_episode_from_record(record, texts))
            else:
                raise ValueError(f"unknown record type {kind!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise FormatError(f"{path}, line {number}: {exc}") from exc
    if not header:
        raise FormatError(f"{path}: no header line; not a {FORMAT_NAME} file")
    return TextDataset(episodes, header)


def _episode_from_record(record: Mapping[str, Any], texts: Mapping[int, str]) -> TextEpisode:
    steps = []
    for step in record["steps"]:
        choices = tuple(texts[int(i)] for i in step["choices"])
        action = int(step["action"])
        if not 0 <= action < len(choices):
            raise ValueError(f"action {action} is not one of the step's {len(choices)} choices")
        steps.append(
            TextStep(
                scene=str(step["scene"]),
                text=texts[int(step["text"])],
                choices=choices,
                action=action,
                reward=float(step["reward"]),
                annotations=dict(step["annotations"]),
            )
        )
    return TextEpisode(
        game=str(record["game"]),
        index=int(record["index"]),
        agent=str(record["agent"]),
        params=dict(record["params"]),
        seed=int(record["seed"]),
        steps=tuple(steps),
        points=int(record["points"]),
        max_points=int(record["max_points"]),
        terminated=bool(record["terminated"]),
        label_source=str(record.get("label_source", "game")),
    )


def file_digest(path: str | os.PathLike[str]) -> str:
    return file_sha256(path)


# ---------------------------------------------------------------------------------- pairs
@dataclass(frozen=True)
class SegmentPairs:
    """Labelled pairs of segments; the *preferred* one comes first.

    Segments are rows of step indices into the dataset's steps in order (episode by episode),
    padded with -1 when episodes are compared whole.
    """

    objective: str
    preferred: np.ndarray
    """(N, L) int64 step indices, -1 for padding."""
    other: np.ndarray
    """(N, L) int64."""
    gap: np.ndarray
    """(N,) objective value of the preferred segment minus the other's (> 0)."""
    ties: int
    """Drawn pairs dropped because both segments were worth the same."""

    def __len__(self) -> int:
        return int(self.preferred.shape[0])

    def summary(self) -> dict[str, Any]:
        return {
            "objective": self.objective,
            "pairs": len(self),
            "ties_dropped": self.ties,
            "segment_length": int(self.preferred.shape[1]) if len(self) else 0,
            "mean_gap": float(self.gap.mean()) if len(self) else 0.0,
        }


@dataclass
class PairConfig:
    """How segment pairs are cut and labelled."""

    length: int = 4
    """Steps per segment (0: whole episodes)."""
    count: int = 4000
    """Labelled pairs to draw (ties are dropped, so a few draws more are made)."""
    pairing: Literal["same_scene", "any"] = "same_scene"
    """same_scene: the second segment starts at the same scene as the first where another
    episode has one; any: anywhere in the same game."""
    morality_cost: Literal["sum", "count"] = "sum"
    """Morality cost of an act: sum of its morality values, or the count of those > 0.5."""
    scalar_weights: list[float] = field(default_factory=lambda: [0.5, 0.5])
    """(w_points, w_morality) of the scalarized objective."""


def _segments(dataset: TextDataset, length: int) -> tuple[np.ndarray, list[tuple[str, str, int]]]:
    """Every segment as a row of step indices, and its (game, start scene, episode)."""
    rows: list[list[int]] = []
    keys: list[tuple[str, str, int]] = []
    offset = 0
    longest = max((len(e.steps) for e in dataset.episodes), default=0)
    width = length if length > 0 else longest
    for number, episode in enumerate(dataset.episodes):
        n = len(episode.steps)
        if length <= 0 and n > 0:
            rows.append(list(range(offset, offset + n)) + [-1] * (width - n))
            keys.append((episode.game, episode.steps[0].scene, number))
        else:
            for start in range(n - length + 1):
                rows.append(list(range(offset + start, offset + start + length)))
                keys.append((episode.game, episode.steps[start].scene, number))
        offset += n
    if not rows:
        raise DataError(
            f"no segment of {length} steps in the data (episodes have at most {longest} "
            "steps); lower the segment length"
        )
    return np.asarray(rows, dtype=np.int64), keys


def segment_values(
    dataset: TextDataset, segments: np.ndarray, objective: str, config: PairConfig
) -> np.ndarray:
    """(S,) the objective's value of each segment (higher is preferred)."""
    steps = [s for e in dataset.episodes for s in e.steps]
    rewards = np.array([s.reward for s in steps] + [0.0])
    costs = np.array([morality_cost(s.annotations, config.morality_cost) for s in steps] + [0.0])
    points = rewards[segments].sum(axis=1)  # index -1 (padding) reads the appended 0
    cost = costs[segments].sum(axis=1)
    if objective == "points":
        return points
    if objective == "morality":
        return -cost
    if objective == "scalarized":
        weights = np.asarray(config.scalar_weights, dtype=np.float64)
        if weights.shape != (2,) or (weights < 0).any() or not np.isclose(weights.sum(), 1.0):
            raise ToraError(
                "scalar weights must be two non-negative numbers (points, morality) summing "
                f"to 1, got {config.scalar_weights}"
            )
        sd_points = points.std() or 1.0
        sd_cost = cost.std() or 1.0
        return weights[0] * points / sd_points - weights[1] * cost / sd_cost
    raise ToraError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")


def make_pairs(
    dataset: TextDataset, objective: str, config: PairConfig | None = None, seed: int = 0
) -> SegmentPairs:
    """Draw ``config.count`` labelled segment pairs for ``objective`` (see the module
    docstring); seeded."""
    config = config or PairConfig()
    if config.count < 1:
        raise ToraError(f"the pair count must be >= 1, got {config.count}")
    segments, keys = _segments(dataset, config.length)
    values = segment_values(dataset, segments, objective, config)
    by_game: dict[str, list[int]] = {}
    by_scene: dict[tuple[str, str], list[int]] = {}
    for index, (game, scene, _) in enumerate(keys):
        by_game.setdefault(game, []).append(index)
        by_scene.setdefault((game, scene), []).append(index)
    rng = np.random.default_rng(seed)
    first_list, second_list, ties = [], [], 0
    for _ in range(config.count * 20):
        if len(first_list) >= config.count:
            break
        a = int(rng.integers(len(keys)))
        game, scene, episode = keys[a]
        pool = by_scene[(game, scene)] if config.pairing == "same_scene" else by_game[game]
        b = _other_episode(pool, keys, episode, rng)
        if b is None and config.pairing == "same_scene":
            b = _other_episode(by_game[game], keys, episode, rng)
        if b is None:
            continue
        if values[a] == values[b]:
            ties += 1
            continue
        first_list.append(a if values[a] > values[b] else b)
        second_list.append(b if values[a] > values[b] else a)
    if not first_list:
        raise DataError(
            f"no segment pair differs on {objective!r} ({ties} ties): the data needs episodes "
            "that do better and worse on it"
        )
    first, second = np.asarray(first_list), np.asarray(second_list)
    return SegmentPairs(
        objective=objective,
        preferred=segments[first],
        other=segments[second],
        gap=values[first] - values[second],
        ties=ties,
    )


def _other_episode(
    pool: list[int], keys: list[tuple[str, str, int]], episode: int, rng: np.random.Generator
) -> int | None:
    """A segment of ``pool`` from another episode than ``episode``, or None."""
    for _ in range(8):  # a few draws: pools are mostly other episodes' segments
        b = pool[int(rng.integers(len(pool)))]
        if keys[b][2] != episode:
            return b
    others = [b for b in pool if keys[b][2] != episode]
    return others[int(rng.integers(len(others)))] if others else None


def summarize_dataset(dataset: TextDataset, cost_mode: str = "sum") -> list[dict[str, Any]]:
    """Per game and agent: episodes, mean points, mean morality cost, mean violations."""
    rows: dict[tuple[str, str], list[TextEpisode]] = {}
    for episode in dataset.episodes:
        rows.setdefault((episode.game, episode.agent), []).append(episode)
    out = []
    for (game, agent), episodes in sorted(rows.items()):
        costs = [sum(morality_cost(s.annotations, cost_mode) for s in e.steps) for e in episodes]
        violations = [sum(morality_cost(s.annotations, "count") for s in e.steps) for e in episodes]
        out.append(
            {
                "game": game,
                "agent": agent,
                "episodes": len(episodes),
                "points": float(np.mean([e.points for e in episodes])),
                "morality_cost": float(np.mean(costs)),
                "violations": float(np.mean(violations)),
            }
        )
    return out


__all__ = [
    "AGENT_KINDS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HELD_OUT_GAME",
    "OBJECTIVES",
    "AgentMix",
    "CollectConfig",
    "PairConfig",
    "SegmentPairs",
    "TextDataset",
    "TextEpisode",
    "TextStep",
    "collect",
    "collection_games",
    "compact_annotations",
    "dataset_lines",
    "file_digest",
    "label_dataset",
    "load_text_dataset",
    "make_pairs",
    "morality_cost",
    "record_episode",
    "save_text_dataset",
    "segment_values",
    "summarize_dataset",
]
