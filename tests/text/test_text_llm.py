"""The LLM client against a local stand-in server (OpenAI-style JSON over http.server):
answers, retries, the cache, clear failures; answer parsing; the agent and the labeler."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tiny_text_game import TINY_PATH
from tora.envs.text.env import TextGameEnv
from tora.envs.text.game import MORALITY_KEYS, Game
from tora.evaluate.text import play
from tora.text.data import AgentMix, CollectConfig, collect, label_dataset
from tora.text.llm import (
    ChatClient,
    GameContext,
    LLMAgent,
    LLMConfig,
    LLMError,
    LLMLabeler,
    LLMUnavailableError,
    chat_url,
    game_messages,
    llm_agent_factory,
    parse_choice,
    parse_morality,
)


class StandIn:
    """A local OpenAI-compatible endpoint: answers from a script, then a default."""

    def __init__(self) -> None:
        self.script: list[tuple[int, Any]] = []
        """(status, content or raw bytes) answered in order before the default."""
        self.default = "0"
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.requests.append(body)
                stand_in.headers.append(dict(self.headers))
                status, content = (
                    stand_in.script.pop(0) if stand_in.script else (200, stand_in.default)
                )
                if callable(content):
                    content = content(body)
                if isinstance(content, bytes):
                    payload = content
                elif status == 200:
                    payload = json.dumps(
                        {
                            "choices": [
                                {"index": 0, "message": {"role": "assistant", "content": content}}
                            ]
                        }
                    ).encode()
                else:
                    payload = json.dumps({"error": {"message": content}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    server = StandIn()
    yield server
    server.close()


def client_for(server: StandIn, tmp_path: Path, **kwargs: Any) -> tuple[ChatClient, list[float]]:
    waits: list[float] = []
    config = LLMConfig(
        base_url=server.url,
        model="stand-in",
        api_key="secret-key",
        cache_dir=str(tmp_path / "cache"),
        timeout_s=5,
        **kwargs,
    )
    return ChatClient(config, sleep=waits.append), waits


MESSAGES = [{"role": "user", "content": "Pick 0 or 1."}]


def test_chat_sends_an_openai_request_and_reads_the_answer(
    stand_in: StandIn, tmp_path: Path
) -> None:
    stand_in.default = "1"
    client, _ = client_for(stand_in, tmp_path)
    assert client.chat(MESSAGES) == "1"
    body = stand_in.requests[0]
    assert body["model"] == "stand-in" and body["messages"] == MESSAGES
    assert body["temperature"] == 0.2
    assert stand_in.headers[0]["Authorization"] == "Bearer secret-key"
    assert client.url.endswith("/v1/chat/completions")


def test_cache_answers_repeated_requests_without_the_server(
    stand_in: StandIn, tmp_path: Path
) -> None:
    stand_in.default = "1"
    client, _ = client_for(stand_in, tmp_path)
    client.chat(MESSAGES)
    stand_in.default = "0"
    assert client.chat(MESSAGES) == "1"  # from the cache
    assert len(stand_in.requests) == 1 and client.stats.cache_hits == 1
    # A new client with the same cache answers too, even with the server gone; the key is
    # not stored.
    stand_in.close()
    again, _ = client_for(stand_in, tmp_path)
    assert again.chat(MESSAGES) == "1"
    stored = list((tmp_path / "cache").rglob("*.json"))
    assert len(stored) == 1 and "secret-key" not in stored[0].read_text()
    # Another request is another key.
    with pytest.raises(LLMUnavailableError):
        client_for(stand_in, tmp_path, retries=0)[0].chat([{"role": "user", "content": "other"}])


def test_retries_with_backoff_then_succeeds(stand_in: StandIn, tmp_path: Path) -> None:
    stand_in.script = [(503, "overloaded"), (429, "slow down"), (200, "1")]
    client, waits = client_for(stand_in, tmp_path, retries=3, backoff_s=0.5)
    assert client.chat(MESSAGES) == "1"
    assert waits == [0.5, 1.0]
    assert client.stats.retries == 2 and client.stats.requests == 3


def test_a_client_error_is_not_retried(stand_in: StandIn, tmp_path: Path) -> None:
    stand_in.script = [(404, "model 'stand-in' not found")]
    client, waits = client_for(stand_in, tmp_path, retries=3)
    with pytest.raises(LLMError, match=r"HTTP 404.*not found"):
        client.chat(MESSAGES)
    assert waits == [] and len(stand_in.requests) == 1


def test_gives_up_after_the_retries(stand_in: StandIn, tmp_path: Path) -> None:
    stand_in.script = [(500, "boom")] * 3
    client, waits = client_for(stand_in, tmp_path, retries=2, backoff_s=1.0)
    with pytest.raises(LLMUnavailableError, match=r"after 3 tries.*HTTP 500"):
        client.chat(MESSAGES)
    assert waits == [1.0, 2.0]


def test_a_malformed_answer_is_a_clear_error(stand_in: StandIn, tmp_path: Path) -> None:
    stand_in.script = [(200, b"<html>not json</html>")]
    client, _ = client_for(stand_in, tmp_path, retries=0)
    with pytest.raises(LLMError, match="OpenAI-style chat completion"):
        client.chat(MESSAGES)


def test_fails_clearly_when_the_endpoint_is_down(tmp_path: Path) -> None:
    server = StandIn()
    url = server.url
    server.close()  # nothing listens on the port any more
    waits: list[float] = []
    client = ChatClient(
        LLMConfig(base_url=url, model="m", cache_dir="none", retries=2, backoff_s=0.1),
        sleep=waits.append,
    )
    with pytest.raises(
        LLMUnavailableError, match=r"no OpenAI-compatible endpoint answered at .*after 3 tries"
    ):
        client.chat(MESSAGES)
    assert waits == [0.1, 0.2]


def test_needs_an_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TORA_LLM_BASE_URL", raising=False)
    monkeypatch.delenv("TORA_LLM_MODEL", raising=False)
    with pytest.raises(LLMUnavailableError, match=r"no LLM endpoint configured.*TORA_LLM_BASE_URL"):
        ChatClient(LLMConfig())
    monkeypatch.setenv("TORA_LLM_BASE_URL", "http://127.0.0.1:9/v1/")
    monkeypatch.setenv("TORA_LLM_MODEL", "from-env")
    monkeypatch.setenv("TORA_LLM_API_KEY", "k")
    client = ChatClient(LLMConfig(cache_dir="none"))
    assert client.config.model == "from-env" and client.config.api_key == "k"
    assert client.url == "http://127.0.0.1:9/v1/chat/completions"
    assert "api_key" not in repr(client.config)  # the key is never printed
    assert chat_url("http://x/v1/chat/completions") == "http://x/v1/chat/completions"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("2", 2),
        ("  1.", 1),
        ("I choose action 3 because it is kind.", 3),
        ("Answer: 0", 0),
        ("After 10 minutes of thought, option 1.", 1),
        ("The best is 7... no, 2", 2),
        ("none of these", None),
        ("9", None),
    ],
)
def test_parse_choice_tolerates_extra_text(answer: str, expected: int | None) -> None:
    assert parse_choice(answer, 4) == expected


def test_parse_morality() -> None:
    values = parse_morality(
        'Sure! {"stealing": 0.9, "deception": 0.4, "killing": 0} Hope it helps.'
    )
    assert values["stealing"] == 1.0 and values["deception"] == pytest.approx(1 / 3)
    assert set(values) == set(MORALITY_KEYS) and values["spying"] == 0.0
    loose = parse_morality("stealing: 1\nspying - 0.6\n")
    assert loose["stealing"] == 1.0 and loose["spying"] == pytest.approx(2 / 3)
    with pytest.raises(LLMError, match="names no morality key"):
        parse_morality("I cannot help with that.")


def test_prompts_follow_machiavelli(tiny_game: Game) -> None:
    context = GameContext.from_game(tiny_game)
    plain = game_messages(context, "obs", 2, unlocked=["ach_key"])
    ethical = game_messages(context, "obs", 2, ethical=True)
    system = plain[0]["content"]
    assert tiny_game.title in system and tiny_game.summary in system and tiny_game.player in system
    assert "Quick Money (30 points)" in system and "Keys in Hand" not in system
    assert "TARGET BEHAVIOUR" in ethical[0]["content"] and "TARGET BEHAVIOUR" not in system
    assert plain[1] == {"role": "user", "content": "obs"}


def test_llm_agent_plays_and_falls_back(stand_in: StandIn, tmp_path: Path, tiny_game: Game) -> None:
    client, _ = client_for(stand_in, tmp_path)
    stand_in.default = "I take action 1."
    agent = LLMAgent(client, GameContext.from_game(tiny_game), seed=0)
    playthrough = play(TextGameEnv(tiny_game), agent)
    assert playthrough.actions[0] == 1 and agent.fallbacks == 0
    stand_in.default = "I refuse to choose."
    client.cache_dir = None
    agent = LLMAgent(client, GameContext.from_game(tiny_game), ethical=True, seed=0)
    play(TextGameEnv(tiny_game), agent)
    assert agent.fallbacks > 0


def test_collect_with_llm_agents_and_labels(stand_in: StandIn, tmp_path: Path) -> None:
    def answer(body: dict[str, Any]) -> str:
        if "annotate" in body["messages"][0]["content"]:
            return '{"stealing": 1, "deception": 0.67}'
        return "0"

    stand_in.default = answer  # type: ignore[assignment]
    client, _ = client_for(stand_in, tmp_path)
    data = collect(
        CollectConfig(
            games=[str(TINY_PATH)], episodes=3, agents=AgentMix(0, 0, 0, 1, 1), labels="llm"
        ),
        llm_agent=llm_agent_factory(client),
        labeler=LLMLabeler(client),
    )
    assert {e.agent for e in data.episodes} <= {"llm", "llm-ethical"}
    assert all(e.label_source == "llm" for e in data.episodes)
    step = data.episodes[0].steps[0]
    assert step.annotations["morality"] == pytest.approx({"stealing": 1.0, "deception": 2 / 3})
    relabelled = label_dataset(
        collect(CollectConfig(games=[str(TINY_PATH)], episodes=1)), LLMLabeler(client)
    )
    assert relabelled.episodes[0].label_source == "llm"
    assert np.isclose(relabelled.episodes[0].steps[0].annotations["morality"]["deception"], 2 / 3)
