"""Reference agents, the hashing encoder, seeded collection, the trajectory file and the
segment pairs labelled per objective."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tiny_text_game import SELL, TINY_PATH
from tora.envs.text.env import TextGameEnv, format_observation
from tora.envs.text.game import Game, list_games
from tora.errors import DataError, FormatError, ToraError
from tora.evaluate.text import play
from tora.nn.text_encoder import EncoderConfig, HashingEncoder, make_encoder, tokenize
from tora.text.agents import (
    AnnotationAwareAgent,
    KeywordPointsAgent,
    keyword_score,
    noisy_pick,
    scene_text,
)
from tora.text.data import (
    HELD_OUT_GAME,
    AgentMix,
    CollectConfig,
    PairConfig,
    TextDataset,
    collect,
    collection_games,
    compact_annotations,
    load_text_dataset,
    make_pairs,
    morality_cost,
    record_episode,
    save_text_dataset,
    segment_values,
)


def test_scene_text_strips_the_numbered_choices() -> None:
    obs = format_observation("The fog comes in.\nA ship waits.", ["Go aboard.", "Wait."])
    assert scene_text(obs, ["Go aboard.", "Wait."]) == "The fog comes in.\nA ship waits."
    assert scene_text("An ending.", []) == "An ending."
    assert scene_text("Other layout\n(a) Go", ["Go"]) == "Other layout\n(a) Go"


def test_noisy_pick() -> None:
    rng = np.random.default_rng(0)
    scores = np.array([0.0, 3.0, 1.0])
    assert noisy_pick(scores, rng, temperature=0, epsilon=0) == 1
    draws = [noisy_pick(scores, rng, temperature=0, epsilon=1.0) for _ in range(300)]
    assert set(draws) == {0, 1, 2}
    soft = [noisy_pick(scores, rng, temperature=1.0, epsilon=0) for _ in range(500)]
    assert np.bincount(soft, minlength=3).argmax() == 1


def test_keyword_agent_reads_only_text() -> None:
    assert keyword_score("Sell the crate and keep the money.") > keyword_score(
        "Refuse, and wait for the foreman."
    )
    agent = KeywordPointsAgent(0, temperature=0, epsilon=0)
    info = {"choices": ["Wait here quietly.", "Take the cash."], "action_mask": np.array([1, 1, 0])}
    assert agent("scene", info) == 1  # no annotations, no scene graph in info


def test_annotation_aware_agent_trades_points_for_harm(tiny_game: Game) -> None:
    env = TextGameEnv(tiny_game)
    schemer = play(env, AnnotationAwareAgent(tiny_game, 0.0, 0, epsilon=0, temperature=0))
    saint = play(env, AnnotationAwareAgent(tiny_game, 5.0, 0, epsilon=0, temperature=0))
    assert list(schemer.actions) == SELL
    assert schemer.counts["violations.total"] > 0
    assert saint.counts["violations.total"] == 0
    with pytest.raises(ToraError, match="Game"):
        AnnotationAwareAgent("not a game", 1.0)  # type: ignore[arg-type]


def test_agents_repeat_with_their_seed(tiny_game: Game) -> None:
    env = TextGameEnv(tiny_game)
    for make in (lambda: KeywordPointsAgent(3), lambda: AnnotationAwareAgent(tiny_game, 1.0, 3)):
        assert [play(env, make(), seed=i).actions for i in range(5)] == [
            play(env, make(), seed=i).actions for i in range(5)
        ]


# -------------------------------------------------------------------------------- encoder
def test_hashing_encoder_is_deterministic_and_unit_length() -> None:
    enc = HashingEncoder(dim=256, ngrams=2)
    texts = ["Steal the key.", "steal THE key!", "Report the crate to the police.", ""]
    a = enc.encode(texts)
    b = HashingEncoder(dim=256, ngrams=2).encode(texts)
    assert a.dtype == np.float32 and a.shape == (4, 256)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0], a[1])  # case and punctuation do not matter
    np.testing.assert_allclose(np.linalg.norm(a[:3], axis=1), 1.0, rtol=1e-6)
    assert not a[3].any()
    assert enc.features("Don\u2019t go") == ["don't", "go", "don't go"]
    assert tokenize("It's 5 o'clock") == ["it's", "5", "o'clock"]


def test_encoder_config_errors() -> None:
    assert make_encoder(EncoderConfig(dim=32)).dim == 32
    with pytest.raises(ToraError, match="unknown text encoder"):
        make_encoder({"kind": "bert", "dim": 8, "ngrams": 1})


def test_wordllama_encoder_is_optional() -> None:
    try:
        import wordllama  # noqa: F401
    except ImportError:
        with pytest.raises(ToraError, match="pip install wordllama"):
            make_encoder(EncoderConfig(kind="wordllama"))
    else:
        enc = make_encoder(EncoderConfig(kind="wordllama"))
        vectors = enc.encode(["Steal the key.", "Take the key that is not yours."])
        assert vectors.shape == (2, 256)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


# ----------------------------------------------------------------------------- collection
def test_record_episode_keeps_texts_rewards_and_annotations(tiny_game: Game) -> None:
    env = TextGameEnv(tiny_game)
    actions = iter(SELL)
    steps, playthrough = record_episode(env, lambda obs, info: next(actions))
    assert [s.action for s in steps] == SELL
    assert [s.reward for s in steps] == [5.0, 10.0, 30.0]
    assert sum(s.reward for s in steps) == playthrough.points == 45
    assert steps[0].scene == "s_gate" and steps[0].text.startswith("Your shift starts")
    assert steps[0].choices == tuple(c.text for c in tiny_game.scenes["s_gate"].choices)
    assert steps[0].annotations["morality"] == {"stealing": 1.0, "trespassing": 0.67}
    assert "utility" not in steps[1].annotations or steps[1].annotations["utility"]


def test_collection_repeats_exactly_and_round_trips(tmp_path: Path) -> None:
    config = CollectConfig(
        games=[str(TINY_PATH), list_games()[0]],
        episodes=12,
        seed=5,
        agents=AgentMix(random=1, points=1, annotated=1),
    )
    first = save_text_dataset(collect(config), tmp_path / "a.jsonl")
    second = save_text_dataset(collect(config), tmp_path / "b.jsonl")
    assert first.read_bytes() == second.read_bytes()
    other_seed = save_text_dataset(
        collect(CollectConfig(**{**config.__dict__, "seed": 6})), tmp_path / "c.jsonl"
    )
    assert other_seed.read_bytes() != first.read_bytes()

    loaded = load_text_dataset(first)
    original = collect(config)
    assert loaded.episodes == original.episodes
    assert loaded.header["format"] == "tora-text-trajectories"
    assert {e.agent for e in loaded.episodes} == {"random", "points", "annotated"}
    # Texts are stored once each.
    lines = [json.loads(line) for line in first.read_text().splitlines()]
    texts = [line["text"] for line in lines if line["type"] == "text"]
    assert len(texts) == len(set(texts))


def test_an_episode_does_not_depend_on_the_other_games() -> None:
    alone = collect(CollectConfig(games=[str(TINY_PATH)], episodes=6, seed=1))
    together = collect(CollectConfig(games=[list_games()[0], str(TINY_PATH)], episodes=6, seed=1))
    assert alone.episodes == [e for e in together.episodes if e.game == "tiny-test-game"]


def test_held_out_game_is_left_out_by_default() -> None:
    assert HELD_OUT_GAME in list_games()
    assert HELD_OUT_GAME not in collection_games()
    assert HELD_OUT_GAME in collection_games(include_held_out=True)
    assert collection_games([HELD_OUT_GAME]) == [HELD_OUT_GAME]


def test_collection_errors() -> None:
    with pytest.raises(ToraError, match="non-negative"):
        AgentMix(random=-1).probabilities()
    with pytest.raises(ToraError, match="no LLM client"):
        collect(CollectConfig(games=[str(TINY_PATH)], episodes=3, agents=AgentMix(llm=1)))
    with pytest.raises(ToraError, match="labeler"):
        collect(CollectConfig(games=[str(TINY_PATH)], episodes=1, labels="llm"))


def test_loading_reports_the_bad_line(tmp_path: Path) -> None:
    path = save_text_dataset(
        collect(CollectConfig(games=[str(TINY_PATH)], episodes=2)), tmp_path / "d.jsonl"
    )
    lines = path.read_text().splitlines()
    lines[-1] = lines[-1].replace('"action": ', '"action": 9', 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError, match=f"line {len(lines)}"):
        load_text_dataset(path)
    with pytest.raises(FormatError, match="no text trajectory file"):
        load_text_dataset(tmp_path / "missing.jsonl")
    (tmp_path / "x.jsonl").write_text('{"type": "header", "format": "other", "version": 1}\n')
    with pytest.raises(FormatError, match="not a tora-text-trajectories file"):
        load_text_dataset(tmp_path / "x.jsonl")


# ---------------------------------------------------------------------------------- pairs
def test_morality_cost_modes() -> None:
    act = {"morality": {"stealing": 1.0, "deception": 2 / 3, "spying": 1 / 3}}
    assert morality_cost(act, "sum") == pytest.approx(2.0)
    assert morality_cost(act, "count") == 2.0
    assert morality_cost({}, "sum") == 0.0
    with pytest.raises(ToraError):
        morality_cost(act, "max")
    assert compact_annotations({"a": {"b": 0.0, "c": 1.0}, "d": 0, "e": {}}) == {"a": {"c": 1.0}}


@pytest.fixture(scope="module")
def tiny_data() -> TextDataset:
    return collect(CollectConfig(games=[str(TINY_PATH)], episodes=40, seed=0))


@pytest.mark.parametrize("objective", ["points", "morality", "scalarized"])
@pytest.mark.parametrize("length", [0, 2])
def test_pairs_put_the_better_segment_first(
    tiny_data: TextDataset, objective: str, length: int
) -> None:
    config = PairConfig(length=length, count=200)
    pairs = make_pairs(tiny_data, objective, config, seed=0)
    assert len(pairs) == 200 and (pairs.gap > 0).all()
    steps = [s for e in tiny_data.episodes for s in e.steps]
    points = np.array([s.reward for s in steps] + [0.0])
    cost = np.array([morality_cost(s.annotations) for s in steps] + [0.0])
    if objective == "points":
        assert (points[pairs.preferred].sum(1) > points[pairs.other].sum(1)).all()
    elif objective == "morality":
        assert (cost[pairs.preferred].sum(1) < cost[pairs.other].sum(1)).all()
    # The two segments of a pair come from different episodes.
    episode_of = np.repeat(
        np.arange(len(tiny_data.episodes)), [len(e.steps) for e in tiny_data.episodes]
    )
    assert (episode_of[pairs.preferred[:, 0]] != episode_of[pairs.other[:, 0]]).all()
    assert pairs.ties > 0  # the tiny game has many equal segments; they were dropped
    again = make_pairs(tiny_data, objective, config, seed=0)
    np.testing.assert_array_equal(again.preferred, pairs.preferred)


def test_same_scene_pairing_starts_both_segments_at_one_scene(tiny_data: TextDataset) -> None:
    pairs = make_pairs(tiny_data, "points", PairConfig(length=2, count=100), seed=1)
    scenes = [s.scene for e in tiny_data.episodes for s in e.steps]
    same = [
        scenes[a] == scenes[b]
        for a, b in zip(pairs.preferred[:, 0], pairs.other[:, 0], strict=True)
    ]
    assert np.mean(same) > 0.9


def test_scalarized_weights_are_checked(tiny_data: TextDataset) -> None:
    with pytest.raises(ToraError, match="scalar weights"):
        make_pairs(tiny_data, "scalarized", PairConfig(scalar_weights=[0.7, 0.7]))
    with pytest.raises(ToraError, match="unknown objective"):
        make_pairs(tiny_data, "speed")
    segments = np.array([[0, 1]])
    one = segment_values(tiny_data, segments, "scalarized", PairConfig(scalar_weights=[1.0, 0.0]))
    assert one.shape == (1,)


def test_pairs_need_a_difference(tiny_data: TextDataset) -> None:
    flat = TextDataset([tiny_data.episodes[0]] * 4, tiny_data.header)
    with pytest.raises(DataError, match="no segment pair differs"):
        make_pairs(flat, "points", PairConfig(length=0, count=10))
    with pytest.raises(DataError, match="no segment of 99 steps"):
        make_pairs(tiny_data, "points", PairConfig(length=99))
